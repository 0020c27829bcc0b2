package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	// irmago signs requestor JWTs with jwt v4's types (irma.SignSessionRequest).
	jwtv4 "github.com/golang-jwt/jwt/v4"
	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRequestorAPI drives sessions through the irma server-compatible
// requestor API, with token and HMAC JWT requestors, and the real wallet.
func TestRequestorAPI(t *testing.T) {
	g := newGateway(t)
	base, scheme := g.base, g.scheme
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "jwt.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	hmacKey := []byte(strings.Repeat("h", 32))
	requestorKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&requestorKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "requestor.pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	g.start(t, "", fmt.Sprintf(`irma_endpoints
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token s3cret-token
				disclose caddy-demo.gateway.person.*
				issue caddy-demo.gateway.person
			}
			requestor signer {
				auth hmac %[1]s
				sign *
			}
			requestor rsaapp {
				auth publickey
				key_file %[3]s
				disclose caddy-demo.gateway.person.fullname
			}
			jwt_key_file %[2]s
			jwt_issuer caddy-irma-test
		}
	}`, base64.StdEncoding.EncodeToString(hmacKey), keyFile, pubFile))
	api := base + "/api/irma"

	post := func(body, contentType, auth string) (int, []byte) {
		t.Helper()
		return postSession(t, api, body, contentType, auth)
	}
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(api + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	type started struct {
		SessionPtr *irma.Qr            `json:"sessionPtr"`
		Token      irma.RequestorToken `json:"token"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	run := func(code int, body []byte) *server.SessionResult {
		t.Helper()
		var s started
		if err := json.Unmarshal(body, &s); err != nil || code != 200 || s.SessionPtr == nil || s.Token == "" {
			t.Fatalf("POST /session: %d %s", code, body)
		}
		if res, err := w.Run(ctx, s.SessionPtr, wallet.Accept); err != nil {
			t.Fatalf("wallet: %+v, %v", res, err)
		}
		if code, body := get("/session/" + string(s.Token) + "/status"); code != 200 || string(body) != `"DONE"` {
			t.Errorf("status: %d %s", code, body)
		}
		code, body = get("/session/" + string(s.Token) + "/result")
		var res server.SessionResult
		if err := json.Unmarshal(body, &res); err != nil || code != 200 || res.Status != irma.ServerStatusDone || res.ProofStatus != irma.ProofStatusValid {
			t.Fatalf("result: %d %s", code, body)
		}
		// The result as a JWT, signed with the key that /publickey serves.
		_, pub := get("/publickey")
		pk, err := jwt.ParseRSAPublicKeyFromPEM(pub)
		if err != nil {
			t.Fatalf("publickey: %v: %s", err, pub)
		}
		_, tok := get("/session/" + string(s.Token) + "/result-jwt")
		parsed, err := jwt.Parse(string(tok), func(*jwt.Token) (any, error) { return pk, nil }, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("caddy-irma-test"))
		if err != nil || !parsed.Valid {
			t.Errorf("result-jwt: %v", err)
		}
		return &res
	}

	// Token authentication: issue, then disclose.
	issuance := `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Alice","email":"alice@example.com","over18":"yes"}}]}`
	run(post(issuance, "application/json", "s3cret-token"))
	disclosure := `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`
	res := run(post(disclosure, "application/json", "s3cret-token"))
	if len(res.Disclosed) != 1 || *res.Disclosed[0][0].RawValue != "alice@example.com" {
		t.Errorf("disclosed %+v", res.Disclosed)
	}

	// HMAC JWT: an attribute-based signature.
	sigReq := irma.NewSignatureRequest("I agree.", irma.NewAttributeTypeIdentifier("caddy-demo.gateway.person.email"))
	signed, err := irma.SignSessionRequest(sigReq, jwtv4.SigningMethodHS256, hmacKey, "signer")
	if err != nil {
		t.Fatal(err)
	}
	res = run(post(signed, "text/plain", ""))
	if res.Signature == nil || res.Signature.Message != "I agree." {
		t.Errorf("signature %+v", res.Signature)
	}

	// RSA public-key JWT.
	nameReq := irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("caddy-demo.gateway.person.fullname"))
	rsaJWT, err := irma.SignSessionRequest(nameReq, jwtv4.SigningMethodRS256, requestorKey, "rsaapp")
	if err != nil {
		t.Fatal(err)
	}
	res = run(post(rsaJWT, "text/plain", ""))
	if len(res.Disclosed) != 1 || *res.Disclosed[0][0].RawValue != "Alice" {
		t.Errorf("disclosed %+v", res.Disclosed)
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	forgedRSA, _ := irma.SignSessionRequest(nameReq, jwtv4.SigningMethodRS256, otherKey, "rsaapp")
	rsaNoPerm, _ := irma.SignSessionRequest(irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("caddy-demo.gateway.person.email")), jwtv4.SigningMethodRS256, requestorKey, "rsaapp")

	// Refusals, in irma server's error format.
	stale := jwtv4.NewWithClaims(jwtv4.SigningMethodHS256, irma.NewSignatureRequestorJwt("signer", sigReq))
	stale.Claims.(*irma.SignatureRequestorJwt).IssuedAt = irma.Timestamp(time.Now().Add(-time.Hour))
	staleJWT, err := stale.SignedString(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, _ := irma.SignSessionRequest(sigReq, jwtv4.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "signer")
	for _, tc := range []struct {
		name, body, contentType, auth string
		status                        int
		errType                       string
	}{
		{"no authentication", disclosure, "application/json", "", 400, "INVALID_REQUEST"},
		{"wrong token", disclosure, "application/json", "wrong", 403, "UNAUTHORIZED"},
		{"missing permission", `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.membership.level"]]]}`, "application/json", "s3cret-token", 403, "UNAUTHORIZED"},
		{"issue not permitted", `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.membership","attributes":{"club":"x","level":"y"}}]}`, "application/json", "s3cret-token", 403, "UNAUTHORIZED"},
		{"HMAC with a wrong key", wrongKey, "text/plain", "", 400, "INVALID_REQUEST"},
		{"stale JWT", staleJWT, "text/plain", "", 403, "UNAUTHORIZED"},
		{"replayed JWT", signed, "text/plain", "", 403, "UNAUTHORIZED"},
		{"replayed JWT with a newline after it", signed + "\r\n", "text/plain", "", 403, "UNAUTHORIZED"},
		{"replayed JWT with a newline in it", signed[:len(signed)-5] + "\n" + signed[len(signed)-5:], "text/plain", "", 400, "INVALID_REQUEST"},
		{"RSA JWT with another key", forgedRSA, "text/plain", "", 400, "INVALID_REQUEST"},
		{"RSA JWT without permission", rsaNoPerm, "text/plain", "", 403, "UNAUTHORIZED"},
		{"malformed JSON", `{"@context":`, "application/json", "s3cret-token", 400, "INVALID_REQUEST"},
		{"attribute missing from an issuance", `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Alice","email":"alice@example.com"}}]}`, "application/json", "s3cret-token", 400, "INVALID_REQUEST"},
		{"unknown attribute in an issuance", `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Alice","email":"a@b.c","over18":"yes","shoesize":"42"}}]}`, "application/json", "s3cret-token", 400, "INVALID_REQUEST"},
	} {
		code, body := post(tc.body, tc.contentType, tc.auth)
		var e struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(body, &e); err != nil || code != tc.status || e.Error != tc.errType || e.Status != tc.status {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.status, tc.errType)
		}
	}
	if code, body := get("/session/AAAAAAAAAAAAAAAAAAAA/result"); code != 400 || !strings.Contains(string(body), "SESSION_UNKNOWN") {
		t.Errorf("unknown session: %d %s", code, body)
	}
}

// postSession POSTs body to the requestor API at api (its /session), with
// an Authorization header unless auth is "".
func postSession(t *testing.T, api, body, contentType, auth string) (int, []byte) {
	t.Helper()
	return postAs(t, api+"/session", body, contentType, auth)
}

// postAs POSTs body to url with the content type and, if not empty, the
// Authorization header auth, as a requestor does; it returns the status and
// the answer.
func postAs(t *testing.T, url, body, contentType, auth string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
