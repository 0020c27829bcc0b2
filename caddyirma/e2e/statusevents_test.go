package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// eventStream is an open statusevents stream whose events (their data)
// arrive on a channel, closed when the stream ends.
type eventStream struct {
	resp   *http.Response
	events chan string
}

// openEvents opens url as a stream with the headers given; it fails the
// test unless the answer is wantCode, and returns nil for any answer but 200.
func openEvents(t *testing.T, url string, header map[string]string, wantCode int) *eventStream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantCode {
		resp.Body.Close()
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, wantCode)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	s := &eventStream{resp: resp, events: make(chan string, 16)}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				s.events <- data
			}
		}
	}()
	return s
}

// statuses reads the stream to its end and returns the statuses it
// announced, whether as JSON strings or as the frontend's objects.
func (s *eventStream) statuses(t *testing.T) []string {
	t.Helper()
	var got []string
	timeout := time.After(time.Minute)
	for {
		select {
		case data, ok := <-s.events:
			if !ok {
				return got
			}
			var status string
			if json.Unmarshal([]byte(data), &status) != nil {
				var fs irma.FrontendSessionStatus
				if err := json.Unmarshal([]byte(data), &fs); err != nil {
					t.Fatalf("event data %q: %v", data, err)
				}
				status = string(fs.Status)
			}
			got = append(got, status)
		case <-timeout:
			t.Fatalf("the stream did not end within a minute; statuses so far %v", got)
		}
	}
}

// TestStatusEvents follows sessions through the gateway's statusevents, with
// the sessions in memory and in Redis: a login's frontend stream (with the
// frontend authorization; without it 403) and the requestor API's stream
// hear CONNECTED and DONE as the real wallet answers, and end; a client gets
// at most 8 streams at once (429 after).
func TestStatusEvents(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			irmaStore := ""
			if store == "redis" {
				irmaStore = fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", testredis.Start(t))
			}
			// In memory every change comes from irmaserver's channel; in
			// Redis a look-up every 25 ms may miss a CONNECTED that DONE
			// follows within that time.
			want := []string{"CONNECTED DONE"}
			if store == "redis" {
				want = append(want, "DONE")
			}
			testStatusEvents(t, irmaStore, want)
		})
	}
}

func testStatusEvents(t *testing.T, irmaStore string, want []string) {
	g := newGateway(t)
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}
		`+irmaStore, `irma_auth /members/* members
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token s3cret-token
				disclose caddy-demo.gateway.person.*
			}
		}
	}
	respond "members only"`)
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	(&authSite{base: g.base, scheme: g.scheme, app: app}).issue(t, w, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A login's page.
	br := newBrowser(t)
	p, sess := begin(t, br, g.base+"/members/x", http.StatusUnauthorized)
	events := strings.TrimSuffix(p.Frontend.StatusURL, "status") + "statusevents"
	openEvents(t, g.base+events, nil, http.StatusForbidden)
	openEvents(t, g.base+events, map[string]string{"Authorization": "wrong"}, http.StatusForbidden)
	auth := map[string]string{"Authorization": p.Frontend.Authorization}
	streams := []*eventStream{openEvents(t, g.base+events, auth, http.StatusOK)}
	for len(streams) < 8 {
		streams = append(streams, openEvents(t, g.base+events, auth, http.StatusOK))
	}
	openEvents(t, g.base+events, auth, http.StatusTooManyRequests)
	for _, s := range streams[1:] {
		s.resp.Body.Close()
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("login: %+v, %v", res, err)
	}
	if got := strings.Join(streams[0].statuses(t), " "); !slices.Contains(want, got) {
		t.Errorf("the login page's stream: %q, want one of %q", got, want)
	}
	// Once the session ended, a new stream says so at once, and ends.
	if got := strings.Join(openEvents(t, g.base+events, auth, http.StatusOK).statuses(t), " "); got != "DONE" {
		t.Errorf("a stream of the ended session: %q, want DONE", got)
	}

	// A requestor's session.
	code, body := postSession(t, g.base+"/api/irma", `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`,
		"application/json", "s3cret-token")
	var pkg struct {
		SessionPtr *irma.Qr            `json:"sessionPtr"`
		Token      irma.RequestorToken `json:"token"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &pkg) != nil {
		t.Fatalf("POST /session: %d %s", code, body)
	}
	rstream := openEvents(t, g.base+"/api/irma/session/"+string(pkg.Token)+"/statusevents", nil, http.StatusOK)
	if res, err := w.Run(ctx, pkg.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("requestor session: %+v, %v", res, err)
	}
	if got := strings.Join(rstream.statuses(t), " "); !slices.Contains(want, got) {
		t.Errorf("the requestor's stream: %q, want one of %q", got, want)
	}
	openEvents(t, g.base+"/api/irma/session/AAAAAAAAAAAAAAAAAAAA/statusevents", nil, http.StatusBadRequest)
}
