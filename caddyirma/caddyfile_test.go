package caddyirma

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestCaddyfileErrors checks that bad Caddyfile syntax is refused with an
// error that names what is wrong.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
		unmarshal         func(*caddyfile.Dispenser) error
	}{
		{"auth without policy", "irma_auth", "a policy name or at least one require line", authUnmarshal},
		{"auth policy and require", "irma_auth members {\n require a.b.c.d\n}", "use one", authUnmarshal},
		{"auth two policy names", "irma_auth members {\n policy other\n}", "policy given twice", authUnmarshal},
		{"auth extra argument", "irma_auth members more", `unexpected argument "more"`, authUnmarshal},
		{"auth bad expression", "irma_auth {\n require a.b.c.d or\n}", `require "a.b.c.d or"`, authUnmarshal},
		{"auth empty require", "irma_auth {\n require\n}", "require needs an expression", authUnmarshal},
		{"auth label", "irma_auth {\n require a.b.c.d {\n label en\n }\n}", "label takes a language and a text", authUnmarshal},
		{"auth label twice", "irma_auth {\n require a.b.c.d {\n label en x\n label en y\n }\n}", "label en given twice", authUnmarshal},
		{"auth unknown in require", "irma_auth {\n require a.b.c.d {\n lable en x\n }\n}", `unknown setting "lable"`, authUnmarshal},
		{"auth header arity", "irma_auth {\n require a.b.c.d\n header a.b.c.d\n}", "header takes an attribute id and a header name", authUnmarshal},
		{"auth header twice", "irma_auth {\n require a.b.c.d\n header a.b.c.d X-A\n header a.b.c.d X-B\n}", "given twice", authUnmarshal},
		{"auth pairing", "irma_auth {\n require a.b.c.d\n pairing sometimes\n}", `pairing "sometimes"`, authUnmarshal},
		{"auth audience twice", "irma_auth {\n require a.b.c.d\n audience a\n audience b\n}", "audience given twice", authUnmarshal},
		{"auth unknown", "irma_auth {\n require a.b.c.d\n polcy x\n}", `unknown setting "polcy"`, authUnmarshal},
		{"global unknown", "irma {\n shemes_path x\n}", `unknown setting "shemes_path"`, appUnmarshal},
		{"global twice", "irma {\n url a\n url b\n}", "url given twice", appUnmarshal},
		{"global argument", "irma x", `unexpected argument "x"`, appUnmarshal},
		{"global default schemes", "irma {\n default_schemes maybe\n}", `default_schemes "maybe": want on or off`, appUnmarshal},
		{"global default schemes path", "irma {\n default_schemes_path\n}", "default_schemes_path needs a value", appUnmarshal},
		{"global policy empty", "irma {\n policy p {\n }\n}", "at least one require", appUnmarshal},
		{"global policy twice", "irma {\n policy p {\n require a.b.c.d\n }\n policy p {\n require a.b.c.d\n }\n}", `policy "p" given twice`, appUnmarshal},
		{"global policy unknown", "irma {\n policy p {\n requires a.b.c.d\n }\n}", `unknown setting "requires"`, appUnmarshal},
		{"global production argument", "irma {\n production yes\n}", `production takes no argument, got "yes"`, appUnmarshal},
		{"global jwt_privkey_file", "irma {\n jwt_privkey_file\n}", "jwt_privkey_file needs a value", appUnmarshal},
		{"global jwt_privkey_file two", "irma {\n jwt_privkey_file a b\n}", `jwt_privkey_file takes one value, got also "b"`, appUnmarshal},
		{"global jwt_privkey_file twice", "irma {\n jwt_privkey_file a\n jwt_privkey_file b\n}", "jwt_privkey_file given twice", appUnmarshal},
		{"global jwt_issuer", "irma {\n jwt_issuer\n}", "jwt_issuer needs a value", appUnmarshal},
		{"global jwt_issuer twice", "irma {\n jwt_issuer a\n jwt_issuer b\n}", "jwt_issuer given twice", appUnmarshal},
		{"global allow_unsigned_callbacks argument", "irma {\n allow_unsigned_callbacks yes\n}", `allow_unsigned_callbacks takes no argument, got "yes"`, appUnmarshal},
		{"global allow_unsigned_callbacks twice", "irma {\n allow_unsigned_callbacks\n allow_unsigned_callbacks\n}", "allow_unsigned_callbacks given twice", appUnmarshal},
		{"global static_session arity", "irma {\n static_session door\n}", "static_session takes a name and a session request in JSON", appUnmarshal},
		{"global static_session JSON", "irma {\n static_session door notjson\n}", `static_session "door": the request is not valid JSON`, appUnmarshal},
		{"global static_session twice", "irma {\n static_session door `{}`\n static_session door `{}`\n}", `static_session "door" given twice`, appUnmarshal},
		{"global static_session block", "irma {\n static_session door `{}` {\n x\n }\n}", `static_session "door" takes no block`, appUnmarshal},
		{"login unknown", "irma {\n login {\n cookie x\n }\n}", `login: unknown setting "cookie"`, appUnmarshal},
		{"login twice", "irma {\n login {\n audience a\n audience b\n }\n}", "audience given twice", appUnmarshal},
		{"login duration", "irma {\n login {\n cookie_lifetime forever\n }\n}", `cookie_lifetime "forever"`, appUnmarshal},
		{"login keys", "irma {\n login {\n cookie_keys\n }\n}", "cookie_keys needs at least one key", appUnmarshal},
		{"session limits per client", "irma {\n session_limits {\n per_client 0\n }\n}", `per_client "0"`, appUnmarshal},
		{"session limits window", "irma {\n session_limits {\n per_client 5 soon\n }\n}", `"soon"`, appUnmarshal},
		{"session limits unknown", "irma {\n session_limits {\n per_ip 5\n }\n}", `unknown setting "per_ip"`, appUnmarshal},
		{"redis db", "irma {\n redis localhost:6379 {\n db x\n }\n}", `db "x"`, appUnmarshal},
		{"redis two addresses", "irma {\n redis a:6379 b:6379\n}", `redis takes one address, got also "b:6379"`, appUnmarshal},
		{"redis no sentinels", "irma {\n redis {\n sentinel_addresses\n }\n}", "sentinel_addresses needs one or more host:port", appUnmarshal},
		{"redis risk argument", "irma {\n redis {\n accept_inconsistency_risk yes\n }\n}", `accept_inconsistency_risk takes no argument, got "yes"`, appUnmarshal},
		{"redis master name twice", "irma {\n redis {\n sentinel_master_name a\n sentinel_master_name b\n }\n}", "sentinel_master_name given twice", appUnmarshal},
		{"issue pairing", "irma_issue {\n credential a.b.c {\n x y\n }\n pairing maybe\n}", `pairing "maybe"`, issueUnmarshal},
		{"issue no credential", "irma_issue", "at least one credential", issueUnmarshal},
		{"issue empty disclose", "irma_issue {\n credential a.b.c {\n x y\n }\n disclose\n}", "disclose needs an expression", issueUnmarshal},
		{"issue bad disclose", "irma_issue {\n credential a.b.c {\n x y\n }\n disclose a.b.c.d or\n}", `disclose "a.b.c.d or"`, issueUnmarshal},
		{"issue disclose label", "irma_issue {\n credential a.b.c {\n x y\n }\n disclose a.b.c.d {\n lable en x\n }\n}", `disclose: unknown setting "lable"`, issueUnmarshal},
		{"sign empty require", "irma_sign {\n require\n}", "require needs an expression", signUnmarshal},
		{"issue match arity", "irma_issue {\n credential a.b.c {\n x y\n match x\n }\n}", "match takes an attribute and a pattern", issueUnmarshal},
		{"issue match twice", "irma_issue {\n credential a.b.c {\n x y\n match x a\n match x b\n }\n}", `match "x" given twice`, issueUnmarshal},
		{"issue validity", "irma_issue {\n credential a.b.c {\n validity soon\n }\n}", `validity "soon"`, issueUnmarshal},
		{"endpoints argument", "irma_endpoints /x", "takes no arguments", endpointsUnmarshal},
		{"endpoints unknown", "irma_endpoints {\n cors_origin https://a.example\n}", `irma_endpoints: unknown setting "cors_origin"`, endpointsUnmarshal},
		{"endpoints cors empty", "irma_endpoints {\n cors_origins\n}", "cors_origins needs one or more origins", endpointsUnmarshal},
		{"endpoints cors twice", "irma_endpoints {\n cors_origins https://a.example\n cors_origins https://b.example\n}", "cors_origins given twice", endpointsUnmarshal},
		{"endpoints cors wildcard", "irma_endpoints {\n cors_origins *\n}", `irma_endpoints: cors_origins "*": no wildcards`, endpointsUnmarshal},
		{"endpoints cors path", "irma_endpoints {\n cors_origins https://a.example/app\n}", `cors_origins "https://a.example/app": an origin is scheme://host[:port]`, endpointsUnmarshal},
		{"endpoints cors same twice", "irma_endpoints {\n cors_origins https://a.example https://a.example\n}", `cors_origins "https://a.example": given twice`, endpointsUnmarshal},
		{"sign unknown", "irma_sign {\n mesage x\n}", `unknown setting "mesage"`, signUnmarshal},
		{"sign twice", "irma_sign {\n message x\n message y\n}", "message given twice", signUnmarshal},
		{"sign body argument", "irma_sign {\n message_body yes\n}", "message_body takes no argument", signUnmarshal},
		{"sign pairing", "irma_sign {\n pairing maybe\n}", `pairing "maybe"`, signUnmarshal},
		{"api unknown", "irma_requestor_api {\n requester x {\n }\n}", `unknown setting "requester"`, apiUnmarshal},
		{"api requestor twice", "irma_requestor_api {\n requestor a {\n }\n requestor a {\n }\n}", `requestor "a" given twice`, apiUnmarshal},
		{"api auth", "irma_requestor_api {\n requestor a {\n auth\n }\n}", "auth takes a method", apiUnmarshal},
		{"api unauthenticated auth", "irma_requestor_api {\n allow_unauthenticated {\n auth token x\n }\n}", "unauthenticated requests have no auth", apiUnmarshal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.unmarshal(caddyfile.NewTestDispenser(tc.input))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func authUnmarshal(d *caddyfile.Dispenser) error      { return new(Auth).UnmarshalCaddyfile(d) }
func appUnmarshal(d *caddyfile.Dispenser) error       { return new(App).UnmarshalCaddyfile(d) }
func issueUnmarshal(d *caddyfile.Dispenser) error     { return new(Issue).UnmarshalCaddyfile(d) }
func endpointsUnmarshal(d *caddyfile.Dispenser) error { return new(Endpoints).UnmarshalCaddyfile(d) }
func signUnmarshal(d *caddyfile.Dispenser) error      { return new(Sign).UnmarshalCaddyfile(d) }
func apiUnmarshal(d *caddyfile.Dispenser) error       { return new(RequestorAPI).UnmarshalCaddyfile(d) }
