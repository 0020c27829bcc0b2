package requestor

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"
)

const (
	testToken             = "secret-requestor-token"
	discloseFullname      = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.fullname"]]]}`
	discloseEmail         = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`
	discloseOver18        = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.over18"]]]}`
	discloseClub          = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.membership.club"]]]}`
	signEmail             = `{"@context":"https://irma.app/ld/request/signature/v2","message":"hello","disclose":[[["caddy-demo.gateway.person.email"]]]}`
	issueMembership       = `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.membership","attributes":{"club":"chess","level":"1"}}]}`
	issuePerson           = `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"A","email":"a@b","over18":"yes"}}]}`
	issueDiscloseFullname = `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.membership","attributes":{"club":"chess","level":"1"}}],"disclose":[[["caddy-demo.gateway.person.fullname"]]]}`
	issueDiscloseEmail    = `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.membership","attributes":{"club":"chess","level":"1"}}],"disclose":[[["caddy-demo.gateway.person.email"]]]}`
)

var (
	hmacKey = []byte("0123456789abcdef0123456789abcdef")
	rsaKey  = mustRSA()
	jwtKey  = mustRSA()
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func publicPEM(t testing.TB, k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// newIRMAServer starts a real irmaserver on the test scheme.
func newIRMAServer(t testing.TB) (*irmaserver.Server, *server.Configuration) {
	t.Helper()
	s := testscheme.New(t, "http://127.0.0.1:1/irma/timestamp")
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	conf := &server.Configuration{
		URL:                   "http://localhost/irma/",
		SchemesPath:           s.SchemesPath,
		IssuerPrivateKeysPath: s.PrivateKeysPath,
		RevocationSettings:    testscheme.RevocationSettings(s),
		DisableSchemesUpdate:  true,
		Logger:                logger,
	}
	irmaserv, err := irmaserver.New(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(irmaserv.Stop)
	return irmaserv, conf
}

func testConfig(t testing.TB, conf *server.Configuration) Config {
	return Config{
		Requestors: map[string]Requestor{
			"tok": {AuthMethod: AuthToken, Key: testToken, Permissions: Permissions{
				Disclose: []string{"caddy-demo.gateway.person.fullname"},
				Sign:     []string{"caddy-demo.*"},
				Issue:    []string{"caddy-demo.gateway.membership"},
			}},
			"hm": {AuthMethod: AuthHMAC, Key: base64.StdEncoding.EncodeToString(hmacKey), Permissions: Permissions{
				Disclose: []string{"caddy-demo.gateway.person.*"},
				Issue:    []string{"caddy-demo.gateway.*"},
			}},
			"pk": {AuthMethod: AuthPublicKey, Key: publicPEM(t, rsaKey), Permissions: Permissions{
				Disclose: []string{"*"},
				Sign:     []string{"caddy-demo.gateway.*"},
				Issue:    []string{"*"},
			}},
			"": {Permissions: Permissions{Disclose: []string{"caddy-demo.gateway.person.over18"}}},
		},
		JWTIssuer: "test-gateway",
		JWTKey:    jwtKey,
		URL:       conf.URL,
		Conf:      conf.IrmaConfiguration,
	}
}

// setup serves New(irmaserver, cfg) with httptest; mod may change the default test config.
func setup(t testing.TB, mod func(*Config)) (*httptest.Server, *irmaserver.Server) {
	t.Helper()
	irmaserv, conf := newIRMAServer(t)
	cfg := testConfig(t, conf)
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(irmaserv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, irmaserv
}

// requestorJWT signs a session request as a requestor JWT.
func requestorJWT(t testing.TB, method jwt.SigningMethod, key any, iss string, iat time.Time, request string) string {
	t.Helper()
	var sub, field string
	switch {
	case strings.Contains(request, "disclosure/v2"):
		sub, field = "verification_request", "sprequest"
	case strings.Contains(request, "signature/v2"):
		sub, field = "signature_request", "absrequest"
	default:
		sub, field = "issue_request", "iprequest"
	}
	claims := jwt.MapClaims{"sub": sub, "iss": iss, "iat": iat.Unix(), field: map[string]any{"request": json.RawMessage(request)}}
	j, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type response struct {
	status int
	ctype  string
	body   string
}

func do(t testing.TB, method, url string, headers map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header.Get("Content-Type"), string(b)}
}

// remoteError decodes an irma server error body, failing unless it has the expected status and name.
func checkError(t testing.TB, r response, status int, name string) *irma.RemoteError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var rerr irma.RemoteError
	if err := json.Unmarshal([]byte(r.body), &rerr); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if rerr.ErrorName != name || rerr.Status != status || rerr.Description == "" {
		t.Fatalf("error %+v, want %s %d", rerr, name, status)
	}
	if !strings.HasPrefix(r.ctype, "application/json") {
		t.Fatalf("error content type %q", r.ctype)
	}
	return &rerr
}

func jsonHeaders(auth string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	if auth != "" {
		h["Authorization"] = auth
	}
	return h
}

var textHeaders = map[string]string{"Content-Type": "text/plain"}

func TestStartSessionAuth(t *testing.T) {
	ts, _ := setup(t, nil)
	unauth, _ := setup(t, func(c *Config) { c.AllowUnauthenticated = true })
	nokey, _ := setup(t, func(c *Config) { c.JWTKey = nil })
	unsigned, _ := setup(t, func(c *Config) { c.JWTKey, c.AllowUnsignedCallbacks = nil, true })
	signed, _ := setup(t, func(c *Config) { c.SignedCallbacks, c.AllowUnauthenticated = true, true })
	now := time.Now()
	hs := jwt.SigningMethodHS256
	rs := jwt.SigningMethodRS256
	tests := []struct {
		name    string
		srv     *httptest.Server
		headers map[string]string
		body    string
		status  int
		errName string // "" for success
		message string // substring of the error message
	}{
		{"token disclose", ts, jsonHeaders(testToken), discloseFullname, 200, "", ""},
		{"token sign wildcard scheme", ts, jsonHeaders(testToken), signEmail, 200, "", ""},
		{"token issue exact", ts, jsonHeaders(testToken), issueMembership, 200, "", ""},
		{"token issue with permitted disclosure", ts, jsonHeaders(testToken), issueDiscloseFullname, 200, "", ""},
		{"token wrong", ts, jsonHeaders("wrong"), discloseFullname, 403, "UNAUTHORIZED", ""},
		{"token prefix", ts, jsonHeaders(testToken[:5]), discloseFullname, 403, "UNAUTHORIZED", ""},
		{"token disclose not permitted", ts, jsonHeaders(testToken), discloseEmail, 403, "UNAUTHORIZED", "caddy-demo.gateway.person.email"},
		{"token issue not permitted", ts, jsonHeaders(testToken), issuePerson, 403, "UNAUTHORIZED", "No issuer permissions configured for credential 'caddy-demo.gateway.person'"},
		{"token issue disclosure not permitted", ts, jsonHeaders(testToken), issueDiscloseEmail, 403, "UNAUTHORIZED", "caddy-demo.gateway.person.email"},
		{"token malformed JSON", ts, jsonHeaders(testToken), `{"@context":`, 400, "INVALID_REQUEST", ""},
		{"token not a request", ts, jsonHeaders(testToken), `{"foo":1}`, 400, "INVALID_REQUEST", ""},
		{"token with text/plain", ts, map[string]string{"Content-Type": "text/plain", "Authorization": testToken}, discloseFullname, 400, "INVALID_REQUEST", "request could not be authenticated"},

		{"hmac disclose credential wildcard", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now, discloseEmail), 200, "", ""},
		{"hmac issue issuer wildcard", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now, issuePerson), 200, "", ""},
		{"hmac disclose not permitted", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now, discloseClub), 403, "UNAUTHORIZED", "caddy-demo.gateway.membership.club"},
		{"hmac sign without permissions", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now, signEmail), 403, "UNAUTHORIZED", ""},
		{"hmac wrong key", ts, textHeaders, requestorJWT(t, hs, []byte("another key, not the right one!!"), "hm", now, discloseEmail), 400, "INVALID_REQUEST", "signature is invalid"},
		{"hmac unknown requestor", ts, textHeaders, requestorJWT(t, hs, hmacKey, "nobody", now, discloseEmail), 400, "INVALID_REQUEST", "unknown requestor"},
		{"hmac with key of pk requestor name", ts, textHeaders, requestorJWT(t, hs, hmacKey, "pk", now, discloseEmail), 400, "INVALID_REQUEST", "unknown requestor"},
		{"hmac stale iat", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now.Add(-301*time.Second), discloseEmail), 403, "UNAUTHORIZED", "jwt too old"},
		{"hmac future iat", ts, textHeaders, requestorJWT(t, hs, hmacKey, "hm", now.Add(time.Minute), discloseEmail), 400, "INVALID_REQUEST", "used before issued"},
		{"hmac as json", ts, jsonHeaders(""), requestorJWT(t, hs, hmacKey, "hm", now, discloseEmail), 400, "INVALID_REQUEST", "request could not be authenticated"},

		{"publickey disclose all", ts, textHeaders, requestorJWT(t, rs, rsaKey, "pk", now, discloseClub), 200, "", ""},
		{"publickey sign issuer wildcard", ts, textHeaders, requestorJWT(t, rs, rsaKey, "pk", now, signEmail), 200, "", ""},
		{"publickey issue all", ts, textHeaders, requestorJWT(t, rs, rsaKey, "pk", now, issueDiscloseEmail), 200, "", ""},
		{"publickey wrong key", ts, textHeaders, requestorJWT(t, rs, jwtKey, "pk", now, discloseClub), 400, "INVALID_REQUEST", "verification error"},
		{"publickey stale iat", ts, textHeaders, requestorJWT(t, rs, rsaKey, "pk", now.Add(-time.Hour), discloseClub), 403, "UNAUTHORIZED", "jwt too old"},
		{"publickey future iat", ts, textHeaders, requestorJWT(t, rs, rsaKey, "pk", now.Add(time.Hour), discloseClub), 400, "INVALID_REQUEST", "used before issued"},
		{"publickey name of hmac requestor", ts, textHeaders, requestorJWT(t, rs, rsaKey, "hm", now, discloseClub), 400, "INVALID_REQUEST", "unknown requestor"},
		{"jwt garbage", ts, textHeaders, "not.a.jwt", 400, "INVALID_REQUEST", "request could not be authenticated"},

		{"missing auth refused", ts, jsonHeaders(""), discloseOver18, 400, "INVALID_REQUEST", "request could not be authenticated"},
		{"unsupported content type", ts, map[string]string{"Content-Type": "application/xml"}, discloseOver18, 400, "INVALID_REQUEST", "Unsupported Content-Type: application/xml"},
		{"unauthenticated allowed", unauth, jsonHeaders(""), discloseOver18, 200, "", ""},
		{"unauthenticated not permitted", unauth, jsonHeaders(""), discloseFullname, 403, "UNAUTHORIZED", "caddy-demo.gateway.person.fullname"},
		{"unauthenticated issue", unauth, jsonHeaders(""), issueMembership, 403, "UNAUTHORIZED", "No issuer permissions configured"},
		{"unauthenticated server still checks tokens", unauth, jsonHeaders("wrong"), discloseOver18, 403, "UNAUTHORIZED", ""},

		{"foreign host refused", ts, jsonHeaders(testToken), `{"@context":"https://irma.app/ld/request/disclosure/v2","host":"evil.example","disclose":[[["caddy-demo.gateway.person.fullname"]]]}`, 403, "UNAUTHORIZED", "host"},
		{"callback with a result key but unsigned callbacks", ts, jsonHeaders(testToken), `{"callbackUrl":"http://127.0.0.1:1/cb","request":` + discloseFullname + `}`, 501, "UNSUPPORTED", "callbackUrl provided but no JWT private key is installed: either install JWT or enable allow_unsigned_callbacks in configuration"},
		{"callback signed", signed, jsonHeaders(testToken), `{"callbackUrl":"http://127.0.0.1:1/cb","request":` + discloseFullname + `}`, 200, "", ""},
		{"callback unauthenticated", signed, jsonHeaders(""), `{"callbackUrl":"http://127.0.0.1:1/cb","request":` + discloseOver18 + `}`, 403, "UNAUTHORIZED", "callbackUrl: the session result is posted for authenticated requestors only"},
		{"callback not http", signed, jsonHeaders(testToken), `{"callbackUrl":"file:///etc/passwd","request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "callbackUrl: want an absolute http or https URL"},
		{"callback relative", signed, jsonHeaders(testToken), `{"callbackUrl":"/cb","request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "callbackUrl: want an absolute http or https URL"},
		{"next session without JWT key", nokey, jsonHeaders(testToken), `{"nextSession":{"url":"http://127.0.0.1:1/next"},"request":` + discloseFullname + `}`, 501, "UNSUPPORTED", "nextSession provided but no JWT private key is installed: either install JWT or enable allow_unsigned_callbacks in configuration"},
		{"next session with a result key but unsigned posts", ts, jsonHeaders(testToken), `{"nextSession":{"url":"http://127.0.0.1:1/next"},"request":` + discloseFullname + `}`, 501, "UNSUPPORTED", "nextSession provided but no JWT private key"},
		{"next session signed", signed, jsonHeaders(testToken), `{"nextSession":{"url":"http://127.0.0.1:1/next"},"request":` + discloseFullname + `}`, 200, "", ""},
		{"next session unsigned allowed", unsigned, jsonHeaders(testToken), `{"nextSession":{"url":"https://requestor.example/next"},"request":` + discloseFullname + `}`, 200, "", ""},
		{"next session unauthenticated", signed, jsonHeaders(""), `{"nextSession":{"url":"http://127.0.0.1:1/next"},"request":` + discloseOver18 + `}`, 403, "UNAUTHORIZED", "nextSession: the session result is posted for authenticated requestors only"},
		{"next session empty URL", signed, jsonHeaders(testToken), `{"nextSession":{"url":""},"request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "nextSession provided with empty URL"},
		{"next session with a fragment", signed, jsonHeaders(testToken), `{"nextSession":{"url":"http://localhost:2019/stop#"},"request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "nextSession: a URL with a query (?) or a fragment (#) is not posted where it says"},
		{"callback with a query", signed, jsonHeaders(testToken), `{"callbackUrl":"http://localhost:2019/stop?","request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "callbackUrl: a URL with a query (?)"},
		{"callback with a fragment", signed, jsonHeaders(testToken), `{"callbackUrl":"http://localhost:2019/stop#x","request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "callbackUrl: a URL with a query (?) or a fragment (#)"},
		{"next session not http", signed, jsonHeaders(testToken), `{"nextSession":{"url":"gopher://127.0.0.1:70/"},"request":` + discloseFullname + `}`, 400, "INVALID_REQUEST", "nextSession: want an absolute http or https URL"},
		{"callback unsigned allowed", unsigned, jsonHeaders(testToken), `{"callbackUrl":"http://127.0.0.1:1/cb","request":` + discloseFullname + `}`, 200, "", ""},
		{"callback without JWT key", nokey, jsonHeaders(testToken), `{"callbackUrl":"http://127.0.0.1:1/cb","request":` + discloseFullname + `}`, 501, "UNSUPPORTED", "callbackUrl provided but no JWT private key is installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, tt.srv.URL+"/session", tt.headers, tt.body)
			if tt.errName != "" {
				rerr := checkError(t, r, tt.status, tt.errName)
				if !strings.Contains(rerr.Message, tt.message) {
					t.Fatalf("message %q, want it to contain %q", rerr.Message, tt.message)
				}
				if strings.Contains(r.body, testToken) {
					t.Fatal("error echoes the token")
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var pkg server.SessionPackage
			if err := json.Unmarshal([]byte(r.body), &pkg); err != nil {
				t.Fatal(err)
			}
			if pkg.SessionPtr == nil || pkg.SessionPtr.URL == "" || pkg.Token == "" || pkg.FrontendRequest == nil || pkg.FrontendRequest.Authorization == "" {
				t.Fatalf("session package %s", r.body)
			}
		})
	}
}
