package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Alice of the logs test: values that appear nowhere else.
const (
	logsName  = "Alice Logname-7f3a"
	logsEmail = "alice.logs-7f3a@example.com"
)

// logKit is the logs test's site, Alice's login, and the two logs: the
// server's (the gateway's, irmago's and Caddy's own lines, at Caddy's
// default level INFO) and the site's access log.
type logKit struct {
	s              *catalogueSite
	alice          string // the Cookie line of Alice's login
	server, access string // the files
}

// logCase makes requests that carry or produce secrets (with the case's
// id as their X-Case), and returns the secrets: none may appear in the
// logs. A control returns what must appear instead.
type logCase struct {
	name string
	do   func(t *testing.T, k *logKit, id string) []string
	in   logs
	// present: a control; what do returns must be in the logs.
	present bool
}

// logs are the logs that a case looks in.
type logs int

const (
	bothLogs logs = iota
	// serverLog: the server's log only. The client token of a session is
	// in the URLs of the IRMA protocol, and so in every access log line of
	// the Yivi app's requests.
	serverLog
	accessLog
)

// catalogueLogCases: the session and pending cookies, the identity JWT,
// the frontend authorization, the requestor and client tokens, attribute
// values, messages to sign and a login's id, wherever a request carries
// them or the gateway answers with them.
func catalogueLogCases() []logCase {
	get := func(k *logKit, t *testing.T, id, target string, lines ...string) (*http.Response, string) {
		return k.s.send(t, id, wireRequest{method: "GET", target: target, lines: append([]string{"Accept: application/json"}, lines...)})
	}
	return []logCase{
		{name: "session cookie/at a protected route", do: func(t *testing.T, k *logKit, id string) []string {
			get(k, t, id, "/members/x", k.alice)
			return []string{strings.TrimPrefix(k.alice, "Cookie: ")}
		}},
		{name: "session cookie/at an open route", do: func(t *testing.T, k *logKit, id string) []string {
			get(k, t, id, "/open/x", k.alice)
			return []string{strings.TrimPrefix(k.alice, "Cookie: ")}
		}},
		{name: "session cookie/at a refused logout", do: func(t *testing.T, k *logKit, id string) []string {
			k.s.send(t, id, wireRequest{method: "POST", target: "/irma/logout", lines: []string{"Origin: https://evil.example", k.alice}})
			return []string{strings.TrimPrefix(k.alice, "Cookie: ")}
		}},
		{name: "identity JWT/answered by forward auth", do: func(t *testing.T, k *logKit, id string) []string {
			resp, _ := get(k, t, id, "/irma/auth?policy=members", k.alice)
			return jwtSecrets(t, resp.Header.Get("X-Irma-Identity"))
		}},
		{name: "identity JWT/sent to the upstream", do: func(t *testing.T, k *logKit, id string) []string {
			get(k, t, id, "/members/x", k.alice)
			return jwtSecrets(t, k.s.up.one(t, id).header.Get("X-Irma-Identity"))
		}},
		{name: "attribute values/in plain headers to the upstream", do: func(t *testing.T, k *logKit, id string) []string {
			get(k, t, id, "/members/x", k.alice)
			return []string{logsName, logsEmail}
		}},
		{name: "pending cookie/and the requestor token in it, set by a 401", do: func(t *testing.T, k *logKit, id string) []string {
			resp, _ := get(k, t, id, "/members/x")
			return k.pendingSecrets(t, resp)
		}},
		{name: "pending cookie/presented back", do: func(t *testing.T, k *logKit, id string) []string {
			resp, _ := get(k, t, k.s.nextCase(), "/adults/x")
			c := cookieWithPrefix(resp, "irma_session_pending_")
			if c == nil {
				t.Fatal("no pending cookie")
			}
			get(k, t, id, "/adults/x", "Cookie: "+c.Name+"="+c.Value)
			return k.pendingSecrets(t, resp)
		}},
		{name: "frontend authorization/of a page that follows its session", do: func(t *testing.T, k *logKit, id string) []string {
			_, body := get(k, t, k.s.nextCase(), "/members/x")
			info := parseInfo(t, body)
			get(k, t, id, info.Frontend.StatusURL, "Authorization: "+string(info.Frontend.Authorization))
			return []string{string(info.Frontend.Authorization)}
		}},
		{name: "client token/in irmago's errors", in: serverLog, do: func(t *testing.T, k *logKit, id string) []string {
			_, body := get(k, t, k.s.nextCase(), "/members/x")
			info := parseInfo(t, body)
			get(k, t, id, info.Frontend.StatusURL, "Authorization: wrong")
			k.s.send(t, id, wireRequest{method: "POST", target: strings.TrimSuffix(info.Frontend.StatusURL, "/frontend/status") + "/proofs", body: "{garbage"})
			u, _ := url.Parse(info.SessionPtr.URL)
			return []string{filepath.Base(u.Path)}
		}},
		{name: "message to sign/the body", do: func(t *testing.T, k *logKit, id string) []string {
			secret := "I owe " + id + " a fortune."
			k.s.send(t, id, wireRequest{method: "POST", target: "/sign/body", body: secret, lines: []string{"Content-Type: text/plain"}})
			return []string{secret}
		}},
		{name: "message to sign/a form field", do: func(t *testing.T, k *logKit, id string) []string {
			secret := "I owe " + id + " a form."
			k.s.send(t, id, wireRequest{method: "POST", target: "/sign/form", body: url.Values{"message": {secret}}.Encode(),
				lines: []string{"Content-Type: application/x-www-form-urlencoded"}})
			return []string{secret}
		}},
		{name: "message to sign/in a signature to verify", do: func(t *testing.T, k *logKit, id string) []string {
			secret := "signed by " + id
			k.s.send(t, id, wireRequest{method: "POST", target: "/irma/verify", body: `{"message":"` + secret + `","signature":[]}`,
				lines: []string{"Content-Type: application/json"}})
			return []string{secret}
		}},
		{name: "login id/at a logout", do: func(t *testing.T, k *logKit, id string) []string {
			loginID := "login-id-of-" + id
			ck := &cookieKit{t: t, keys: storedCookieKeys(t, k.s.authSite)}
			sealed := ck.seal(ck.keys, "irma_session", aliceLogin(loginID, time.Now().Add(time.Hour)))
			resp, _ := k.s.send(t, id, wireRequest{method: "POST", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin", "Cookie: irma_session=" + sealed}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("the logout: %d", resp.StatusCode)
			}
			return []string{loginID, sealed}
		}},
		// Controls: the logs hold the requests and the gateway's lines, so
		// that what they do not hold was left out.
		{name: "control/the access log holds the request and its headers", in: accessLog, present: true, do: func(t *testing.T, k *logKit, id string) []string {
			get(k, t, id, "/members/x?visible="+id, "X-Visible: header-of-"+id)
			return []string{"visible=" + id, "header-of-" + id}
		}},
		{name: "control/the server log holds the audit lines of the logins", in: serverLog, present: true, do: func(*testing.T, *logKit, string) []string {
			return []string{`"logger":"irma.audit","msg":"decision","decision":"login","outcome":"granted"`}
		}},
	}
}

// jwtSecrets are a JWT and its payload, which holds attribute values.
func jwtSecrets(t *testing.T, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	return []string{token, parts[1]}
}

// pendingSecrets are the pending cookie that resp set, and the requestor
// token sealed in it, which fetches the session's result.
func (k *logKit) pendingSecrets(t *testing.T, resp *http.Response) []string {
	t.Helper()
	c := cookieWithPrefix(resp, "irma_session_pending_")
	if c == nil {
		t.Fatal("no pending cookie")
	}
	var p pendingCookie
	if err := storedCookieKeys(t, k.s.authSite).Open(c.Name, c.Value, &p, time.Now()); err != nil || p.Token == "" {
		t.Fatalf("opening the pending cookie: %v", err)
	}
	return []string{c.Value, p.Token}
}

// TestCatalogueSecretsInLogs: with the server log and an access log on,
// no request and no answer puts a secret in either, at Caddy's default
// level. (At DEBUG, Caddy's reverse_proxy logs the headers it sends
// upstream, the identity JWT among them.)
func TestCatalogueSecretsInLogs(t *testing.T) {
	dir := t.TempDir()
	k := &logKit{server: filepath.Join(dir, "server.log"), access: filepath.Join(dir, "access.log")}
	k.s = newCatalogueSite(t, "log {\n\t\toutput file "+k.server+"\n\t\tformat json\n\t\tlevel INFO\n\t}",
		"log {\n\t\toutput file "+k.access+"\n\t\tformat json\n\t}")
	k.alice = k.s.cookieLine(loggedIn(t.Context(), t, k.s.authSite, k.s.newWalletLevel(t, logsName, logsEmail, "gold")))
	for _, c := range catalogueLogCases() {
		t.Run(c.name, func(t *testing.T) {
			id := k.s.nextCase()
			secrets := c.do(t, k, id)
			// The gateway logs the name of a refused trailer: a line that
			// comes after every line of the case's requests.
			mark := "X-Irma-Logged-After-" + id
			k.s.send(t, k.s.nextCase(), wireRequest{method: "POST", target: "/open/x", body: "hello", lines: []string{"Trailer: " + mark}})
			read := map[string]string{}
			if c.in == bothLogs || c.in == serverLog {
				read["server"] = k.read(t, k.server, mark)
			}
			if c.in == bothLogs || c.in == accessLog {
				// The access log is written when a request is done: wait for
				// the case's (a bound on the wait, not an assertion).
				read["access"] = k.read(t, k.access, `"X-Case":["`+id+`"]`)
			}
			for name, log := range read {
				for _, secret := range secrets {
					if strings.Contains(log, secret) != c.present {
						t.Errorf("the %s log holds %.80q: %v, want %v", name, secret, !c.present, c.present)
					}
				}
			}
		})
	}
}

// read returns the log file, once it holds marker.
func (k *logKit) read(t *testing.T, file, marker string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), marker) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log %s has no line with %q", filepath.Base(file), marker)
		}
	}
}
