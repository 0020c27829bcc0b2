package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// BenchmarkGateway measures the cost of an authenticated request through
// irma_auth against the same request through plain reverse_proxy, over
// loopback HTTP, to the same trivial upstream. Compare the two:
//
//	go test -run '^$' -bench BenchmarkGateway -benchtime 5s ./caddyirma/e2e
//
// With the sessions (and so the marks, where a login check looks for a
// logout) in memory; BenchmarkGatewayRedis is the same with Redis.
func BenchmarkGateway(b *testing.B) { benchGateway(b, "") }

// BenchmarkGatewayRedis is BenchmarkGateway with the sessions and marks in
// a local redis-server: each authenticated request looks up in Redis
// whether its login was logged out.
func BenchmarkGatewayRedis(b *testing.B) {
	benchGateway(b, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", testredis.Start(b)))
}

// benchGateway runs the benchmark with irmaStore (a redis block, or
// nothing) in the irma option.
func benchGateway(b *testing.B, irmaStore string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Irma-Identity") == "" && strings.HasPrefix(r.URL.Path, "/members/") {
			http.Error(w, "no identity", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	g, _, cookie := loggedInGateway(b, irmaStore, fmt.Sprintf(`irma_auth /members/* members
	reverse_proxy %s`, strings.TrimPrefix(up.URL, "http://")))
	base := g.base

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(b *testing.B, path string, header http.Header) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", base+path, nil)
				req.Header = header.Clone()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("reverse_proxy", func(b *testing.B) {
		run(b, "/plain/page", http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}})
	})
	b.Run("irma_auth", func(b *testing.B) {
		run(b, "/members/page", http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}})
	})
}

// loggedInGateway runs the gateway with the policy members (an email
// address) and irmaExtra in the irma option, and site as its site's
// directives; logs in once at /members/ with a real wallet, as a browser
// does; and returns the gateway, its Caddyfile, and the session cookie.
func loggedInGateway(b *testing.B, irmaExtra, site string) (*gateway, string, *http.Cookie) {
	b.Helper()
	g := newGateway(b)
	irma := `policy members {
			require caddy-demo.gateway.person.email
		}
		` + irmaExtra
	app := g.start(b, irma, site)
	w, err := wallet.Open(wallet.Options{Dir: b.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	(&authSite{base: g.base, scheme: g.scheme, app: app}).issue(b, w, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	br := newBrowser(b)
	br.login(ctx, w, g.base+"/members/")
	if resp, _ := br.get(g.base+"/members/", nil); resp.StatusCode != 200 {
		b.Fatalf("after login: %d", resp.StatusCode)
	}
	cookie := br.cookie(g.base, "irma_session")
	if cookie == nil {
		b.Fatal("no session cookie")
	}
	return g, g.config(irma, site), cookie
}

// BenchmarkFakeProofs measures what a 10 MB post to the proofs of a
// session that does not exist costs the gateway, against the same post to
// the commitments (which the gateway passes to irmaserver untouched):
//
//	go test -run '^$' -bench BenchmarkFakeProofs -benchtime 20x ./caddyirma/e2e
func BenchmarkFakeProofs(b *testing.B) {
	g := newGateway(b)
	g.start(b, "", "irma_endpoints\n\trespond 404")
	body := strings.Repeat("[", 10<<20)
	for _, endpoint := range []string{"commitments", "proofs"} {
		b.Run(endpoint, func(b *testing.B) {
			url := g.base + "/irma/session/AAAAAAAAAAAAAAAAAAAA/" + endpoint
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				resp, err := http.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					b.Fatalf("%d, want 400", resp.StatusCode)
				}
			}
		})
	}
}
