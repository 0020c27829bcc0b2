package requestor

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
)

const (
	staffType   = "caddy-demo.gateway.staff"
	revokeAlice = `{"@context":"https://irma.app/ld/request/revocation/v1","type":"caddy-demo.gateway.staff","revocationKey":"alice-1"}`
)

// revocations records what the API asked to revoke. The revocation itself
// (irmago's, on a real database) is tested end to end in caddyirma/e2e.
type revocations struct{ keys []string }

func (r *revocations) revoke(cred irma.CredentialTypeIdentifier, key string, issued time.Time) error {
	if key == "unknown" {
		return irma.ErrUnknownRevocationKey
	}
	if key == "broken" {
		return errors.New("pq: connection to host=db user=caddy password=hunter2 failed")
	}
	r.keys = append(r.keys, cred.String()+"/"+key)
	return nil
}

func revocationAPI(t testing.TB, rec *revocations) http.Handler {
	t.Helper()
	h, err := New(stubServer{}, Config{
		Requestors: map[string]Requestor{
			"tok":   {AuthMethod: AuthToken, Key: testToken, Permissions: Permissions{Issue: []string{"*"}, Revoke: []string{staffType}}},
			"other": {AuthMethod: AuthToken, Key: "other-token", Permissions: Permissions{Issue: []string{"*"}}},
			"hm":    {AuthMethod: AuthHMAC, Key: base64.StdEncoding.EncodeToString(hmacKey), Permissions: Permissions{Revoke: []string{"caddy-demo.*"}}},
		},
		AllowUnauthenticated: true,
		Revoke:               rec.revoke,
		Revocable: func(id irma.CredentialTypeIdentifier) (bool, error) {
			return id.String() == staffType, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func postRevocation(h http.Handler, ctype, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/revocation", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func revocationJWT(t testing.TB, iss string, iat time.Time, request string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": iss, "sub": "revocation_request", "iat": iat.Unix(), "revrequest": json.RawMessage(request),
	}).SignedString(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRevocationRequests(t *testing.T) {
	rec := &revocations{}
	h := revocationAPI(t, rec)
	jwtAlice := revocationJWT(t, "hm", time.Now(), revokeAlice)
	for _, c := range []struct {
		name, ctype, auth, body string
		status                  int
		errName                 string
	}{
		{"token", "application/json", testToken, revokeAlice, 200, ""},
		{"jwt", "text/plain", "", jwtAlice, 200, ""},
		{"jwt again", "text/plain", "", jwtAlice, 403, "UNAUTHORIZED"},
		{"no revoke permission", "application/json", "other-token", revokeAlice, 403, "UNAUTHORIZED"},
		{"other credential type", "application/json", testToken, strings.Replace(revokeAlice, "staff", "person", 1), 403, "UNAUTHORIZED"},
		{"wildcard permission, not revocable here", "text/plain", "", revocationJWT(t, "hm", time.Now(), strings.Replace(revokeAlice, "staff", "person", 1)), 403, "UNAUTHORIZED"},
		{"wrong token", "application/json", "nope", revokeAlice, 403, "UNAUTHORIZED"},
		{"unauthenticated", "application/json", "", revokeAlice, 400, "INVALID_REQUEST"},
		{"unknown key", "application/json", testToken, strings.Replace(revokeAlice, "alice-1", "unknown", 1), 404, "UNKNOWN_REVOCATION_KEY"},
		{"database down", "application/json", testToken, strings.Replace(revokeAlice, "alice-1", "broken", 1), 500, "REVOCATION"},
		{"no context", "application/json", testToken, `{"type":"caddy-demo.gateway.staff","revocationKey":"a"}`, 400, "INVALID_REQUEST"},
		{"no key", "application/json", testToken, `{"@context":"https://irma.app/ld/request/revocation/v1","type":"caddy-demo.gateway.staff"}`, 400, "INVALID_REQUEST"},
		{"attribute, not credential type", "application/json", testToken, strings.Replace(revokeAlice, "staff", "staff.name", 1), 400, "INVALID_REQUEST"},
		{"jwt of unknown requestor", "text/plain", "", revocationJWT(t, "nobody", time.Now(), revokeAlice), 400, "INVALID_REQUEST"},
		{"old jwt", "text/plain", "", revocationJWT(t, "hm", time.Now().Add(-time.Hour), revokeAlice), 403, "UNAUTHORIZED"},
		{"NUL in the key", "application/json", testToken, strings.Replace(revokeAlice, "alice-1", `alice\u0000`, 1), 400, "INVALID_REQUEST"},
		{"invalid UTF-8 in the key", "application/json", testToken, strings.Replace(revokeAlice, "alice-1", "alice\xff", 1), 400, "INVALID_REQUEST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := postRevocation(h, c.ctype, c.auth, c.body)
			if c.status == 200 {
				if r.Code != 200 || r.Body.String() != "OK" {
					t.Fatalf("%d %q", r.Code, r.Body)
				}
				return
			}
			var rerr irma.RemoteError
			if err := json.Unmarshal(r.Body.Bytes(), &rerr); err != nil || r.Code != c.status || rerr.ErrorName != c.errName {
				t.Fatalf("want %d %s, got %d %q", c.status, c.errName, r.Code, r.Body)
			}
			if strings.Contains(r.Body.String(), "hunter2") || strings.Contains(r.Body.String(), "host=") {
				t.Fatalf("the database's error is shown: %q", r.Body)
			}
		})
	}
	if got := strings.Join(rec.keys, ","); got != staffType+"/alice-1,"+staffType+"/alice-1" {
		t.Fatalf("revoked %q", got)
	}
}

// TestIssueRevocable: the API checks an issuance request's revocation keys
// before irmaserver sees it.
func TestIssueRevocable(t *testing.T) {
	h, err := New(stubServer{}, Config{
		Requestors: map[string]Requestor{"tok": {AuthMethod: AuthToken, Key: testToken, Permissions: Permissions{Issue: []string{"*"}}}},
		Revocable: func(id irma.CredentialTypeIdentifier) (bool, error) {
			switch id.Name() {
			case "staff":
				return true, nil
			case "badge":
				return true, errors.New("credential type caddy-demo.gateway.badge is revocable, but the irma option has no revocation settings")
			}
			return false, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cred, key string) string {
		return `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.` + cred +
			`","attributes":{"name":"Alice"},"revocationKey":"` + key + `"}]}`
	}
	for _, c := range []struct {
		body   string
		status int
	}{
		{issue("staff", "alice-1"), 200},
		{issue("staff", ""), 403},
		{issue("staff", strings.Repeat("k", MaxRevocationKeyLength+1)), 403},
		{issue("badge", "alice-1"), 403},
		{issue("staff", `alice\u0000`), 403},
		{issue("staff", "alice\x01"), 400}, // a raw control character is not JSON
		{issue("membership", ""), 200},
	} {
		req := httptest.NewRequest(http.MethodPost, "/session", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%.120s: %d %q", c.body, rec.Code, rec.Body)
		}
	}
}

// FuzzRevocationRequest feeds arbitrary bodies to POST /revocation: the
// handler answers "OK" only for a valid request, else one of irma server's
// error bodies, and never panics.
func FuzzRevocationRequest(f *testing.F) {
	rec := &revocations{}
	h := revocationAPI(f, rec)
	now := time.Now()
	for _, body := range []string{revokeAlice, `{"@context":"https://irma.app/ld/request/revocation/v1","type":"caddy-demo.gateway.staff","revocationKey":"k","issued":1700000000000000000}`,
		`{"@context":"https://irma.app/ld/request/revocation/v1","type":"a..b","revocationKey":"k"}`,
		`{"@context":"https://irma.app/ld/request/revocation/v1","type":"caddy-demo.gateway.staff","revocationKey":"k","issued":-1}`,
		`{"type":"x"}`, `{`, `null`, `[]`, ``, `"x"`} {
		f.Add("application/json", true, []byte(body))
		f.Add("application/json", false, []byte(body))
	}
	for _, body := range []string{revocationJWT(f, "hm", now, revokeAlice), revocationJWT(f, "hm", now, `null`), revocationJWT(f, "hm", now, `{"type":1}`), "a.b.c", ""} {
		f.Add("text/plain", false, []byte(body))
	}
	f.Fuzz(func(t *testing.T, ctype string, withToken bool, body []byte) {
		auth := ""
		if withToken {
			auth = testToken
		}
		r := postRevocation(h, ctype, auth, string(body))
		if r.Code == http.StatusOK {
			if r.Body.String() != "OK" {
				t.Fatalf("200 with body %q", r.Body)
			}
			if _, err := ParseRevocationRequest(body); err != nil && ctype == "application/json" {
				t.Fatalf("revoked for a request that does not parse: %v", err)
			}
			return
		}
		var rerr irma.RemoteError
		if err := json.Unmarshal(r.Body.Bytes(), &rerr); err != nil || rerr.Status != r.Code || rerr.ErrorName == "" {
			t.Fatalf("status %d with body %q", r.Code, r.Body)
		}
	})
}
