package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
)

// BenchmarkLoadRatio measures the throughput of an authenticated request
// through irma_auth against the same request through plain reverse_proxy,
// with wrk, in one Caddy process of its own that serves: the site of the
// gateway (irma_auth, then reverse_proxy), a site with reverse_proxy alone,
// and a site whose reverse_proxy sends upstream what the gateway's does (an
// identity header of the same length instead of the session cookie), all to
// the same trivial upstream. It logs in once with the real wallet, then
// runs wrk against the three in turn, in a rotating order, so that what
// else the machine does falls on all alike, and reports the medians of the
// ratios of each round: against plain reverse_proxy (the goal: at least
// 0.95), and against reverse_proxy with the identity header, which leaves
// out the cost of carrying the header, and so measures the gateway's own
// work:
//
//	go test -run '^$' -bench BenchmarkLoadRatio -benchtime 1x ./caddyirma/e2e
//
// The environment sets the run: IRMA_BENCH_PAIRS, rounds (default 7),
// IRMA_BENCH_SECONDS per run (3), IRMA_BENCH_CONNECTIONS (32) and
// IRMA_BENCH_THREADS (2) of wrk; IRMA_BENCH_PROFILE, a directory, gets a
// CPU profile of the Caddy process under each route's load
// (load-irma_auth.prof, load-reverse_proxy.prof), taken after the rounds;
// IRMA_BENCH_OUT the results "load" and "load-header" (package
// benchreport).
func BenchmarkLoadRatio(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatalf("wrk is needed for the load run (apt-get install wrk; .ci/run does): %v", err)
	}
	var identityLen atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Irma-Identity"); id != "" {
			identityLen.Store(int64(len(id)))
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	upstream := strings.TrimPrefix(up.URL, "http://")
	_, config, cookie := loggedInGateway(b, "", fmt.Sprintf("irma_auth /members/* members\n\treverse_proxy %s", upstream))
	if identityLen.Load() == 0 {
		b.Fatal("the upstream saw no identity header after the login")
	}
	bases, admin, pid := loadGateway(b, config, upstream, int(identityLen.Load()))
	gw, plain, header := bases[0], bases[1], bases[2]

	pairs, secs := benchEnv(b, "IRMA_BENCH_PAIRS", 7), benchEnv(b, "IRMA_BENCH_SECONDS", 3)
	run := func(base string, secs int) loadRun {
		return runLoad(b, wrk, pid, base+"/members/page", cookie.Name+"="+cookie.Value, secs)
	}
	for _, base := range bases { // warm up: connections, the JWT, the cache of logins
		run(base, 1)
	}
	var ratios, headerRatios, authRPS, plainRPS, authCPU, plainCPU []float64
	for i := range pairs {
		runs := map[string]loadRun{}
		for k := range bases { // a rotating order, so none goes first always
			base := bases[(i+k)%len(bases)]
			runs[base] = run(base, secs)
		}
		a, p, h := runs[gw], runs[plain], runs[header]
		ratios, headerRatios = append(ratios, a.rps/p.rps), append(headerRatios, a.rps/h.rps)
		authRPS, plainRPS = append(authRPS, a.rps), append(plainRPS, p.rps)
		authCPU, plainCPU = append(authCPU, a.cpu), append(plainCPU, p.cpu)
		b.Logf("round %d: irma_auth %.0f/s (Caddy %.1f µs CPU a request), reverse_proxy %.0f/s (%.1f µs), with the header %.0f/s (%.1f µs): ratios %.3f, %.3f",
			i+1, a.rps, a.cpu, p.rps, p.cpu, h.rps, h.cpu, a.rps/p.rps, a.rps/h.rps)
	}
	if dir := os.Getenv("IRMA_BENCH_PROFILE"); dir != "" {
		profileLoad(b, admin, filepath.Join(dir, "load-irma_auth.prof"), func() loadRun { return run(gw, secs) })
		profileLoad(b, admin, filepath.Join(dir, "load-reverse_proxy.prof"), func() loadRun { return run(plain, secs) })
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchreport.Median(ratios), "ratio")
	b.ReportMetric(benchreport.Median(headerRatios), "ratio-vs-header")
	b.ReportMetric(benchreport.Median(authRPS), "irma_auth_req/s")
	b.ReportMetric(benchreport.Median(plainRPS), "reverse_proxy_req/s")
	writeLoadResults(b, ratios, headerRatios, map[string]float64{
		"irma_auth_rps": benchreport.Median(authRPS), "reverse_proxy_rps": benchreport.Median(plainRPS),
		"irma_auth_caddy_cpu_us": benchreport.Median(authCPU), "reverse_proxy_caddy_cpu_us": benchreport.Median(plainCPU),
		"identity_header_bytes": float64(identityLen.Load())}, pairs, secs)
}

// writeLoadResults writes the load run's two results (with IRMA_BENCH_OUT).
func writeLoadResults(b *testing.B, ratios, headerRatios []float64, figures map[string]float64, rounds, secs int) {
	how := fmt.Sprintf("wrk -t%d -c%d, %d rounds of %ds runs against one Caddy process with three sites to the same upstream, "+
		"in a rotating order; a logged-in GET with the session cookie; %d CPUs; the *_caddy_cpu_us figures are the Caddy "+
		"process's CPU time per request (from /proc)",
		benchEnv(b, "IRMA_BENCH_THREADS", 2), benchEnv(b, "IRMA_BENCH_CONNECTIONS", 32), rounds, secs, runtime.NumCPU())
	for _, r := range []benchreport.Result{
		{Name: "load", Title: "per request: vs reverse_proxy",
			Metric: "throughput of irma_auth / plain reverse_proxy", Unit: "ratio", Samples: ratios, Goal: 0.95, Figures: figures, Notes: how},
		{Name: "load-header", Title: "per request: vs proxy + header",
			Metric: "irma_auth / reverse_proxy sending the same identity header", Unit: "ratio", Samples: headerRatios, Goal: 0.95, Notes: how},
	} {
		path, err := benchreport.Write(r)
		if err != nil {
			b.Fatal(err)
		}
		if path != "" {
			b.Logf("wrote %s", path)
		}
	}
}

// loadGateway runs the gateway of config in a Caddy process of its own
// (same keys and storage, so the session cookie opens there too), with two
// more sites to upstream: plain reverse_proxy, and reverse_proxy that sends
// an identity header of headerLen bytes instead of the cookie, as the
// gateway does; and with the admin endpoint on (for its pprof). It returns
// the bases of the three sites, the admin's, and the process's id.
func loadGateway(b *testing.B, config, upstream string, headerLen int) (bases []string, admin string, pid int) {
	lns := make([]net.Listener, 4)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[i] = ln
	}
	admin = lns[3].Addr().String()
	lns[3].Close() // the admin endpoint binds its own address
	site := regexp.MustCompile(`(?m)^http://127\.0\.0\.1:\d+ \{\n\tbind fd/\d+$`)
	if n := len(site.FindAllString(config, -1)); n != 1 {
		b.Fatalf("the site's address and bind line are in the config %d times, want 1", n)
	}
	config = site.ReplaceAllString(config, "http://"+lns[0].Addr().String()+" {\n\tbind fd/3")
	config = strings.Replace(config, "\tadmin off\n", "\tadmin "+admin+"\n\tpersist_config off\n", 1)
	config += fmt.Sprintf("\nhttp://%s {\n\tbind fd/4\n\treverse_proxy %s\n}\n", lns[1].Addr(), upstream)
	config += fmt.Sprintf("\nhttp://%s {\n\tbind fd/5\n\treverse_proxy %s {\n\t\theader_up X-Irma-Identity %s\n\t\theader_up -Cookie\n\t}\n}\n",
		lns[2].Addr(), upstream, strings.Repeat("x", headerLen))
	c := startCaddyOnAll(b, "the gateway under load", lns[:3], config)
	return []string{c.base, "http://" + lns[1].Addr().String(), "http://" + lns[2].Addr().String()}, admin, c.cmd.Process.Pid
}

// loadRun is what one run of wrk measured: requests per second, and the
// CPU time of the Caddy process per request, in µs (0 without /proc).
type loadRun struct{ rps, cpu float64 }

// runLoad runs wrk against url with the cookie for secs seconds, reading
// the CPU time of process pid before and after; any answer but 2xx/3xx (a
// login that did not count) fails the benchmark.
func runLoad(b *testing.B, wrk string, pid int, url, cookie string, secs int) loadRun {
	b.Helper()
	before, _ := processCPU(pid)
	out, err := exec.Command(wrk, "-t", strconv.Itoa(benchEnv(b, "IRMA_BENCH_THREADS", 2)),
		"-c", strconv.Itoa(benchEnv(b, "IRMA_BENCH_CONNECTIONS", 32)), "-d", strconv.Itoa(secs)+"s",
		"-H", "Cookie: "+cookie, url).CombinedOutput()
	after, _ := processCPU(pid)
	spent := after - before
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx or 3xx responses") || strings.Contains(string(out), "Socket errors") {
		b.Fatalf("wrk against %s: not every request passed:\n%s", url, out)
	}
	rps := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	n := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(out)
	if rps == nil || n == nil {
		b.Fatalf("wrk said no Requests/sec or requests:\n%s", out)
	}
	var run loadRun
	run.rps, _ = strconv.ParseFloat(string(rps[1]), 64)
	if requests, _ := strconv.ParseFloat(string(n[1]), 64); requests > 0 && spent > 0 {
		run.cpu = float64(spent.Microseconds()) / requests
	}
	return run
}

// profileLoad writes to file a CPU profile of the Caddy process whose admin
// endpoint is admin, taken while load runs.
func profileLoad(b *testing.B, admin, file string, load func() loadRun) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	secs := benchEnv(b, "IRMA_BENCH_SECONDS", 3)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the profile starts before the load
	run := load()
	if err := <-done; err != nil {
		b.Fatalf("profile %s: %v", file, err)
	}
	b.Logf("wrote %s: %.0f requests a second, %.1f µs CPU of Caddy a request", file, run.rps, run.cpu)
}

// benchEnv is the whole number that the environment variable name holds,
// or def.
func benchEnv(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number of at least 1", name, v)
	}
	return n
}
