package caddyirma

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestRevocationLoadErrors: every bad revocation setting, and every use of
// a revocable credential type that the gateway is not the revocation
// authority of, stops the config from loading with an error that names the
// directive and its value; the database's connection string is in neither
// the error nor the log.
func TestRevocationLoadErrors(t *testing.T) {
	g := newGateway(t)
	good := g.caddyfile("")
	dead := caddytest.RefusedAddr(t)
	host, port, _ := strings.Cut(dead, ":")
	const secret = "s3cret-db-password"
	dbStr := fmt.Sprintf("host=%s port=%s user=caddy password=%s dbname=irma sslmode=disable connect_timeout=2", host, port, secret)
	irmaLines := func(lines string) string {
		return strings.Replace(good, "schemes_update off", "schemes_update off\n\t\t"+lines, 1)
	}
	revocation := func(block string) string {
		return "revocation {\n\t\t\t" + block + "\n\t\t}"
	}
	database := "db_type postgres\n\t\t\tdb_str \"" + dbStr + "\""
	withDB := revocation(database + "\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tauthority\n\t\t\t}")
	site := func(config, directives string) string {
		return strings.Replace(config, "respond \"next handler\"", directives+"\n\trespond \"next handler\"", 1)
	}
	issueStaff := func(key string) string {
		return "handle /staff {\n\t\tirma_issue {\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tname Alice\n\t\t\t\trole admin\n\t\t\t\t" + key + "\n\t\t\t}\n\t\t}\n\t}"
	}
	api := func(perms string) string {
		return "irma_requestor_api /api/* {\n\t\trequestor a {\n\t\t\tauth token t\n\t\t\t" + perms + "\n\t\t}\n\t}"
	}
	staffPolicy := "policy staff {\n\t\t\trequire caddy-demo.gateway.staff.role=admin\n\t\t\trevocation 5m\n\t\t}"
	t.Setenv("IRMA_TEST_UNSET_DB", "")
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"db_type", irmaLines(revocation("db_type oracle\n\t\t\tdb_str x\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tauthority\n\t\t\t}")), []string{"revocation", `db_type "oracle"`, "postgres"}},
		{"db_str unquoted", irmaLines(revocation("db_type postgres\n\t\t\tdb_str " + dbStr)), []string{"revocation", "db_str takes one value", "quote"}},
		{"no db_str", irmaLines(revocation("db_type postgres\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tauthority\n\t\t\t}")), []string{"revocation", "db_str is required"}},
		{"db_str placeholder empty", irmaLines(revocation("db_type postgres\n\t\t\tdb_str {env.IRMA_TEST_UNSET_DB}\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tauthority\n\t\t\t}")), []string{"revocation", "db_str is required"}},
		{"no credential", irmaLines(revocation(database)), []string{"revocation", "at least one credential type"}},
		{"credential not revocable", irmaLines(revocation(database + "\n\t\t\tcredential caddy-demo.gateway.person {\n\t\t\t\tauthority\n\t\t\t}")), []string{"revocation: credential caddy-demo.gateway.person", "does not support revocation"}},
		{"unknown credential", irmaLines(revocation(database + "\n\t\t\tcredential caddy-demo.gateway.badge {\n\t\t\t\tauthority\n\t\t\t}")), []string{"revocation: credential caddy-demo.gateway.badge", "no such credential type"}},
		{"no authority", irmaLines(revocation(database + "\n\t\t\tcredential caddy-demo.gateway.staff")), []string{"revocation: credential caddy-demo.gateway.staff", "authority is required"}},
		{"tolerance", irmaLines(revocation(database + "\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tauthority\n\t\t\t\ttolerance 10s\n\t\t\t}")), []string{"revocation: credential caddy-demo.gateway.staff", "tolerance 10s", "at least 30s"}},
		{"unknown setting", irmaLines(revocation(database + "\n\t\t\tdb_pool 3")), []string{"revocation", `unknown setting "db_pool"`}},
		{"unknown credential setting", irmaLines(revocation(database + "\n\t\t\tcredential caddy-demo.gateway.staff {\n\t\t\t\tserver\n\t\t\t}")), []string{"credential caddy-demo.gateway.staff", `unknown setting "server"`}},
		{"irma_issue without revocation settings", site(good, issueStaff("revocation_key {http.request.uri.query.key}")), []string{"irma_issue", `"caddy-demo.gateway.staff"`, "no revocation settings"}},
		{"irma_issue without revocation_key", site(irmaLines(withDB), issueStaff("")), []string{"irma_issue", `"caddy-demo.gateway.staff"`, "revocation_key is required"}},
		{"irma_issue revocation_key of a credential that is not revocable", strings.Replace(good, "over18 yes", "over18 yes\n\t\t\t\trevocation_key k", 1), []string{"irma_issue", `"caddy-demo.gateway.person"`, "revocation_key", "does not support revocation"}},
		{"requestor revoke without revocation settings", site(good, api("revoke caddy-demo.gateway.staff")), []string{"irma_requestor_api", `requestor "a"`, "revoke caddy-demo.gateway.staff", "no revocation settings"}},
		{"requestor revoke of a credential that is not revocable", site(good, api("revoke caddy-demo.gateway.person")), []string{"irma_requestor_api", "revoke caddy-demo.gateway.person", "does not support revocation"}},
		{"requestor issue without revocation settings", site(good, api("issue caddy-demo.gateway.staff")), []string{"irma_requestor_api", "issue caddy-demo.gateway.staff", "no revocation settings"}},
		{"unauthenticated revoke", site(good, "irma_requestor_api /api/* {\n\t\tallow_unauthenticated {\n\t\t\trevoke caddy-demo.gateway.staff\n\t\t}\n\t}"), []string{"irma_requestor_api", "allow_unauthenticated", "revoke"}},
		{"policy revocation without revocation settings", irmaLines(staffPolicy), []string{`policy "staff"`, "revocation", "caddy-demo.gateway.staff", "no revocation settings"}},
		{"policy revocation of credentials that are not revocable", irmaLines("policy p {\n\t\t\trequire caddy-demo.gateway.person.email\n\t\t\trevocation\n\t\t}"), []string{`policy "p"`, "none of the policy's credential types supports revocation"}},
		{"policy revocation max age", irmaLines("policy p {\n\t\t\trequire caddy-demo.gateway.staff.role\n\t\t\trevocation soon\n\t\t}"), []string{`policy "p"`, `revocation "soon"`}},
		{"policy revocation too short", irmaLines(withDB + "\n\t\tpolicy p {\n\t\t\trequire caddy-demo.gateway.staff.role\n\t\t\trevocation 10s\n\t\t}"), []string{`policy "p"`, "max age 10s", "at least 1m"}},
		{"unreachable database", irmaLines(withDB), []string{"revocation database (postgres)", "!schemes_path"}},
		{"unparsable connection string", irmaLines(strings.Replace(withDB, "password="+secret, `password=`+secret+`\\ Hidden\\ Words`, 1)), []string{"revocation database (postgres)", "!schemes_path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, tc.config, tc.want...)
			err := caddytest.Load(tc.config)
			if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "Hidden") || strings.Contains(err.Error(), "Words")) {
				t.Fatalf("the error shows the database's password: %v", err)
			}
		})
	}
	if strings.Contains(g.logs(t), secret) {
		t.Fatal("the log shows the database's password")
	}
}
