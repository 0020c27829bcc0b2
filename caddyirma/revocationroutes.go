package caddyirma

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// The revocation routes under the IRMA endpoints are the two reads of
// irmaserver's revocation/ routes that wallets and other verifiers make,
// for the credential types the gateway is the revocation authority of:
//
//	GET revocation/{credtype}/update/{count}[/{keycounter}]   the signed accumulator and the last count events
//	GET revocation/{credtype}/events/{keycounter}/{from}/{to} the events from to to, for a wallet far behind
//
// They answer as irmaserver's (CBOR, the same Cache-Control), from the same
// storage, with bounds that irmaserver lacks: count from 1 to
// irma.RevocationParameters.UpdateMaxCount (irmaserver reads 0 as "every
// event"), to - from at most that too, and at most maxRevocationReads of
// them at a time (each is a database query, and irmago's database pool has
// no bound). A database failure is logged, not shown. Not exposed:
// POST revocation/{credtype}/issuancerecord/{counter}, where issuers that
// are not the authority send their issuance records (state-changing, and
// the gateway issues only what it is the authority of), and
// revocation/{credtype}/updateevents (server-sent events, which irmaserver
// serves only with SSE on; the gateway's irmaserver has it off).
var revocationRoute = regexp.MustCompile(`^/revocation/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)/(?:update/([0-9]{1,9})(?:/([0-9]{1,9}))?|events/([0-9]{1,9})/([0-9]{1,18})/([0-9]{1,18}))$`)

// maxRevocationReads bounds the revocation reads served at a time; more
// wait for none, they answer 503.
const maxRevocationReads = 8

// revocationReads holds a place per revocation read under way.
var revocationReads = make(chan struct{}, maxRevocationReads)

// serveRevocation answers a revocation route: rest is the path below the
// prefix, starting with /revocation/.
func (e *Endpoints) serveRevocation(w http.ResponseWriter, r *http.Request, rest string) error {
	m := revocationRoute.FindStringSubmatch(rest)
	if m == nil || e.app.Revocation == nil || e.app.Revocation.Credentials[m[1]] == nil {
		http.NotFound(w, r)
		return nil
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	rs := e.app.srv.Load()
	if rs == nil {
		return e.notRunning(w, r, errors.New("irma: the IRMA server is not running"))
	}
	select {
	case revocationReads <- struct{}{}:
		defer func() { <-revocationReads }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy: try again shortly", http.StatusServiceUnavailable)
		return nil
	}
	id := irma.NewCredentialTypeIdentifier(m[1])
	storage := rs.conf.Load().Revocation
	var err error
	if m[2] != "" {
		err = serveRevocationUpdate(w, storage, id, m[2], m[3])
	} else {
		err = serveRevocationEvents(w, storage, id, m[4], m[5], m[6])
	}
	var bad badRevocationRead
	switch {
	case errors.As(err, &bad):
		server.WriteBinaryResponse(w, nil, &irma.RemoteError{Status: http.StatusBadRequest, ErrorName: string(server.ErrorInvalidRequest.Type), Message: bad.Error()})
	case errors.Is(err, irma.ErrRevocationStateNotFound):
		server.WriteBinaryResponse(w, nil, &irma.RemoteError{Status: http.StatusNotFound, ErrorName: string(server.ErrorRevocation.Type), Message: "no revocation state"})
	case err != nil:
		e.app.logger.Error("revocation read failed", zap.String("credential_type", id.String()), zap.Error(err))
		server.WriteBinaryResponse(w, nil, &irma.RemoteError{Status: http.StatusInternalServerError, ErrorName: string(server.ErrorRevocation.Type), Message: "revocation state unavailable"})
	}
	return nil
}

// badRevocationRead is a revocation read out of bounds.
type badRevocationRead string

func (b badRevocationRead) Error() string { return string(b) }

// serveRevocationUpdate answers update/{count}[/{counter}] as irmaserver's
// handleRevocationGetUpdateLatest.
func serveRevocationUpdate(w http.ResponseWriter, storage *irma.RevocationStorage, id irma.CredentialTypeIdentifier, countArg, counterArg string) error {
	count, _ := strconv.ParseUint(countArg, 10, 64)
	if count < 1 || count > irma.RevocationParameters.UpdateMaxCount {
		return badRevocationRead(fmt.Sprintf("count %d: want 1 to %d", count, irma.RevocationParameters.UpdateMaxCount))
	}
	var counter *uint
	if counterArg != "" {
		c, _ := strconv.ParseUint(counterArg, 10, 32)
		k := uint(c)
		counter = &k
	}
	updates, err := storage.LatestUpdates(id, count, counter)
	if err != nil {
		return err
	}
	var oldest int64
	for _, u := range updates {
		if t := u.SignedAccumulator.Accumulator.Time; oldest == 0 || t < oldest {
			oldest = t
		}
	}
	maxAge := max(oldest+int64(irma.RevocationParameters.AccumulatorUpdateInterval)-time.Now().Unix(), 0)
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", maxAge))
	if counter == nil {
		server.WriteBinaryResponse(w, updates, nil)
		return nil
	}
	u, ok := updates[*counter]
	if !ok {
		return irma.ErrRevocationStateNotFound
	}
	server.WriteBinaryResponse(w, u, nil)
	return nil
}

// serveRevocationEvents answers events/{counter}/{from}/{to} as
// irmaserver's handleRevocationGetEvents.
func serveRevocationEvents(w http.ResponseWriter, storage *irma.RevocationStorage, id irma.CredentialTypeIdentifier, counterArg, fromArg, toArg string) error {
	counter, _ := strconv.ParseUint(counterArg, 10, 32)
	from, _ := strconv.ParseUint(fromArg, 10, 64)
	to, _ := strconv.ParseUint(toArg, 10, 64)
	if from >= to || to-from > irma.RevocationParameters.UpdateMaxCount {
		return badRevocationRead(fmt.Sprintf("events %d to %d: want at most %d, from before to", from, to, irma.RevocationParameters.UpdateMaxCount))
	}
	events, err := storage.Events(id, uint(counter), from, to)
	if err != nil {
		if err.Error() == "illegal update interval" {
			return badRevocationRead(err.Error())
		}
		return err
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", irma.RevocationParameters.EventsCacheMaxAge))
	server.WriteBinaryResponse(w, events, nil)
	return nil
}
