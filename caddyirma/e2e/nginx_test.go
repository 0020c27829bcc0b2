package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestNginx protects an app behind a real nginx with the gateway's
// forward-auth endpoint, with examples/forward-auth/nginx.conf itself (only
// its addresses replaced), and logs in through nginx.
func TestNginx(t *testing.T) {
	s := newAuthSite(t)
	nginx := startNginx(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")

	const (
		page  = "/app/page?a=1&b=2" // the & must survive the round trip
		login = "/irma/login?policy=members&return=%2Fapp%2Fpage%3Fa%3D1%26b%3D2"
	)
	forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
	b := newBrowser(t)

	t.Run("not logged in", func(t *testing.T) {
		// A script gets 401 with the login URL, in JSON and in X-Irma-Login;
		// the URL names the path it asked for, whatever X-Forwarded-Uri the
		// client sent.
		resp, body := rawRequest(t, b, "GET", nginx+page, http.Header{
			"Accept": {"application/json"}, "X-Forwarded-Uri": {"/elsewhere"}, "X-Irma-Identity": {forged},
		}, "")
		var answer struct {
			Error    string `json:"error"`
			LoginURL string `json:"login_url"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusUnauthorized ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			answer.Error != "login_required" || answer.LoginURL != login || resp.Header.Get("X-Irma-Login") != login {
			t.Errorf("JSON client: %d %s %q %q, %v", resp.StatusCode, resp.Header.Get("Content-Type"), body, resp.Header.Get("X-Irma-Login"), err)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("JSON 401: Cache-Control %q", cc)
		}
		// A browser's page navigation is sent to the login page.
		resp, _ = rawRequest(t, b, "GET", nginx+page, http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}}, "")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != login || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("page navigation: %d to %q (Cache-Control %q), want 302 to %q",
				resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Cache-Control"), login)
		}
		// Paths that would leave the site as return paths are ambiguous
		// paths too: the gateway will not authorize them (403, see
		// paths_test.go), and nginx answers 403 without a login.
		for _, path := range []string{"//evil.example/", "/%2F%2Fevil.example/", "/%5Cevil.example"} {
			resp, _ := rawRequest(t, b, "GET", nginx+path, http.Header{"Accept": {"text/html"}}, "")
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
				t.Errorf("%s: %d to %q, want 403", path, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		// The forward-auth endpoint and the subrequest's location are
		// nginx's own.
		for _, path := range []string{"/irma/auth?policy=members", "/_irma_auth"} {
			if resp, _ := rawRequest(t, b, "GET", nginx+path, nil, ""); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s through nginx: %d, want 404", path, resp.StatusCode)
			}
		}
		if got := s.upstream.lastSeen(); got.claims != nil {
			t.Errorf("the app was reached without a login: %+v", got.claims)
		}
	})

	t.Run("login", func(t *testing.T) {
		b.login(ctx, alice, nginx+login)
		resp, _ := rawRequest(t, b, "GET", nginx+login, http.Header{"Accept": {"text/html"}}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page?a=1&b=2" {
			t.Fatalf("finishing the login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if b.cookie(nginx, "irma_session") == nil {
			t.Fatal("no session cookie through nginx")
		}
	})

	t.Run("logged in", func(t *testing.T) {
		resp, body := rawRequest(t, b, "GET", nginx+page, http.Header{
			"Accept":          {"text/html"},
			"X-Irma-Identity": {forged},
			"X-IRMA-IDENTITY": {forged},
			"x-irma-identity": {forged},
			"X_Irma_Identity": {forged},
		}, "")
		if resp.StatusCode != 200 || body != "upstream /app/page for alice@example.com" {
			t.Fatalf("after login: %d %q", resp.StatusCode, body)
		}
		got := s.upstream.lastSeen()
		if got.claims == nil || got.claims.Policy != "members" || got.claims.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" {
			t.Errorf("the app's claims: %+v", got.claims)
		}
		if ids := got.header.Values("X-Irma-Identity"); len(ids) != 1 || ids[0] == forged {
			t.Errorf("the app got X-Irma-Identity %q", ids)
		}
		for name, vals := range got.header {
			for _, v := range vals {
				if strings.Contains(v, forged) {
					t.Errorf("the forged identity reached the app in %s", name)
				}
			}
		}
		// A form post: the subrequest goes without the body. (Small: the
		// test upstream does not read bodies.)
		resp, body = rawRequest(t, b, "POST", nginx+"/app/form", http.Header{
			"Accept": {"text/html"}, "Content-Type": {"application/x-www-form-urlencoded"},
		}, "q=1")
		if resp.StatusCode != 200 || body != "upstream /app/form for alice@example.com" {
			t.Errorf("post: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("return paths", func(t *testing.T) {
		// Logged in, the login endpoint sends the browser straight back, but
		// never off the site.
		for ret, want := range map[string]string{
			url.QueryEscape("/members/"):             "/members/",
			url.QueryEscape("//evil.example/"):       "/",
			"//evil.example/":                        "/",
			url.QueryEscape("https://evil.example/"): "/",
			url.QueryEscape("/\\evil.example"):       "/",
			"%252F%252Fevil.example":                 "/",
		} {
			resp, _ := rawRequest(t, b, "GET", nginx+"/irma/login?policy=members&return="+ret, http.Header{"Accept": {"text/html"}}, "")
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Errorf("login?return=%s: %d to %q, want 303 to %q", ret, resp.StatusCode, resp.Header.Get("Location"), want)
			}
		}
	})

	t.Run("logout", func(t *testing.T) {
		resp, _ := rawRequest(t, b, "POST", nginx+"/irma/logout?return=%2Fapp%2F", http.Header{"Sec-Fetch-Site": {"same-origin"}}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
			t.Errorf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := rawRequest(t, b, "GET", nginx+page, http.Header{"Accept": {"application/json"}}, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after logout: %d, want 401", resp.StatusCode)
		}
	})
}

// rawRequest sends a request with the browser's cookies and exactly the header
// names given (no canonicalization), and returns the response and its body.
func rawRequest(t *testing.T, b *browser, method, target string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// startNginx runs nginx (Debian's nginx package, which .ci/run installs)
// with examples/forward-auth/nginx.conf in front of the gateway of s and
// its upstream, on a free loopback port, until the test ends. It returns
// nginx's base URL.
func startNginx(t *testing.T, s *authSite) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		// Debian puts it in /usr/sbin, which is not on every user's PATH.
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatalf("nginx is needed for the nginx test (apt-get install nginx; .ci/run does): %v", err)
		}
		bin = "/usr/sbin/nginx"
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "forward-auth", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// nginx binds its own port: one that another process took after it was
	// picked is retried with another.
	for try := 0; try < 5; try++ {
		if base, ok := runNginx(t, bin, string(example), s, caddytest.PortToTry(t)); ok {
			return base
		}
	}
	t.Fatal("nginx found every port it tried in use")
	return ""
}

// runNginx runs nginx with the example config on port, and returns its base
// URL, or false if the port was in use.
func runNginx(t *testing.T, bin, example string, s *authSite, port int) (string, bool) {
	t.Helper()
	conf := example
	for old, repl := range map[string]string{
		"server 127.0.0.1:8080;": "server " + strings.TrimPrefix(s.base, "http://") + ";",
		"server 127.0.0.1:9090;": "server " + strings.TrimPrefix(s.upstream.srv.URL, "http://") + ";",
		"listen 80;":             fmt.Sprintf("listen 127.0.0.1:%d;", port),
	} {
		if n := strings.Count(conf, old); n != 1 {
			t.Fatalf("examples/forward-auth/nginx.conf has %q %d times, want once: update the test with the example", old, n)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}

	dir := t.TempDir()
	var main strings.Builder
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot read the test's directory.
		main.WriteString("user root;\n")
	}
	fmt.Fprintf(&main, "worker_processes 1;\nevents {\n    worker_connections 256;\n}\nhttp {\n    access_log %q;\n", filepath.Join(dir, "access.log"))
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&main, "    %s_temp_path %q;\n", temp, filepath.Join(dir, temp))
	}
	fmt.Fprintf(&main, "%s\n}\n", conf)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(main.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir, "-c", confFile, "-g",
		fmt.Sprintf("daemon off; pid %s; error_log %s;", filepath.Join(dir, "nginx.pid"), errorLog))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers go with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logs := func() string {
		data, _ := os.ReadFile(errorLog)
		return out.String() + string(data)
	}
	t.Cleanup(func() {
		// A fast shutdown: the master stops its workers and exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				t.Errorf("nginx did not exit on SIGKILL either")
			}
			t.Errorf("nginx did not stop on SIGTERM:\n%s", logs())
		}
		if t.Failed() {
			t.Logf("nginx's log:\n%s", logs())
		}
	})

	// Ready when nginx itself answers on the port (not another process
	// that holds it).
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/irma/jwks.json")
		if err == nil {
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
				return "http://" + addr, true
			}
		}
		select {
		case err := <-exited:
			exited <- err
			if strings.Contains(logs(), "Address already in use") {
				return "", false
			}
			t.Fatalf("nginx exited: %v\n%s\nwith the config:\n%s", err, logs(), main.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer on %s:\n%s", addr, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
