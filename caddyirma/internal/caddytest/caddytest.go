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
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// The Caddyfile adapter and the standard modules, as in the binary.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
	return caddy.Load(cfg, true)
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
