package requestor

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
)

// stubServer starts every session it is given without keeping it.
type stubServer struct{}

func (stubServer) StartSession(req any, _ server.SessionHandler, _ string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error) {
	if _, ok := req.(irma.RequestorRequest); !ok {
		panic("StartSession without a parsed request")
	}
	return &irma.Qr{URL: "http://localhost/irma/session/x", Type: irma.ActionDisclosing}, "AAAAAAAAAAAAAAAAAAAA", &irma.FrontendSessionRequest{}, nil
}

func (stubServer) GetSessionResult(t irma.RequestorToken) (*server.SessionResult, error) {
	return nil, &irmaserver.UnknownSessionError{}
}

func (stubServer) GetRequest(irma.RequestorToken) (irma.RequestorRequest, error) {
	return nil, &irmaserver.UnknownSessionError{}
}

func (stubServer) CancelSession(irma.RequestorToken) error { return &irmaserver.UnknownSessionError{} }

// FuzzCreateSession feeds arbitrary bodies and content types to POST /session: the handler must answer
// 200 with a session package, or one of irma server's error bodies with the matching status.
func FuzzCreateSession(f *testing.F) {
	h, err := New(stubServer{}, Config{
		Requestors: map[string]Requestor{
			"tok": {AuthMethod: AuthToken, Key: testToken, Permissions: Permissions{Disclose: []string{"*"}, Sign: []string{"*"}, Issue: []string{"*"}}},
			"hm":  {AuthMethod: AuthHMAC, Key: base64.StdEncoding.EncodeToString(hmacKey), Permissions: Permissions{Disclose: []string{"*"}}},
		},
		AllowUnauthenticated: true,
		MaxBodySize:          1 << 16,
	})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for _, body := range []string{discloseFullname, signEmail, issueMembership, issueDiscloseEmail, `{"request":` + discloseFullname + `,"validity":10}`,
		`{"type":"disclosing","content":[{"label":"x","attributes":["caddy-demo.gateway.person.fullname"]}]}`,
		`{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[[{"type":"caddy-demo.gateway.person.fullname","value":"x"}]]]}`,
		`{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{}]}`,
		`{"@context":"nope"}`, `{`, `null`, `[]`, ``, `"x"`} {
		f.Add("application/json", true, []byte(body))
		f.Add("application/json", false, []byte(body))
	}
	for _, body := range []string{
		requestorJWT(f, jwt.SigningMethodHS256, hmacKey, "hm", now, discloseFullname),
		requestorJWT(f, jwt.SigningMethodHS256, hmacKey, "hm", now, issueMembership),
		requestorJWT(f, jwt.SigningMethodHS256, hmacKey, "nobody", now, discloseFullname),
		"eyJhbGciOiJub25lIn0.e30.", "a.b.c", "",
	} {
		f.Add("text/plain", false, []byte(body))
	}
	f.Fuzz(func(t *testing.T, ctype string, withToken bool, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/session", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ctype)
		if withToken {
			req.Header.Set("Authorization", testToken)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			var pkg server.SessionPackage
			if err := json.Unmarshal(rec.Body.Bytes(), &pkg); err != nil || pkg.SessionPtr == nil {
				t.Fatalf("200 with body %q", rec.Body)
			}
			return
		}
		var rerr irma.RemoteError
		if err := json.Unmarshal(rec.Body.Bytes(), &rerr); err != nil || rerr.Status != rec.Code || rerr.ErrorName == "" {
			t.Fatalf("status %d with body %q", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), testToken) {
			t.Fatal("response shows the token")
		}
	})
}
