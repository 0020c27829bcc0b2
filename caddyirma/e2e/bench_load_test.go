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
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
)

// BenchmarkLoadRatio measures the throughput of an authenticated request
// through irma_auth against the same request through plain reverse_proxy,
// with wrk, in one Caddy process of its own that serves both: the site of
// the gateway (irma_auth, then reverse_proxy) and a site with reverse_proxy
// alone, to the same trivial upstream. It logs in once with the real
// wallet, then runs wrk against the two in alternating runs, so that what
// else the machine does falls on both alike, and reports the median of the
// ratios of the pairs (the goal: at least 0.95):
//
//	go test -run '^$' -bench BenchmarkLoadRatio -benchtime 1x ./caddyirma/e2e
//
// The environment sets the run: IRMA_BENCH_PAIRS (default 7),
// IRMA_BENCH_SECONDS per run (3), IRMA_BENCH_CONNECTIONS (32) and
// IRMA_BENCH_THREADS (2) of wrk; IRMA_BENCH_PROFILE, a directory, gets a
// CPU profile of the Caddy process under each route's load
// (load-irma_auth.prof, load-reverse_proxy.prof), taken after the pairs;
// IRMA_BENCH_OUT the result (see package benchreport).
func BenchmarkLoadRatio(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatalf("wrk is needed for the load run (apt-get install wrk; .ci/run does): %v", err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	upstream := strings.TrimPrefix(up.URL, "http://")
	_, config, cookie := loggedInGateway(b, "", fmt.Sprintf("irma_auth /members/* members\n\treverse_proxy %s", upstream))
	gw, plain, admin, pid := loadGateway(b, config, upstream)

	pairs, secs := benchEnv(b, "IRMA_BENCH_PAIRS", 7), benchEnv(b, "IRMA_BENCH_SECONDS", 3)
	run := func(base string, secs int) loadRun {
		return runLoad(b, wrk, pid, base+"/members/page", cookie.Name+"="+cookie.Value, secs)
	}
	run(gw, 1) // warm up both: connections, the JWT, the cache of logins
	run(plain, 1)
	var ratios, authRPS, plainRPS, authCPU, plainCPU []float64
	for i := range pairs {
		var a, p loadRun
		if i%2 == 0 { // alternate which goes first, too
			p, a = run(plain, secs), run(gw, secs)
		} else {
			a, p = run(gw, secs), run(plain, secs)
		}
		authRPS, plainRPS, ratios = append(authRPS, a.rps), append(plainRPS, p.rps), append(ratios, a.rps/p.rps)
		authCPU, plainCPU = append(authCPU, a.cpu), append(plainCPU, p.cpu)
		b.Logf("pair %d: irma_auth %.0f/s (Caddy %.1f µs CPU a request), reverse_proxy %.0f/s (%.1f µs), ratio %.3f",
			i+1, a.rps, a.cpu, p.rps, p.cpu, a.rps/p.rps)
	}
	if dir := os.Getenv("IRMA_BENCH_PROFILE"); dir != "" {
		profileLoad(b, admin, filepath.Join(dir, "load-irma_auth.prof"), func() loadRun { return run(gw, secs) })
		profileLoad(b, admin, filepath.Join(dir, "load-reverse_proxy.prof"), func() loadRun { return run(plain, secs) })
	}

	median := benchreport.Median(ratios)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median, "ratio")
	b.ReportMetric(benchreport.Median(authRPS), "irma_auth_req/s")
	b.ReportMetric(benchreport.Median(plainRPS), "reverse_proxy_req/s")
	b.ReportMetric(benchreport.Median(authCPU), "irma_auth_cpu_µs/req")
	b.ReportMetric(benchreport.Median(plainCPU), "reverse_proxy_cpu_µs/req")
	path, err := benchreport.Write(benchreport.Result{
		Name: "load", Title: "authenticated request (irma_auth vs reverse_proxy)",
		Metric: "throughput of irma_auth / reverse_proxy", Unit: "ratio", Samples: ratios, Goal: 0.95,
		Figures: map[string]float64{"irma_auth_rps": benchreport.Median(authRPS), "reverse_proxy_rps": benchreport.Median(plainRPS),
			"irma_auth_caddy_cpu_us": benchreport.Median(authCPU), "reverse_proxy_caddy_cpu_us": benchreport.Median(plainCPU)},
		Notes: fmt.Sprintf("wrk -t%d -c%d, %d alternating pairs of %ds runs against one Caddy process serving "+
			"irma_auth + reverse_proxy and plain reverse_proxy to the same upstream; a logged-in GET with the session cookie on both; %d CPUs; "+
			"the *_caddy_cpu_us figures are the Caddy process's CPU time per request (from /proc), which other load on the machine moves less",
			benchEnv(b, "IRMA_BENCH_THREADS", 2), benchEnv(b, "IRMA_BENCH_CONNECTIONS", 32), pairs, secs, runtime.NumCPU()),
	})
	if err != nil {
		b.Fatal(err)
	}
	if path != "" {
		b.Logf("wrote %s", path)
	}
}

// loadGateway runs the gateway of config in a Caddy process of its own
// (same keys and storage, so the session cookie opens there too), with a
// second site of plain reverse_proxy to upstream and the admin endpoint on
// (for its pprof). It returns the bases of the two sites, the admin's, and
// the process's id.
func loadGateway(b *testing.B, config, upstream string) (gw, plain, admin string, pid int) {
	lns := make([]net.Listener, 3)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[i] = ln
	}
	admin = lns[2].Addr().String()
	lns[2].Close() // the admin endpoint binds its own address
	site := regexp.MustCompile(`(?m)^http://127\.0\.0\.1:\d+ \{\n\tbind fd/\d+$`)
	if n := len(site.FindAllString(config, -1)); n != 1 {
		b.Fatalf("the site's address and bind line are in the config %d times, want 1", n)
	}
	config = site.ReplaceAllString(config, "http://"+lns[0].Addr().String()+" {\n\tbind fd/3")
	config = strings.Replace(config, "\tadmin off\n", "\tadmin "+admin+"\n\tpersist_config off\n", 1)
	config += fmt.Sprintf("\nhttp://%s {\n\tbind fd/4\n\treverse_proxy %s\n}\n", lns[1].Addr(), upstream)
	c := startCaddyOnAll(b, "the gateway under load", lns[:2], config)
	return c.base, "http://" + lns[1].Addr().String(), admin, c.cmd.Process.Pid
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
