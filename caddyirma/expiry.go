package caddyirma

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-redis/redis/v8"
	"github.com/privacybydesign/gabi"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// A login must not outlive the credentials it was made with, but irmago's
// session result does not say when they expire: only the proofs do, in each
// credential's metadata attribute. So the gateway reads the proofs that the
// Yivi app posts, after irmaserver has accepted them, and records the
// earliest expiry per session (by client token) for the login to pick up.

// expiryStore records when the credentials disclosed in a session expire.
type expiryStore interface {
	put(ctx context.Context, clientToken string, expiry time.Time) error
	// take returns the expiry and forgets it, or false if none was
	// recorded (or it was taken before).
	take(ctx context.Context, clientToken string) (time.Time, bool, error)
}

// proofsClientToken returns the client token if rest (a path relative to the
// IRMA endpoints) is where the app posts its proofs.
func proofsClientToken(rest string) (string, bool) {
	tok, ok := strings.CutPrefix(rest, "/session/")
	if !ok {
		return "", false
	}
	tok, ok = strings.CutSuffix(tok, "/proofs")
	if !ok || tok == "" || strings.Contains(tok, "/") {
		return "", false
	}
	return tok, true
}

// serveProofs passes the app's proofs to irmaserver and, if it accepts a
// disclosure, records when its credentials expire.
func serveProofs(w http.ResponseWriter, r *http.Request, next http.Handler, store expiryStore, clientToken string) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, server.PostSizeLimit+1))
	if err != nil {
		return fmt.Errorf("reading proofs: %w", err)
	}
	if int64(len(body)) > server.PostSizeLimit {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// Recorded before irmaserver marks the session DONE: the login page
	// that sees DONE must find it. Proofs that irmaserver refuses leave
	// nothing behind.
	var disclosure irma.Disclosure
	recorded := false
	if irma.UnmarshalValidate(body, &disclosure) == nil {
		if expiry, ok := earliestExpiry(disclosure.Proofs); ok {
			if err := store.put(r.Context(), clientToken, expiry); err != nil {
				return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("recording credential expiry: %w", err))
			}
			recorded = true
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if recorded && rec.status != http.StatusOK {
		_, _, _ = store.take(r.Context(), clientToken)
	}
	return nil
}

// earliestExpiry returns when the first of the disclosed credentials
// expires, from the metadata attribute (index 1) of each disclosure proof.
func earliestExpiry(proofs gabi.ProofList) (time.Time, bool) {
	var earliest time.Time
	for _, p := range proofs {
		pd, ok := p.(*gabi.ProofD)
		if !ok || pd.ADisclosed[1] == nil {
			continue
		}
		exp := irma.MetadataFromInt(pd.ADisclosed[1], nil).Expiry()
		if earliest.IsZero() || exp.Before(earliest) {
			earliest = exp
		}
	}
	return earliest, !earliest.IsZero()
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// memoryExpiries keeps expiries in the process, for the memory session
// store, for as long as a session and its result live.
type memoryExpiries struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]memoryExpiry
}

type memoryExpiry struct {
	expiry, forget time.Time
}

func newMemoryExpiries(ttl time.Duration) *memoryExpiries {
	return &memoryExpiries{ttl: ttl, m: map[string]memoryExpiry{}}
}

func (s *memoryExpiries) put(_ context.Context, tok string, expiry time.Time) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if now.After(v.forget) {
			delete(s.m, k)
		}
	}
	s.m[tok] = memoryExpiry{expiry: expiry, forget: now.Add(s.ttl)}
	return nil
}

func (s *memoryExpiries) take(_ context.Context, tok string) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[tok]
	delete(s.m, tok)
	if !ok || time.Now().After(v.forget) {
		return time.Time{}, false, nil
	}
	return v.expiry, true, nil
}

// redisExpiries keeps expiries in the Redis that holds the sessions, so
// that every instance sees what the one that took the proofs recorded.
type redisExpiries struct {
	client *server.RedisClient
	ttl    time.Duration
}

func (s *redisExpiries) key(tok string) string {
	return s.client.KeyPrefix + "caddy-irma:credential-expiry:" + tok
}

func (s *redisExpiries) put(ctx context.Context, tok string, expiry time.Time) error {
	return s.client.Set(ctx, s.key(tok), strconv.FormatInt(expiry.Unix(), 10), s.ttl).Err()
}

func (s *redisExpiries) take(ctx context.Context, tok string) (time.Time, bool, error) {
	v, err := s.client.GetDel(ctx, s.key(tok)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading credential expiry from redis: %w", err)
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("credential expiry in redis: %w", err)
	}
	return time.Unix(sec, 0), true, nil
}
