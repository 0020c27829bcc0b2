package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestMetrics: Caddy's /metrics shows the gateway's metrics after a login,
// a session the wallet refused and a session refused by session_limits;
// and nothing in the scrape is an attribute value, a cookie or a client
// address.
func TestMetrics(t *testing.T) {
	var metricsURL string
	s := newAuthSiteStore(t, metricsServer(t, &metricsURL), "session_limits {\n\t\t\tper_client 3 10m\n\t\t}")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	before := scrape(t, metricsURL)

	// A login (session 1), and the page it opens.
	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/page")
	if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after login: %d", resp.StatusCode)
	}
	// A session the wallet refuses (session 2); looking it up starts
	// another (session 3).
	refuser := newBrowser(t)
	sess, err := wallet.FetchSession(ctx, refuser.c, s.base+"/members/")
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := alice.RunSession(ctx, sess, wallet.Refuse); res.Outcome != wallet.Refused {
		t.Fatalf("refusal: %+v", res)
	}
	if resp, _ := refuser.get(s.base+"/members/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the refusal: %d", resp.StatusCode)
	}
	// A fourth session from the same client: 429.
	if resp, _ := newBrowser(t).get(s.base+"/members/", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("beyond session_limits: %d, want 429", resp.StatusCode)
	}

	after := scrape(t, metricsURL)
	for _, c := range []struct {
		series string
		min    float64
	}{
		{`caddy_irma_sessions_started_total{handler="login",type="disclosing"}`, 3},
		{`caddy_irma_sessions_finished_total{outcome="done",reason="",type="disclosing"}`, 1},
		{`caddy_irma_sessions_finished_total{outcome="cancelled",reason="",type="disclosing"}`, 1},
		{`caddy_irma_session_duration_seconds_count{type="disclosing"}`, 2},
		{`caddy_irma_logins_total{kind="login",policy="members"}`, 1},
		{`caddy_irma_requests_total{decision="allowed",policy="members"}`, 1},
		{`caddy_irma_requests_total{decision="denied",policy="members"}`, 3},
		{`caddy_irma_jwts_minted_total{policy="members"}`, 1},
		{`caddy_irma_sessions_limited_total`, 1},
	} {
		// Deltas: other tests of this process count in the same collectors.
		if got := after.value(c.series) - before.value(c.series); got < c.min {
			t.Errorf("%s went up by %v, want at least %v", c.series, got, c.min)
		}
	}
	// The client address is in Caddy's own series (the upstream of
	// reverse_proxy is on 127.0.0.1 too), never in the gateway's.
	if strings.Contains(after.irma(), "127.0.0.1") {
		t.Errorf("the gateway's metrics hold the client address:\n%s", after.irma())
	}
	for _, secret := range []string{"alice@example.com", sess.Pointer.URL[strings.LastIndex(sess.Pointer.URL, "/")+1:]} {
		if strings.Contains(after.text, secret) {
			t.Errorf("the scrape holds %q", secret)
		}
	}
	base, _ := url.Parse(s.base)
	for _, c := range b.jar.Cookies(base) {
		if strings.Contains(after.text, c.Value) {
			t.Errorf("the scrape holds the value of cookie %s", c.Name)
		}
	}
}

// metricsServer is an extra of newAuthSiteStore: a server of its own for
// Caddy's /metrics, whose URL it sets in url.
func metricsServer(t *testing.T, url *string) func(*authSite) string {
	return func(*authSite) string {
		ln := caddytest.Listen(t)
		*url = "http://" + ln.Addr() + "/metrics"
		return fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\t%s\n\tmetrics /metrics\n}\n", ln.Port, ln.Bind())
	}
}

// checkTourMetrics: the series of the audit tour's sessions and
// decisions (TestAuditLog) went up from before to after, and the scrape
// holds none of its secrets.
func checkTourMetrics(t *testing.T, before, after metricsScrape, secrets []string) {
	t.Helper()
	for _, c := range []struct {
		series string
		min    float64
	}{
		{`caddy_irma_sessions_started_total{handler="irma_issue",type="issuing"}`, 2},
		{`caddy_irma_sessions_started_total{handler="irma_sign",type="signing"}`, 2},
		{`caddy_irma_sessions_started_total{handler="irma_requestor_api",type="disclosing"}`, 2},
		{`caddy_irma_sessions_finished_total{outcome="done",reason="",type="issuing"}`, 1},
		{`caddy_irma_sessions_finished_total{outcome="cancelled",reason="",type="issuing"}`, 1},
		{`caddy_irma_sessions_finished_total{outcome="done",reason="",type="signing"}`, 1},
		{`caddy_irma_sessions_finished_total{outcome="cancelled",reason="",type="signing"}`, 1},
		// Logins and the requestor's sessions: a login, a step-up and one
		// requestor session done; a login cancelled; a login and a
		// requestor session timed out.
		{`caddy_irma_sessions_finished_total{outcome="done",reason="",type="disclosing"}`, 3},
		{`caddy_irma_sessions_finished_total{outcome="cancelled",reason="",type="disclosing"}`, 1},
		{`caddy_irma_sessions_finished_total{outcome="timeout",reason="",type="disclosing"}`, 2},
		// The refused step-up and the refused first login.
		{`caddy_irma_sessions_finished_total{outcome="refused",reason="attributes",type="disclosing"}`, 2},
		{`caddy_irma_session_duration_seconds_count{type="issuing"}`, 2},
		{`caddy_irma_session_duration_seconds_count{type="signing"}`, 2},
		{`caddy_irma_logins_total{kind="login",policy="adults"}`, 1},
		{`caddy_irma_logins_total{kind="step_up",policy="members"}`, 1},
		{`caddy_irma_requests_total{decision="allowed",policy="members"}`, 1},
		{`caddy_irma_requests_total{decision="denied",policy="club"}`, 2},
		{`caddy_irma_jwts_minted_total{policy="members"}`, 1},
		{`caddy_irma_requestor_calls_total{outcome="started",requestor="auditapp"}`, 2},
		{`caddy_irma_requestor_calls_total{outcome="unauthenticated",requestor=""}`, 1},
	} {
		if got := after.value(c.series) - before.value(c.series); got < c.min {
			t.Errorf("%s went up by %v, want at least %v", c.series, got, c.min)
		}
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(after.text, secret) {
			t.Errorf("the scrape holds %.80q", secret)
		}
	}
}

// metricsScrape is one scrape of /metrics in the text format.
type metricsScrape struct {
	text   string
	values map[string]float64 // by series: name{labels}
}

func (m metricsScrape) value(series string) float64 { return m.values[series] }

// irma returns the lines of the gateway's own series.
func (m metricsScrape) irma() string {
	var b strings.Builder
	for _, line := range strings.Split(m.text, "\n") {
		if strings.Contains(line, "caddy_irma_") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func scrape(t *testing.T, url string) metricsScrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %d %s", url, resp.StatusCode, body)
	}
	m := metricsScrape{text: string(body), values: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(m.text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m.values[line[:i]] = v
		}
	}
	return m
}
