package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
)

// addBreakdown profiles the gateway (t) over further logins into file, and
// adds to res the share of each bucket of its CPU and the ratio that
// irmago's verification alone would give.
func addBreakdown(b *testing.B, res *benchreport.Result, t loginTarget, adminAddr, file string) {
	b.Helper()
	shares, perLogin, sampled := profileLogins(b, t, adminAddr, file, envInt(b, "IRMA_BENCH_PROFILE_SECONDS", 30))
	for bucket, share := range shares {
		res.Figures["gateway_share_"+bucket] = share
	}
	// irmago's verification, which irma server does alike: the ratio of
	// a gateway that spent nothing else is at least what the samples
	// of it alone give (the CPU they miss, in the kernel, is counted
	// as the rest's).
	irmaMs := res.Figures["irma_server_ms_per_login"]
	res.Figures["verification_ms_per_login"] = shares["verification"] * sampled
	res.Figures["ratio_floor"] = shares["verification"] * sampled / irmaMs
	b.Logf("irmago's verification: %.2f to %.2f ms per login, so a ratio of at least %.3f",
		shares["verification"]*sampled, shares["verification"]*perLogin, res.Figures["ratio_floor"])
}

// profileLogins takes a CPU profile of the gateway (target t, whose Caddy
// admin endpoint is at adminAddr) over seconds of logins into file, and
// returns the share of the gateway's CPU that went to each bucket
// (profileBuckets), its CPU per login meanwhile, and the part of that which
// the profile sampled, in ms.
func profileLogins(b *testing.B, t loginTarget, adminAddr, file string, seconds int) (shares map[string]float64, perLogin, sampled float64) {
	b.Helper()
	done := make(chan error, 1)
	go func() { done <- fetchProfile(adminAddr, file, seconds) }()
	before, err := processCPU(t.pid)
	if err != nil {
		b.Fatal(err)
	}
	logins := 0
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				b.Fatal(err)
			}
			waiting = false
		default:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := t.login(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			logins++
		}
	}
	after, err := processCPU(t.pid)
	if err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-traces", file).Output()
	if err != nil {
		b.Fatalf("reading the profile: %v", err)
	}
	spent, err := bucketTraces(string(out))
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, d := range spent {
		total += d
	}
	// The process's own counters say what a login cost; the samples, how
	// that divides (they miss some of it, in the kernel).
	perLogin, sampled = ms(after-before)/float64(logins), ms(total)/float64(logins)
	shares = map[string]float64{}
	report := fmt.Sprintf("profile of the gateway over %d logins: %.2f ms CPU per login (%.2f ms sampled)\n",
		logins, perLogin, sampled)
	for _, bk := range profileBuckets {
		shares[bk.name] = float64(spent[bk.name]) / float64(total)
		report += fmt.Sprintf("\t%-20s %6.3f ms per login  %5.1f%%\n", bk.name, shares[bk.name]*perLogin, 100*shares[bk.name])
	}
	// Printed, not logged: a benchmark's log keeps its first lines only.
	fmt.Print(report)
	return shares, perLogin, sampled
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// profileBuckets sort the samples of a profile: each goes to the first
// bucket that a function of its stack matches.
var profileBuckets = []struct {
	name  string
	match *regexp.Regexp
}{
	// irmago's verification of the proofs (gabi): the cost of a login that
	// the gateway shares with irma server.
	{"verification", regexp.MustCompile(`irma\.ProofList\.VerifyProofs|gabi\.ProofList\.Verify`)},
	// irmaserver's memory store copies a session (through JSON) at every
	// access, and every session every 10 s (deleteExpired).
	{"session_copy", regexp.MustCompile(`irmaserver\.copyObject`)},
	// The gateway's reading of the proofs: bounds, credential expiry.
	{"proofs_interception", regexp.MustCompile(`caddyirma\.(checkPost|readProofs|recordCredentialExpiry|lookUpSession)|caddyirma/proofbounds\.`)},
	{"qr", regexp.MustCompile(`rsc\.io/qr|sessionpage\.QR`)},
	{"logging", regexp.MustCompile(`go\.uber\.org/zap|sirupsen/logrus|internal/logbridge|caddyirma\.auditEntry`)},
	{"cookies_jwt", regexp.MustCompile(`gorilla/securecookie|caddyirma/sealedcookie|caddyirma/assertion`)},
	// The rest of irmaserver: its handlers, parsing the proofs, starting
	// sessions.
	{"irmago_other", regexp.MustCompile(`privacybydesign/`)},
	{"json", regexp.MustCompile(`^encoding/json\.`)},
	{"gc", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge|gcAssistAlloc|mallocgc)`)},
	{"http", regexp.MustCompile(`^(net/http|net|bufio|internal/poll|syscall)\.|caddyhttp`)},
	{"other", regexp.MustCompile(``)},
}

// bucketTraces adds up the samples of `go tool pprof -traces` output by
// profileBuckets.
func bucketTraces(traces string) (map[string]time.Duration, error) {
	spent := map[string]time.Duration{}
	blocks := strings.Split(traces, "-----------+-------------------------------------------------------")
	for _, block := range blocks[1:] {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		first := strings.Fields(lines[0])
		if len(first) < 2 {
			continue
		}
		d, err := time.ParseDuration(first[0])
		if err != nil {
			return nil, fmt.Errorf("profile trace %q: %w", lines[0], err)
		}
		frames := append([]string{first[1]}, lines[1:]...)
		spent[bucketOf(frames)] += d
	}
	return spent, nil
}

// bucketOf returns the first bucket that a frame of the stack matches.
func bucketOf(frames []string) string {
	for _, bk := range profileBuckets {
		for _, f := range frames {
			if bk.match.MatchString(strings.TrimSpace(f)) {
				return bk.name
			}
		}
	}
	return "other"
}

// fetchProfile writes a CPU profile of seconds from Caddy's admin endpoint
// at adminAddr into file.
func fetchProfile(adminAddr, file string, seconds int) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", adminAddr, seconds))
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: status %d", resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	return f.Close()
}

func TestBucketTraces(t *testing.T) {
	const sep = "-----------+-------------------------------------------------------"
	traces := "File: caddy\nType: cpu\n" + sep + `
      20ms   math/big.addMulVVWW
             github.com/privacybydesign/gabi.ProofList.Verify
             github.com/privacybydesign/irmago/irma.ProofList.VerifyProofs
             github.com/privacybydesign/irmago/irma/server/irmaserver.(*memorySessionStore).handleTransaction
` + sep + `
     1.5s   encoding/json.(*decodeState).object
             github.com/privacybydesign/irmago/irma/server/irmaserver.copyObject[go.shape.*uint8]
` + sep + `
      10ms   encoding/json.Marshal
             github.com/caddy-irma/caddy-irma/caddyirma/sessionpage.WriteJSON
` + sep + `
      10ms   runtime.futex
` + sep + `
      30ms   rsc.io/qr/coding.(*Code).Black
             github.com/caddy-irma/caddy-irma/caddyirma/sessionpage.QRSVG
`
	got, err := bucketTraces(traces)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"verification": 20 * time.Millisecond, "session_copy": 1500 * time.Millisecond,
		"json": 10 * time.Millisecond, "other": 10 * time.Millisecond, "qr": 30 * time.Millisecond}
	if len(got) != len(want) {
		t.Errorf("buckets %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}
