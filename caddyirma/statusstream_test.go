package caddyirma

import (
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
)

// TestStatusPassedConnected: on the client's and the requestor's streams a
// DONE announces the CONNECTED it passed, to a stream that missed it
// (irmago's requestor client fails without); the frontend's DONE and the
// other statuses do not.
func TestStatusPassedConnected(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		frontend bool
		passed   string
	}{
		{"client DONE", `"DONE"`, false, `"CONNECTED"`},
		{"client CONNECTED", `"CONNECTED"`, false, ""},
		{"client CANCELLED", `"CANCELLED"`, false, ""},
		{"client TIMEOUT", `"TIMEOUT"`, false, ""},
		{"frontend DONE", `{"status":"DONE"}`, true, ""},
	} {
		st, err := parseStatusBody([]byte(tc.body), tc.frontend)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var passed string
		if st.Passed != nil {
			passed = string(st.Passed.Data)
			if st.Passed.Step != stepConnected || st.Passed.Step >= st.Step {
				t.Errorf("%s: passed step %d, step %d", tc.name, st.Passed.Step, st.Step)
			}
		}
		if passed != tc.passed {
			t.Errorf("%s: passed %q, want %q", tc.name, passed, tc.passed)
		}
	}
	// The requestor's stream marks its statuses the same way.
	if st := passedConnected(eventOf(quoteStatus(irma.ServerStatusDone), irma.ServerStatusDone), irma.ServerStatusDone); st.Passed == nil || string(st.Passed.Data) != `"CONNECTED"` {
		t.Errorf("requestor DONE: passed %+v", st.Passed)
	}
}
