package sessionlimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLimiter(c *clock) *Limiter {
	return &Limiter{PerClient: 3, Window: time.Minute, Total: 5, TotalWindow: 10 * time.Minute, MaxClients: 4, Now: c.now}
}

func TestPerClient(t *testing.T) {
	c := &clock{t: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	l := newLimiter(c)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("session %d of 3 refused", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 20*time.Second {
		t.Fatalf("the fourth: %v, wait %s, want a refusal and 20s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another client was refused for a's sessions")
	}
	c.t = c.t.Add(20 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("no session after the wait")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("two sessions after one wait")
	}
}

func TestTotal(t *testing.T) {
	c := &clock{t: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	l := newLimiter(c)
	l.MaxClients = 100
	started := 0
	for i := range 10 {
		if ok, _ := l.Allow(fmt.Sprint("client-", i)); ok {
			started++
		}
	}
	if started != 5 {
		t.Fatalf("%d sessions started by 10 clients, want the total of 5", started)
	}
	ok, wait := l.Allow("late")
	if ok || wait != 2*time.Minute {
		t.Errorf("over the total: %v, wait %s, want a refusal and 2m", ok, wait)
	}
	// A client refused for the total keeps its own tokens.
	c.t = c.t.Add(2 * time.Minute)
	for i := range 1 {
		if ok, _ := l.Allow("late"); !ok {
			t.Fatalf("session %d after the total refilled: refused", i+1)
		}
	}
}

func TestMaxClients(t *testing.T) {
	c := &clock{t: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	l := newLimiter(c)
	l.Total = 1000
	for i := range 4 {
		if ok, _ := l.Allow(fmt.Sprint("client-", i)); !ok {
			t.Fatalf("client %d refused", i)
		}
	}
	if ok, _ := l.Allow("fifth"); ok {
		t.Fatal("a fifth client while four are tracked and busy")
	}
	// Once the others are idle (refilled), they are forgotten.
	c.t = c.t.Add(time.Minute)
	if ok, _ := l.Allow("fifth"); !ok {
		t.Error("a new client after the others went idle was refused")
	}
	if len(l.clients) > 4 {
		t.Errorf("%d clients tracked, want at most 4", len(l.clients))
	}
}
