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
	"time"

	"github.com/privacybydesign/gabi"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
)

// A login must not outlive the credentials it was made with, but irmago's
// session result does not say when they expire: only the proofs do, in each
// credential's metadata attribute. So the gateway reads the proofs that the
// Yivi app posts to a session that irmaserver holds (bounding them first,
// see below), passes them on, and once irmaserver has accepted them,
// records the earliest expiry (by client token) as a mark, for the login
// to take. Whoever holds a client token (it is in the QR
// code) can post there too: the gateway does no work of its own before
// irmaserver has looked the session up, records only what irmaserver
// accepted, once per session, and never removes a record for a post that
// irmaserver refused.
//
// gabi exponentiates with the numbers of the proofs before it checks their
// sizes, so a post of inflated proofs would cost irmaserver seconds of CPU
// (package proofbounds). The gateway bounds them first, but only for a
// session that exists: it asks irmaserver, in process, for the session's
// status, which reads no body; for a session that does not exist it passes
// the post on untouched, and irmaserver answers SESSION_UNKNOWN before the
// body is read. Commitments (issuance) are bounded the same way. For any session that exists, in any status, the body is
// read (up to maxProofsBody, irmaserver would read up to 10 MB) and checked.
// Checking only while the session is CONNECTED would do no less work (a
// client connects for free) but would race: a session can become CONNECTED
// between the status and the post. A session cannot come back into
// existence, so the check that it exists does not race.

// The marks of sessions, by client token: the credential expiry of a
// disclosure, that proofs of a session were accepted (once), and a
// signature whose result has not been fetched.
func credentialExpiryKey(clientToken string) string { return "credential-expiry:" + clientToken }
func proofsAcceptedKey(clientToken string) string   { return "proofs-accepted:" + clientToken }
func signatureKey(clientToken string) string        { return "signature:" + clientToken }

// maxProofsBody bounds a body of proofs (to an existing session): a
// disclosure of many credentials under 4096-bit keys takes tens of
// kilobytes, and a signature is bounded alike (signature.MaxSize). Larger
// posts are refused (413) before irmaserver sees them.
const maxProofsBody = 1 << 20

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

// serveProofs passes the app's proofs to irmaserver (next), bounded by
// check (checkPost), and if irmaserver accepts them, records when their
// credentials expire, for ttl. check returns the proofs of a disclosure as
// it parsed them (nil for any other body), to read the expiry from: the
// body is parsed once here, not again.
func serveProofs(w http.ResponseWriter, r *http.Request, next http.Handler, store marks.Store, clientToken string, ttl time.Duration, check func(body []byte) (gabi.ProofList, error)) error {
	var disclosed gabi.ProofList
	body, ok := checkPost(w, r, next, func(body []byte) (err error) {
		disclosed, err = check(body)
		return err
	})
	if !ok {
		return nil
	}
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if rec.status != http.StatusOK || body == nil {
		return nil
	}
	if err := recordCredentialExpiry(r.Context(), store, clientToken, disclosed, ttl); err != nil {
		// The app has its answer; the login finds no record, and refuses.
		return fmt.Errorf("recording credential expiry: %w", err)
	}
	return nil
}

// checkPost bounds what the Yivi app posts (proofs or commitments) to a
// session that irmaserver (next) holds: it reads the body, up to
// maxProofsBody, and has check refuse numbers that no genuine proof has,
// before irmaserver verifies them. A refusal is written as irmaserver writes
// its errors, for the app to show, and ok is false. A post to a session that
// does not exist is left unread (body nil) for irmaserver to refuse.
func checkPost(w http.ResponseWriter, r *http.Request, next http.Handler, check func(body []byte) error) (body []byte, ok bool) {
	switch lookUpSession(next, r) {
	case sessionAbsent:
		return nil, true
	case sessionUnsure:
		// Not passed on unchecked: irmaserver may find the session next time.
		server.WriteError(w, server.ErrorInternal, "the session could not be looked up")
		return nil, false
	}
	body, err := readProofs(r)
	switch {
	case errors.Is(err, errProofsTooLarge):
		server.WriteResponse(w, nil, &irma.RemoteError{Status: http.StatusRequestEntityTooLarge, ErrorName: string(server.ErrorMalformedInput.Type),
			Description: server.ErrorMalformedInput.Description, Message: err.Error()})
		return nil, false
	case err != nil:
		server.WriteError(w, server.ErrorMalformedInput, err.Error())
		return nil, false
	}
	if err := check(body); err != nil {
		server.WriteError(w, server.ErrorMalformedInput, "proofs refused: "+err.Error())
		return nil, false
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return body, true
}

var errProofsTooLarge = fmt.Errorf("proofs larger than %d bytes", maxProofsBody)

// readProofs reads the body of a post of proofs, up to maxProofsBody.
func readProofs(r *http.Request) ([]byte, error) {
	if r.ContentLength > maxProofsBody {
		return nil, errProofsTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxProofsBody+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the proofs: %w", err)
	case len(body) > maxProofsBody:
		return nil, errProofsTooLarge
	}
	return body, nil
}

// What irmaserver says of a session.
const (
	sessionFound  = iota
	sessionAbsent // refused for good: unknown, a malformed token, another host
	sessionUnsure // an error that may pass (its store, say)
)

// lookUpSession asks irmaserver (next, in process) whether the session of a
// post to one of its endpoints (.../session/{token}/proofs, say) exists: the
// session's status endpoint, at the same host, answers 200 for any session
// that irmaserver holds, and 400 (SESSION_UNKNOWN, INVALID_REQUEST) or 403
// (a host mismatch) where it refuses a post without reading its body.
func lookUpSession(next http.Handler, post *http.Request) int {
	r := post.Clone(post.Context())
	r.Method, r.Body, r.ContentLength, r.Header = http.MethodGet, http.NoBody, 0, http.Header{}
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = post.URL.Path[:strings.LastIndexByte(post.URL.Path, '/')]+"/status", "", ""
	r.RequestURI = ""
	w := &statusOnly{header: http.Header{}}
	next.ServeHTTP(w, r)
	switch w.status {
	case http.StatusOK:
		return sessionFound
	case http.StatusBadRequest, http.StatusForbidden:
		return sessionAbsent
	}
	return sessionUnsure
}

// statusOnly is a response writer that keeps the status code only.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header { return s.header }

func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *statusOnly) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}

// recordCredentialExpiry records, once per session, when the credentials
// of the proofs of a disclosure that irmaserver accepted expire, for ttl.
// A signature's proofs (nil here) no login takes.
func recordCredentialExpiry(ctx context.Context, store marks.Store, clientToken string, proofs gabi.ProofList, ttl time.Duration) error {
	expiry, ok := earliestExpiry(proofs)
	if !ok {
		return nil
	}
	// irmaserver answers the same proofs again from its retry cache: the
	// record must not be made again after a login took it.
	first, err := store.Add(ctx, proofsAcceptedKey(clientToken), nil, ttl)
	if err != nil || !first {
		return err
	}
	return store.Put(ctx, credentialExpiryKey(clientToken), strconv.AppendInt(nil, expiry.Unix(), 10), ttl)
}

// defaultProofsWait bounds how long a login waits for the record of
// proofs: the login page learns from irmaserver that the session is done a
// moment before the gateway has recorded the expiry of its proofs.
const defaultProofsWait = 5 * time.Second

// takeCredentialExpiry returns, and forgets, the credential expiry recorded
// for the session, or false if there is none: taken before, or never
// recorded (proofs that irmaserver did not accept, or of no disclosure).
// While no proofs of the session have been accepted yet, it waits for
// them, up to wait.
func takeCredentialExpiry(ctx context.Context, store marks.Store, clientToken string, wait time.Duration) (time.Time, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		v, ok, err := store.Take(ctx, credentialExpiryKey(clientToken))
		if err != nil {
			return time.Time{}, false, err
		}
		if ok {
			sec, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return time.Time{}, false, fmt.Errorf("credential expiry of a session: %w", err)
			}
			return time.Unix(sec, 0), true, nil
		}
		accepted, err := store.Has(ctx, proofsAcceptedKey(clientToken))
		if err != nil {
			return time.Time{}, false, err
		}
		if accepted && delay > 5*time.Millisecond {
			// Accepted, and taken by an earlier login. (One more look
			// settles a record being made this very moment.)
			return time.Time{}, false, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, false, nil
		case <-time.After(delay):
		}
	}
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
