// Package signature verifies IRMA attribute-based signatures: a message signed with attributes from
// the signer's Yivi app, timestamped by the timestamp service the scheme names. It serves the result
// as JSON and as a small page where a person pastes a signature.
//
// It knows nothing of Caddy: a handler hands it the scheme configuration.
package signature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/privacybydesign/gabi"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/proofbounds"

	// go-atum verifies timestamps through a cache that by default is a database in the home
	// directory; this package replaces it by one in memory.
	_ "github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
)

// MaxSize is the largest signature (JSON) that is parsed. Real ones are a few kilobytes per
// credential.
const MaxSize = 1 << 20

// MaxClockSkew is how far in the future a timestamp may lie before it is refused.
const MaxClockSkew = 5 * time.Minute

// Statuses of a Result: irmago's ProofStatus values, and our own refusals.
const (
	StatusValid             = string(irma.ProofStatusValid)
	StatusInvalid           = string(irma.ProofStatusInvalid)
	StatusInvalidTimestamp  = string(irma.ProofStatusInvalidTimestamp)
	StatusExpired           = string(irma.ProofStatusExpired)
	StatusMissingAttributes = string(irma.ProofStatusMissingAttributes)
	StatusUnmatchedRequest  = string(irma.ProofStatusUnmatchedRequest)
	// StatusMissingTimestamp: the signature carries no timestamp. irmago accepts such signatures and
	// takes "now" as their time, so anyone who once held a credential could sign with it after it
	// expired or was revoked, and a signature would say nothing of when it was made. We refuse them.
	StatusMissingTimestamp = "MISSING_TIMESTAMP"
	// StatusUnmatchedMessage: the signature is valid, but over another message than the expected one.
	StatusUnmatchedMessage = "UNMATCHED_MESSAGE"
)

// ErrTooLarge is returned for a signature larger than MaxSize.
var ErrTooLarge = fmt.Errorf("signature larger than %d bytes", MaxSize)

// Result is what the verification endpoint answers (as JSON) for a signature that parsed.
type Result struct {
	// Valid is true only if Status is VALID.
	Valid bool `json:"valid"`
	// Status is irmago's ProofStatus (VALID, INVALID, EXPIRED, INVALID_TIMESTAMP, ...), or
	// MISSING_TIMESTAMP or UNMATCHED_MESSAGE.
	Status string `json:"status"`
	// Message is the message the signature claims to sign (verified only if Valid).
	Message string `json:"message"`
	// Attributes are the signed attributes that have a value; empty unless the proofs verified.
	Attributes []Attribute `json:"attributes"`
	// Timestamp is when the timestamp service saw the signature; set once its timestamp verified.
	Timestamp *time.Time `json:"timestamp,omitempty"`
	// Error says, for people, why the signature is not valid.
	Error string `json:"error,omitempty"`
}

// Attribute is one signed attribute.
type Attribute struct {
	// ID is the attribute type, "scheme.issuer.credential.attribute".
	ID string `json:"id"`
	// Value is the raw value.
	Value string `json:"value"`
	// IssuanceTime is when the credential was issued (irmago rounds it to the epoch, a week).
	IssuanceTime time.Time `json:"issuance_time"`
}

// Verify verifies the signature sigJSON (an irma.SignedMessage) with the schemes of conf. If
// expectedMessage is not nil, the signed message must equal it exactly. now is compared with the
// signature's timestamp, which must be present and not in the future.
//
// Verify returns an error only for input that is not a signature (malformed, empty, larger than
// MaxSize: ErrTooLarge), or is no signature that a wallet makes: numbers or counts beyond the
// bounds of the issuer keys, which would cost exponentiations of any size (an error wrapping
// proofbounds.ErrOutOfBounds, checked before any of them). A signature that does not verify
// gives a Result with Valid false. Verifying a timestamp may ask the timestamp service of the
// scheme whether it trusts its key.
func Verify(conf *irma.Configuration, sigJSON []byte, expectedMessage *string, now time.Time) (*Result, error) {
	if conf == nil {
		return nil, errors.New("no scheme configuration")
	}
	sm, err := parse(sigJSON)
	if err != nil {
		return nil, err
	}
	// gabi checks the sizes of the responses after its exponentiations; these bounds come first.
	known := proofbounds.CheckDisclosure(conf, sm.Signature, sm.Indices)
	if errors.Is(known, proofbounds.ErrOutOfBounds) {
		return nil, fmt.Errorf("signature: %w", known)
	}
	res := &Result{Message: sm.Message, Attributes: []Attribute{}}
	if sm.Timestamp == nil {
		return res.refuse(StatusMissingTimestamp, "the signature has no timestamp, so when it was made cannot be known"), nil
	}
	if known != nil {
		// Of a credential type or issuer key that the schemes do not hold.
		return res.refuse(StatusInvalid, "the signature does not verify: "+known.Error()), nil
	}

	attrs, status, err := verify(conf, sm)
	switch {
	case err != nil:
		return res.refuse(StatusInvalid, "the signature does not verify: "+err.Error()), nil
	case status == irma.ProofStatusInvalid:
		return res.refuse(StatusInvalid, "the signature does not verify"), nil
	case status == irma.ProofStatusInvalidTimestamp:
		return res.refuse(StatusInvalidTimestamp, "the timestamp does not verify"), nil
	}

	ts := time.Unix(sm.Timestamp.Time, 0).UTC()
	res.Timestamp = &ts
	for _, set := range attrs {
		for _, a := range set {
			if a == nil || a.RawValue == nil {
				continue // not disclosed with a value (null)
			}
			res.Attributes = append(res.Attributes, Attribute{
				ID:           a.Identifier.String(),
				Value:        *a.RawValue,
				IssuanceTime: time.Time(a.IssuanceTime).UTC(),
			})
		}
	}

	switch {
	case status == irma.ProofStatusExpired:
		return res.refuse(StatusExpired, "a credential had expired when the signature was made"), nil
	case status != irma.ProofStatusValid:
		return res.refuse(string(status), "the signature is not valid"), nil
	case ts.After(now.Add(MaxClockSkew)):
		return res.refuse(StatusInvalidTimestamp, "the timestamp lies in the future"), nil
	case expectedMessage != nil && sm.Message != *expectedMessage:
		return res.refuse(StatusUnmatchedMessage, "the signed message is not the expected one"), nil
	}
	res.Valid, res.Status = true, StatusValid
	return res, nil
}

func (r *Result) refuse(status, why string) *Result {
	r.Valid, r.Status, r.Error = false, status, why
	return r
}

// verifySignedMessage is irmago's verification; tests count the calls.
var verifySignedMessage = (*irma.SignedMessage).Verify

// verify runs irmago's verification of a signature whose numbers and counts are within the
// bounds of its keys (proofbounds, which also checks the indices that irmago and gabi trust:
// an attribute index beyond the issuer key's panics in v1.3.0). A panic that slips through
// makes the signature invalid instead of ending the process.
func verify(conf *irma.Configuration, sm *irma.SignedMessage) (attrs [][]*irma.DisclosedAttribute, status irma.ProofStatus, err error) {
	defer func() {
		if r := recover(); r != nil {
			attrs, status, err = nil, irma.ProofStatusInvalid, errors.New("malformed proofs")
		}
	}()
	return verifySignedMessage(sm, conf, nil)
}

// parse decodes a signature strictly: one JSON object, no unknown fields at its top level, no
// trailing data, and proofs of the shape irmago's verification relies on.
func parse(data []byte) (*irma.SignedMessage, error) {
	if len(data) > MaxSize {
		return nil, ErrTooLarge
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty signature")
	}
	if data[0] != '{' {
		return nil, errors.New("signature: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sm irma.SignedMessage
	if err := dec.Decode(&sm); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("signature: data after the JSON object")
	}
	if err := checkShape(&sm); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return &sm, nil
}

func checkShape(sm *irma.SignedMessage) error {
	if sm.LDContext != "" && sm.LDContext != irma.LDContextSignedMessage {
		return fmt.Errorf("unknown @context %q", sm.LDContext)
	}
	if len(sm.Signature) == 0 {
		return errors.New("no proofs")
	}
	if len(sm.Signature) > proofbounds.MaxProofs {
		return fmt.Errorf("more than %d proofs", proofbounds.MaxProofs)
	}
	if sm.Nonce == nil || sm.Context == nil {
		return errors.New("nonce or context missing")
	}
	for i, p := range sm.Signature {
		d, ok := p.(*gabi.ProofD)
		if !ok {
			return fmt.Errorf("proof %d: not a disclosure proof", i)
		}
		if d.C == nil || d.A == nil || d.EResponse == nil || d.VResponse == nil {
			return fmt.Errorf("proof %d: incomplete", i)
		}
		if d.ADisclosed[1] == nil {
			return fmt.Errorf("proof %d: metadata attribute not disclosed", i)
		}
		for j, v := range d.ADisclosed {
			if j < 1 || v == nil || v.Sign() < 0 {
				return fmt.Errorf("proof %d: bad disclosed attribute %d", i, j)
			}
		}
		for j, v := range d.AResponses {
			if j < 0 || v == nil {
				return fmt.Errorf("proof %d: bad attribute response %d", i, j)
			}
		}
	}
	for i, set := range sm.Indices {
		for _, idx := range set {
			if idx == nil || idx.CredentialIndex < 0 || idx.CredentialIndex >= len(sm.Signature) {
				return fmt.Errorf("index %d: no such credential", i)
			}
			d := sm.Signature[idx.CredentialIndex].(*gabi.ProofD)
			if _, ok := d.ADisclosed[idx.AttributeIndex]; !ok || idx.AttributeIndex < 1 {
				return fmt.Errorf("index %d: attribute not disclosed", i)
			}
		}
	}
	return nil
}
