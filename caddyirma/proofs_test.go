package caddyirma

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/privacybydesign/gabi"
	"github.com/privacybydesign/gabi/big"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
)

// disclosureBody is a body of proofs whose credential expires at the end
// of IRMA's epoch after the one of now. Its proofs prove nothing: the
// stand-in for irmaserver decides here whether they are accepted.
func disclosureBody(t *testing.T) ([]byte, time.Time) {
	t.Helper()
	meta := irma.NewMetadataAttribute(0x03)
	one := big.NewInt(1)
	b, err := json.Marshal(irma.Disclosure{Proofs: gabi.ProofList{&gabi.ProofD{C: one, A: one, EResponse: one, VResponse: one,
		AResponses: map[int]*big.Int{0: one}, ADisclosed: map[int]*big.Int{1: meta.Int}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b, meta.Expiry()
}

// parseDisclosure is a check that bounds nothing, and returns the proofs of
// a body that parses as a disclosure (as proofbounds.CheckPostedDisclosure
// does for those within bounds).
func parseDisclosure(body []byte) (gabi.ProofList, error) {
	var d irma.Disclosure
	if json.Unmarshal(body, &d) != nil {
		return nil, nil
	}
	return d.Proofs, nil
}

// irmaserverStub answers proofs with status, reading the body if it says
// so.
func irmaserverStub(status int, read bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if read {
			_, _ = io.ReadAll(r.Body)
		}
		w.WriteHeader(status)
	})
}

func TestServeProofs(t *testing.T) {
	ctx := context.Background()
	body, expiry := disclosureBody(t)
	post := func(t *testing.T, store marks.Store, next http.Handler, body []byte) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/irma/session/tok/proofs", bytes.NewReader(body))
		if err := serveProofs(httptest.NewRecorder(), r, next, store, "tok", time.Hour, parseDisclosure); err != nil {
			t.Fatal(err)
		}
	}
	recorded := func(t *testing.T, store marks.Store) (time.Time, bool) {
		t.Helper()
		got, ok, err := takeCredentialExpiry(ctx, store, "tok", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return got, ok
	}

	t.Run("accepted", func(t *testing.T) {
		store := marks.New(marks.Config{})
		post(t, store, irmaserverStub(http.StatusOK, true), body)
		if got, ok := recorded(t, store); !ok || !got.Equal(expiry) {
			t.Errorf("recorded %v %v, want %v", got, ok, expiry)
		}
	})
	t.Run("refused", func(t *testing.T) {
		store := marks.New(marks.Config{})
		post(t, store, irmaserverStub(http.StatusBadRequest, true), body)
		if _, ok := recorded(t, store); ok {
			t.Error("proofs that irmaserver refused were recorded")
		}
	})
	t.Run("refused after accepted", func(t *testing.T) {
		store := marks.New(marks.Config{})
		post(t, store, irmaserverStub(http.StatusOK, true), body)
		post(t, store, irmaserverStub(http.StatusBadRequest, true), body)
		if _, ok := recorded(t, store); !ok {
			t.Error("a refused post removed the record")
		}
	})
	t.Run("accepted again after the login", func(t *testing.T) {
		store := marks.New(marks.Config{})
		post(t, store, irmaserverStub(http.StatusOK, true), body)
		if _, ok := recorded(t, store); !ok {
			t.Fatal("not recorded")
		}
		post(t, store, irmaserverStub(http.StatusOK, true), body) // irmaserver's retry cache
		if _, ok := recorded(t, store); ok {
			t.Error("the record was made again")
		}
	})
	t.Run("not read", func(t *testing.T) {
		// irmaserver reads nothing of a post to an unknown session; nor
		// does the gateway.
		store := marks.New(marks.Config{})
		r := &countingReader{r: bytes.NewReader(body)}
		req := httptest.NewRequest(http.MethodPost, "/irma/session/tok/proofs", r)
		if err := serveProofs(httptest.NewRecorder(), req, irmaserverStub(http.StatusBadRequest, false), store, "tok", time.Hour, parseDisclosure); err != nil {
			t.Fatal(err)
		}
		if r.n != 0 {
			t.Errorf("%d bytes read", r.n)
		}
	})
	t.Run("too large", func(t *testing.T) {
		store := marks.New(marks.Config{})
		large := append(append([]byte(nil), body...), bytes.Repeat([]byte(" "), maxProofsBody)...)
		post(t, store, irmaserverStub(http.StatusOK, true), large)
		if _, ok := recorded(t, store); ok {
			t.Error("recorded from a body larger than the gateway reads")
		}
	})
	t.Run("not a disclosure", func(t *testing.T) {
		store := marks.New(marks.Config{})
		post(t, store, irmaserverStub(http.StatusOK, true), []byte(strings.Repeat("[", 100)))
		if _, ok := recorded(t, store); ok {
			t.Error("recorded from garbage")
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
