package sessionlimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
)

// TestMaxClients: Memory keeps track of at most MaxClients clients, and
// forgets the idle ones to make room.
func TestMaxClients(t *testing.T) {
	c := testclock.New(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	l := &Memory{Bounds: Bounds{PerClient: 3, Window: time.Minute, Total: 1000, TotalWindow: 10 * time.Minute}, MaxClients: 4, Now: c.Now}
	allow := func(client string) bool {
		ok, _, err := l.Allow(context.Background(), client)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range 4 {
		if !allow(fmt.Sprint("client-", i)) {
			t.Fatalf("client %d refused", i)
		}
	}
	if allow("fifth") {
		t.Fatal("a fifth client while four are tracked and busy")
	}
	// Once the others' starts have left the window, they are forgotten.
	c.Advance(time.Minute)
	if !allow("fifth") {
		t.Error("a new client after the others went idle was refused")
	}
	if len(l.clients) > 4 {
		t.Errorf("%d clients tracked, want at most 4", len(l.clients))
	}
}
