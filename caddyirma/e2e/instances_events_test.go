package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// eventsAcrossInstances starts a login at a, follows its status with the
// frontend's statusevents at b, and has the wallet answer at c: b's watch
// (a look-up in the shared Redis every 25 ms) hears the session end, and
// its stream ends with DONE.
func (c *cluster) eventsAcrossInstances(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	a, b, cc := c.instances[0].base, c.instances[1].base, c.instances[2].base
	br := newBrowser(t)
	p, sess := begin(t, br, a+"/members/events", http.StatusUnauthorized)
	events := strings.TrimSuffix(p.Frontend.StatusURL, "status") + "statusevents"
	stream := openEvents(t, b+events, map[string]string{"Authorization": p.Frontend.Authorization}, http.StatusOK)
	if res, err := w.RunSession(ctx, c.at(sess, cc), wallet.Accept); err != nil {
		t.Fatalf("login with the wallet at c: %+v, %v", res, err)
	}
	got := stream.statuses(t)
	if len(got) == 0 || got[len(got)-1] != "DONE" {
		t.Errorf("the stream at b: %v, want it to end with DONE", got)
	}
}
