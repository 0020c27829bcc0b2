//go:build cgo

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"
)

// startServer starts an IRMA server over irmago's irma-demo test scheme and returns it with a copy of the scheme.
func startServer(t *testing.T) (*irmaserver.Server, string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/privacybydesign/irmago").Output()
	if err != nil {
		t.Fatalf("locating irmago's test scheme in the module cache (go list -m): %v", err)
	}
	testdata := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	tmp := t.TempDir()
	schemes := filepath.Join(tmp, "schemes")
	keys := filepath.Join(tmp, "keys")
	copyTree(t, filepath.Join(testdata, "irma_configuration", "irma-demo"), filepath.Join(schemes, "irma-demo"), "")
	copyTree(t, filepath.Join(testdata, "privatekeys"), keys, "irma-demo.")

	var handler http.Handler = http.NotFoundHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv, err := irmaserver.New(&server.Configuration{
		URL: ts.URL + "/irma/", SchemesPath: schemes, IssuerPrivateKeysPath: keys, DisableSchemesUpdate: true, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	handler = http.StripPrefix("/irma", srv.HandlerFunc())
	return srv, schemes
}

func copyTree(t *testing.T, src, dst, prefix string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !strings.HasPrefix(d.Name(), prefix) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type cli struct {
	t              *testing.T
	dir, schemes   string
	code           int
	stdout, stderr string
}

func (c *cli) run(stdin string, args ...string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--dir", c.dir, "--schemes", c.schemes}, args...)
	c.code = run(args, strings.NewReader(stdin), &out, &errOut)
	c.stdout, c.stderr = out.String(), errOut.String()
	c.t.Logf("irma-wallet %s: exit %d\n%s%s", strings.Join(args, " "), c.code, c.stdout, c.stderr)
}

func (c *cli) want(code int, stdout, stderr string) {
	c.t.Helper()
	if c.code != code || !strings.Contains(c.stdout, stdout) || !strings.Contains(c.stderr, stderr) {
		c.t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", c.code, c.stdout, c.stderr, code, stdout, stderr)
	}
}

func TestCLI(t *testing.T) {
	srv, schemes := startServer(t)
	c := &cli{t: t, dir: filepath.Join(t.TempDir(), "wallet"), schemes: schemes}
	pointer := func(request any) (string, irma.RequestorToken) {
		qr, token, _, err := srv.StartSession(request, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(qr)
		return string(data), token
	}
	studentID := irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")

	c.run("", "list")
	c.want(0, "No credentials", "")

	ptr, _ := pointer(irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: irma.NewCredentialTypeIdentifier("irma-demo.RU.studentCard"),
		Attributes:       map[string]string{"university": "Radboud", "studentCardNumber": "31415927", "studentID": "s1234567", "level": "42"},
	}}))
	c.run("", "session", "--yes", ptr)
	c.want(0, "Done: received 1 credential.", "")
	if !strings.Contains(c.stdout, "wants to issue you 1 credential") || !strings.Contains(c.stdout, "Student number: s1234567") {
		t.Fatal("issuance not described")
	}

	c.run("", "list")
	c.want(0, "Student number: s1234567", "")

	// A protected page answering 401 with the pointer, as the gateway does; consent typed on stdin.
	var token irma.RequestorToken
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p string
		p, token = pointer(irma.NewDisclosureRequest(studentID))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"sessionPtr":`+p+`}`)
	}))
	defer page.Close()
	c.run("y\n", "session", page.URL+"/protected")
	c.want(0, "Done: disclosed 1 attribute.", "")
	if !strings.Contains(c.stdout, "Proceed? [y/N]") || !strings.Contains(c.stdout, "Student number: s1234567  [irma-demo.RU.studentCard.studentID]") {
		t.Fatal("disclosure not described")
	}
	if res, _ := srv.GetSessionResult(token); res.Status != irma.ServerStatusDone || res.ProofStatus != irma.ProofStatusValid {
		t.Fatalf("server result %+v", res)
	}

	for _, answer := range []string{"n\n", "\n", ""} {
		c.run(answer, "session", page.URL)
		c.want(1, "Refused", "")
		if res, _ := srv.GetSessionResult(token); res.Status != irma.ServerStatusCancelled {
			t.Fatalf("server status %s", res.Status)
		}
	}

	ptr, _ = pointer(irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.MijnOverheid.fullName.firstname")))
	c.run("", "session", "--yes", ptr)
	c.want(1, "", "irma-wallet: the wallet lacks credentials the request needs: irma-demo.MijnOverheid.fullName (firstname)")

	ptr, _ = pointer(irma.NewDisclosureRequest(studentID))
	c.run(ptr, "session", "-", "--yes")
	c.want(0, "Done: disclosed 1 attribute.", "")

	c.run("", "session", "--yes", "not a pointer")
	c.want(1, "", "irma-wallet: not a session pointer")

	// Defaults from the environment.
	t.Setenv(envDir, c.dir)
	t.Setenv(envSchemes, c.schemes)
	var out, errOut bytes.Buffer
	if code := run([]string{"list"}, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "s1234567") {
		t.Fatalf("list with defaults from the environment: exit %d, %s%s", code, out.String(), errOut.String())
	}
}

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--help"}, 0, "Usage:", ""},
		{[]string{"session", "-h"}, 0, "POINTER_OR_URL is one of", ""},
		{[]string{"help"}, 0, "IRMA_WALLET_DIR", ""},
		{nil, 2, "", "irma-wallet: no command given (see irma-wallet --help)\n"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"session"}, 2, "", "want one POINTER_OR_URL"},
		{[]string{"session", "a", "b"}, 2, "", "got 2 arguments"},
		{[]string{"session", "--timeout", "0s", "x"}, 2, "", "--timeout must be positive"},
		{[]string{"list", "x"}, 2, "", `unexpected argument "x"`},
		{[]string{"--schemes", "/nonexistent", "list"}, 1, "", "schemes directory /nonexistent does not exist"},
	} {
		var out, errOut bytes.Buffer
		code := run(tt.args, strings.NewReader(""), &out, &errOut)
		if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, code, out.String(), errOut.String())
		}
	}
}

func TestTextNeutralizesBidiAndControls(t *testing.T) {
	for in, want := range map[string]string{
		"I agree":                 "I agree",
		"pay \u202e001\u202c EUR": "pay \ufffd001\ufffd EUR",
		"a\u2066b\u2069c":         "a\ufffdb\ufffdc",
		"zero\u200bwidth":         "zero\ufffdwidth",
		"line\nbreak\x1b[31m":     "linebreak[31m",
	} {
		if got := text(in); got != want {
			t.Errorf("text(%q) = %q, want %q", in, got, want)
		}
	}
}
