package proofbounds

import (
	"encoding/json"
	"fmt"

	"github.com/privacybydesign/gabi"
	"github.com/privacybydesign/gabi/gabikeys"
	irma "github.com/privacybydesign/irmago/irma"
)

// maxBlindAttributes bounds the user's shares of random blind attributes in one commitment
// (ProofU.MUserResponses): one per such attribute of the credential type, which has a few.
const maxBlindAttributes = 32

// IssuanceBounds are the largest bit lengths of the numbers of a genuine commitment proof
// (gabi.ProofU), which the Yivi app posts to an issuance session's commitments.
//
// irmaserver verifies a commitment under the key of the credential that the session issues,
// which the commitment does not name, so its bounds are those of the largest parameters gabi
// has (it takes a key's parameters from gabikeys.DefaultSystemParameters by the length of its
// modulus, so no key it can use has larger ones). That bounds the work to that of a genuine
// commitment under a 4096-bit key.
type IssuanceBounds struct {
	// U bounds the commitment U, an element mod N.
	U int
	// Challenge, VPrimeResponse, SResponse and MUserResponse bound c, v_prime_response,
	// s_response and each of m_user_responses.
	Challenge, VPrimeResponse, SResponse, MUserResponse int
}

// ForIssuance returns the bounds of commitments under any key gabi can use:
//
//   - U: below 2^Ln;
//   - c: 256 bits;
//   - v_prime_response: LvPrimeCommit+1 bits (gabi ProofU.correctResponseSizes, which runs after
//     the exponentiations);
//   - s_response and m_user_responses: LmCommit+1 bits. gabi checks neither; from its
//     CredentialBuilder.CreateProof: response = randomizer + c*secret, the randomizer of the
//     secret key at most LmCommit of 2048-bit parameters (NewProofRandomizers,
//     NewKeyshareCommitments), that of a blind attribute LmCommit (NewCredentialBuilder), the
//     secrets below 2^Lm.
func ForIssuance() IssuanceBounds {
	ln := gabikeys.DefaultKeyLengths[len(gabikeys.DefaultKeyLengths)-1]
	p := gabikeys.DefaultSystemParameters[ln]
	return IssuanceBounds{
		U:              ln,
		Challenge:      challengeBits,
		VPrimeResponse: int(p.LvPrimeCommit) + 1,
		SResponse:      int(p.LmCommit) + 1,
		MUserResponse:  int(p.LmCommit) + 1,
	}
}

func (b IssuanceBounds) checkProofU(u *gabi.ProofU) error {
	if u.U == nil || u.U.Sign() <= 0 {
		return fmt.Errorf("commitment U missing or not positive: %w", ErrOutOfBounds)
	}
	if err := bits("U", u.U, b.U); err != nil {
		return err
	}
	if err := bits("c", u.C, b.Challenge); err != nil {
		return err
	}
	if err := bits("v_prime_response", u.VPrimeResponse, b.VPrimeResponse); err != nil {
		return err
	}
	if err := bits("s_response", u.SResponse, b.SResponse); err != nil {
		return err
	}
	if len(u.MUserResponses) > maxBlindAttributes {
		return fmt.Errorf("%d m_user_responses, at most %d: %w", len(u.MUserResponses), maxBlindAttributes, ErrOutOfBounds)
	}
	for i, v := range u.MUserResponses {
		if i < 1 {
			return fmt.Errorf("m_user_responses: index %d: %w", i, ErrOutOfBounds)
		}
		if err := bits(fmt.Sprintf("m_user_responses %d", i), v, b.MUserResponse); err != nil {
			return err
		}
	}
	return nil
}

// CheckCommitments parses body, what the Yivi app posts to an issuance session's commitments
// (an irma.IssueCommitmentMessage, read as irmaserver reads it), and checks its proofs: the
// commitments (gabi.ProofU) against ForIssuance, the disclosure proofs that the session may ask
// for alongside (gabi.ProofD) as CheckDisclosure does. It returns nil, an error wrapping
// ErrOutOfBounds (including for a body that does not parse), or one wrapping ErrUnknownKey.
func CheckCommitments(conf *irma.Configuration, body []byte) error {
	if conf == nil {
		return fmt.Errorf("no scheme configuration")
	}
	var msg irma.IssueCommitmentMessage
	if err := json.Unmarshal(body, &msg); err != nil || msg.IssueCommitmentMessage == nil {
		return fmt.Errorf("commitments do not parse: %w", ErrOutOfBounds)
	}
	proofs := msg.Proofs
	if len(proofs) > MaxProofs {
		return fmt.Errorf("%d proofs, at most %d: %w", len(proofs), MaxProofs, ErrOutOfBounds)
	}
	ib := ForIssuance()
	for i, p := range proofs {
		switch p := p.(type) {
		case *gabi.ProofU:
			if err := ib.checkProofU(p); err != nil {
				return fmt.Errorf("proof %d: %w", i, err)
			}
		case *gabi.ProofD:
			if err := checkProofD(conf, p); err != nil {
				return fmt.Errorf("proof %d: %w", i, err)
			}
		default:
			return fmt.Errorf("proof %d: of no known type: %w", i, ErrOutOfBounds)
		}
	}
	return checkIndices(proofs, msg.Indices)
}
