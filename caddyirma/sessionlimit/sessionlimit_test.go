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
	allow := func(client string) (bool, time.Duration) { return l.Allow(client) }
	for i := range 3 {
		c.t = c.t.Add(10 * time.Second)
		if ok, _ := allow("a"); !ok {
			t.Fatalf("session %d of 3 refused", i+1)
		}
	}
	// Three in the window (at 10, 20, 30 s): the next when the first leaves it.
	ok, wait := allow("a")
	if ok || wait != 40*time.Second {
		t.Fatalf("the fourth: %v, wait %s, want a refusal and 40s", ok, wait)
	}
	if ok, _ := allow("b"); !ok {
		t.Error("another client was refused for a's sessions")
	}
	c.t = c.t.Add(40*time.Second - time.Nanosecond)
	if ok, _ := allow("a"); ok {
		t.Error("a fourth session within the window")
	}
	c.t = c.t.Add(time.Nanosecond)
	if ok, _ := allow("a"); !ok {
		t.Error("no session once the first left the window")
	}
	if ok, wait := allow("a"); ok || wait != 10*time.Second {
		t.Errorf("then: %v, wait %s, want a refusal and 10s", ok, wait)
	}
	// In no window of a minute did a start more than 3.
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
	if ok || wait != 10*time.Minute {
		t.Errorf("over the total: %v, wait %s, want a refusal and 10m", ok, wait)
	}
	c.t = c.t.Add(9 * time.Minute)
	if ok, _ := l.Allow("late"); ok {
		t.Error("a session over the total within its window")
	}
	c.t = c.t.Add(time.Minute)
	if ok, _ := l.Allow("late"); !ok {
		t.Error("no session once the window passed")
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
	// Once the others' starts have left the window, they are forgotten.
	c.t = c.t.Add(time.Minute)
	if ok, _ := l.Allow("fifth"); !ok {
		t.Error("a new client after the others went idle was refused")
	}
	if len(l.clients) > 4 {
		t.Errorf("%d clients tracked, want at most 4", len(l.clients))
	}
}
