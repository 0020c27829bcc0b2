// Package caddytest runs a real Caddy in the test process, from a
// Caddyfile, on loopback ports chosen by the test. Caddy's own caddytest
// package insists on fixed ports and an admin endpoint; these tests need
// neither.
package caddytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The Caddyfile adapter and the standard modules, as in the binary.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// PortToTry returns a loopback port that was free a moment ago, for a
// process that cannot take over a socket that the test holds (Listen).
// Another process may take it first: whoever binds it must retry with
// another port when it finds it in use.
func PortToTry(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Listener is a loopback TCP port that the test process holds from the
// moment it is picked, for a Caddy site to take over with the directive
// Bind returns ("bind fd/N"). Picking a free port and releasing it for
// Caddy to bind later races every other process that binds port 0 in
// between, and so does a restart of Caddy within a test: go test runs the
// packages in parallel, Caddy binds with SO_REUSEPORT, and a port that
// another test process took in that gap gets half of the connections
// (which end in EOF when that process stops). A socket that the test
// holds cannot be taken, and its queue of connections outlives a
// restarted Caddy.
type Listener struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	fd   uintptr
}

// Listen binds a loopback port for the rest of the test process.
//
// The socket is never closed: Caddy keeps its own handle on the file
// descriptor number in a process-wide map, so a number that a closed
// socket freed would later stand for another file there.
func Listen(t testing.TB) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("binding a loopback port: %v", err)
	}
	f, err := ln.(*net.TCPListener).File() // a duplicate that stays bound
	ln.Close()
	if err != nil {
		t.Fatalf("the file of a loopback listener: %v", err)
	}
	hold(f)
	l := &Listener{Port: ln.Addr().(*net.TCPAddr).Port, fd: f.Fd()}
	held.Lock()
	held.listeners = append(held.listeners, l)
	held.Unlock()
	return l
}

// held keeps the files of the sockets from being collected (and closed)
// while Caddy uses their descriptors.
var held struct {
	sync.Mutex
	files     []*os.File
	listeners []*Listener
}

func hold(f *os.File) {
	held.Lock()
	defer held.Unlock()
	held.files = append(held.files, f)
}

// Addr returns host:port of the listener.
func (l *Listener) Addr() string { return fmt.Sprintf("127.0.0.1:%d", l.Port) }

// Bind returns the Caddyfile directive that makes a site serve on the
// listener.
func (l *Listener) Bind() string { return fmt.Sprintf("bind fd/%d", l.fd) }

// RefusedAddr returns a loopback address that refuses connections for the
// rest of the test process: a socket bound to it that does not listen, so
// no other process can take the port and answer.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("a socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("binding a loopback port: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("the bound port: %v", err)
	}
	hold(os.NewFile(uintptr(fd), "refused"))
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// Adapt turns a Caddyfile into JSON config.
func Adapt(caddyfile string) ([]byte, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		if strings.Contains(w.Message, "not formatted") {
			continue
		}
		return nil, fmt.Errorf("caddyfile warning: %s:%d: %s", w.File, w.Line, w.Message)
	}
	return cfg, nil
}

// Load adapts the Caddyfile and runs it as the process's Caddy config,
// replacing any config that runs. The config should say "admin off". It is
// never autosaved: tests leave nothing in the user's config directory.
func Load(caddyfile string) error {
	cfg, err := Adapt(caddyfile)
	if err != nil {
		return err
	}
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	if c.Admin == nil {
		c.Admin = new(caddy.AdminConfig)
	}
	if c.Admin.Config == nil {
		c.Admin.Config = new(caddy.ConfigSettings)
	}
	persist := false
	c.Admin.Config.Persist = &persist
	if cfg, err = json.Marshal(c); err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	return settle(caddyfile)
}

// settle waits until each of the test's sockets is served by the running
// config alone. Caddy's Load returns once the servers of the config it
// replaces have begun to shut down, not once they stopped accepting; and
// Go's http.Server closes, unanswered, a connection whose request it reads
// after Shutdown began. A request sent right after a reload or restart
// could so meet an old server and end in EOF. Each server that serves on a
// Listener holds a duplicate of its socket's descriptor (Caddy's
// net.FileListener) until its listener is closed: so a socket is settled
// when exactly one duplicate is open if the config binds it, none if not.
func settle(caddyfile string) error {
	bound := map[string]bool{}
	for _, m := range bindFD.FindAllStringSubmatch(caddyfile, -1) {
		bound[m[1]] = true
	}
	held.Lock()
	listeners := slices.Clone(held.listeners)
	held.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for _, l := range listeners {
		want := 0
		if bound[fmt.Sprint(l.fd)] {
			want = 1
		}
		for {
			n, err := l.duplicates()
			if err != nil {
				return err
			}
			if n == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the socket of port %d is open in %d servers, want %d: an old server did not stop", l.Port, n, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// bindFD finds the sockets that a Caddyfile binds, by descriptor.
var bindFD = regexp.MustCompile(`\bbind fd/(\d+)\b`)

// duplicates counts the process's other descriptors of the listener's
// socket (Linux: /proc/self/fd).
func (l *Listener) duplicates() (int, error) {
	self := fmt.Sprint(l.fd)
	socket, err := os.Readlink("/proc/self/fd/" + self)
	if err != nil {
		return 0, fmt.Errorf("the socket of port %d: %w", l.Port, err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.Name() == self {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == socket {
			n++
		}
	}
	return n, nil
}

// Start runs the Caddyfile and stops Caddy when the test ends.
func Start(t testing.TB, caddyfile string) {
	t.Helper()
	if err := Load(caddyfile); err != nil {
		t.Fatalf("loading caddy config: %v\n%s", err, caddyfile)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
}

// App returns the running config's app of the given name.
func App[T any](t testing.TB, name string) T {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured(name)
	if err != nil {
		t.Fatalf("app %q: %v", name, err)
	}
	return app.(T)
}

// WaitHTTP waits until url answers, so tests do not race Caddy's listeners.
func WaitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
