package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// BenchmarkLoginCost measures the CPU that a login costs the gateway (the
// Caddy binary, a process of its own) beside what the same login costs
// irmago's own `irma server` (yivi v1.3.0, built into a temporary folder),
// on one scheme with 2048-bit issuer keys, with the development wallet:
//
//	go test -run '^$' -bench BenchmarkLoginCost -benchtime 1x -timeout 30m ./caddyirma/e2e
//
// A gateway login is the JSON 401 that starts the session, the wallet's
// disclosure, and the return with the pending cookie (to a route that
// answers from the gateway itself); an irma server login is POST /session,
// the wallet's disclosure, and GET /session/{token}/result. The CPU is each
// process's own (utime and stime in /proc/<pid>/stat), over rounds of
// logins that alternate between the two: counters, not wall time, so a
// busy machine shifts both alike. The ratio of each round is the gateway's
// CPU per login over the irma server's; the goal is at most 0.8.
//
// Environment:
//   - IRMA_BENCH_LOGINS: logins per round and server (default 50).
//   - IRMA_BENCH_ROUNDS: rounds (default 3).
//   - IRMA_BENCH_SCHEME_DIR: where the scheme and its 2048-bit keys are
//     kept across runs (default <user cache dir>/caddy-irma/bench-scheme-2048):
//     generating them takes a minute or more, once.
//   - IRMA_BENCH_PROFILE: a file to write a CPU profile of the gateway into,
//     taken over IRMA_BENCH_PROFILE_SECONDS (default 30) of further logins;
//     the benchmark then reports where the gateway's CPU goes.
//   - IRMA_BENCH_OUT: where the result goes as JSON (package benchreport).
func BenchmarkLoginCost(b *testing.B) {
	logins, rounds := envInt(b, "IRMA_BENCH_LOGINS", 50), envInt(b, "IRMA_BENCH_ROUNDS", 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gwBase := "http://" + ln.Addr().String()
	scheme, err := demoscheme.Ensure(demoscheme.Options{Dir: benchSchemeDir(b), KeyBits: 2048,
		TimestampServer: gwBase + "/irma/timestamp"})
	if err != nil {
		b.Fatal(err)
	}
	irmaBase, irmaPID := startIRMAServer(b, scheme)
	adminAddr := freeAddr(b)
	gw := startCaddyOn(b, "the gateway", ln, loginCostConfig(gwBase, adminAddr, scheme, b.TempDir()))

	w, err := wallet.Open(wallet.Options{Dir: b.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	issueAtIRMAServer(b, w, irmaBase, scheme)

	targets := []loginTarget{
		{name: "gateway", pid: gw.cmd.Process.Pid, login: func(ctx context.Context) error { return gatewayLogin(ctx, w, gwBase) }},
		{name: "irma server", pid: irmaPID, login: func(ctx context.Context) error { return irmaServerLogin(ctx, w, irmaBase) }},
	}
	for _, t := range targets { // warm up: first connections, lazy initialization
		if _, err := t.run(5); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var gwMs, irmaMs, ratios []float64
	for r := range rounds {
		var per [2]float64
		for i := range targets {
			t := targets[(i+r)%2] // who goes first alternates
			ms, err := t.run(logins)
			if err != nil {
				b.Fatal(err)
			}
			per[(i+r)%2] = ms
		}
		gwMs, irmaMs, ratios = append(gwMs, per[0]), append(irmaMs, per[1]), append(ratios, per[0]/per[1])
		b.Logf("round %d: gateway %.2f ms CPU per login, irma server %.2f ms, ratio %.3f", r+1, per[0], per[1], per[0]/per[1])
	}
	b.StopTimer()
	res := benchreport.Result{Name: "login-cost", Title: "CPU per login (gateway / irma server)",
		Metric: "gateway's CPU per login over irma server's, per round", Unit: "ratio", Samples: ratios, Goal: 0.8, AtMost: true,
		Figures: map[string]float64{"gateway_ms_per_login": benchreport.Median(gwMs), "irma_server_ms_per_login": benchreport.Median(irmaMs)},
		Notes:   fmt.Sprintf("%d rounds of %d logins each, alternating; 2048-bit issuer keys; CPU = utime+stime of each process (/proc/<pid>/stat)", rounds, logins)}
	if file := os.Getenv("IRMA_BENCH_PROFILE"); file != "" {
		addBreakdown(b, &res, targets[0], adminAddr, file)
	}
	b.ReportMetric(benchreport.Median(ratios), "ratio")
	b.ReportMetric(res.Figures["gateway_ms_per_login"], "gateway-ms/login")
	b.ReportMetric(res.Figures["irma_server_ms_per_login"], "irmaserver-ms/login")
	if _, err := benchreport.Write(res); err != nil {
		b.Fatal(err)
	}
}

// loginTarget is a server under measurement: its process, and one login.
type loginTarget struct {
	name  string
	pid   int
	login func(ctx context.Context) error
}

// run makes n logins, one after the other, and returns the CPU that the
// target's process spent per login, in ms.
func (t loginTarget) run(n int) (float64, error) {
	before, err := processCPU(t.pid)
	if err != nil {
		return 0, err
	}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := t.login(ctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("%s: login %d: %w", t.name, i+1, err)
		}
	}
	after, err := processCPU(t.pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(time.Millisecond) / float64(n), nil
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on Linux
// whatever the kernel's own tick rate.
const clockTicks = 100

// processCPU returns the CPU time that process pid has spent, in user and
// kernel mode, over all its threads.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after it. utime and stime are fields 14 and 15 of the line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of process %d: short stat line", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu of process %d: stat line: %q %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// gatewayLogin logs in at the gateway at base, as a script would: the JSON
// 401 with the session, the wallet, and the return with the pending cookie.
func gatewayLogin(ctx context.Context, w *wallet.Wallet, base string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sess, err := wallet.FetchSession(ctx, c, base+"/members/")
	if err != nil {
		return err
	}
	if _, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/members/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	body, status, err := do(c, req)
	if err != nil || status != http.StatusOK || strings.TrimSpace(body) != "members" {
		return fmt.Errorf("the return: %d %q %v", status, body, err)
	}
	return nil
}

// irmaServerLogin runs the same disclosure at the irma server at base, over
// its requestor API.
func irmaServerLogin(ctx context.Context, w *wallet.Wallet, base string) error {
	var started struct {
		SessionPtr irma.Qr `json:"sessionPtr"`
		Token      string  `json:"token"`
	}
	err := postJSON(ctx, base+"/session", `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`, &started)
	if err != nil {
		return err
	}
	if _, err := w.Run(ctx, &started.SessionPtr, wallet.Accept); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/session/"+started.Token+"/result", nil)
	if err != nil {
		return err
	}
	body, status, err := do(http.DefaultClient, req)
	var res struct{ Status, ProofStatus string }
	if err != nil || status != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil || res.Status != "DONE" || res.ProofStatus != "VALID" {
		return fmt.Errorf("the result: %d %v", status, err)
	}
	return nil
}

// do sends req and returns the body and status of the answer.
func do(c *http.Client, req *http.Request) (string, int, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode, err
}

// postJSON posts body to url and decodes the JSON answer into v.
func postJSON(ctx context.Context, url, body string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	got, status, err := do(http.DefaultClient, req)
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("POST %s: %d %v", url, status, err)
	}
	return json.Unmarshal([]byte(got), v)
}

// issueAtIRMAServer gives w the person credential, from the irma server.
func issueAtIRMAServer(b *testing.B, w *wallet.Wallet, base string, scheme *demoscheme.Scheme) {
	b.Helper()
	var started struct {
		SessionPtr irma.Qr `json:"sessionPtr"`
	}
	req := fmt.Sprintf(`{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":%q,
		"attributes":{"fullname":"Alice Demo","email":"alice@example.com","over18":"yes"}}]}`, scheme.Credential(demoscheme.CredentialPerson))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := postJSON(ctx, base+"/session", req, &started); err != nil {
		b.Fatal(err)
	}
	if res, err := w.Run(ctx, &started.SessionPtr, wallet.Accept); err != nil {
		b.Fatalf("issuing: %+v, %v", res, err)
	}
}

// startIRMAServer runs `yivi irma server` (irmago v1.3.0) on scheme, in
// development mode, without requestor authentication, scheme updates or
// TLS, on a loopback port: it returns its URL and process id.
func startIRMAServer(b *testing.B, scheme *demoscheme.Scheme) (string, int) {
	b.Helper()
	addr := freeAddr(b)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(yiviBinary(b), "irma", "server", "--no-tls", "--no-auth",
		"--schemes-path", scheme.SchemesPath, "--privkeys", scheme.PrivateKeysPath, "--schemes-update", "0",
		"--listen-addr", "127.0.0.1", "--port", port, "--url", "http://"+addr,
		// The demo scheme's revocable type: irma server starts only when it
		// knows where its revocation server is (no login here needs it).
		"--revocation-settings", `{"caddy-demo.gateway.staff":{"revocation_server_url":"https://127.0.0.1:1/"}}`)
	cmd.Dir = b.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	startProcess(b, "irma server", cmd, regexp.MustCompile(`Server listening at (\S+)`))
	return "http://" + addr, cmd.Process.Pid
}

// loginCostConfig is the gateway's Caddyfile: one policy, a route that it
// protects, and the admin endpoint at adminAddr, for profiles.
func loginCostConfig(base, adminAddr string, scheme *demoscheme.Scheme, storage string) string {
	return fmt.Sprintf(`{
	admin %[1]s
	storage file_system %[2]s
	irma {
		url %[3]s/irma/
		schemes_path %[4]s
		issuer_private_keys_path %[5]s
		timestamp_key_file %[6]s
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email
		}
		# One client makes every login here.
		session_limits {
			per_client 1000000
		}
	}
}
%[3]s {
	bind fd/3
	irma_auth /members/* members
	respond /members/* "members"
}
`, adminAddr, storage, base, scheme.SchemesPath, scheme.PrivateKeysPath, scheme.TimestampKeyFile)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// benchSchemeDir is where the scheme with 2048-bit keys is kept across runs.
func benchSchemeDir(b *testing.B) string {
	if dir := os.Getenv("IRMA_BENCH_SCHEME_DIR"); dir != "" {
		return dir
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatalf("no directory for the scheme (set IRMA_BENCH_SCHEME_DIR): %v", err)
	}
	return filepath.Join(cache, "caddy-irma", "bench-scheme-2048")
}

// envInt reads a positive whole number from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}
