package signature

import (
	"errors"
	"strings"
	"testing"
)

var parseSeeds = []string{
	``,
	`null`,
	`[]`,
	`"x"`,
	`{}`,
	`{"signature": []}`,
	`{"signature": [{}]}`,
	`{"signature": [{"U": 1}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5, "0": 1}}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}, "a_responses": {"0": null}}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5, "3": 7}}], "indices": [[{"cred": 1, "attr": 3}]], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5, "3": 7}}], "indices": [[{"cred": 0, "attr": 4}]], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5, "3": 7}}], "indices": [[{"cred": 0, "attr": 3}]], "nonce": 1, "context": 1, "message": "m", "timestamp": {"Time": 1}}`,
	`{"@context": "https://irma.app/ld/signature/v2", "signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "nonce": 1, "context": 1}`,
	`{"@context": "other", "signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "nonce": 1, "context": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "nonce": 1, "context": 1, "extra": 1}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": 5}}], "nonce": 1, "context": 1} {}`,
	`{"signature": [{"A": 1, "c": 1, "e_response": 1, "v_response": 1, "a_disclosed": {"1": -5}}], "nonce": 1, "context": 1}`,
}

// TestParse checks which seeds parse: only those of the shape irmago relies on (10, 15, 16).
func TestParse(t *testing.T) {
	ok := map[int]bool{15: true, 16: true, 10: true}
	for i, s := range parseSeeds {
		_, err := parse([]byte(s))
		if (err == nil) != ok[i] {
			t.Errorf("seed %d %s: error %v", i, s, err)
		}
	}
	if _, err := parse([]byte(strings.Repeat(" ", MaxSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}

// FuzzParse checks that parsing and unwrapping never panic, and that what parse accepts has the
// shape checkShape promises.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
		f.Add([]byte(`{"signature": ` + s + `, "message": "m"}`))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if sig, _, err := unwrap(data); err == nil {
			data = sig
		}
		sm, err := parse(data)
		if err != nil {
			return
		}
		if len(sm.Signature) == 0 || sm.Nonce == nil || sm.Context == nil {
			t.Fatalf("accepted %s", data)
		}
		if err := checkShape(sm); err != nil {
			t.Fatal(err)
		}
	})
}
