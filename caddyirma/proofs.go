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

	"github.com/privacybydesign/gabi"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
)

// A login must not outlive the credentials it was made with, but irmago's
// session result does not say when they expire: only the proofs do, in each
// credential's metadata attribute. So the gateway keeps a copy of the proofs
// that the Yivi app posts, as irmaserver reads them, and once irmaserver has
// accepted them, records the earliest expiry (by client token) as a mark,
// for the login to take. Whoever holds a client token (it is in the QR
// code) can post there too: the gateway does no work of its own before
// irmaserver has looked the session up, records only what irmaserver
// accepted, once per session, and never removes a record for a post that
// irmaserver refused.

// The marks of sessions, by client token: the credential expiry of a
// disclosure, that proofs of a session were accepted (once), and a
// signature whose result has not been fetched.
func credentialExpiryKey(clientToken string) string { return "credential-expiry:" + clientToken }
func proofsAcceptedKey(clientToken string) string   { return "proofs-accepted:" + clientToken }
func signatureKey(clientToken string) string        { return "signature:" + clientToken }

// maxProofsCopy bounds the copy of a body of proofs: a disclosure of many
// credentials under 4096-bit keys takes tens of kilobytes. Accepted proofs
// larger than this give the login no expiry, so it is refused.
const maxProofsCopy = 1 << 20

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

// serveProofs passes the app's proofs to irmaserver with a copy kept as it
// reads them (it reads nothing of a post to a session that does not
// exist), and if it accepts them, records when their credentials expire,
// for ttl.
func serveProofs(w http.ResponseWriter, r *http.Request, next http.Handler, store marks.Store, clientToken string, ttl time.Duration) error {
	body := &cappedBuffer{max: maxProofsCopy}
	r.Body = teeBody{Reader: io.TeeReader(r.Body, body), Closer: r.Body}
	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if rec.status != http.StatusOK || body.overflow {
		return nil
	}
	if err := recordCredentialExpiry(r.Context(), store, clientToken, body.Bytes(), ttl); err != nil {
		// The app has its answer; the login finds no record, and refuses.
		return fmt.Errorf("recording credential expiry: %w", err)
	}
	return nil
}

// recordCredentialExpiry records, once per session, when the credentials
// of proofs that irmaserver accepted expire, for ttl.
func recordCredentialExpiry(ctx context.Context, store marks.Store, clientToken string, body []byte, ttl time.Duration) error {
	var disclosure irma.Disclosure
	if irma.UnmarshalValidate(body, &disclosure) != nil {
		return nil // a signature's proofs, say: no login takes them
	}
	expiry, ok := earliestExpiry(disclosure.Proofs)
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

// teeBody is a request body read through a tee.
type teeBody struct {
	io.Reader
	io.Closer
}

// cappedBuffer keeps what is written to it, up to max bytes, and notes if
// there was more.
type cappedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.overflow || b.Len()+len(p) > b.max {
		b.overflow = true
		b.Reset()
		return len(p), nil
	}
	return b.Buffer.Write(p)
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
