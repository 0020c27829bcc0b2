package proofbounds

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacybydesign/gabi"
	"github.com/privacybydesign/gabi/big"
	"github.com/privacybydesign/gabi/gabikeys"
	"github.com/privacybydesign/gabi/rangeproof"
	"github.com/privacybydesign/gabi/revocation"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// issuer makes genuine disclosure proofs with gabi itself, as the Yivi app's library does:
// a credential issued under the test scheme's key, then shown.
type issuer struct {
	conf   *irma.Configuration
	scheme *demoscheme.Scheme
	pk     *gabikeys.PublicKey
	sk     *gabikeys.PrivateKey
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	s := testscheme.New(t, "http://127.0.0.1:9/")
	conf, err := irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{IgnorePrivateKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.ParseFolder(); err != nil {
		t.Fatal(err)
	}
	pk, err := conf.PublicKeyLatest(s.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := testscheme.KeyPair()
	sk, err := gabikeys.NewPrivateKeyFromXML(string(priv), false)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{conf: conf, scheme: s, pk: pk, sk: sk}
}

var (
	context = big.NewInt(1234567)
	nonce   = big.NewInt(7654321)
)

// proof issues a person credential and shows it, disclosing the attributes at disclosed (1 is
// the metadata attribute, 2 onwards the credential type's), checked to verify with gabi.
func (is *issuer) proof(t testing.TB, disclosed ...int) *gabi.ProofD {
	t.Helper()
	cr := &irma.CredentialRequest{
		CredentialTypeID: is.scheme.Credential(demoscheme.CredentialPerson),
		Attributes: map[string]string{
			demoscheme.AttributeFullname: "Alice Demo",
			demoscheme.AttributeEmail:    "alice@example.com",
			demoscheme.AttributeOver18:   "yes",
		},
	}
	list, err := cr.AttributeList(is.conf, 0x03, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret, err := gabi.GenerateSecretAttribute()
	if err != nil {
		t.Fatal(err)
	}
	nonce2 := big.NewInt(99)
	b, err := gabi.NewCredentialBuilder(is.pk, context, secret, nonce2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := b.CommitToSecretAndProve(nonce)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := gabi.NewIssuer(is.sk, is.pk, context).IssueSignature(commit.U, list.Ints, nil, nonce2, nil)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := b.ConstructCredential(sig, list.Ints)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cred.CreateDisclosureProof(disclosed, nil, false, context, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Verify(is.pk, context, nonce, false) {
		t.Fatal("gabi does not verify its own proof")
	}
	return d
}

var shared struct {
	once sync.Once
	is   *issuer
	pd   *gabi.ProofD
}

// fixture returns an issuer and one genuine proof (disclosing the metadata and the email), made
// once per test binary: fuzzing calls it for each worker.
func fixture(t testing.TB) (*issuer, *gabi.ProofD) {
	shared.once.Do(func() {
		shared.is = newIssuer(t)
		shared.pd = shared.is.proof(t, 1, 3)
	})
	if shared.is == nil {
		t.Fatal("fixture failed")
	}
	return shared.is, shared.pd
}

// clone copies a proof through JSON, as a verifier would receive it.
func clone(t testing.TB, d *gabi.ProofD) *gabi.ProofD {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var c gabi.ProofD
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// ones is the number of n bits, all ones.
func ones(n int) *big.Int {
	v := new(big.Int).Lsh(big.NewInt(1), uint(n))
	return v.Sub(v, big.NewInt(1))
}

// TestGenuineProofs: proofs that gabi makes, disclosing any attributes, are within the bounds;
// the largest numbers seen are logged next to them. (v_response is bounded by this package's
// own derivation, which gabi does not check: the widest margin, LvCommit+1, must hold for all.)
func TestGenuineProofs(t *testing.T) {
	is, _ := fixture(t)
	b, err := ForKey(is.pk, len(is.conf.CredentialTypes[is.scheme.Credential(demoscheme.CredentialPerson)].AttributeTypes), false)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	note := func(name string, v *big.Int) { seen[name] = max(seen[name], v.BitLen()) }
	sets := [][]int{{1}, {1, 2}, {1, 3}, {1, 2, 3, 4}, {1, 4}}
	n := 24
	if testing.Short() {
		n = 5
	}
	for i := range n {
		d := is.proof(t, sets[i%len(sets)]...)
		if err := CheckDisclosure(is.conf, gabi.ProofList{d}, nil); err != nil {
			t.Fatalf("genuine proof %d refused: %v", i, err)
		}
		note("c", d.C)
		note("e_response", d.EResponse)
		note("v_response", d.VResponse)
		for _, v := range d.AResponses {
			note("a_responses", v)
		}
	}
	t.Logf("%d-bit key, largest of %d genuine proofs (bound): c %d (%d), e_response %d (%d), v_response %d (%d), a_responses %d (%d)",
		b.N.BitLen(), n, seen["c"], b.Challenge, seen["e_response"], b.EResponse, seen["v_response"], b.VResponse, seen["a_responses"], b.AResponse)
}

// TestRefused: a genuine proof with one number or count changed beyond what a genuine one can
// have is refused with ErrOutOfBounds; at the bound itself it passes the check.
func TestRefused(t *testing.T) {
	is, genuine := fixture(t)
	b, err := ForKey(is.pk, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	inflated := new(big.Int).Lsh(big.NewInt(1), 3_300_000) // the v_response of the report: 3.3 Mbit
	for _, tc := range []struct {
		name   string
		change func(d *gabi.ProofD)
		ok     bool
	}{
		{"genuine", func(d *gabi.ProofD) {}, true},
		{"v_response inflated", func(d *gabi.ProofD) { d.VResponse = inflated }, false},
		{"v_response one bit over", func(d *gabi.ProofD) { d.VResponse = ones(b.VResponse + 1) }, false},
		{"v_response at the bound", func(d *gabi.ProofD) { d.VResponse = ones(b.VResponse) }, true},
		{"e_response inflated", func(d *gabi.ProofD) { d.EResponse = inflated }, false},
		{"e_response one bit over", func(d *gabi.ProofD) { d.EResponse = ones(b.EResponse + 1) }, false},
		{"e_response at the bound", func(d *gabi.ProofD) { d.EResponse = ones(b.EResponse) }, true},
		{"secret key response inflated", func(d *gabi.ProofD) { d.AResponses[0] = inflated }, false},
		{"attribute response one bit over", func(d *gabi.ProofD) { d.AResponses[2] = ones(b.AResponse + 1) }, false},
		{"attribute response at the bound", func(d *gabi.ProofD) { d.AResponses[2] = ones(b.AResponse) }, true},
		{"attribute response missing", func(d *gabi.ProofD) { d.AResponses[2] = nil }, false},
		{"c inflated", func(d *gabi.ProofD) { d.C = inflated }, false},
		{"c of 257 bits", func(d *gabi.ProofD) { d.C = ones(257) }, false},
		{"A inflated", func(d *gabi.ProofD) { d.A = inflated }, false},
		{"A equal to N", func(d *gabi.ProofD) { d.A = new(big.Int).Set(is.pk.N) }, false},
		{"A zero", func(d *gabi.ProofD) { d.A = big.NewInt(0) }, false},
		{"A missing", func(d *gabi.ProofD) { d.A = nil }, false},
		{"metadata inflated", func(d *gabi.ProofD) { d.ADisclosed[1] = new(big.Int).Lsh(d.ADisclosed[1], 8) }, false},
		{"metadata missing", func(d *gabi.ProofD) { delete(d.ADisclosed, 1) }, false},
		{"no secret key response", func(d *gabi.ProofD) { delete(d.AResponses, 0) }, false},
		{"response beyond the key's attributes", func(d *gabi.ProofD) { d.AResponses[len(is.pk.R)] = big.NewInt(1) }, false},
		{"negative response index", func(d *gabi.ProofD) { d.AResponses[-1] = big.NewInt(1) }, false},
		{"disclosed beyond the credential type", func(d *gabi.ProofD) { d.ADisclosed[b.Disclosed] = big.NewInt(1) }, false},
		{"disclosed secret key", func(d *gabi.ProofD) { d.ADisclosed[0] = big.NewInt(1) }, false},
		{"disclosed and not", func(d *gabi.ProofD) { d.ADisclosed[2] = big.NewInt(1) }, false},
		{"range proofs", func(d *gabi.ProofD) { d.RangeProofs = map[int][]*rangeproof.Proof{2: {{}}} }, false},
		{"nonrevocation proof of a credential without revocation", func(d *gabi.ProofD) {
			d.NonRevocationProof = &revocation.Proof{Cr: big.NewInt(2), Cu: big.NewInt(2), SignedAccumulator: &revocation.SignedAccumulator{}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := clone(t, genuine)
			tc.change(d)
			err := CheckDisclosure(is.conf, gabi.ProofList{d}, nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrOutOfBounds) {
				t.Fatalf("got %v, want out of bounds", err)
			}
			t.Log(err)
		})
	}

	t.Run("unknown credential type", func(t *testing.T) {
		d := clone(t, genuine)
		meta := irma.NewMetadataAttribute(0x03)
		d.ADisclosed[1] = meta.Int
		if err := CheckDisclosure(is.conf, gabi.ProofList{d}, nil); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("got %v, want unknown key", err)
		}
	})
	t.Run("proof of issuance", func(t *testing.T) {
		err := CheckDisclosure(is.conf, gabi.ProofList{&gabi.ProofU{U: big.NewInt(1)}}, nil)
		if !errors.Is(err, ErrOutOfBounds) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("too many proofs", func(t *testing.T) {
		list := make(gabi.ProofList, MaxProofs+1)
		for i := range list {
			list[i] = genuine
		}
		if err := CheckDisclosure(is.conf, list, nil); !errors.Is(err, ErrOutOfBounds) {
			t.Fatalf("got %v", err)
		}
		if err := CheckDisclosure(is.conf, list[:MaxProofs], nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("indices", func(t *testing.T) {
		for _, tc := range []struct {
			idx *irma.DisclosedAttributeIndex
			ok  bool
		}{
			{&irma.DisclosedAttributeIndex{CredentialIndex: 0, AttributeIndex: 3}, true},
			{&irma.DisclosedAttributeIndex{CredentialIndex: 0, AttributeIndex: 1}, true},
			{&irma.DisclosedAttributeIndex{CredentialIndex: 1, AttributeIndex: 3}, false},
			{&irma.DisclosedAttributeIndex{CredentialIndex: -1, AttributeIndex: 3}, false},
			{&irma.DisclosedAttributeIndex{CredentialIndex: 0, AttributeIndex: 2}, false},
			{&irma.DisclosedAttributeIndex{CredentialIndex: 0, AttributeIndex: 0}, false},
			{nil, false},
		} {
			err := CheckDisclosure(is.conf, gabi.ProofList{genuine}, irma.DisclosedAttributeIndices{{tc.idx}})
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrOutOfBounds)) {
				t.Errorf("%+v: %v", tc.idx, err)
			}
		}
	})
	t.Run("no configuration", func(t *testing.T) {
		if err := CheckDisclosure(nil, gabi.ProofList{genuine}, nil); err == nil {
			t.Fatal("checked without keys")
		}
	})
	t.Run("no proofs", func(t *testing.T) {
		// A request may ask for nothing that must be disclosed.
		if err := CheckDisclosure(is.conf, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNonRevocationBounds checks the bounds of a nonrevocation proof under a key that supports
// revocation (the test scheme has none, so the bounds are set here).
func TestNonRevocationBounds(t *testing.T) {
	is, _ := fixture(t)
	b, err := ForKey(is.pk, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Revocation = true // as ForKey sets it for a revocable credential type under this key
	if !is.pk.RevocationSupported() {
		t.Fatal("the test key has no revocation keys")
	}
	proof := func() *revocation.Proof {
		return &revocation.Proof{
			Cr: big.NewInt(2), Cu: big.NewInt(3), SignedAccumulator: &revocation.SignedAccumulator{},
			Responses: map[string]*big.Int{
				"beta": ones(b.NonRevBetaDelta), "delta": ones(b.NonRevBetaDelta),
				"epsilon": ones(b.NonRevEpsilonZeta), "zeta": ones(b.NonRevEpsilonZeta),
			},
		}
	}
	if err := b.checkNonRevocation(proof()); err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(p *revocation.Proof)
	}{
		{"beta", func(p *revocation.Proof) { p.Responses["beta"] = ones(b.NonRevBetaDelta + 1) }},
		{"delta", func(p *revocation.Proof) { p.Responses["delta"] = ones(b.NonRevBetaDelta + 1) }},
		{"epsilon", func(p *revocation.Proof) { p.Responses["epsilon"] = ones(b.NonRevEpsilonZeta + 1) }},
		{"zeta", func(p *revocation.Proof) { p.Responses["zeta"] = ones(b.NonRevEpsilonZeta + 1) }},
		{"alpha", func(p *revocation.Proof) { p.Responses["alpha"] = ones(b.NonRevAlpha + 1) }},
		{"unknown response", func(p *revocation.Proof) { p.Responses["gamma"] = big.NewInt(1) }},
		{"nil response", func(p *revocation.Proof) { p.Responses["beta"] = nil }},
		{"missing response", func(p *revocation.Proof) { delete(p.Responses, "zeta") }},
		{"C_r not below N", func(p *revocation.Proof) { p.Cr = new(big.Int).Set(b.N) }},
		{"C_u zero", func(p *revocation.Proof) { p.Cu = big.NewInt(0) }},
		{"C_u missing", func(p *revocation.Proof) { p.Cu = nil }},
		{"no accumulator", func(p *revocation.Proof) { p.SignedAccumulator = nil }},
	} {
		p := proof()
		tc.change(p)
		if err := b.checkNonRevocation(p); !errors.Is(err, ErrOutOfBounds) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestForKey refuses keys whose parameters gabi does not know.
func TestForKey(t *testing.T) {
	is, _ := fixture(t)
	noParams := *is.pk
	noParams.Params = nil
	for _, pk := range []*gabikeys.PublicKey{nil, {}, &noParams} {
		if _, err := ForKey(pk, 4, false); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%v", err)
		}
	}
	b, err := ForKey(is.pk, 100, false)
	if err != nil || b.Disclosed != len(is.pk.R) {
		t.Errorf("a credential type larger than its key: %+v %v", b, err)
	}
	if b, err := ForKey(is.pk, 4, true); err != nil || !b.Revocation || b.Disclosed != 6 {
		t.Errorf("a revocable credential type: %+v %v", b, err)
	}
}

// postedSeeds are bodies for CheckPosted; the genuine ones are added by postedCorpus.
var postedSeeds = []string{
	``,
	`null`,
	`[]`,
	`{}`,
	`{"proofs": []}`,
	`{"proofs": [null]}`,
	`{"proofs": [{}]}`,
	`{"proofs": [{"U": 1}]}`,
	`{"proofs": [{"A": 1}]}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}]}`,
	`{"proofs": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}, "a_responses": {"0": null}}]}`,
	`{"proofs": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"-1": 5}}]}`,
	`{"proofs": [{"A": 1, "c": 1, "e_response": 1, "v_response": "` + strings.Repeat("A", 4000) + `", "a_disclosed": {"1": 5}}]}`,
	`{"proofs": [], "signature": [], "indices": [[{"cred": 3, "attr": 1}]]}`,
}

// postedCorpus returns the seeds plus a genuine disclosure and signature body, and inflated
// copies of them.
func postedCorpus(t testing.TB, genuine *gabi.ProofD) [][]byte {
	t.Helper()
	var out [][]byte
	for _, s := range postedSeeds {
		out = append(out, []byte(s))
	}
	for _, key := range []string{"proofs", "signature"} {
		b, err := json.Marshal(map[string]any{key: gabi.ProofList{genuine}, "indices": [][]map[string]int{{{"cred": 0, "attr": 3}}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		d := *genuine
		d.VResponse = new(big.Int).Lsh(big.NewInt(1), 1<<16)
		b, err = json.Marshal(map[string]any{key: gabi.ProofList{&d}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestCheckPosted(t *testing.T) {
	is, genuine := fixture(t)
	corpus := postedCorpus(t, genuine)
	n := len(postedSeeds)
	for i, body := range corpus {
		err := CheckPosted(is.conf, body)
		// The genuine disclosure and signature pass, and bodies of no proofs (nothing to
		// exponentiate; irmaserver decides whether nothing suffices); their inflated copies, and
		// the other seeds, fail.
		want := i == n || i == n+2 || i == 1 || i == 3 || i == 4
		if (err == nil) != want || (err != nil && !errors.Is(err, ErrOutOfBounds) && !errors.Is(err, ErrUnknownKey)) {
			t.Errorf("body %d %.200s: %v", i, body, err)
		}
	}
	both, _ := json.Marshal(map[string]any{"proofs": gabi.ProofList{genuine}, "signature": gabi.ProofList{genuine}})
	if err := CheckPosted(is.conf, both); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("proofs and signature: %v", err)
	}
}

// FuzzCheckPosted: no body makes CheckPosted panic, and what it accepts is a list of disclosure
// proofs within the bounds of known keys.
func FuzzCheckPosted(f *testing.F) {
	is, genuine := fixture(f)
	for _, b := range postedCorpus(f, genuine) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if CheckPosted(is.conf, body) != nil {
			return
		}
		var p postedProofs
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("accepted a body that does not parse: %v", err)
		}
		for _, list := range []gabi.ProofList{p.Proofs, p.Signature} {
			for _, proof := range list {
				d, ok := proof.(*gabi.ProofD)
				if !ok || d.VResponse.BitLen() > 2048 || d.EResponse.BitLen() > 1024 || d.C.BitLen() > 256 {
					t.Fatalf("accepted %T %.200s", proof, body)
				}
			}
		}
	})
}
