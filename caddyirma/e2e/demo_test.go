package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestDemoTour runs Caddyfile.example, as `make run` does, and walks the
// README's tour with the development wallet. Only the ports and the state
// directory differ.
func TestDemoTour(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repo, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	port, upstream := caddytest.FreePort(t), caddytest.FreePort(t)
	base := fmt.Sprintf("http://localhost:%d", port)
	scheme := testscheme.New(t, base+"/irma/timestamp")

	if !strings.HasPrefix(strings.TrimLeft(stripComments(string(raw)), "\n"), "{\n") {
		t.Fatal("Caddyfile.example no longer starts with a global options block")
	}
	// No admin endpoint in tests.
	config := strings.Replace(string(raw), "\n{\n", "\n{\n\tadmin off\n", 1)
	for _, r := range []struct{ old, new string }{
		{".demo/", scheme.Dir + "/"},
		{"localhost:8080", fmt.Sprintf("localhost:%d", port)},
		{"9090", fmt.Sprint(upstream)},
		{"examples/demo/site", filepath.Join(repo, "examples/demo/site")},
	} {
		if !strings.Contains(config, r.old) {
			t.Fatalf("Caddyfile.example no longer contains %q", r.old)
		}
		config = strings.ReplaceAll(config, r.old, r.new)
	}
	caddytest.Start(t, config)

	page := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if body := page("/"); !strings.Contains(body, "caddy-irma demo") || !strings.Contains(body, "/issue/") {
		t.Errorf("index page: %.300s", body)
	}
	if body := page("/issue/"); !strings.Contains(body, `action="/issue/start"`) {
		t.Errorf("issue form: %.300s", body)
	}
	if body := page("/hello/"); !strings.Contains(body, "Hello from the example upstream") {
		t.Errorf("upstream: %.300s", body)
	}

	// Step 1 of the tour: the wallet takes the credentials from the page.
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := wallet.FetchSession(ctx, nil, base+"/issue/start?fullname=Alice&email=alice@example.com&over18=yes&level=gold")
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.RunSession(ctx, sess, wallet.Accept)
	if err != nil || res.Outcome != wallet.Success {
		t.Fatalf("issuance: %+v, %v", res, err)
	}

	// Step 2: the wallet holds both cards.
	creds, err := w.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range creds {
		for _, a := range c.Attributes {
			got[a.Type.String()] = a.Value
		}
	}
	for id, v := range map[string]string{
		"caddy-demo.gateway.person.fullname":  "Alice",
		"caddy-demo.gateway.person.email":     "alice@example.com",
		"caddy-demo.gateway.person.over18":    "yes",
		"caddy-demo.gateway.membership.club":  "Caddy demo club",
		"caddy-demo.gateway.membership.level": "gold",
	} {
		if got[id] != v {
			t.Errorf("%s = %q, want %q", id, got[id], v)
		}
	}
}

// stripComments drops the comment lines of a Caddyfile.
func stripComments(caddyfile string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(caddyfile, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}
