package caddytest

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestLoadServesNewConfig reloads Caddy on a held socket again and again,
// and asks right after each Load: the answer comes from the new config,
// never from an old server that is shutting down (which would close the
// connection unanswered: EOF). Without settle, about 1 in 250 such
// requests failed on a busy 2-core machine.
func TestLoadServesNewConfig(t *testing.T) {
	ln := Listen(t)
	t.Cleanup(func() { _ = caddy.Stop() })
	for i := range 200 {
		cfg := fmt.Sprintf("{\n\tadmin off\n}\nhttp://127.0.0.1:%d {\n\t%s\n\trespond \"config %d\"\n}\n", ln.Port, ln.Bind(), i)
		if err := Load(cfg); err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + ln.Addr() + "/")
		if err != nil {
			t.Fatalf("right after load %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("config %d", i); string(body) != want {
			t.Fatalf("right after load %d, %q answered, want %q", i, body, want)
		}
	}
}
