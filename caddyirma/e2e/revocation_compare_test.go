package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testpostgres"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRevocationLikeIRMAServer sends the same revocation requests to the
// gateway and to irma server itself (yivi v1.3.0, built for the test), each
// the revocation authority of the demo scheme's staff pass with a
// PostgreSQL of its own: the real wallet receives a pass issued with a
// revocation key through the requestor API, and a requestor without the
// revoke permission, one with it and an unknown key, the revocation
// itself and a second revocation of the same key get the same answers
// from both.
func TestRevocationLikeIRMAServer(t *testing.T) {
	g := newGateway(t)
	staff := g.scheme.Credential(demoscheme.CredentialStaff)
	g.start(t, fmt.Sprintf(`revocation {
			db_type postgres
			db_str "%s"
			credential %s {
				authority
			}
		}`, testpostgres.Start(t), staff), `irma_endpoints
	handle_path /api/* {
		irma_requestor_api {
			requestor hr {
				auth token hr-token
				issue caddy-demo.gateway.staff
				revoke caddy-demo.gateway.staff
			}
			requestor other {
				auth token other-token
				issue caddy-demo.gateway.staff
			}
		}
	}`)
	irmaServer := startRevocationIRMAServer(t, g, staff)
	want, got := revocationTranscript(t, g, irmaServer, staff), revocationTranscript(t, g, g.base+"/api", staff)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the gateway:\n  %s\nirma server:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	t.Logf("both:\n  %s", strings.Join(got, "\n  "))
}

// startRevocationIRMAServer runs irma server as the revocation authority of
// staff, with the gateway's scheme and keys, and the requestors hr and
// other; it returns its URL.
func startRevocationIRMAServer(t *testing.T, g *gateway, staff irma.CredentialTypeIdentifier) string {
	port := caddytest.PortToTry(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	runIRMAServer(t, url, map[string]any{
		"url": url + "/", "no_auth": false, "listen_addr": "127.0.0.1", "port": port, "no_tls": true,
		"schemes_path": g.scheme.SchemesPath, "privkeys": g.scheme.PrivateKeysPath, "schemes_update": 0,
		"disclose_perms": []string{}, "sign_perms": []string{}, "issue_perms": []string{},
		"requestors": map[string]any{
			"hr":    map[string]any{"auth_method": "token", "key": "hr-token", "issue_perms": []string{staff.String()}, "revoke_perms": []string{staff.String()}},
			"other": map[string]any{"auth_method": "token", "key": "other-token", "issue_perms": []string{staff.String()}},
		},
		"revocation_db_type":  "postgres",
		"revocation_db_str":   testpostgres.Start(t),
		"revocation_settings": map[string]any{staff.String(): map[string]any{"authority": true}},
	})
	return url
}

// revocationTranscript issues a staff pass with the key alice-pass through
// the requestor API at api, and revokes it as a requestor would; it
// returns what the requestor sees.
func revocationTranscript(t *testing.T, g *gateway, api string, staff irma.CredentialTypeIdentifier) []string {
	t.Helper()
	post := func(path, token, body string) string {
		t.Helper()
		code, b := postAs(t, api+path, body, "application/json", token)
		var e irma.RemoteError
		if code != http.StatusOK && json.Unmarshal(b, &e) == nil {
			return fmt.Sprintf("%d %s %s: %s", code, e.ErrorName, e.Description, e.Message)
		}
		return fmt.Sprint(code)
	}
	issuance := fmt.Sprintf(`{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"%s","attributes":{"name":"alice","role":"admin"},"revocationKey":"alice-pass"}]}`, staff)
	code, b := postSession(t, api, issuance, "application/json", "hr-token")
	var started struct {
		SessionPtr *irma.Qr `json:"sessionPtr"`
	}
	if err := json.Unmarshal(b, &started); err != nil || started.SessionPtr == nil {
		t.Fatalf("%s: POST /session: %d %s", api, code, b)
	}
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := w.Run(ctx, started.SessionPtr, wallet.Accept)
	revocation := func(key string) string {
		return fmt.Sprintf(`{"@context":"https://irma.app/ld/request/revocation/v1","type":"%s","revocationKey":"%s"}`, staff, key)
	}
	return []string{
		fmt.Sprintf("issued: %s %v", res.Outcome, err),
		"without revoke permission: " + post("/revocation", "other-token", revocation("alice-pass")),
		"unknown key: " + post("/revocation", "hr-token", revocation("nobody-pass")),
		"revoke: " + post("/revocation", "hr-token", revocation("alice-pass")),
		"again: " + post("/revocation", "hr-token", revocation("alice-pass")),
	}
}
