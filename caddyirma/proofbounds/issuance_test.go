package proofbounds

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/privacybydesign/gabi"
	"github.com/privacybydesign/gabi/big"
)

// commitment makes a genuine commitment message with gabi, as the Yivi app does at issuance,
// with blind the indices of random blind attributes.
func (is *issuer) commitment(t testing.TB, blind ...int) *gabi.IssueCommitmentMessage {
	t.Helper()
	secret, err := gabi.GenerateSecretAttribute()
	if err != nil {
		t.Fatal(err)
	}
	b, err := gabi.NewCredentialBuilder(is.pk, context, secret, big.NewInt(99), nil, blind)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := b.CommitToSecretAndProve(nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !msg.Proofs[0].(*gabi.ProofU).Verify(is.pk, context, nonce) {
		t.Fatal("gabi does not verify its own commitment")
	}
	return msg
}

func commitmentBody(t testing.TB, proofs gabi.ProofList, indices string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"combinedProofs": proofs, "n_2": big.NewInt(99), "indices": json.RawMessage(indices)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckCommitments(t *testing.T) {
	is, genuine := fixture(t)
	ib := ForIssuance()
	seen := map[string]int{}
	for i := range 8 {
		u := is.commitment(t, 2).Proofs[0].(*gabi.ProofU)
		if err := CheckCommitments(is.conf, commitmentBody(t, gabi.ProofList{u}, "null")); err != nil {
			t.Fatalf("genuine commitment %d refused: %v", i, err)
		}
		seen["v_prime_response"] = max(seen["v_prime_response"], u.VPrimeResponse.BitLen())
		seen["s_response"] = max(seen["s_response"], u.SResponse.BitLen())
		for _, v := range u.MUserResponses {
			seen["m_user_responses"] = max(seen["m_user_responses"], v.BitLen())
		}
	}
	t.Logf("largest of 8 genuine commitments under the %d-bit key (bound): v_prime_response %d (%d), s_response %d (%d), m_user_responses %d (%d)",
		is.pk.N.BitLen(), seen["v_prime_response"], ib.VPrimeResponse, seen["s_response"], ib.SResponse, seen["m_user_responses"], ib.MUserResponse)

	u := is.commitment(t).Proofs[0].(*gabi.ProofU)
	if err := CheckCommitments(is.conf, commitmentBody(t, gabi.ProofList{genuine, u}, `[[{"cred": 0, "attr": 3}]]`)); err != nil {
		t.Fatalf("a disclosure and a commitment: %v", err)
	}
	inflated := new(big.Int).Lsh(big.NewInt(1), 3_300_000)
	for _, tc := range []struct {
		name   string
		change func(u *gabi.ProofU)
	}{
		{"U inflated", func(u *gabi.ProofU) { u.U = inflated }},
		{"U zero", func(u *gabi.ProofU) { u.U = big.NewInt(0) }},
		{"c inflated", func(u *gabi.ProofU) { u.C = inflated }},
		{"c missing", func(u *gabi.ProofU) { u.C = nil }},
		{"v_prime_response inflated", func(u *gabi.ProofU) { u.VPrimeResponse = inflated }},
		{"v_prime_response one bit over", func(u *gabi.ProofU) { u.VPrimeResponse = ones(ib.VPrimeResponse + 1) }},
		{"s_response inflated", func(u *gabi.ProofU) { u.SResponse = inflated }},
		{"s_response missing", func(u *gabi.ProofU) { u.SResponse = nil }},
		{"m_user_responses inflated", func(u *gabi.ProofU) { u.MUserResponses = map[int]*big.Int{3: inflated} }},
		{"m_user_responses index 0", func(u *gabi.ProofU) { u.MUserResponses = map[int]*big.Int{0: big.NewInt(1)} }},
		{"too many m_user_responses", func(u *gabi.ProofU) {
			u.MUserResponses = map[int]*big.Int{}
			for i := 1; i <= maxBlindAttributes+1; i++ {
				u.MUserResponses[i] = big.NewInt(1)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *u
			tc.change(&c)
			if err := CheckCommitments(is.conf, commitmentBody(t, gabi.ProofList{&c}, "null")); !errors.Is(err, ErrOutOfBounds) {
				t.Fatalf("got %v, want out of bounds", err)
			}
		})
	}
	t.Run("disclosure inflated", func(t *testing.T) {
		d := clone(t, genuine)
		d.VResponse = inflated
		if err := CheckCommitments(is.conf, commitmentBody(t, gabi.ProofList{d, u}, "null")); !errors.Is(err, ErrOutOfBounds) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("index to a commitment", func(t *testing.T) {
		if err := CheckCommitments(is.conf, commitmentBody(t, gabi.ProofList{genuine, u}, `[[{"cred": 1, "attr": 3}]]`)); !errors.Is(err, ErrOutOfBounds) {
			t.Fatalf("got %v", err)
		}
	})
	for _, body := range commitmentSeeds {
		if err := CheckCommitments(is.conf, []byte(body)); !errors.Is(err, ErrOutOfBounds) && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

var commitmentSeeds = []string{
	``,
	`null`,
	`[]`,
	`{"combinedProofs": [null]}`,
	`{"combinedProofs": [{"U": 1}]}`,
	`{"combinedProofs": [{"U": 1, "c": 1, "v_prime_response": 1, "s_response": 1, "m_user_responses": {"-1": 1}}]}`,
	`{"combinedProofs": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "indices": [[{"cred": 2, "attr": 1}]]}`,
	`{"combinedProofs": [], "keybinding_pub_keys": [{"kty": "nonsense"}]}`,
}

// FuzzCheckCommitments: no body makes CheckCommitments panic, and what it accepts holds only
// proofs within the bounds.
func FuzzCheckCommitments(f *testing.F) {
	is, genuine := fixture(f)
	u := is.commitment(f, 2).Proofs[0].(*gabi.ProofU)
	for _, s := range commitmentSeeds {
		f.Add([]byte(s))
	}
	f.Add(commitmentBody(f, gabi.ProofList{genuine, u}, `[[{"cred": 0, "attr": 3}]]`))
	f.Add(commitmentBody(f, gabi.ProofList{u}, "null"))
	ib := ForIssuance()
	f.Fuzz(func(t *testing.T, body []byte) {
		if CheckCommitments(is.conf, body) != nil {
			return
		}
		var msg struct {
			Proofs gabi.ProofList `json:"combinedProofs"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("accepted a body that does not parse: %v", err)
		}
		for _, p := range msg.Proofs {
			if u, ok := p.(*gabi.ProofU); ok && (u.VPrimeResponse.BitLen() > ib.VPrimeResponse || u.SResponse.BitLen() > ib.SResponse) {
				t.Fatalf("accepted %.200s", body)
			}
		}
	})
}
