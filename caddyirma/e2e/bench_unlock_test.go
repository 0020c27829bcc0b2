package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// BenchmarkUnlock measures how soon a visitor's browser moves on once the
// Yivi app has finished: from the gateway's answer to the wallet's last
// request (its proofs) to the upstream's receipt of the browser's request
// for the protected page, in real headless Chromium on the login page,
// which follows the session's statusevents. Each iteration is one login of
// a fresh browser session with the real wallet. With the sessions in
// memory and in a local redis-server:
//
//	go test -run '^$' -bench BenchmarkUnlock -benchtime 30x ./caddyirma/e2e
//
// It reports the median and the 90th percentile, and with IRMA_BENCH_OUT
// set writes the results unlock-memory and unlock-redis (make bench).
func BenchmarkUnlock(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchUnlock(b, "memory", "") })
	b.Run("redis", func(b *testing.B) {
		benchUnlock(b, "redis", fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", testredis.Start(b)))
	})
}

func benchUnlock(b *testing.B, store, irmaStore string) {
	arrived := make(chan time.Time, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Irma-Identity") != "" {
			select {
			case arrived <- time.Now():
			default:
			}
		}
		_, _ = io.WriteString(w, "<!doctype html><title>members</title><p>members only")
	}))
	defer up.Close()
	accessLog := filepath.Join(b.TempDir(), "access.log")
	g := newGateway(b)
	app := g.start(b, `policy members {
			require caddy-demo.gateway.person.email
		}
		session_limits {
			per_client 100000 1m
		}
		`+irmaStore, fmt.Sprintf(`log {
		output file %s
		format json
	}
	irma_auth /members/* members
	reverse_proxy %s`, accessLog, strings.TrimPrefix(up.URL, "http://")))

	w, err := wallet.Open(wallet.Options{Dir: b.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	(&authSite{base: g.base, scheme: g.scheme, app: app}).issue(b, w, "alice@example.com", "yes")
	browser := newChromium(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	var unlocks []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		wait, cancelWait := context.WithTimeout(browser, 20*time.Second)
		err := chromedp.Run(wait, network.ClearBrowserCookies(),
			chromedp.Navigate(fmt.Sprintf("%s/members/p%d", g.base, i)),
			chromedp.WaitVisible(`#open[href^="https://"]`, chromedp.ByQuery))
		cancelWait()
		if err != nil {
			var text string
			_ = chromedp.Run(browser, chromedp.Text("body", &text, chromedp.ByQuery))
			b.Fatalf("login page %d: %v: %s", i, err, text)
		}
		ptr := scanPage(b, browser)
		if res, err := w.Run(ctx, ptr, wallet.Accept); err != nil {
			b.Fatalf("wallet, login %d: %+v, %v", i, res, err)
		}
		var at time.Time
		select {
		case at = <-arrived:
		case <-time.After(time.Minute):
			b.Fatalf("login %d: the browser never asked for the protected page", i)
		}
		answered := lastProofsAnswer(b, accessLog)
		unlocks = append(unlocks, float64(at.Sub(answered).Microseconds())/1000)
		// The page has landed (and its cookie is stored) before the next
		// login clears the cookies.
		if err := chromedp.Run(browser, chromedp.WaitVisible(`//p[contains(., "members only")]`, chromedp.BySearch)); err != nil {
			b.Fatalf("login %d: the browser did not land on the protected page: %v", i, err)
		}
	}
	b.StopTimer()
	median, p90 := benchreport.Median(unlocks), benchreport.Percentile(unlocks, 0.9)
	b.ReportMetric(median, "ms-median")
	b.ReportMetric(p90, "ms-p90")
	path, err := benchreport.Write(benchreport.Result{
		Name:    "unlock-" + store,
		Title:   "unlock (" + store + " store)",
		Metric:  "ms from the gateway's answer to the wallet's proofs to the upstream's receipt of the browser's request",
		Unit:    "ms",
		Samples: unlocks,
		Goal:    100,
		AtMost:  true,
		Figures: map[string]float64{"p90_ms": p90, "logins": float64(len(unlocks))},
		Notes:   "headless Chromium on the gateway's login page (statusevents), the development wallet, over loopback",
	})
	if err != nil {
		b.Fatal(err)
	} else if path != "" {
		b.Logf("wrote %s", path)
	}
}

// lastProofsAnswer returns when the gateway answered the last POST of
// proofs in its access log: the entry's time, which Caddy takes when the
// response is written.
func lastProofsAnswer(t testing.TB, path string) time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			TS      float64 `json:"ts"`
			Request struct {
				Method string `json:"method"`
				URI    string `json:"uri"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Request.Method != http.MethodPost || !strings.HasSuffix(e.Request.URI, "/proofs") {
			continue
		}
		sec, frac := math.Modf(e.TS)
		last = time.Unix(int64(sec), int64(frac*1e9))
	}
	if last.IsZero() {
		t.Fatal("no POST of proofs in the access log")
	}
	return last
}
