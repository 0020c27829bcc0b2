package caddyirma

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/privacybydesign/gabi"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
)

// A login must not outlive the credentials it was made with, but irmago's
// session result does not say when they expire: only the proofs do, in each
// credential's metadata attribute. So the gateway reads the proofs that the
// Yivi app posts, and records the earliest expiry per session (by client
// token) as a mark, for the login to take.

// The marks of sessions, by client token: the credential expiry of a
// disclosure, and a signature whose result has not been fetched.
func credentialExpiryKey(clientToken string) string { return "credential-expiry:" + clientToken }
func signatureKey(clientToken string) string        { return "signature:" + clientToken }

// putCredentialExpiry records when the credentials disclosed in the session
// expire, for as long as the session and its result live.
func putCredentialExpiry(ctx context.Context, store marks.Store, clientToken string, expiry time.Time, ttl time.Duration) error {
	return store.Put(ctx, credentialExpiryKey(clientToken), strconv.AppendInt(nil, expiry.Unix(), 10), ttl)
}

// takeCredentialExpiry returns, and forgets, the credential expiry recorded
// for the session, or false if there is none (never recorded, or taken).
func takeCredentialExpiry(ctx context.Context, b backend, clientToken string) (time.Time, bool, error) {
	store, err := b.marks()
	if err != nil {
		return time.Time{}, false, err
	}
	v, ok, err := store.Take(ctx, credentialExpiryKey(clientToken))
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	sec, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("credential expiry of a session: %w", err)
	}
	return time.Unix(sec, 0), true, nil
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
// disclosure, records when its credentials expire, for ttl.
func serveProofs(w http.ResponseWriter, r *http.Request, next http.Handler, store marks.Store, clientToken string, ttl time.Duration) error {
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
			if err := putCredentialExpiry(r.Context(), store, clientToken, expiry, ttl); err != nil {
				return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("recording credential expiry: %w", err))
			}
			recorded = true
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if recorded && rec.status != http.StatusOK {
		_, _, _ = store.Take(r.Context(), credentialExpiryKey(clientToken))
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
