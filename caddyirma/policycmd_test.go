package caddyirma

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// runPolicyCommand runs `caddy irma policy` on a Caddyfile whose .demo/ is
// the test scheme's folder, and returns what it writes, with the error it
// returns as cobra writes it; the scheme's folder reads .demo/ again, the
// Caddyfile's path "Caddyfile".
func runPolicyCommand(t *testing.T, schemeDir, caddyfile string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(caddyfile, ".demo/", schemeDir+"/")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runIrmaCommand(t, append([]string{"policy", "--config", file}, args...)...)
	if err == nil && strings.Contains(out, "Error:") {
		t.Errorf("an error written, but none returned:\n%s", out)
	}
	if err != nil && !strings.Contains(out, "Error: "+err.Error()) {
		t.Errorf("error %q returned, but not written:\n%s", err, out)
	}
	out = strings.ReplaceAll(out, file, "Caddyfile")
	return strings.ReplaceAll(out, schemeDir+"/", ".demo/")
}

// checkGolden compares got with the golden file, or with -update writes it.
func checkGolden(t *testing.T, file, prefix, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(prefix+got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != prefix+got {
		t.Errorf("%s: output differs (run go test -run TestPolicyCommand -update to accept):\n%s", file, got)
	}
}

// TestPolicyCommand keeps the output of `caddy irma policy` stable: for
// every route of Caddyfile.example (testdata/policy/example.*), and for the
// Caddyfiles of testdata/policy/*.policytest, each followed by a line of
// ten dashes and what the command writes, errors included.
func TestPolicyCommand(t *testing.T) {
	scheme := testscheme.New(t, "http://localhost:8080/irma/timestamp")
	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run("Caddyfile.example as "+format, func(t *testing.T) {
			got := runPolicyCommand(t, scheme.Dir, string(example), "--format", format)
			if strings.Contains(got, "Error:") || !strings.Contains(got, "/members/*") {
				t.Errorf("Caddyfile.example:\n%s", got)
			}
			checkGolden(t, filepath.Join("testdata", "policy", "example."+format), "", got)
		})
	}

	eachGoldenCaddyfile(t, filepath.Join("testdata", "policy", "*.policytest"), func(t *testing.T, file, caddyfile, _ string) {
		checkGolden(t, file, caddyfile+"\n----------\n", runPolicyCommand(t, scheme.Dir, caddyfile))
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"policy", "--format", "yaml"},
			{"policy", "--config", filepath.Join(t.TempDir(), "none")},
			{"policy", "extra"},
		} {
			if out, err := runIrmaCommand(t, args...); err == nil {
				t.Errorf("caddy irma %s: no error:\n%s", strings.Join(args, " "), out)
			}
		}
	})
}

// TestReadmePolicyOutput: the README shows what `caddy irma policy` says of
// Caddyfile.example, as the golden file holds it (its first routes).
func TestReadmePolicyOutput(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "policy", "example.text"))
	if err != nil {
		t.Fatal(err)
	}
	// The README shows the routes before /club/*.
	excerpt, _, ok := bytes.Cut(golden, []byte("\nhttp://localhost:8080 /club/*\n"))
	if !ok {
		t.Fatal("no route /club/* in testdata/policy/example.text")
	}
	if !bytes.Contains(readme, []byte("```\n$ bin/caddy irma policy --config Caddyfile.example\n"+string(excerpt)+"\n...\n```\n")) {
		t.Error("the README does not show testdata/policy/example.text as it is up to the route /club/*, after `$ bin/caddy irma policy --config Caddyfile.example`")
	}
}

// TestPolicyCommandAsTheGatewayAsks: the session request that `caddy irma
// policy` shows for a route is the one that the gateway starts when a
// visitor comes to it, as the Yivi app gets it.
func TestPolicyCommandAsTheGatewayAsks(t *testing.T) {
	scheme := testscheme.New(t, "http://localhost:8080/irma/timestamp")
	ln := caddytest.Listen(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", ln.Port)
	caddyfile := fmt.Sprintf(`{
	admin off
	irma {
		url %[1]s/irma/
		schemes_path .demo/schemes
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email {
				label en "Your email address"
				label nl "Uw e-mailadres"
			}
		}
	}
}

%[1]s {
	%[2]s
	irma_auth /a/* members
	irma_auth /b/* {
		require caddy-demo.gateway.person.fullname and caddy-demo.gateway.person.over18=yes or caddy-demo.gateway.membership.level=gold
		require caddy-demo.gateway.membership.club
		pairing off
	}
	respond "ok"
}`, base, ln.Bind())
	out := runPolicyCommand(t, scheme.Dir, caddyfile, "--format", "json")
	var report policyReport
	if err := json.Unmarshal([]byte(out), &report); err != nil || len(report.Routes) != 2 {
		t.Fatalf("caddy irma policy: %v:\n%s", err, out)
	}
	caddytest.Start(t, strings.ReplaceAll(caddyfile, ".demo/", scheme.Dir+"/"))
	for _, r := range report.Routes {
		path := strings.TrimSuffix(r.Paths[0], "*")
		code, body := get(t, base+path, map[string]string{"Accept": "application/json"})
		var info sessionpage.Info
		if err := json.Unmarshal([]byte(body), &info); code != http.StatusUnauthorized || err != nil || info.SessionPtr == nil {
			t.Fatalf("GET %s: %d %.300s", path, code, body)
		}
		// What the Yivi app asks for first.
		code, body = get(t, info.SessionPtr.URL, map[string]string{irma.MinVersionHeader: "2.8", irma.MaxVersionHeader: "2.8", irma.AuthorizationHeader: "policy-test"})
		var asked struct {
			Request json.RawMessage `json:"request"`
		}
		if err := json.Unmarshal([]byte(body), &asked); code != http.StatusOK || err != nil {
			t.Fatalf("GET the session of %s: %d %.300s", path, code, body)
		}
		var shown struct {
			Request json.RawMessage `json:"request"`
		}
		if err := json.Unmarshal(r.SessionRequest, &shown); err != nil {
			t.Fatal(err)
		}
		if jsonField(t, asked.Request, "disclose") == nil {
			t.Fatalf("GET the session of %s: no disclose in %s", path, asked.Request)
		}
		for _, field := range []string{"disclose", "labels"} {
			if got, want := jsonField(t, asked.Request, field), jsonField(t, shown.Request, field); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: the gateway asks %s %v, caddy irma policy shows %v", path, field, got, want)
			}
		}
	}
}

// jsonField returns a field of a JSON object, decoded.
func jsonField(t *testing.T, raw json.RawMessage, field string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return m[field]
}

// TestCheckConfigPoliciesOddJSON: configs of an odd shape give an error or
// a report, never a panic.
func TestCheckConfigPoliciesOddJSON(t *testing.T) {
	for _, cfg := range []string{
		``, `[]`, `{"apps":5}`, `{"apps":{"http":5}}`, `{"apps":{"irma":5}}`,
		`{"apps":{"http":{"servers":{"s":{"listen":[5]}}}}}`,
		`{"apps":{"http":{"servers":{"s":{"listen":["fd/3","unix//x",":x"],"routes":[1,"x",null,{"match":"x","handle":[{"handler":"irma_auth","policy":5}]},{"match":[5,{"not":[5]},{"path":[5]}],"handle":{"routes":[{"handle":[{"handler":"irma_auth"}]}]}}]}}}}}`,
		`{"apps":{"http":{"servers":{"s":{"errors":{"routes":[{"handle":[{"handler":"irma_auth","requirements":[{}]}]}]},"named_routes":{"n":5}}}},"irma":{"url":"http://x/","schemes_path":"/nonexistent"}}}`,
		`{"apps":{"irma":{"url":"http://x/","default_schemes":false}}}`,
	} {
		report, err := checkConfigPolicies([]byte(cfg))
		if err == nil && len(report.Errors) == 0 {
			t.Errorf("%s: no error", cfg)
		}
	}
}
