package caddyirma

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// The results of static sessions, posted by the gateway itself. Anyone
// who scans a static session's printed code starts a session whose result
// goes to the operator's callbackUrl; had irmaserver posted it, every scan
// left unanswered would be posted again at every sweep (10 s) while the
// receiver fails, each post over a new connection that then idles for 90
// s: a flood of scans became a flood of posts and open files. The gateway
// posts each result once, over a shared client, a few at a time, and
// lets go of what it cannot post within bounds, saying so. Done results
// wait in a line of their own: each took a real wallet's proofs, while
// anyone can leave scans to time out, which must not hold them up. A
// result is signed when its turn comes, so that it arrives valid.

const (
	// resultPostConcurrency is how many results are posted at once.
	resultPostConcurrency = 8
	// resultPostBacklog is how many more may wait for their turn; a
	// result beyond it is not posted.
	resultPostBacklog = 1000
	// resultPostTimeout bounds one post, answer included.
	resultPostTimeout = 10 * time.Second
	// resultPostMaxWait bounds how long a result waits for its turn.
	resultPostMaxWait = time.Minute
	// resultPostAnswerLimit is how much of the receiver's answer is read
	// (and thrown away) so that its connection can serve the next post.
	resultPostAnswerLimit = 64 << 10
)

// resultPoster posts session results to callback URLs within bounds.
type resultPoster struct {
	client  *http.Client
	slots   chan struct{}
	waiting atomic.Int64
	backlog int64
	timeout time.Duration // of one post
	maxWait time.Duration // for a turn
}

// staticDone posts the results of static sessions that ended done,
// staticEnded those that were cancelled or timed out.
var (
	staticDone  = newResultPoster(resultPostConcurrency, resultPostBacklog, resultPostTimeout, resultPostMaxWait)
	staticEnded = newResultPoster(resultPostConcurrency, resultPostBacklog, resultPostTimeout, resultPostMaxWait)
)

func newResultPoster(concurrency, backlog int, timeout, maxWait time.Duration) *resultPoster {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &resultPoster{
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           dialer.DialContext,
				MaxIdleConns:          concurrency,
				MaxIdleConnsPerHost:   concurrency,
				MaxConnsPerHost:       concurrency,
				IdleConnTimeout:       30 * time.Second,
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: timeout,
			},
			// A receiver's redirect is its failure: the result goes where
			// the operator said, nowhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		slots:   make(chan struct{}, concurrency),
		backlog: int64(backlog),
		timeout: timeout,
		maxWait: maxWait,
	}
}

// resultBody is a session result as irmaserver posts it to a callback: a
// result JWT (text/plain) signed with key, or without one the result JSON.
func resultBody(res *server.SessionResult, issuer string, validity int, key *rsa.PrivateKey) ([]byte, string, error) {
	if key == nil {
		b, err := json.Marshal(res)
		return b, "application/json; charset=UTF-8", err
	}
	if validity == 0 {
		validity = irma.DefaultJwtValidity
	}
	jwt, err := server.ResultJwt(res, issuer, validity, key)
	return []byte(jwt), "text/plain; charset=UTF-8", err
}

// errResultBacklog says that a result was not posted: too many wait.
var errResultBacklog = errors.New("too many session results wait to be posted")

// post posts the body that body makes to target once, as irmaserver
// would: to the URL with a "/" added to its path if it has none at the end.
// It waits its turn while fewer than its backlog of others do, for at most
// its maxWait and until ctx ends, and makes the body then.
func (p *resultPoster) post(ctx context.Context, target string, body func() ([]byte, string, error)) error {
	if p.waiting.Add(1) > p.backlog {
		p.waiting.Add(-1)
		return errResultBacklog
	}
	wait, cancelWait := context.WithTimeout(ctx, p.maxWait)
	defer cancelWait()
	select {
	case p.slots <- struct{}{}:
		p.waiting.Add(-1)
	case <-wait.Done():
		p.waiting.Add(-1)
		return fmt.Errorf("waited for a turn: %w", wait.Err())
	}
	defer func() { <-p.slots }()
	b, contentType, err := body()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if !strings.HasSuffix(target, "/") {
		target += "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "caddy-irma")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, resultPostAnswerLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return nil
}

// postStaticResult posts the result of the static session name to its
// callback URL, once, and logs a failure as irmaserver does a callback's:
// a warning, with the session's name but neither the URL (the operator's,
// in the config) nor the session's token.
func (a *App) postStaticResult(rs *runningServer, name string, token irma.RequestorToken, s staticSession) {
	res, err := rs.GetSessionResult(token)
	if err == nil && res == nil {
		err = errors.New("no result")
	}
	if err == nil {
		poster := staticEnded
		if res.Status == irma.ServerStatusDone {
			poster = staticDone
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-rs.stopped:
			case <-ctx.Done():
			}
			cancel()
		}()
		err = poster.post(ctx, s.callback, func() ([]byte, string, error) {
			return resultBody(res, a.JWTIssuer, s.resultValidity, a.resultKey)
		})
		cancel()
	}
	if err != nil {
		countStaticCallback("failed")
		a.logger.Warn("failed to post a static session's result to its callback URL",
			zap.String("static_session", name), zap.Error(redactURL(err)))
		return
	}
	countStaticCallback("posted")
}

// redactURL keeps the callback URL, which may hold credentials, out of
// an error of net/http, which names the URL it failed to reach.
func redactURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("post: %w", uerr.Err)
	}
	return err
}
