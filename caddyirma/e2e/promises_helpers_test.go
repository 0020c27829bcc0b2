package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The helpers of the README-promise tests (promises_*_test.go): a cookie
// jar that records every attribute the gateway sets, an upstream that
// records what it got, and a JWT verifier that is not the gateway's code.

// cookieRecorder is a cookie jar that records every Set-Cookie the gateway
// sends, with its attributes, and sends back what a browser on the cookie's
// own site would. Unlike net/http/cookiejar it ignores Domain and Secure
// when sending: the tests reach the gateway at 127.0.0.1 whatever domain a
// cookie names, and assert those attributes themselves.
type cookieRecorder struct {
	mu   sync.Mutex
	live map[string]*http.Cookie
	set  []*http.Cookie // every cookie the gateway set, in order, deletions included
}

func (j *cookieRecorder) SetCookies(_ *url.URL, cookies []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.live == nil {
		j.live = map[string]*http.Cookie{}
	}
	for _, c := range cookies {
		j.set = append(j.set, c)
		if c.MaxAge < 0 || (!c.Expires.IsZero() && !c.Expires.After(time.Now())) {
			delete(j.live, c.Name)
			continue
		}
		j.live[c.Name] = c
	}
}

func (j *cookieRecorder) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.live {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// all returns every cookie the gateway set so far.
func (j *cookieRecorder) all() []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.set)
}

// has says whether the browser holds a cookie of that name.
func (j *cookieRecorder) has(name string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.live[name]
	return ok
}

// describeCookie shows a cookie's name and attributes, not its sealed
// value.
func describeCookie(c *http.Cookie) string {
	if c == nil {
		return "<none>"
	}
	d := *c
	if d.Value != "" {
		d.Value = "sealed"
	}
	return d.String()
}

// newRecordingBrowser is a browser (see auth_test.go) whose cookies go
// through a cookieRecorder. transport may be nil.
func newRecordingBrowser(t testing.TB, transport http.RoundTripper) (*browser, *cookieRecorder) {
	jar := &cookieRecorder{}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, jar
}

// send makes a request with a body, asking for JSON unless header says
// otherwise.
func (b *browser) send(method, target string, header map[string]string, body string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// setCookies returns the cookies that a response set, by name.
func setCookies(resp *http.Response) map[string]*http.Cookie {
	m := map[string]*http.Cookie{}
	for _, c := range resp.Cookies() {
		m[c.Name] = c
	}
	return m
}

// cookieWithPrefix returns the cookie whose name starts with prefix that
// resp sets (not one it clears before setting it anew), or nil.
func cookieWithPrefix(resp *http.Response, prefix string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, prefix) && c.MaxAge >= 0 {
			return c
		}
	}
	return nil
}

// cacheDirectives returns the directives of a Cache-Control header,
// lowercased, in their order.
func cacheDirectives(h http.Header) []string {
	var out []string
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// varies says whether the response's Vary names header.
func varies(h http.Header, header string) bool {
	for _, line := range h.Values("Vary") {
		for _, v := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(v), header) {
				return true
			}
		}
	}
	return false
}

// parseInfo reads the JSON session answer of a 401 (or of irma_issue and
// irma_sign).
func parseInfo(t testing.TB, body string) *sessionpage.Info {
	t.Helper()
	var info sessionpage.Info
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.SessionPtr == nil || info.Frontend.StatusURL == "" {
		t.Fatalf("not a session answer: %v: %.500s", err, body)
	}
	return &info
}

var pageConfigRe = regexp.MustCompile(`(?s)<script type="application/json" id="irma-config"[^>]*>(.*?)</script>`)

// pageConfig reads the configuration that a session page's script runs
// with: statusUrl, doneUrl, pairingCode and the like.
func pageConfig(t testing.TB, page string) map[string]string {
	t.Helper()
	m := pageConfigRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no irma-config in the page: %.500s", page)
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("the page's irma-config: %v: %s", err, m[1])
	}
	return cfg
}

// frontendStatus is what a session page sees of its session.
func frontendStatus(t testing.TB, b *browser, base string, info *sessionpage.Info) string {
	t.Helper()
	resp, body := b.send("GET", base+info.Frontend.StatusURL, map[string]string{"Authorization": string(info.Frontend.Authorization)}, "")
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("frontend status: %d %v %s", resp.StatusCode, err, body)
	}
	return s.Status
}

// runPaired has w perform the session of info as a phone would, without
// the page's help: when the wallet shows a pairing code (through codes,
// which its OnPairingCode feeds), the person types it into the page, which
// posts pairingcompleted. It returns the code the wallet showed.
func runPaired(ctx context.Context, t testing.TB, b *browser, base string, w *wallet.Wallet, info *sessionpage.Info, codes <-chan string) string {
	t.Helper()
	code, done := runUntilPairingCode(ctx, t, w, info.SessionPtr, codes)
	if status := frontendStatus(t, b, base, info); status != "PAIRING" {
		t.Errorf("while the app shows the code, the page sees %s, want PAIRING", status)
	}
	resp, body := b.send("POST", base+info.Frontend.PairingCompletedURL, map[string]string{"Authorization": string(info.Frontend.Authorization)}, "")
	if resp.StatusCode/100 != 2 {
		t.Fatalf("pairingcompleted: %d %s", resp.StatusCode, body)
	}
	awaitPaired(ctx, t, done)
	return code
}

// runUntilPairingCode has w perform the session of ptr in the background,
// and returns once the wallet shows a pairing code (through codes, which its
// OnPairingCode feeds): the code, and where the session's end arrives after
// the person typed it into the page.
func runUntilPairingCode(ctx context.Context, t testing.TB, w *wallet.Wallet, ptr *irma.Qr, codes <-chan string) (string, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := w.Run(ctx, ptr, wallet.Accept)
		done <- err
	}()
	select {
	case code := <-codes:
		return code, done
	case err := <-done:
		t.Fatalf("the session ended without the wallet showing a pairing code: %v", err)
	case <-ctx.Done():
		t.Fatal("the wallet never showed a pairing code")
	}
	return "", nil
}

// awaitPaired waits for the end of a session that runUntilPairingCode runs,
// which must succeed.
func awaitPaired(ctx context.Context, t testing.TB, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the paired session: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the paired session did not finish")
	}
}

// runUnpaired has w perform the session ptr points at, which must not ask
// for pairing: if the wallet shows a pairing code (through codes, which its
// OnPairingCode feeds), the session is cancelled and the test fails at once,
// rather than wait for a person who would type the code.
func runUnpaired(ctx context.Context, t testing.TB, w *wallet.Wallet, ptr *irma.Qr, codes <-chan string) *wallet.Result {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		res *wallet.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := w.Run(ctx, ptr, wallet.Accept)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("the session: %+v, %v", o.res, o.err)
		}
		select {
		case code := <-codes:
			t.Fatalf("the wallet was asked to show pairing code %q", code)
		default:
		}
		return o.res
	case code := <-codes:
		cancel()
		<-done
		t.Fatalf("the wallet was asked to show pairing code %q", code)
	}
	return nil
}

// recordingUpstream is an app behind the gateway that records the headers
// of every request, and answers with the Cache-Control and Vary that the
// query parameters cc and vary ask for.
type recordingUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	last http.Header
}

func newRecordingUpstream(t testing.TB) *recordingUpstream {
	u := &recordingUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		q := r.URL.Query()
		if q.Has("cc") {
			w.Header().Set("Cache-Control", q.Get("cc"))
		}
		if q.Has("vary") {
			w.Header().Set("Vary", q.Get("vary"))
		}
		fmt.Fprintf(w, "upstream %s", r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// addr is the host:port for reverse_proxy.
func (u *recordingUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// headers returns the headers of the last request.
func (u *recordingUpstream) headers() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last.Clone()
}

// identityClaims are the claims of the gateway's identity JWT, as an
// upstream reads them.
type identityClaims struct {
	jwt.RegisteredClaims
	Attributes map[string]string `json:"attributes"`
	Policy     string            `json:"policy"`
}

// verifyJWT checks token as an upstream that holds the gateway's public
// key does, with golang-jwt: the algorithm, the signature, iss, aud and
// the times.
func verifyJWT(token string, key crypto.PublicKey, alg, issuer string) (*identityClaims, error) {
	var c identityClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(issuer), jwt.WithAudience("caddy-irma"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// jwtHeader returns the protected header of a compact JWT, unverified.
func jwtHeader(t testing.TB, token string) map[string]any {
	t.Helper()
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("not a compact JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	var h map[string]any
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return h
}

// publicJWK is a key of the gateway's JWKS, read without the gateway's
// code.
type publicJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// fetchJWKS reads the keys at /irma/jwks.json.
func fetchJWKS(t testing.TB, b *browser, base string) []publicJWK {
	t.Helper()
	resp, body := b.send("GET", base+"/irma/jwks.json", nil, "")
	var set struct {
		Keys []publicJWK `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks.json: %d %v %s", resp.StatusCode, err, body)
	}
	return set.Keys
}

func (k publicJWK) publicKey() (crypto.PublicKey, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch {
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		x, err := dec(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("OKP key x: %v", err)
		}
		return ed25519.PublicKey(x), nil
	case k.Kty == "EC" && k.Crv == "P-256":
		x, errX := dec(k.X)
		y, errY := dec(k.Y)
		if errX != nil || errY != nil {
			return nil, errors.New("EC key: bad coordinates")
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("EC key: coordinates of another size than P-256's")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("EC key: %w", err)
		}
		return pub, nil
	case k.Kty == "RSA":
		n, errN := dec(k.N)
		e, errE := dec(k.E)
		if errN != nil || errE != nil {
			return nil, errors.New("RSA key: bad n or e")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	}
	return nil, fmt.Errorf("unknown key type %s/%s", k.Kty, k.Crv)
}

// verifyWithJWKS checks token against the published key its kid names,
// as an upstream that fetches the JWKS does.
func verifyWithJWKS(t testing.TB, token string, keys []publicJWK, issuer string) *identityClaims {
	t.Helper()
	kid, _ := jwtHeader(t, token)["kid"].(string)
	for _, k := range keys {
		if k.Kid != kid || kid == "" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			t.Fatalf("JWKS key %s: %v", kid, err)
		}
		c, err := verifyJWT(token, pub, k.Alg, issuer)
		if err != nil {
			t.Fatalf("the JWT does not verify with the published key %s: %v", kid, err)
		}
		return c
	}
	t.Fatalf("no published key has the JWT's kid %q", kid)
	return nil
}
