package proofbounds

import (
	"testing"

	"github.com/privacybydesign/gabi"
)

// TestCheckPostedDisclosure: the proofs of a disclosure come back as parsed, those of a
// signature do not (no login reads them), and nothing comes back with a refusal.
func TestCheckPostedDisclosure(t *testing.T) {
	is, genuine := fixture(t)
	corpus := postedCorpus(t, genuine)
	n := len(postedSeeds)
	proofs, err := CheckPostedDisclosure(is.conf, corpus[n])
	if err != nil || len(proofs) != 1 || proofs[0].(*gabi.ProofD).VResponse.Cmp(genuine.VResponse) != 0 {
		t.Errorf("disclosure: %v, %v", proofs, err)
	}
	if proofs, err := CheckPostedDisclosure(is.conf, corpus[n+2]); err != nil || proofs != nil {
		t.Errorf("signature: %v, %v", proofs, err)
	}
	if proofs, err := CheckPostedDisclosure(is.conf, corpus[n+1]); err == nil || proofs != nil {
		t.Errorf("inflated disclosure: %v, %v", proofs, err)
	}
}
