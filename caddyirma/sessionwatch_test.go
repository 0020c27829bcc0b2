package caddyirma

import (
	"errors"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
)

// statusSequence answers GetSessionResult with its statuses in turn, the
// last one for ever; an empty status is a failing store, "gone" an
// unknown session.
type statusSequence []irma.ServerStatus

func (s *statusSequence) GetSessionResult(irma.RequestorToken) (*server.SessionResult, error) {
	status := (*s)[0]
	if len(*s) > 1 {
		*s = (*s)[1:]
	}
	switch status {
	case "":
		return nil, errors.New("redis: connection refused")
	case "gone":
		return nil, &irmaserver.UnknownSessionError{}
	}
	return &server.SessionResult{Status: status}, nil
}

// TestAwaitEnd: the watcher of a session says how it ended, once it has;
// it says nothing of a session that is gone, whose store keeps failing, or
// whose server stops.
func TestAwaitEnd(t *testing.T) {
	saved := sessionWatchEvery
	sessionWatchEvery = time.Millisecond
	t.Cleanup(func() { sessionWatchEvery = saved })
	const (
		started = irma.ServerStatusInitialized
		conn    = irma.ServerStatusConnected
	)
	for _, tc := range []struct {
		name     string
		statuses statusSequence
		want     string
	}{
		{"done", statusSequence{started, conn, irma.ServerStatusDone}, outcomeDone},
		{"cancelled", statusSequence{started, irma.ServerStatusCancelled}, outcomeCancelled},
		{"timed out", statusSequence{started, irma.ServerStatusTimeout}, outcomeTimeout},
		{"a store that fails a while", statusSequence{started, "", "", irma.ServerStatusDone}, outcomeDone},
		{"a store that keeps failing", statusSequence{started, ""}, ""},
		{"gone", statusSequence{started, "gone"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := awaitEnd(&tc.statuses, nil, nil, "token", 50*time.Millisecond); got != tc.want {
				t.Errorf("outcome %q, want %q", got, tc.want)
			}
		})
	}
	stopped := make(chan struct{})
	close(stopped)
	if got := awaitEnd(&statusSequence{started}, stopped, nil, "token", time.Minute); got != "" {
		t.Errorf("a stopped server: outcome %q", got)
	}
}

// TestAwaitEndFollowsChanges: with irmaserver's status channel (sessions in
// memory) the watcher reads the status when the channel says it changed,
// not on a clock, and once more when the channel closes at the end.
func TestAwaitEndFollowsChanges(t *testing.T) {
	saved := sessionWatchEvery
	sessionWatchEvery = time.Hour // no reads but those the channel brings
	t.Cleanup(func() { sessionWatchEvery = saved })
	statuses := &statusSequence{irma.ServerStatusConnected, irma.ServerStatusDone}
	changes := make(chan struct{})
	got := make(chan string, 1)
	go func() { got <- awaitEnd(statuses, nil, changes, "token", time.Minute) }()
	changes <- struct{}{} // CONNECTED
	close(changes)        // DONE, and the end
	select {
	case outcome := <-got:
		if outcome != outcomeDone {
			t.Errorf("outcome %q, want %q", outcome, outcomeDone)
		}
	case <-time.After(time.Minute):
		t.Fatal("the watcher did not end when the channel closed")
	}
}
