package caddyirma

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
)

// day is a day on the tests' own clocks.
const day = 24 * time.Hour

// fakeSessions is an IRMA server whose sessions end as the test says.
type fakeSessions struct {
	mu       sync.Mutex
	n        int
	requests map[irma.RequestorToken]irma.SessionRequest
	results  map[irma.RequestorToken]*server.SessionResult
	store    marks.Store
	lookups  int
	broken   error // GetSessionResult fails with it
	timeouts []int // the ClientTimeout of each session started
}

func newFakeSessions(now func() time.Time) *fakeSessions {
	return &fakeSessions{requests: map[irma.RequestorToken]irma.SessionRequest{},
		results: map[irma.RequestorToken]*server.SessionResult{}, store: marks.New(marks.Config{Now: now})}
}

func (f *fakeSessions) StartSession(req any, _ server.SessionHandler, _ string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	token := irma.RequestorToken(fmt.Sprintf("requestor%d", f.n))
	rreq := req.(irma.RequestorRequest)
	f.timeouts = append(f.timeouts, rreq.Base().ClientTimeout)
	sreq := rreq.SessionRequest()
	f.requests[token] = sreq
	f.results[token] = &server.SessionResult{Status: irma.ServerStatusInitialized, Type: sreq.Action()}
	ptr := &irma.Qr{URL: fmt.Sprintf("https://gw.example/irma/session/client%d", f.n), Type: sreq.Action()}
	return ptr, token, &irma.FrontendSessionRequest{Authorization: "frontend"}, nil
}

func (f *fakeSessions) SetFrontendOptions(irma.RequestorToken, *irma.FrontendOptionsRequest) (*irma.SessionOptions, error) {
	return &irma.SessionOptions{PairingCode: "1234"}, nil
}

func (f *fakeSessions) GetSessionResult(t irma.RequestorToken) (*server.SessionResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.broken != nil {
		return nil, f.broken
	}
	res, ok := f.results[t]
	if !ok {
		return nil, &irmaserver.UnknownSessionError{}
	}
	return res, nil
}

func (f *fakeSessions) CancelSession(irma.RequestorToken) error { return nil }

func (f *fakeSessions) marks() (marks.Store, error) { return f.store, nil }

// finish ends session n as a disclosure of attrs (id, value pairs), and
// records, as the proofs hook does, that its credentials expire at expiry.
func (f *fakeSessions) finish(t *testing.T, n int, expiry time.Time, attrs ...string) {
	t.Helper()
	var con []*irma.DisclosedAttribute
	for i := 0; i < len(attrs); i += 2 {
		v := attrs[i+1]
		con = append(con, &irma.DisclosedAttribute{Identifier: irma.NewAttributeTypeIdentifier(attrs[i]), RawValue: &v,
			Status: irma.AttributeProofStatusPresent, Value: irma.TranslatedString{"": v}})
	}
	f.end(n, &server.SessionResult{Status: irma.ServerStatusDone, Type: irma.ActionDisclosing,
		ProofStatus: irma.ProofStatusValid, Disclosed: [][]*irma.DisclosedAttribute{con}})
	// As serveProofs does for proofs that irmaserver accepted.
	tok := fmt.Sprintf("client%d", n)
	if _, err := f.store.Add(context.Background(), proofsAcceptedKey(tok), nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(context.Background(), credentialExpiryKey(tok), []byte(fmt.Sprint(expiry.Unix())), time.Hour); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeSessions) end(n int, res *server.SessionResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[irma.RequestorToken(fmt.Sprintf("requestor%d", n))] = res
}

// testClock is the flow's clock.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// flowSite is a login flow for one policy, and a browser's cookies.
type flowSite struct {
	t       *testing.T
	flow    *loginFlow
	srv     *fakeSessions
	clock   *testClock
	cookies map[string]*http.Cookie
}

func newFlowSite(t *testing.T, lifetime time.Duration, exprs ...string) *flowSite {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 11, 30, 13, 7, 0, 0, time.UTC)} // a Monday; others below
	l := &LoginConfig{CookieLifetime: caddy.Duration(lifetime)}
	if err := l.provision("https://gw.example/irma/"); err != nil {
		t.Fatal(err)
	}
	if err := l.start(context.Background(), new(keystore.Memory)); err != nil {
		t.Fatal(err)
	}
	var p policy.Policy
	for _, e := range exprs {
		r, err := policy.ParseRequirement(e)
		if err != nil {
			t.Fatal(err)
		}
		p.Requirements = append(p.Requirements, r)
	}
	srv := newFakeSessions(clock.now)
	f := &loginFlow{policy: p, route: "route:test", name: "test", login: l, backend: srv, prefix: "/irma/",
		maxSession: 15 * time.Minute, scanTimeout: 2 * time.Minute, proofsWait: time.Minute, now: clock.now, logger: zap.NewNop()}
	return &flowSite{t: t, flow: f, srv: srv, clock: clock, cookies: map[string]*http.Cookie{}}
}

// get runs the flow for one request of the browser, as JSON or as a page,
// and keeps the cookies it sets.
func (s *flowSite) get(page bool) (*httptest.ResponseRecorder, *loginState, error) {
	s.t.Helper()
	if page {
		return s.do(http.MethodGet, "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
	}
	return s.do(http.MethodGet, "Accept", "application/json")
}

// do runs the flow for one request with the given method and headers
// (name, value, ...), and keeps the cookies it sets.
func (s *flowSite) do(method string, header ...string) (*httptest.ResponseRecorder, *loginState, error) {
	s.t.Helper()
	r := httptest.NewRequest(method, "https://gw.example/members/", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	for _, c := range s.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	login, err := s.flow.check(w, r, func() destination {
		return destination{ret: "/members/", done: "/members/", code: http.StatusUnauthorized}
	})
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(s.cookies, c.Name)
		} else {
			s.cookies[c.Name] = c
		}
	}
	return w, login, err
}

func (s *flowSite) pending() bool {
	_, ok := s.cookies[s.flow.login.cookies.pendingName(s.flow.route)]
	return ok
}

// requested returns the attributes that session n asks for, as one string.
func (s *flowSite) requested(n int) string {
	req := s.srv.requests[irma.RequestorToken(fmt.Sprintf("requestor%d", n))]
	b, _ := json.Marshal(req.Disclosure().Disclose)
	return string(b)
}

func statusOf(w *httptest.ResponseRecorder, err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return w.Code
}
