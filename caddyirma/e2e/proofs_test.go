package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// The gateway reads the proofs that the Yivi app posts, for the expiry of
// the disclosed credentials, which bounds the login. Whoever holds a
// session's client token (it is in the QR code) can post there too; these
// tests check that such posts cost nothing before irmaserver has looked the
// session up, and that the record is written once, by proofs that
// irmaserver accepted, and never spoiled.

// proofsSite is a gateway whose public IRMA URL goes through a recording
// proxy, so that the test has what the wallet posted.
type proofsSite struct {
	*authSite
	mu     sync.Mutex
	proofs map[string][]byte // by request path
	// before, if set, sees each post of proofs or commitments before it is
	// passed on.
	before func(r *http.Request, body []byte)
}

func newProofsSite(t *testing.T) *proofsSite {
	ln := caddytest.Listen(t)
	direct := "http://" + ln.Addr()
	s := &proofsSite{proofs: map[string][]byte{}}
	target, _ := url.Parse(direct)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/proofs") || strings.HasSuffix(r.URL.Path, "/commitments") {
			body, _ := io.ReadAll(r.Body)
			s.mu.Lock()
			if strings.HasSuffix(r.URL.Path, "/proofs") {
				s.proofs[r.URL.Path] = body
			}
			before := s.before
			s.mu.Unlock()
			if before != nil {
				before(r, body)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	scheme := testscheme.New(t, proxy.URL+"/irma/timestamp")
	up := newUpstream(t)
	up.jwksURL, up.issuer = direct+"/irma/jwks.json", proxy.URL
	caddytest.Start(t, fmt.Sprintf(`{
	admin off
	storage file_system %[1]s
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[5]s
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email
		}
	}
}

http://127.0.0.1:%[6]d {
	%[7]s
	irma_auth /members/* members
	reverse_proxy %[8]s
}
`, filepath.Join(scheme.Dir, "caddy"), proxy.URL, scheme.SchemesPath, scheme.PrivateKeysPath, scheme.TimestampKeyFile,
		ln.Port, ln.Bind(), strings.TrimPrefix(up.srv.URL, "http://")))
	s.authSite = &authSite{base: direct, scheme: scheme, upstream: up, app: caddytest.App[*caddyirma.App](t, "irma")}
	return s
}

// posted returns the one body the wallet posted to a /proofs path.
func (s *proofsSite) posted(t *testing.T) (string, []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.proofs) != 1 {
		t.Fatalf("the wallet posted proofs %d times, want once", len(s.proofs))
	}
	for path, body := range s.proofs {
		return path, body
	}
	return "", nil
}

// postProofs posts body to the gateway's path, as anyone may.
func postProofs(t *testing.T, base, path string, body []byte) int {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestProofs(t *testing.T) {
	s := newProofsSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	s.mu.Lock()
	clear(s.proofs) // the issuance's
	s.mu.Unlock()

	login := func(t *testing.T) (*browser, string, []byte, []*http.Cookie) {
		t.Helper()
		s.mu.Lock()
		clear(s.proofs)
		s.mu.Unlock()
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/members/")
		path, genuine := s.posted(t)
		u, _ := url.Parse(s.base)
		return b, path, genuine, b.jar.Cookies(u) // the pending cookie, before the login takes it
	}

	t.Run("replayed proofs count once", func(t *testing.T) {
		// irmaserver answers the same proofs again from its retry cache
		// (for 10 seconds): before the login and after it.
		b, path, genuine, kept := login(t)
		if status := postProofs(t, s.base, path, genuine); status != http.StatusOK {
			t.Fatalf("the genuine proofs again: %d, want irmaserver's cached 200", status)
		}
		if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("the login: %d %s", resp.StatusCode, body)
		}
		if status := postProofs(t, s.base, path, genuine); status != http.StatusOK {
			t.Fatalf("the genuine proofs after the login: %d, want irmaserver's cached 200", status)
		}
		thief := newBrowser(t)
		u, _ := url.Parse(s.base)
		thief.jar.SetCookies(u, kept)
		if resp, body := thief.get(s.base+"/members/", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a copy of the pending cookie after replayed proofs: %d %s, want 403", resp.StatusCode, body)
		}
	})

	t.Run("refused proofs spoil nothing", func(t *testing.T) {
		// The visitor's session is DONE; before the browser comes back for
		// the login, someone who read the client token posts other proofs
		// (here: the same with a space more, which irmaserver refuses for a
		// session that is done).
		b, path, genuine, _ := login(t)
		if status := postProofs(t, s.base, path, append([]byte(" "), genuine...)); status == http.StatusOK {
			t.Fatalf("irmaserver accepted other proofs for a finished session: %d", status)
		}
		if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("spoiled login: the visitor's return got %d %s", resp.StatusCode, body)
		}
	})
}

// TestProofsUnknownSession: a large post to the proofs of a session that
// does not exist is answered before its body is sent, as irmaserver
// answers one to the commitments: the gateway reads nothing first.
func TestProofsUnknownSession(t *testing.T) {
	g := newGateway(t)
	g.start(t, "", "irma_endpoints\n\trespond 404")
	for _, endpoint := range []string{"commitments", "proofs"} {
		t.Run(endpoint, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(g.base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// 10 MB announced, 1 MiB sent: the rest never comes. (Caddy
			// drains up to 256 KiB of an unread body before it answers.)
			fmt.Fprintf(c, "POST /irma/session/AAAAAAAAAAAAAAAAAAAA/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				endpoint, strings.TrimPrefix(g.base, "http://"), 10<<20)
			if _, err := c.Write(bytes.Repeat([]byte("["), 1<<20)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "SESSION_UNKNOWN") {
				t.Errorf("%d %s, want 400 SESSION_UNKNOWN", resp.StatusCode, body)
			}
		})
	}
}
