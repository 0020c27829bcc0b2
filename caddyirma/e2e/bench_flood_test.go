package e2e

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAnonymousFlood sends anonymous requests to a protected route
// from one client with the default session_limits, as JSON requests and as
// page navigations, and reports how many started a session and how much
// the heap grew per request:
//
//	go test -run '^$' -bench BenchmarkAnonymousFlood -benchtime 10000x ./caddyirma/e2e
func BenchmarkAnonymousFlood(b *testing.B) {
	g := newGateway(b)
	g.start(b, `policy members {
			require caddy-demo.gateway.person.email
		}`, `irma_auth /members/* members
	respond "members"`)
	for _, kind := range []string{"json", "page"} {
		b.Run(kind, func(b *testing.B) {
			c := &http.Client{Timeout: 30 * time.Second}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			sessions := 0
			for b.Loop() {
				if anonymousGet(b, c, g.base+"/members/", kind == "page") {
					sessions++
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(sessions), "sessions")
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heap-B/req")
		})
	}
}

// anonymousGet sends one request without cookies, and says whether it
// started a session: a JSON 401 with a session pointer. A page (401
// without a session), or 429, starts none.
func anonymousGet(b *testing.B, c *http.Client, url string, page bool) bool {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "application/json")
	if page {
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return resp.Header.Get("Content-Type") == "application/json"
	case resp.StatusCode != http.StatusTooManyRequests:
		b.Fatalf("%d", resp.StatusCode)
	}
	return false
}

// BenchmarkHeldSessions measures what the sessions that the IRMA server
// holds cost the process while nothing happens: irmago's memory store
// sweeps every 10 seconds, and copies each session through JSON to see
// whether it expired. It starts the given number of sessions, then
// reports the process's CPU time per second over 30 seconds (three
// sweeps), and the heap per session:
//
//	go test -run '^$' -bench BenchmarkHeldSessions -benchtime 1x ./caddyirma/e2e
func BenchmarkHeldSessions(b *testing.B) {
	for _, n := range []int{30, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g := newGateway(b)
			g.start(b, fmt.Sprintf(`policy members {
			require caddy-demo.gateway.person.email
		}
		session_limits {
			per_client %[1]d
			total %[1]d
		}`, n), `irma_auth /members/* members
	respond "members"`)
			c := &http.Client{Timeout: 30 * time.Second}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range n {
				if !anonymousGet(b, c, g.base+"/members/", false) {
					b.Fatal("a request started no session")
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			const window = 30 * time.Second
			for b.Loop() {
				start := cpuTime(b)
				time.Sleep(window)
				b.ReportMetric(float64((cpuTime(b)-start)/time.Millisecond)/window.Seconds(), "cpu-ms/s")
			}
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heap-B/session")
		})
	}
}

// cpuTime is the CPU time that the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
