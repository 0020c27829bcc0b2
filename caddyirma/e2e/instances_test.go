package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// cluster is one gateway as a deployment runs it: three instances, each the
// Caddy binary as a process of its own with a storage of its own, that
// share one redis-server, the keys (cookie_keys and key_file, as from
// secrets), the schemes and the timestamp key, behind a balancer: this
// test's Caddy, with reverse_proxy round-robin. The public URL (url, so the
// QR codes, the timestamp service the scheme names, the JWT's issuer) is
// the balancer's. Each instance says its name in the X-Instance header of
// its answers, and to the upstream.
type cluster struct {
	base      string          // the balancer, http://127.0.0.1:<port>
	instances []*caddyProcess // a, b and c
	scheme    *demoscheme.Scheme
	upstream  *upstream
	hmacKey   []byte // of the requestor "app" of irma_requestor_api
}

// instance is how one instance of a gateway is set up.
type instance struct {
	name         string
	public       string // the url's origin
	scheme       *demoscheme.Scheme
	storage      string
	timestampKey string
	redis        string // its address; none: sessions in memory
	// login is the login block: cookie_keys and key_file; none: the keys
	// are generated in storage.
	login    string
	upstream string // host:port
	hmacKey  []byte
	// resultKey is the jwt_key_file of irma_requestor_api (an RSA key for
	// /result-jwt and /publickey); none: no result JWTs.
	resultKey string
	// untrusting: the instance trusts no proxy's X-Forwarded-For; else
	// the balancer's, from 127.0.0.1.
	untrusting bool
}

// config is the instance's Caddyfile, for its site at base.
func (in instance) config(base string) string {
	store, resultKey, proxies := "", "", "static 127.0.0.1/32"
	if in.redis != "" {
		store = "redis " + in.redis + " {\n\t\t\tdisable_tls\n\t\t}"
	}
	if in.resultKey != "" {
		resultKey = "jwt_key_file " + in.resultKey
	}
	if in.untrusting {
		proxies = "static 192.0.2.1/32" // nobody that the tests run
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %[1]s
	servers {
		trusted_proxies %[13]s
	}
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[5]s
		schemes_update off
		%[6]s
		session_limits {
			per_client 20
		}
		policy members {
			require caddy-demo.gateway.person.email
		}
		%[7]s
	}
}

%[8]s {
	bind fd/3
	header X-Instance %[9]s
	irma_auth /members/* members
	handle /members/* {
		reverse_proxy %[10]s {
			header_up X-Instance %[9]s
		}
	}
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname "Alice Demo"
				email {http.request.uri.query.email}
				over18 yes
			}
		}
	}
	handle /sign {
		irma_sign {
			message "I agree."
			require caddy-demo.gateway.person.email
		}
	}
	handle_path /api/* {
		irma_requestor_api {
			requestor app {
				auth hmac %[11]s
				disclose caddy-demo.gateway.person.*
			}
			%[12]s
		}
	}
	respond "public"
}
`, in.storage, in.public, in.scheme.SchemesPath, in.scheme.PrivateKeysPath, in.timestampKey, store, in.login,
		base, in.name, in.upstream, base64.StdEncoding.EncodeToString(in.hmacKey), resultKey, proxies)
}

// start runs the instance, with env added to its environment.
func (in instance) start(t *testing.T, env ...string) *caddyProcess {
	t.Helper()
	return startCaddy(t, "instance "+in.name, in.config, env...)
}

// newCluster starts the instances a, b and c, and the balancer.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	balancer := caddytest.Listen(t)
	c := &cluster{base: "http://" + balancer.Addr(), upstream: newUpstream(t), hmacKey: make([]byte, 32)}
	c.scheme = testscheme.New(t, c.base+"/irma/timestamp")
	c.upstream.issuer = c.base
	_, _ = rand.Read(c.hmacKey)
	cookieKey, keyFile := newSecrets(t)
	resultKey := newResultKey(t)
	redis := testredis.Start(t)
	for _, name := range []string{"a", "b", "c"} {
		c.instances = append(c.instances, instance{
			name: name, public: c.base, scheme: c.scheme, timestampKey: c.scheme.TimestampKeyFile, redis: redis,
			storage:  t.TempDir(), // none shared: the keys are given
			login:    "login {\n\t\t\tcookie_keys {env.CADDY_IRMA_TEST_COOKIE_KEY}\n\t\t\tkey_file " + keyFile + "\n\t\t}",
			upstream: strings.TrimPrefix(c.upstream.srv.URL, "http://"), hmacKey: c.hmacKey, resultKey: resultKey,
		}.start(t, "CADDY_IRMA_TEST_COOKIE_KEY="+cookieKey))
	}
	// The upstream checks every identity JWT against the keys that a
	// publishes, whichever instance signed it.
	c.upstream.jwksURL = c.instances[0].base + "/irma/jwks.json"
	var upstreams []string
	for _, in := range c.instances {
		upstreams = append(upstreams, strings.TrimPrefix(in.base, "http://"))
	}
	// A dead instance refuses connections: the balancer tries the next,
	// and leaves the dead one out for a while.
	caddytest.Start(t, fmt.Sprintf(`{
	admin off
}
%s {
	%s
	reverse_proxy %s {
		lb_policy round_robin
		lb_try_duration 10s
		fail_duration 1m
	}
}
`, c.base, balancer.Bind(), strings.Join(upstreams, " ")))
	return c
}

// newSecrets makes the keys that an operator keeps as secrets: a cookie
// key (base64, for cookie_keys) and a PEM file with an Ed25519 key for
// key_file.
func newSecrets(t *testing.T) (cookieKey, keyFile string) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	_, jwtKey, _ := ed25519.GenerateKey(rand.Reader)
	pemKey, err := assertion.MarshalPrivateKeyPEM(jwtKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key), keyFile
}

// newResultKey writes an RSA key for the result JWTs of the requestor API.
func newResultKey(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "result-jwt.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// begin asks url for a session as b's script, wants the status code, and
// returns what the page's frontend polls and the session for the wallet.
func begin(t *testing.T, b *browser, url string, code int) (*pendingLogin, *wallet.Session) {
	t.Helper()
	resp, body := b.get(url, nil)
	var p pendingLogin
	if resp.StatusCode != code || json.Unmarshal([]byte(body), &p) != nil || p.Frontend.StatusURL == "" {
		t.Fatalf("a session at %s: %d %.300q", url, resp.StatusCode, body)
	}
	sess, err := wallet.ParseSession([]byte(body), url)
	if err != nil {
		t.Fatal(err)
	}
	return &p, sess
}

// at is the session for a wallet whose requests go to base, the address of
// one instance, instead of the public URL.
func (c *cluster) at(sess *wallet.Session, base string) *wallet.Session {
	ptr := *sess.Pointer
	ptr.URL = base + strings.TrimPrefix(ptr.URL, c.base)
	return &wallet.Session{Pointer: &ptr, Pairing: sess.Pairing}
}

// status is what the frontend of p hears from base when it polls.
func status(t *testing.T, b *browser, base string, p *pendingLogin) string {
	t.Helper()
	resp, body := b.get(base+p.Frontend.StatusURL, map[string]string{"Authorization": p.Frontend.Authorization})
	var s struct {
		Status string `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("the status poll at %s: %d %.300q", base, resp.StatusCode, body)
	}
	return s.Status
}

// TestSeveralInstances: one gateway of three instances (the Caddy binary,
// as processes of their own) that share a redis-server and the keys but
// no storage, behind a round-robin balancer. Every step of a session
// works on any instance: the page or JSON that starts it on one, the
// wallet's requests on another, the status poll on a third; a cookie that
// one seals opens on the others; an identity JWT that one signs verifies
// with the JWKS of another; a requestor JWT starts one session on all; a
// signature result is taken once on all; issuance works across instances.
// One instance is killed during a login (SIGKILL, after the session started
// on it, before the wallet answers): the login completes on the others
// through the balancer, and nothing is lost.
func TestSeveralInstances(t *testing.T) {
	c := newCluster(t)
	a, b, cc := c.instances[0].base, c.instances[1].base, c.instances[2].base
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: c.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })

	t.Run("issuance: started on a, the wallet on b, the poll on c", func(t *testing.T) {
		br := newBrowser(t)
		p, sess := begin(t, br, a+"/issue?email=alice@example.com", http.StatusOK)
		if sess.Pairing == nil {
			t.Fatal("no pairing: the wallet would not confirm it at a")
		}
		if res, err := w.RunSession(ctx, c.at(sess, b), wallet.Accept); err != nil {
			t.Fatalf("issuance: %+v, %v", res, err)
		}
		if got := status(t, br, cc, p); got != "DONE" {
			t.Errorf("the status at c: %s", got)
		}
		if got := heldValue(t, w, c.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail).String()); got != "alice@example.com" {
			t.Fatalf("the wallet holds email %q", got)
		}
	})

	t.Run("login through the balancer", func(t *testing.T) { c.loginThroughBalancer(ctx, t, w) })
	t.Run("login: page and start on a, the wallet on b, the poll on c", func(t *testing.T) { c.loginForced(ctx, t, w) })
	t.Run("status events: started on a, followed on b, the wallet on c", func(t *testing.T) { c.eventsAcrossInstances(ctx, t, w) })
	t.Run("a requestor JWT starts one session on all instances", func(t *testing.T) { c.requestorReplay(ctx, t, w) })
	t.Run("a signature result is taken once on all instances", func(t *testing.T) { c.signOnce(ctx, t, w) })
	t.Run("session limits count each visitor on all instances together", func(t *testing.T) { c.limitsPerVisitor(t) })
	t.Run("an instance killed during a login", func(t *testing.T) { c.killDuringLogin(ctx, t, w) })
}

// loginThroughBalancer logs in at the public URL, and then asks for the
// protected page three times in a row: round-robin sends each to another
// instance, and each opens the cookie and signs a JWT that the upstream
// verifies with a's JWKS.
func (c *cluster) loginThroughBalancer(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	br := newBrowser(t)
	p, sess := begin(t, br, c.base+"/members/page", http.StatusUnauthorized)
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("login: %+v, %v", res, err)
	}
	if got := status(t, br, c.base, p); got != "DONE" {
		t.Errorf("the status: %s", got)
	}
	served := map[string]bool{}
	for range len(c.instances) {
		resp, body := br.get(c.base+"/members/page", nil)
		name := resp.Header.Get("X-Instance")
		if resp.StatusCode != http.StatusOK || body != "upstream /members/page for alice@example.com" {
			t.Errorf("at %s: %d %.300q", name, resp.StatusCode, body)
		}
		if seen := c.upstream.lastSeen(); seen.claims == nil || seen.header.Get("X-Instance") != name {
			t.Errorf("at %s: the upstream verified no JWT of it", name)
		}
		served[name] = true
	}
	if len(served) != len(c.instances) {
		t.Errorf("three requests in a row were served by %v, want every instance once", served)
	}
}
