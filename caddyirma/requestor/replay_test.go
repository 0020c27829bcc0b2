package requestor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// failingReplays cannot say whether a JWT was used, as a store that is
// down.
type failingReplays struct{}

func (failingReplays) First(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("redis: connection refused")
}

// TestReplays: a requestor JWT starts one session, also on another
// gateway that shares the record of used JWTs; when the record cannot be
// read, the JWT starts none.
func TestReplays(t *testing.T) {
	shared := new(replayCache)
	one, _ := setup(t, func(c *Config) { c.Replays = shared })
	other, _ := setup(t, func(c *Config) { c.Replays = shared })
	down, _ := setup(t, func(c *Config) { c.Replays = failingReplays{} })
	hs := jwt.SigningMethodHS256

	token := requestorJWT(t, hs, hmacKey, "hm", time.Now(), discloseEmail)
	if r := do(t, "POST", one.URL+"/session", textHeaders, token); r.status != 200 {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}
	for name, srv := range map[string]string{"the same gateway": one.URL, "another gateway": other.URL} {
		rerr := checkError(t, do(t, "POST", srv+"/session", textHeaders, token), 403, "UNAUTHORIZED")
		if !strings.Contains(rerr.Message, "jwt already used") {
			t.Errorf("a replay on %s: %+v", name, rerr)
		}
	}
	fresh := requestorJWT(t, hs, hmacKey, "hm", time.Now(), discloseFullname)
	checkError(t, do(t, "POST", down.URL+"/session", textHeaders, fresh), 503, "SERVICE_UNAVAILABLE")
	if r := do(t, "POST", other.URL+"/session", textHeaders, fresh); r.status != 200 {
		t.Errorf("a fresh JWT on another gateway: %d %s", r.status, r.body)
	}
}

// TestAdmitAndTimeout: a session request asks Admit (with its requestor's
// name, "" when unauthenticated) before a session starts, and may not ask
// a longer timeout than MaxTimeout.
func TestAdmitAndTimeout(t *testing.T) {
	var asked []string
	srv, _ := setup(t, func(c *Config) {
		c.AllowUnauthenticated = true
		c.Requestors[""] = Requestor{AuthMethod: AuthNone, Permissions: Permissions{Disclose: []string{"*"}}}
		c.MaxTimeout = 2 * time.Minute
		c.Admit = func(w http.ResponseWriter, r *http.Request, requestor string) bool {
			asked = append(asked, requestor)
			if requestor == "" && len(asked) > 1 {
				w.WriteHeader(http.StatusTooManyRequests)
				return false
			}
			return true
		}
	})
	withTimeout := func(request string, timeout int) string {
		return fmt.Sprintf(`{"timeout":%d,"request":%s}`, timeout, request)
	}
	if r := do(t, "POST", srv.URL+"/session", jsonHeaders(""), withTimeout(discloseEmail, 120)); r.status != 200 {
		t.Fatalf("an unauthenticated session: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", srv.URL+"/session", jsonHeaders(""), discloseEmail); r.status != http.StatusTooManyRequests {
		t.Errorf("an unauthenticated session that Admit refuses: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", srv.URL+"/session", jsonHeaders(testToken), discloseFullname); r.status != 200 {
		t.Errorf("a requestor's session: %d %s", r.status, r.body)
	}
	rerr := checkError(t, do(t, "POST", srv.URL+"/session", jsonHeaders(testToken), withTimeout(discloseFullname, 121)), 400, "INVALID_REQUEST")
	if !strings.Contains(rerr.Message, "at most 120 s") {
		t.Errorf("a timeout beyond the maximum: %+v", rerr)
	}
	if want := []string{"", "", "tok"}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("Admit was asked for %q, want %q", asked, want)
	}
}
