package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// TestBinary builds the Caddy binary as `make build` does, without cgo, and
// smoke-tests it as an operator would use it.
func TestBinary(t *testing.T) {
	bin := buildGo(t, "cmd/caddy", "CGO_ENABLED=0")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(repo, "Caddyfile.example")

	// The demo's state directory, as `make demo-scheme` lays it out, but
	// with the committed test keys.
	work := t.TempDir()
	scheme := testscheme.New(t, "http://localhost:8080/irma/timestamp")
	if err := os.Symlink(scheme.Dir, filepath.Join(work, ".demo")); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		// No network: adapting, validating and the demo scheme (with its
		// keys present) must work offline.
		cmd := exec.Command("unshare", append([]string{"--map-root-user", "--net", bin}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+work, "XDG_CONFIG_HOME="+filepath.Join(work, "config"), "XDG_DATA_HOME="+filepath.Join(work, "data"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("version", func(t *testing.T) {
		out, err := run(t, "version")
		if err != nil || !strings.HasPrefix(out, "v2.") {
			t.Errorf("caddy version: %v: %s", err, out)
		}
	})
	t.Run("list-modules", func(t *testing.T) {
		out, err := run(t, "list-modules")
		if err != nil {
			t.Fatalf("caddy list-modules: %v: %s", err, out)
		}
		for _, m := range []string{"irma", "http.handlers.irma_endpoints", "http.handlers.irma_issue", "http.handlers.reverse_proxy"} {
			if !strings.Contains("\n"+out+"\n", "\n"+m+"\n") {
				t.Errorf("module %s not listed", m)
			}
		}
	})
	t.Run("adapt", func(t *testing.T) {
		out, err := run(t, "adapt", "--config", example)
		if err != nil || !strings.Contains(out, `"irma":{"url":"http://localhost:8080/irma/"`) {
			t.Errorf("caddy adapt: %v: %.500s", err, out)
		}
	})
	t.Run("irma policy", func(t *testing.T) {
		out, err := run(t, "irma", "policy", "--config", example)
		if err != nil || !strings.Contains(out, "http://localhost:8080 /members/*\n") || !strings.Contains(out, `"type": "caddy-demo.gateway.person.over18"`) {
			t.Errorf("caddy irma policy: %v: %s", err, out)
		}
	})
	t.Run("validate", func(t *testing.T) {
		out, err := run(t, "validate", "--config", example)
		if err != nil || !strings.Contains(out, "Valid configuration") {
			t.Errorf("caddy validate: %v: %s", err, out)
		}
	})
	t.Run("validate without a scheme", func(t *testing.T) {
		empty := t.TempDir()
		cmd := exec.Command(bin, "validate", "--config", example)
		cmd.Dir = empty
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `schemes_path \".demo/schemes\"`) {
			t.Errorf("caddy validate without a scheme: %v: %s", err, out)
		}
		if _, err := os.Stat(filepath.Join(empty, ".demo")); !os.IsNotExist(err) {
			t.Errorf("validate created files: %v", err)
		}
	})
	t.Run("demo-scheme reuses keys", func(t *testing.T) {
		before, err := os.ReadFile(scheme.PrivateKeyFile())
		if err != nil {
			t.Fatal(err)
		}
		out, err := run(t, "irma", "demo-scheme", "--dir", ".demo", "--url", "http://localhost:9999/irma/", "--bits", "1024")
		if err != nil || !strings.Contains(out, "ready") || !strings.Contains(out, "url                      http://localhost:9999/irma/") {
			t.Fatalf("caddy irma demo-scheme: %v: %s", err, out)
		}
		after, err := os.ReadFile(scheme.PrivateKeyFile())
		if err != nil || string(after) != string(before) {
			t.Errorf("the issuer key changed")
		}
		desc, err := os.ReadFile(filepath.Join(scheme.SchemeDir, "description.xml"))
		if err != nil || !strings.Contains(string(desc), "http://localhost:9999/irma/timestamp") {
			t.Errorf("the scheme does not name the new timestamp server: %v", err)
		}
	})
	t.Run("demo-scheme bad url", func(t *testing.T) {
		out, err := run(t, "irma", "demo-scheme", "--dir", ".demo", "--url", "localhost:8080")
		if err == nil || !strings.Contains(out, `--url "localhost:8080"`) {
			t.Errorf("bad --url: %v: %s", err, out)
		}
	})
}
