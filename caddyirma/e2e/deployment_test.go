package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
)

// readmeBlock returns the fenced block that follows the line of the
// README that holds marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var block []string
	found, in := false, false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case !found:
			found = strings.Contains(line, marker)
		case !in && strings.HasPrefix(line, "```"):
			in = true
		case in && line == "```":
			return strings.Join(block, "\n") + "\n"
		case in:
			block = append(block, line)
		}
	}
	t.Fatalf("no block after %q in the README", marker)
	return ""
}

// TestDeployment: the README's deployment, as an operator follows it: its
// commands make the keys, and its Caddyfile, as it is, validates with
// them, offline, once the default schemes are in the data directory.
func TestDeployment(t *testing.T) {
	bin := buildGo(t, "cmd/caddy", "CGO_ENABLED=0")
	etc := t.TempDir() // /etc/caddy
	keys := readmeBlock(t, "deployment keys:")
	keys = strings.Replace(keys, "cd /etc/caddy\n", "", 1)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", keys)
	cmd.Dir = etc
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's key commands: %v\n%s", err, out)
	}
	caddyfile := filepath.Join(etc, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(readmeBlock(t, "deployment caddyfile:")), 0o644); err != nil {
		t.Fatal(err)
	}
	// What systemd gives the service: the environment file and the
	// credential.
	env, err := os.ReadFile(filepath.Join(etc, "irma.env"))
	if err != nil {
		t.Fatal(err)
	}
	creds := t.TempDir()
	jwt, err := os.ReadFile(filepath.Join(etc, "irma", "jwt.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "irma-jwt.pem"), jwt, 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	schemeserver.Copy(t, schemeserver.Yivi(t), filepath.Join(data, "caddy", "irma", "schemes"))

	validate := func(extra ...string) (string, error) {
		cmd := exec.Command("unshare", "--map-root-user", "--net", bin, "validate", "--config", caddyfile)
		cmd.Dir = etc
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+data, "XDG_CONFIG_HOME="+t.TempDir())
		cmd.Env = append(cmd.Env, strings.Split(strings.TrimSpace(string(env)), "\n")...)
		cmd.Env = append(cmd.Env, extra...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate("CREDENTIALS_DIRECTORY=" + creds); err != nil || !strings.Contains(out, "Valid configuration") || strings.Contains(out, "not formatted") {
		t.Fatalf("caddy validate of the README's Caddyfile: %v\n%s", err, out)
	}
	// Without the credential, validate says so: it loads the key file.
	if out, err := validate(); err == nil || !strings.Contains(out, "key_file") {
		t.Errorf("caddy validate without the key file: %v\n%s", err, out)
	}
}
