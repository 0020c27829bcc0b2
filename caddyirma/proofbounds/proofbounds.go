// Package proofbounds refuses IRMA proofs whose numbers are larger than any genuine proof's,
// before anything costly is done with them.
//
// gabi verifies an Idemix proof by modular exponentiations whose exponents are the proof's
// responses, and its response size checks run after them: ProofD.VerifyWithChallenge calls
// correctResponseSizes only once ChallengeContribution (reconstructZ) has computed A^e_response,
// S^v_response, R_i^a_response and known^-c; v_response it does not check at all. The cost of an
// exponentiation grows with its exponent's bit length, so a response of a few megabits costs
// seconds of CPU: a 1.5 KB signature verifies in milliseconds, the same with v_response inflated
// to 3.3 Mbit in about two seconds. This package applies the same bounds first, from the issuer
// public key that each proof's metadata attribute names, and refuses absurd counts.
//
// The bounds, for a key with system parameters P (gabikeys.SystemParameters) and modulus N:
//
//   - c, the challenge: at most 256 bits, a SHA-256 hash (gabi internal/common.HashCommit);
//     gabi compares it with the hash it recomputes, so no longer c ever verifies.
//   - A: 0 < A < N (gabi's CLSignature.Randomize reduces it mod N).
//   - e_response: at most P.LeCommit+1 bits (gabi ProofD.correctResponseSizes).
//   - a_responses: at most P.LmCommit+1 bits each (gabi ProofD.correctResponseSizes).
//   - v_response: at most P.LvCommit+1 bits. gabi has no check; derived from its
//     DisclosureProofBuilder.CreateProof: v_response = v_commit + c*v', v_commit < 2^LvCommit
//     (CreateDisclosureProofBuilder), c < 2^Lh, and |v'| = |v - e*r| < 2^(Lv+1) (the issuer's v is
//     below 2^Lv + 2^LvPrime, clsignature.go signMessageBlockAndCommitment; e < 2^Le and
//     r < 2^LRA, CLSignature.Randomize, with Le+LRA = Lv+1), so |v_response| < 2^LvCommit +
//     2^(Lh+Lv+1) <= 2^(LvCommit+1), since LvCommit = Lv+Lstatzk+Lh.
//   - the metadata attribute (a_disclosed[1]): at most 24 bytes, its fixed length in irmago.
//   - a nonrevocation proof (gabi revocation.Proof), only under a key that supports revocation:
//     C_r and C_u in (0, N); responses beta and delta at most Ln+AttributeSize+ChallengeLength+
//     ZkStat bits, epsilon and zeta at most Ln+ChallengeLength+ZkStat, alpha at most
//     AttributeSize+ChallengeLength+ZkStat+1 (from revocation's commitmentsFromSecrets and
//     VerifyWithChallenge).
//
// Commitments (gabi.ProofU, posted at issuance) are bounded likewise (ForIssuance, CheckCommitments).
// The other proofs of gabi are not reachable by a client of the gateway: ProofS is the issuer's
// (irmaserver makes it, the wallet verifies it), and ProofP the keyshare server's, which reaches
// irmaserver only inside a JWT signed by that server.
//
// And the counts: up to MaxProofs proofs; attribute indices as the key and credential type allow
// (a_responses below len(pk.R), with the secret key's index 0; a_disclosed from 1, below both
// len(pk.R) and the credential type's attributes plus 2); no index both disclosed and not; no
// range proofs (irmago asks for none). Disclosed attribute values are not bounded here: gabi
// hashes values longer than P.Lm bits before it exponentiates, so they cost what hashing their
// bytes costs, and the body they come in is bounded.
//
// The package knows nothing of Caddy or HTTP.
package proofbounds

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/privacybydesign/gabi"
	"github.com/privacybydesign/gabi/big"
	"github.com/privacybydesign/gabi/gabikeys"
	"github.com/privacybydesign/gabi/revocation"
	irma "github.com/privacybydesign/irmago/irma"
)

// MaxProofs bounds the credentials in one disclosure or signature: each costs modular
// exponentiations. Logins and signatures use a handful.
const MaxProofs = 64

// metadataBits is the length of irmago's metadata attribute: version 1, signing date 3,
// validity 2, key counter 2 and credential type hash 16 bytes.
const metadataBits = 8 * (1 + 3 + 2 + 2 + 16)

// challengeBits is the length of gabi's challenge, a SHA-256 hash.
const challengeBits = 8 * sha256.Size

// ErrOutOfBounds is wrapped by every refusal of a number, or a count, that no genuine proof has.
var ErrOutOfBounds = errors.New("out of bounds")

// ErrUnknownKey is wrapped by refusals of a proof whose credential type or issuer key the
// configuration does not know: its bounds cannot be known, and no verification can succeed.
var ErrUnknownKey = errors.New("unknown credential type or issuer key")

// Bounds are the largest bit lengths that the numbers of a genuine disclosure proof (gabi.ProofD)
// have under one issuer public key, and the attribute indices it may use.
type Bounds struct {
	// N is the key's modulus: A, and the commitments of a nonrevocation proof, lie in (0, N).
	N *big.Int
	// Challenge, EResponse, VResponse and AResponse bound c, e_response, v_response and each of
	// a_responses.
	Challenge, EResponse, VResponse, AResponse int
	// Metadata bounds the metadata attribute, a_disclosed[1].
	Metadata int
	// Responses is the number of the key's attribute bases (len(pk.R)): a_responses indices
	// lie below it.
	Responses int
	// Disclosed bounds the indices of a_disclosed: the credential type's attributes, the secret
	// key and the metadata attribute, and no more than the key has bases.
	Disclosed int
	// Revocation is true if the credential type and the key support nonrevocation proofs.
	Revocation bool
	// NonRevBetaDelta, NonRevEpsilonZeta and NonRevAlpha bound the responses of a nonrevocation
	// proof.
	NonRevBetaDelta, NonRevEpsilonZeta, NonRevAlpha int
}

// ForKey returns the bounds of proofs under pk, for a credential type of attributes attributes
// (secret key and metadata not counted) that supports revocation or not.
func ForKey(pk *gabikeys.PublicKey, attributes int, revocable bool) (Bounds, error) {
	if pk == nil || pk.N == nil || pk.N.Sign() <= 0 || pk.Params == nil || len(pk.R) < 2 {
		return Bounds{}, fmt.Errorf("issuer key: no system parameters for it: %w", ErrUnknownKey)
	}
	p := pk.Params
	ln := pk.N.BitLen()
	rp := revocation.Parameters
	return Bounds{
		N:                 pk.N,
		Challenge:         challengeBits,
		EResponse:         int(p.LeCommit) + 1,
		VResponse:         int(p.LvCommit) + 1,
		AResponse:         int(p.LmCommit) + 1,
		Metadata:          metadataBits,
		Responses:         len(pk.R),
		Disclosed:         min(len(pk.R), attributes+2),
		Revocation:        revocable && pk.RevocationSupported(),
		NonRevBetaDelta:   ln + int(rp.AttributeSize+rp.ChallengeLength+rp.ZkStat),
		NonRevEpsilonZeta: ln + int(rp.ChallengeLength+rp.ZkStat),
		NonRevAlpha:       int(rp.AttributeSize+rp.ChallengeLength+rp.ZkStat) + 1,
	}, nil
}

// CheckDisclosure checks the disclosure proofs of an irma.Disclosure or irma.SignedMessage, and
// the indices that point into them, against the bounds of the keys that conf holds. No proofs
// at all pass (a request may ask for nothing that must be disclosed). It returns
// nil, an error wrapping ErrOutOfBounds, or one wrapping ErrUnknownKey. It does no modular
// exponentiation: its cost is linear in the size of the proofs.
func CheckDisclosure(conf *irma.Configuration, proofs gabi.ProofList, indices irma.DisclosedAttributeIndices) error {
	if conf == nil {
		return errors.New("no scheme configuration")
	}
	if len(proofs) > MaxProofs {
		return fmt.Errorf("%d proofs, at most %d: %w", len(proofs), MaxProofs, ErrOutOfBounds)
	}
	for i, p := range proofs {
		d, ok := p.(*gabi.ProofD)
		if !ok || d == nil {
			return fmt.Errorf("proof %d: not a disclosure proof: %w", i, ErrOutOfBounds)
		}
		if err := checkProofD(conf, d); err != nil {
			return fmt.Errorf("proof %d: %w", i, err)
		}
	}
	return checkIndices(proofs, indices)
}

// checkIndices checks that each index points at a disclosed attribute of a disclosure proof:
// irmago trusts them (an index beyond the proofs panics).
func checkIndices(proofs gabi.ProofList, indices irma.DisclosedAttributeIndices) error {
	for i, set := range indices {
		for _, idx := range set {
			if idx == nil || idx.CredentialIndex < 0 || idx.CredentialIndex >= len(proofs) {
				return fmt.Errorf("indices %d: no such proof: %w", i, ErrOutOfBounds)
			}
			d, ok := proofs[idx.CredentialIndex].(*gabi.ProofD)
			if !ok {
				return fmt.Errorf("indices %d: proof %d is no disclosure: %w", i, idx.CredentialIndex, ErrOutOfBounds)
			}
			if _, ok := d.ADisclosed[idx.AttributeIndex]; !ok || idx.AttributeIndex < 1 {
				return fmt.Errorf("indices %d: attribute %d of proof %d not disclosed: %w", i, idx.AttributeIndex, idx.CredentialIndex, ErrOutOfBounds)
			}
		}
	}
	return nil
}

// checkProofD checks one disclosure proof: first what needs no key (its metadata attribute,
// which names the key), then the numbers against the key's bounds.
func checkProofD(conf *irma.Configuration, d *gabi.ProofD) error {
	if d.C == nil || d.A == nil || d.EResponse == nil || d.VResponse == nil {
		return fmt.Errorf("c, A, e_response or v_response missing: %w", ErrOutOfBounds)
	}
	meta := d.ADisclosed[1]
	if meta == nil {
		return fmt.Errorf("metadata attribute not disclosed: %w", ErrOutOfBounds)
	}
	if meta.BitLen() > metadataBits {
		return fmt.Errorf("metadata attribute of %d bits, at most %d: %w", meta.BitLen(), metadataBits, ErrOutOfBounds)
	}
	ma := irma.MetadataFromInt(meta, conf)
	ct := ma.CredentialType()
	if ct == nil {
		return fmt.Errorf("credential type: %w", ErrUnknownKey)
	}
	pk, err := ma.PublicKey()
	if err != nil || pk == nil {
		return fmt.Errorf("credential type %s: key %d: %w", ct.Identifier(), ma.KeyCounter(), ErrUnknownKey)
	}
	b, err := ForKey(pk, len(ct.AttributeTypes), ct.RevocationSupported())
	if err != nil {
		return fmt.Errorf("credential type %s: key %d: %w", ct.Identifier(), ma.KeyCounter(), err)
	}
	return b.checkProofD(d)
}

// checkProofD checks d against b.
func (b Bounds) checkProofD(d *gabi.ProofD) error {
	if d.C == nil || d.A == nil || d.EResponse == nil || d.VResponse == nil {
		return fmt.Errorf("c, A, e_response or v_response missing: %w", ErrOutOfBounds)
	}
	if err := bits("c", d.C, b.Challenge); err != nil {
		return err
	}
	if err := inGroup("A", d.A, b.N); err != nil {
		return err
	}
	if err := bits("e_response", d.EResponse, b.EResponse); err != nil {
		return err
	}
	if err := bits("v_response", d.VResponse, b.VResponse); err != nil {
		return err
	}
	if _, ok := d.AResponses[0]; !ok {
		return fmt.Errorf("no response for the secret key: %w", ErrOutOfBounds)
	}
	for j, v := range d.AResponses {
		if j < 0 || j >= b.Responses {
			return fmt.Errorf("a_responses: index %d, the key has %d: %w", j, b.Responses, ErrOutOfBounds)
		}
		if err := bits(fmt.Sprintf("a_responses %d", j), v, b.AResponse); err != nil {
			return err
		}
		if _, ok := d.ADisclosed[j]; ok {
			return fmt.Errorf("attribute %d both disclosed and not: %w", j, ErrOutOfBounds)
		}
	}
	for j, v := range d.ADisclosed {
		if j < 1 || j >= b.Disclosed {
			return fmt.Errorf("a_disclosed: index %d, the credential type has %d: %w", j, b.Disclosed, ErrOutOfBounds)
		}
		if v == nil || v.Sign() < 0 {
			return fmt.Errorf("a_disclosed %d: not a number: %w", j, ErrOutOfBounds)
		}
	}
	if len(d.RangeProofs) > 0 {
		return fmt.Errorf("range proofs, which irmago never asks for: %w", ErrOutOfBounds)
	}
	if d.NonRevocationProof != nil {
		return b.checkNonRevocation(d.NonRevocationProof)
	}
	return nil
}

// checkNonRevocation checks a nonrevocation proof (gabi's revocation.Proof); its exponentiations
// run in the key's group.
func (b Bounds) checkNonRevocation(p *revocation.Proof) error {
	if !b.Revocation {
		return fmt.Errorf("nonrevocation proof of a credential without revocation: %w", ErrOutOfBounds)
	}
	if p.SignedAccumulator == nil {
		return fmt.Errorf("nonrevocation proof without accumulator: %w", ErrOutOfBounds)
	}
	if err := inGroup("nonrevocation C_r", p.Cr, b.N); err != nil {
		return err
	}
	if err := inGroup("nonrevocation C_u", p.Cu, b.N); err != nil {
		return err
	}
	for _, name := range []string{"beta", "delta", "epsilon", "zeta"} {
		if p.Responses[name] == nil {
			return fmt.Errorf("nonrevocation response %s missing: %w", name, ErrOutOfBounds)
		}
	}
	for name, v := range p.Responses {
		var max int
		switch name {
		case "beta", "delta":
			max = b.NonRevBetaDelta
		case "epsilon", "zeta":
			max = b.NonRevEpsilonZeta
		case "alpha":
			max = b.NonRevAlpha
		default:
			return fmt.Errorf("nonrevocation response %q: %w", name, ErrOutOfBounds)
		}
		if err := bits("nonrevocation "+name, v, max); err != nil {
			return err
		}
	}
	return nil
}

// bits refuses a number that is missing, negative or longer than max bits.
func bits(name string, v *big.Int, max int) error {
	switch {
	case v == nil:
		return fmt.Errorf("%s missing: %w", name, ErrOutOfBounds)
	case v.Sign() < 0:
		return fmt.Errorf("%s negative: %w", name, ErrOutOfBounds)
	case v.BitLen() > max:
		return fmt.Errorf("%s of %d bits, at most %d: %w", name, v.BitLen(), max, ErrOutOfBounds)
	}
	return nil
}

// inGroup refuses a number outside (0, n): group elements are reduced mod n.
func inGroup(name string, v, n *big.Int) error {
	switch {
	case v == nil || v.Sign() <= 0:
		return fmt.Errorf("%s missing or not positive: %w", name, ErrOutOfBounds)
	case v.Cmp(n) >= 0:
		return fmt.Errorf("%s of %d bits, not below the modulus (%d bits): %w", name, v.BitLen(), n.BitLen(), ErrOutOfBounds)
	}
	return nil
}

// postedProofs is what the Yivi app posts to a session's proofs endpoint: an irma.Disclosure
// (its proofs in "proofs") or an irma.SignedMessage (in "signature"). Both are read with the
// types and the decoder (encoding/json) that irmaserver uses, so that what is checked is what
// irmaserver would verify.
type postedProofs struct {
	Proofs    gabi.ProofList                 `json:"proofs"`
	Signature gabi.ProofList                 `json:"signature"`
	Indices   irma.DisclosedAttributeIndices `json:"indices"`
}

// CheckPosted parses body, proofs that the Yivi app posts to a disclosure or signature session,
// and checks them with CheckDisclosure. A body that does not parse is refused too (wrapping
// ErrOutOfBounds): irmaserver would refuse it, and what it holds cannot be bounded.
func CheckPosted(conf *irma.Configuration, body []byte) error {
	_, err := CheckPostedDisclosure(conf, body)
	return err
}

// CheckPostedDisclosure is CheckPosted that also returns the proofs of a disclosure as it
// parsed them (nil for a signature's): what a caller reads from them needs no second parse of
// the body.
func CheckPostedDisclosure(conf *irma.Configuration, body []byte) (gabi.ProofList, error) {
	var p postedProofs
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("proofs do not parse: %w", ErrOutOfBounds)
	}
	proofs := p.Proofs
	if len(p.Signature) > 0 {
		if len(proofs) > 0 {
			return nil, fmt.Errorf("both proofs and a signature: %w", ErrOutOfBounds)
		}
		proofs = p.Signature
	}
	if err := CheckDisclosure(conf, proofs, p.Indices); err != nil {
		return nil, err
	}
	return p.Proofs, nil
}
