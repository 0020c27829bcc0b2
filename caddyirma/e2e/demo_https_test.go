package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// TestDemoHTTPS runs Caddyfile.https.example as `make run-https` does, and
// walks the README's https tour as a developer does: irma-wallet
// --production in a process of its own and the example upstream, each
// trusting Caddy's local CA through SSL_CERT_FILE, as the README and the
// Makefile say. Only the ports and the state directory differ. The file
// must be Caddyfile.example but for what https and production mode change,
// so that the rest of TestDemoTour holds for it too.
func TestDemoHTTPS(t *testing.T) {
	repo := repoRoot(t)
	read := func(name string) string {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	raw := read("Caddyfile.https.example")

	t.Run("Caddyfile.example but for https and production mode", func(t *testing.T) {
		want := replaceEach(t, "Caddyfile.example", stripComments(read("Caddyfile.example")), []replacement{
			{".demo/", ".demo-https/"},
			{"http://localhost:8080", "https://localhost:8443"},
			{"\tpersist_config off\n", "\tpersist_config off\n\tauto_https disable_redirects\n\tskip_install_trust\n"},
			{"\t\turl https://localhost:8443/irma/\n", "\t\turl https://localhost:8443/irma/\n\t\tproduction\n"},
			{"https://localhost:8443 {\n", "https://localhost:8443 {\n\ttls internal\n"},
		})
		got, wantLines := nonBlankLines(stripComments(raw)), nonBlankLines(want)
		for i := range max(len(got), len(wantLines)) {
			if i >= len(got) || i >= len(wantLines) || got[i] != wantLines[i] {
				t.Fatalf("Caddyfile.https.example differs from Caddyfile.example in more than https and production mode, from its line %q (want %q)",
					at(got, i), at(wantLines, i))
			}
		}
	})

	ln := caddytest.Listen(t)
	base := fmt.Sprintf("https://localhost:%d", ln.Port)
	scheme := testscheme.New(t, base+"/irma/timestamp")
	storage := filepath.Join(scheme.Dir, "caddy")
	trustCA := "SSL_CERT_FILE=" + localCARoot(storage)
	// The root exists once Caddy runs; the upstream reads it at its first
	// fetch of the keys, which a login comes before.
	upstream := startGoExampleEnv(t, base, []string{trustCA})
	// No admin endpoint, and no HTTP/3: it needs a UDP socket beside the TCP
	// one the test holds.
	config := strings.Replace(raw, "\n{\n", "\n{\n\tadmin off\n\tservers {\n\t\tprotocols h1 h2\n\t}\n", 1)
	config = replaceEach(t, "Caddyfile.https.example", config, []replacement{
		{".demo-https/", scheme.Dir + "/"},
		{"localhost:8443 {", fmt.Sprintf("localhost:%d {\n\t%s", ln.Port, ln.Bind())},
		{"localhost:8443", fmt.Sprintf("localhost:%d", ln.Port)},
		{"127.0.0.1:9090", upstream},
		{"examples/demo/site", filepath.Join(repo, "examples/demo/site")},
	})
	caddytest.Start(t, config)
	b, _ := newRecordingBrowser(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: localCA(t, storage, base)}})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	walletBin := buildGo(t, "cmd/irma-wallet", "CGO_ENABLED=1")
	walletDir := filepath.Join(t.TempDir(), "wallet")
	irmaWallet := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, walletBin, append([]string{"--production", "--dir", walletDir, "--schemes", scheme.SchemesPath}, args...)...)
		cmd.Env = append(os.Environ(), trustCA)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("irma-wallet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// Get credentials: the wallet takes them from the page.
	if out := irmaWallet("session", "--yes", base+"/issue/start?fullname=Alice&email=alice@example.com&over18=yes&level=gold"); !strings.Contains(out, "Done: received 2 credentials.") {
		t.Fatalf("issuance: %s", out)
	}
	// Log in: the page's link to the app goes to the wallet; the example
	// upstream verifies the identity token with the keys it fetches over
	// https.
	resp, body := b.get(base+"/members/", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/members/ before the login: %d %s", resp.StatusCode, body)
	}
	info := parseInfo(t, body)
	if !strings.HasPrefix(info.SessionPtr.URL, base+"/irma/session/") {
		t.Fatalf("the session is not on the https URL: %s", info.SessionPtr.URL)
	}
	if out := irmaWallet("session", "--yes", info.Link); !strings.Contains(out, "Done: disclosed 1 attribute.") {
		t.Fatalf("login: %s", out)
	}
	resp, body = b.get(base+"/members/", nil)
	var answer struct {
		Policy     string            `json:"policy"`
		Attributes map[string]string `json:"attributes"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusOK ||
		answer.Policy != "members" || answer.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" {
		t.Errorf("/members/ after the login: %d %v %s", resp.StatusCode, err, body)
	}
}

// nonBlankLines returns the lines of s that hold more than white space.
func nonBlankLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return out
}

// at returns lines[i], or "<end>" past the end.
func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end>"
}
