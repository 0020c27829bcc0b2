package caddyirma

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/statusevents"
)

// The statusevents routes, as irma server has them with SSE on: the
// frontend's (/session/{clientToken}/frontend/statusevents, with the
// frontend authorization), the client's (/session/{clientToken}/statusevents)
// and the requestor API's (/session/{requestorToken}/statusevents). Each
// stream follows a watch that the hub of the running server shares among
// the streams of one session: with the sessions in memory it learns of
// changes from irmaserver's status channel, in Redis (which has none) it
// looks the status up every 25 ms.

// streamStatus answers a statusevents route of the IRMA endpoints; rest is
// the path relative to the prefix.
func (e *Endpoints) streamStatus(w http.ResponseWriter, r *http.Request, rest string, rs *runningServer) error {
	frontend := strings.HasSuffix(rest, "/frontend/statusevents")
	statusPath := strings.TrimSuffix(rest, "events") // .../status
	ct := strings.Split(rest, "/")[2]
	host, auth := r.Host, r.Header.Get(irma.AuthorizationHeader)
	probe := func(ctx context.Context) (statusevents.Status, error) {
		code, body := rs.lookUpStatus(ctx, statusPath, host, auth)
		if code != http.StatusOK {
			return statusevents.Status{}, errors.New("status look-up failed")
		}
		return parseStatusBody(body, frontend)
	}
	code, body := rs.lookUpStatus(r.Context(), statusPath, host, auth)
	if code != http.StatusOK {
		// irmaserver's answer: unknown session, wrong authorization; or
		// its store failed.
		var answer irma.RemoteError
		if code == http.StatusInternalServerError && json.Unmarshal(body, &answer) == nil && answer.ErrorName == string(server.ErrorInternal.Type) {
			return answerUnavailable(w, r, e.app.logger, errors.New("irma endpoints: status events: irmaserver's store failed"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
		return nil
	}
	first, err := parseStatusBody(body, frontend)
	if err != nil {
		return answerUnavailable(w, r, e.app.logger, err)
	}
	// What a client of the route knows when it opens a stream: the Yivi
	// app opens the client's route only to wait for the end of pairing,
	// with the session in PAIRING already; irma's requestor client (`yivi
	// irma session --server`) opens it as the session starts, and waits
	// for PAIRING (with --pairing, to show the code) or CONNECTED. A
	// frontend knows the session started.
	key, known := "c/"+ct, min(first.Step, stepPairing)
	if frontend {
		key, known = "f/"+ct, stepInitialized
	}
	src := statusevents.Source{Probe: probe}
	if rt, ok := rs.tokens.lookUp(ct); ok {
		src.Changes = rs.statusChanges(rt)
	}
	return answerBusy(w, rs.events.Stream(w, r, key, clientOf(r), first, known, src))
}

// streamRequestorStatus is the requestor API's statusevents route, for a
// session whose status the API just looked up.
func (rs *runningServer) streamRequestorStatus(w http.ResponseWriter, r *http.Request, token irma.RequestorToken, status irma.ServerStatus) {
	probe := func(context.Context) (statusevents.Status, error) {
		res, err := rs.GetSessionResult(token)
		if err != nil || res == nil {
			return statusevents.Status{}, errors.New("session result look-up failed")
		}
		return passedConnected(eventOf(quoteStatus(res.Status), res.Status), res.Status), nil
	}
	src := statusevents.Source{Probe: probe, Changes: rs.statusChanges(token)}
	first := passedConnected(eventOf(quoteStatus(status), status), status)
	_ = answerBusy(w, rs.events.Stream(w, r, "r/"+string(token), clientOf(r), first, stepInitialized, src))
}

// passedConnected marks DONE, on the client's and the requestor's
// streams, as having passed CONNECTED, so that a stream that missed
// CONNECTED (a watch that polls Redis every 25 ms misses a wallet that
// answers within that) announces it before DONE, as irma server's stream,
// which sends every change, does. irmago's requestor client (`yivi irma
// session --server`) follows the client's stream and fails on a DONE
// that no CONNECTED preceded ("Unexpected status: DONE"). The frontend's
// stream, whose pages take DONE as it comes, is left as it is.
func passedConnected(st statusevents.Status, status irma.ServerStatus) statusevents.Status {
	if status == irma.ServerStatusDone {
		connected := eventOf(quoteStatus(irma.ServerStatusConnected), irma.ServerStatusConnected)
		st.Passed = &connected
	}
	return st
}

// answerBusy answers 429 if the hub refused a stream (err is
// statusevents.ErrBusy): the page and the Yivi frontend then poll.
func answerBusy(w http.ResponseWriter, err error) error {
	if errors.Is(err, statusevents.ErrBusy) {
		w.Header().Set("Retry-After", "5")
		sessionpage.WriteJSON(w, http.StatusTooManyRequests, map[string]string{
			"error": "too_many_streams", "message": "too many status streams from this client: poll the status instead"})
		return nil
	}
	return err
}

// The steps of a session, in the order it takes them.
const (
	stepInitialized = iota
	stepPairing
	stepConnected
	stepEnded
)

// eventOf is the event that announces a status with data.
func eventOf(data []byte, status irma.ServerStatus) statusevents.Status {
	st := statusevents.Status{Data: data, Final: status.Finished()}
	switch {
	case st.Final:
		st.Step = stepEnded
	case status == irma.ServerStatusConnected:
		st.Step = stepConnected
	case status == irma.ServerStatusPairing:
		st.Step = stepPairing
	}
	return st
}

func quoteStatus(s irma.ServerStatus) []byte { return []byte(`"` + string(s) + `"`) }

// parseStatusBody reads irmaserver's answer to a status route: a JSON
// string, or for the frontend's an object with a status.
func parseStatusBody(body []byte, frontend bool) (statusevents.Status, error) {
	body = bytes.TrimSpace(body)
	unreadable := errors.New("status look-up: unreadable answer")
	if frontend {
		var fs irma.FrontendSessionStatus
		if err := json.Unmarshal(body, &fs); err != nil {
			return statusevents.Status{}, unreadable
		}
		return eventOf(body, fs.Status), nil
	}
	var status irma.ServerStatus
	if err := json.Unmarshal(body, &status); err != nil {
		return statusevents.Status{}, unreadable
	}
	return passedConnected(eventOf(body, status), status), nil
}

// lookUpStatus asks irmaserver's own status route (path relative to its
// root) as the client would, with the client's host and authorization,
// and returns its answer.
func (rs *runningServer) lookUpStatus(ctx context.Context, path, host, auth string) (int, []byte) {
	req := (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Host: host,
		Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	if auth != "" {
		req.Header.Set(irma.AuthorizationHeader, auth)
	}
	rec := &recordedResponse{header: http.Header{}}
	rs.handler.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return rec.code, rec.body.Bytes()
}

// statusChanges is the channel of irmaserver's status changes of a
// session, when its sessions are in memory; nil in Redis, which has none.
func (rs *runningServer) statusChanges(token irma.RequestorToken) statusevents.Changes {
	if rs.settings.StoreType == "redis" {
		return nil
	}
	return func() (<-chan struct{}, error) {
		statuses, err := rs.SessionStatus(token)
		if err != nil {
			return nil, err
		}
		changed := make(chan struct{}, 1)
		go func() {
			defer close(changed)
			for range statuses { // to the end: irmaserver blocks on a full channel
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}()
		return changed, nil
	}
}

// recordedResponse keeps an internal request's answer.
type recordedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recordedResponse) Header() http.Header { return r.header }
func (r *recordedResponse) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recordedResponse) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.body.Len()+len(b) > 64<<10 {
		return 0, errors.New("status answer too long")
	}
	return r.body.Write(b)
}

// sessionTokens maps the client tokens of the sessions that this process
// started to their requestor tokens, for as long as they can run: the
// key to irmaserver's status channel, which a page's stream (named by the
// client token) follows. Only with the sessions in memory, where every
// session lives in the process that started it.
type sessionTokens struct {
	mu      sync.Mutex
	ttl     time.Duration
	tokens  map[string]sessionToken
	sweepAt int
}

type sessionToken struct {
	requestor irma.RequestorToken
	expires   time.Time
}

func newSessionTokens(ttl time.Duration) *sessionTokens {
	return &sessionTokens{ttl: ttl, tokens: map[string]sessionToken{}, sweepAt: 1024}
}

// remember records a session just started: ptr is its session pointer.
func (t *sessionTokens) remember(ptr *irma.Qr, rt irma.RequestorToken) {
	if t == nil || ptr == nil {
		return
	}
	ct := ptr.URL[strings.LastIndex(ptr.URL, "/")+1:]
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.tokens) >= t.sweepAt {
		for k, v := range t.tokens {
			if now.After(v.expires) {
				delete(t.tokens, k)
			}
		}
		t.sweepAt = max(1024, 2*len(t.tokens))
	}
	t.tokens[ct] = sessionToken{requestor: rt, expires: now.Add(t.ttl)}
}

func (t *sessionTokens) lookUp(ct string) (irma.RequestorToken, bool) {
	if t == nil {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.tokens[ct]
	if !ok || time.Now().After(e.expires) {
		return "", false
	}
	return e.requestor, true
}

// StartSession starts a session on irmaserver, and remembers its tokens
// for the status streams.
func (rs *runningServer) StartSession(req any, handler server.SessionHandler, requestor string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error) {
	ptr, rt, frontend, err := rs.Server.StartSession(req, handler, requestor)
	if err == nil {
		rs.tokens.remember(ptr, rt)
	}
	return ptr, rt, frontend, err
}
