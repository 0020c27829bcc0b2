package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestDemoTour runs Caddyfile.example with the example upstream
// (examples/upstream), as `make run` does, and walks the tour with the
// development wallet. Only the ports and the state directory differ.
func TestDemoTour(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(repo, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	ln := caddytest.Listen(t)
	port := ln.Port
	base := fmt.Sprintf("http://localhost:%d", port)
	scheme := testscheme.New(t, base+"/irma/timestamp")
	upstream := startGoExample(t, base)

	if !strings.HasPrefix(strings.TrimLeft(stripComments(string(raw)), "\n"), "{\n") {
		t.Fatal("Caddyfile.example no longer starts with a global options block")
	}
	// No admin endpoint in tests.
	config := strings.Replace(string(raw), "\n{\n", "\n{\n\tadmin off\n", 1)
	config = replaceEach(t, "Caddyfile.example", config, []replacement{
		{".demo/", scheme.Dir + "/"},
		{"localhost:8080 {", fmt.Sprintf("localhost:%d {\n\t%s", port, ln.Bind())},
		{"localhost:8080", fmt.Sprintf("localhost:%d", port)},
		{"127.0.0.1:9090", upstream},
		{"examples/demo/site", filepath.Join(repo, "examples/demo/site")},
	})
	caddytest.Start(t, config)

	b := newBrowser(t)
	page := func(path string) string {
		t.Helper()
		resp, body := b.get(base+path, map[string]string{"Accept": "text/html"})
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body
	}
	if body := page("/"); !strings.Contains(body, "caddy-irma demo") || !strings.Contains(body, "/issue/") {
		t.Errorf("index page: %.300s", body)
	}
	if body := page("/issue/"); !strings.Contains(body, `action="/issue/start"`) {
		t.Errorf("issue form: %.300s", body)
	}

	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Get credentials: the wallet takes them from the page.
	sess, err := wallet.FetchSession(ctx, nil, base+"/issue/start?fullname=Alice&email=alice@example.com&over18=yes&level=gold")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("issuance: %+v, %v", res, err)
	}
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

	// Log in, step up, authorize on a value: the example upstream verifies
	// each identity token and answers with what it holds.
	upstreamSays := func(path string) (int, map[string]any) {
		t.Helper()
		resp, body := b.get(base+path, nil)
		var answer map[string]any
		_ = json.Unmarshal([]byte(body), &answer)
		return resp.StatusCode, answer
	}
	for _, step := range []struct {
		path, policy, attr, value string
	}{
		{"/members/", "members", "caddy-demo.gateway.person.email", "alice@example.com"},
		{"/adults/", "adults", "caddy-demo.gateway.person.over18", "yes"},
		{"/club/", "club", "caddy-demo.gateway.membership.level", "gold"},
	} {
		if code, _ := upstreamSays(step.path); code != http.StatusUnauthorized {
			t.Fatalf("%s before login: %d", step.path, code)
		}
		b.login(ctx, w, base+step.path)
		code, answer := upstreamSays(step.path)
		attrs, _ := answer["attributes"].(map[string]any)
		if code != 200 || attrs[step.attr] != step.value || answer["policy"] != step.policy {
			t.Errorf("%s after login: %d %v", step.path, code, answer)
		}
	}

	// Sign a statement from the form.
	if body := page("/sign/"); !strings.Contains(body, `action="/sign/start"`) {
		t.Errorf("sign form: %.300s", body)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/sign/start", strings.NewReader("statement=I+like+it."))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	presp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ptrBody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	signing, err := wallet.ParseSession(ptrBody, base+"/sign/start")
	if err != nil {
		t.Fatalf("signing session: %v: %s", err, ptrBody)
	}
	if res, err := w.RunSession(ctx, signing, wallet.Accept); err != nil {
		t.Fatalf("signing: %+v, %v", res, err)
	}
	resp, body := b.get(base+"/sign/start", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != 200 || !strings.Contains(body, "I like it.") || !strings.Contains(body, `download="signature.json"`) || !strings.Contains(body, `href="/irma/verify"`) {
		t.Errorf("signed page: %d %.600s", resp.StatusCode, body)
	}

	// Log out: the index's button posts the logout, and a link to it shows
	// the same button; the login is over.
	if body := page("/"); !strings.Contains(body, `<form method="post" action="/irma/logout">`) {
		t.Errorf("index page without the logout button: %.300s", body)
	}
	if body := page("/irma/logout"); !strings.Contains(body, `<form method="post" action="/irma/logout?return=%2F">`) {
		t.Errorf("logout page: %.600s", body)
	}
	if resp, _ := b.send("POST", base+"/irma/logout", map[string]string{"Origin": base}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if code, _ := upstreamSays("/members/"); code != http.StatusUnauthorized {
		t.Errorf("/members/ after the logout: %d", code)
	}

	// The upstream trusts no one but the gateway.
	resp, err = http.Get("http://" + upstream + "/members/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the upstream answered %d without a token", resp.StatusCode)
	}
}

// replacement is a string of a Caddyfile and what a test puts in its place.
type replacement struct{ old, new string }

// replaceEach makes each replacement in the Caddyfile text, in order, at
// every place; each old string must be there, or the file (named name)
// changed its shape.
func replaceEach(t *testing.T, name, text string, replacements []replacement) string {
	t.Helper()
	for _, r := range replacements {
		if !strings.Contains(text, r.old) {
			t.Fatalf("%s no longer contains %q", name, r.old)
		}
		text = strings.ReplaceAll(text, r.old, r.new)
	}
	return text
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
