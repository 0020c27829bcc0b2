package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// caddyProcess is the Caddy binary, run by a test as a process of its own:
// another instance of a gateway, as on another machine.
type caddyProcess struct {
	name string
	base string // http://127.0.0.1:<port>
	cmd  *exec.Cmd
	proc *process
}

// startCaddy runs the Caddy binary with the Caddyfile that config returns
// for base, the URL of a loopback port that the process alone listens on
// (its site takes it with "bind fd/3"), with env added to its environment,
// until the test ends. It returns once Caddy serves the config.
func startCaddy(t testing.TB, name string, config func(base string) string, env ...string) *caddyProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startCaddyOn(t, name, ln, config("http://"+ln.Addr().String()), env...)
}

// startCaddyOn runs the Caddy binary with the Caddyfile config, handing
// it the socket of ln as fd 3, which the test closes: only the process
// holds the port, so once it is gone, connections to the port are
// refused, as with a machine that is down.
func startCaddyOn(t testing.TB, name string, ln net.Listener, config string, env ...string) *caddyProcess {
	t.Helper()
	return startCaddyOnAll(t, name, []net.Listener{ln}, config, env...)
}

// startCaddyOnAll is startCaddyOn with several listeners: the socket of
// lns[i] is fd 3+i; base is the URL of lns[0].
func startCaddyOnAll(t testing.TB, name string, lns []net.Listener, config string, env ...string) *caddyProcess {
	t.Helper()
	c := &caddyProcess{name: name, base: "http://" + lns[0].Addr().String()}
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for _, ln := range lns {
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ln.Close()
		files = append(files, f)
	}
	c.cmd = exec.Command(buildGo(t, "cmd/caddy", "CGO_ENABLED=0"), "run", "--config", file, "--adapter", "caddyfile")
	c.cmd.ExtraFiles = files // fd 3 on
	c.cmd.Dir = dir
	c.cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data")), env...)
	_, c.proc = startProcess(t, name, c.cmd, regexp.MustCompile(`"msg":"(serving initial configuration)"`))
	return c
}

// kill ends the process at once, as a crash or a machine that fails
// would (SIGKILL: no graceful shutdown), and waits until it is gone.
func (c *caddyProcess) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", c.name, err)
	}
	select {
	case <-c.proc.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit after SIGKILL", c.name)
	}
}

// startInstance runs a second gateway with the Caddyfile of s, in the
// Caddy binary as its own process, on a loopback port of its own; it
// returns its base URL. Same url, schemes, keys, storage and Redis: a
// second instance of the same gateway.
func startInstance(t *testing.T, s *authSite) string {
	t.Helper()
	site := regexp.MustCompile(`(?m)^http://127\.0\.0\.1:\d+ \{\n\tbind fd/\d+$`)
	if n := len(site.FindAllString(s.config, -1)); n != 1 {
		t.Fatalf("the site's address and bind line are in the config %d times, want 1", n)
	}
	return startCaddy(t, "the second gateway", func(base string) string {
		conf := site.ReplaceAllString(s.config, base+" {\n\tbind fd/3")
		return strings.Replace(conf, "\tadmin off\n", "\tadmin off\n\tpersist_config off\n", 1)
	}).base
}
