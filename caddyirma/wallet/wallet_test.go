//go:build cgo

package wallet_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap/zaptest"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// irmagoTestdata finds irmago's testdata in the module cache, for the version this module builds with.
func irmagoTestdata(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/privacybydesign/irmago").Output()
	if err != nil {
		t.Fatalf("locating irmago's test scheme in the module cache (go list -m): %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("irmago's testdata not found: %v", err)
	}
	return dir
}

// copyTree copies src into dst (files 0600, directories 0700): the module cache is read-only.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testEnv is an IRMA server over irmago's irma-demo test scheme, and the scheme folder for wallets.
type testEnv struct {
	server  *irmaserver.Server
	schemes string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	testdata := irmagoTestdata(t)
	tmp := t.TempDir()
	schemes := filepath.Join(tmp, "schemes")
	copyTree(t, filepath.Join(testdata, "irma_configuration", "irma-demo"), filepath.Join(schemes, "irma-demo"))
	keys := filepath.Join(tmp, "privatekeys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(testdata, "privatekeys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "irma-demo.") {
			data, err := os.ReadFile(filepath.Join(testdata, "privatekeys", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(keys, e.Name()), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	var handler http.Handler = http.NotFoundHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)

	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv, err := irmaserver.New(&server.Configuration{
		URL:                   ts.URL + "/irma/",
		SchemesPath:           schemes,
		IssuerPrivateKeysPath: keys,
		DisableSchemesUpdate:  true,
		Logger:                quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	mux := http.NewServeMux()
	mux.Handle("/irma/", http.StripPrefix("/irma", srv.HandlerFunc()))
	handler = mux
	return &testEnv{server: srv, schemes: schemes}
}

func (e *testEnv) start(t *testing.T, request any) (*irma.Qr, irma.RequestorToken) {
	t.Helper()
	qr, token, _, err := e.server.StartSession(request, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return qr, token
}

func (e *testEnv) result(t *testing.T, token irma.RequestorToken) *server.SessionResult {
	t.Helper()
	res, err := e.server.GetSessionResult(token)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openWallet(t *testing.T, schemes, dir string) *wallet.Wallet {
	t.Helper()
	return openWalletWith(t, wallet.Options{Dir: dir, SchemesPath: schemes})
}

func openWalletWith(t *testing.T, opts wallet.Options) *wallet.Wallet {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	w, err := wallet.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// issue puts a student card in w.
func (e *testEnv) issue(t *testing.T, ctx context.Context, w *wallet.Wallet, creds ...*irma.CredentialRequest) {
	t.Helper()
	if len(creds) == 0 {
		creds = []*irma.CredentialRequest{studentCard}
	}
	qr, _ := e.start(t, irma.NewIssuanceRequest(creds))
	if _, err := w.Run(ctx, qr, yes); err != nil {
		t.Fatal(err)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func disclosedValues(t *testing.T, res *server.SessionResult) map[irma.AttributeTypeIdentifier]string {
	t.Helper()
	if res.Status != irma.ServerStatusDone || res.ProofStatus != irma.ProofStatusValid {
		t.Fatalf("server result: status %s, proof %s", res.Status, res.ProofStatus)
	}
	out := map[irma.AttributeTypeIdentifier]string{}
	for _, con := range res.Disclosed {
		for _, a := range con {
			if a.RawValue != nil {
				out[a.Identifier] = *a.RawValue
			}
		}
	}
	return out
}

var (
	yes = wallet.Accept
	no  = wallet.Refuse
)

var studentCard = &irma.CredentialRequest{
	CredentialTypeID: irma.NewCredentialTypeIdentifier("irma-demo.RU.studentCard"),
	Attributes: map[string]string{
		"university":        "Radboud",
		"studentCardNumber": "31415927",
		"studentID":         "s1234567",
		"level":             "42",
	},
}

func TestSessions(t *testing.T) {
	start := time.Now()
	env := newTestEnv(t)
	t.Logf("server up in %v", time.Since(start))
	start = time.Now()
	w := openWallet(t, env.schemes, t.TempDir())
	t.Logf("wallet open in %v", time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("issuance", func(t *testing.T) {
		start := time.Now()
		qr, token := env.start(t, irma.NewIssuanceRequest([]*irma.CredentialRequest{studentCard}))
		var asked []wallet.Request
		res, err := w.Run(ctx, qr, func(r wallet.Request) bool { asked = append(asked, r); return true })
		t.Logf("issuance took %v", time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != wallet.Success || len(asked) != 1 || asked[0].Type != irma.ActionIssuing || len(asked[0].Issue) != 1 {
			t.Fatalf("result %+v, asked %+v", res, asked)
		}
		if got := env.result(t, token); got.Status != irma.ServerStatusDone {
			t.Fatalf("server status %s", got.Status)
		}
		creds, err := w.Credentials()
		if err != nil {
			t.Fatal(err)
		}
		if len(creds) != 1 || creds[0].Type != studentCard.CredentialTypeID {
			t.Fatalf("credentials %+v", creds)
		}
		t.Logf("%+v", creds[0])
	})

	t.Run("disclosure", func(t *testing.T) {
		start := time.Now()
		attr := irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")
		qr, token := env.start(t, irma.NewDisclosureRequest(attr))
		var asked wallet.Request
		res, err := w.Run(ctx, qr, func(r wallet.Request) bool { asked = r; return true })
		t.Logf("disclosure took %v", time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if len(asked.Disclose) != 1 || len(asked.Disclose[0].Attributes) != 1 || asked.Disclose[0].Attributes[0].Value != "s1234567" {
			t.Fatalf("asked %+v", asked)
		}
		if len(res.Disclosed) != 1 || res.Disclosed[0].Type != attr {
			t.Fatalf("result %+v", res)
		}
		got := env.result(t, token)
		if got.Status != irma.ServerStatusDone || got.ProofStatus != irma.ProofStatusValid {
			t.Fatalf("server result %+v", got)
		}
		if v := got.Disclosed[0][0].RawValue; v == nil || *v != "s1234567" {
			t.Fatalf("disclosed %+v", got.Disclosed)
		}
	})

	t.Run("refused", func(t *testing.T) {
		qr, token := env.start(t, irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")))
		res, err := w.Run(ctx, qr, no)
		if !errors.Is(err, wallet.ErrRefused) || res.Outcome != wallet.Refused {
			t.Fatalf("got %v, %+v", err, res)
		}
		if got := env.result(t, token); got.Status != irma.ServerStatusCancelled {
			t.Fatalf("server status %s", got.Status)
		}
	})

	t.Run("missing", func(t *testing.T) {
		start := time.Now()
		qr, token := env.start(t, irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.MijnOverheid.fullName.firstname")))
		res, err := w.Run(ctx, qr, func(wallet.Request) bool { t.Error("consent asked for an unsatisfiable request"); return true })
		t.Logf("missing took %v: %v", time.Since(start), err)
		var missing *wallet.MissingError
		if !errors.As(err, &missing) || res.Outcome != wallet.Failed {
			t.Fatalf("got %v, %+v", err, res)
		}
		if got := env.result(t, token); got.Status != irma.ServerStatusCancelled {
			t.Fatalf("server status %s", got.Status)
		}
	})
}

func TestDisclosureChoices(t *testing.T) {
	env := newTestEnv(t)
	w := openWallet(t, env.schemes, t.TempDir())
	ctx := testContext(t)
	env.issue(t, ctx, w)

	firstname := irma.NewAttributeRequest("irma-demo.MijnOverheid.fullName.firstname")
	studentID := irma.NewAttributeRequest("irma-demo.RU.studentCard.studentID")
	level := irma.NewAttributeRequest("irma-demo.RU.studentCard.level")
	wrongLevel := level
	wrongLevel.Value = new(string)
	*wrongLevel.Value = "7"

	tests := []struct {
		name     string
		disclose irma.AttributeConDisCon
		want     map[irma.AttributeTypeIdentifier]string // nil: the wallet must report what is missing
		missing  string                                  // in the error then
	}{{
		name:     "first satisfiable option",
		disclose: irma.AttributeConDisCon{{{firstname}, {studentID}, {level}}},
		want:     map[irma.AttributeTypeIdentifier]string{studentID.Type: "s1234567"},
	}, {
		name:     "two items",
		disclose: irma.AttributeConDisCon{{{level}}, {{studentID}}},
		want:     map[irma.AttributeTypeIdentifier]string{studentID.Type: "s1234567", level.Type: "42"},
	}, {
		name:     "conjunction from one credential",
		disclose: irma.AttributeConDisCon{{{studentID, level}}},
		want:     map[irma.AttributeTypeIdentifier]string{studentID.Type: "s1234567", level.Type: "42"},
	}, {
		name:     "optional and owned",
		disclose: irma.AttributeConDisCon{{{}, {studentID}}},
		want:     map[irma.AttributeTypeIdentifier]string{studentID.Type: "s1234567"},
	}, {
		name:     "optional and not owned",
		disclose: irma.AttributeConDisCon{{{}, {firstname}}, {{level}}},
		want:     map[irma.AttributeTypeIdentifier]string{level.Type: "42"},
	}, {
		name:     "value required, other value owned",
		disclose: irma.AttributeConDisCon{{{wrongLevel}}},
		missing:  `irma-demo.RU.studentCard (level = "7")`,
	}, {
		name:     "one of two items missing",
		disclose: irma.AttributeConDisCon{{{studentID}}, {{firstname}}},
		missing:  "irma-demo.MijnOverheid.fullName (firstname)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := irma.NewDisclosureRequest()
			req.Disclose = tt.disclose
			qr, token := env.start(t, req)
			res, err := w.Run(ctx, qr, yes)
			if tt.want == nil {
				var missing *wallet.MissingError
				if !errors.As(err, &missing) || !strings.Contains(err.Error(), tt.missing) {
					t.Fatalf("want a MissingError naming %s, got %v", tt.missing, err)
				}
				if got := env.result(t, token); got.Status != irma.ServerStatusCancelled {
					t.Fatalf("server status %s, want CANCELLED", got.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := disclosedValues(t, env.result(t, token))
			if len(got) != len(tt.want) {
				t.Fatalf("server got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("server got %v, want %v", got, tt.want)
				}
			}
			if len(res.Disclosed) != len(tt.want) {
				t.Fatalf("result lists %+v, want %v", res.Disclosed, tt.want)
			}
			for _, a := range res.Disclosed {
				if tt.want[a.Type] != a.Value {
					t.Fatalf("result lists %+v, want %v", res.Disclosed, tt.want)
				}
			}
		})
	}

	t.Run("issuance with disclosure", func(t *testing.T) {
		req := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: irma.NewCredentialTypeIdentifier("irma-demo.MijnOverheid.fullName"),
			Attributes:       map[string]string{"firstnames": "Alice Bea", "firstname": "Alice", "familyname": "Smith"},
		}}, studentID.Type)
		qr, token := env.start(t, req)
		var asked wallet.Request
		res, err := w.Run(ctx, qr, func(r wallet.Request) bool { asked = r; return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(asked.Disclose) != 1 || len(asked.Issue) != 1 || len(res.Issued) != 1 || len(res.Disclosed) != 1 {
			t.Fatalf("asked %+v, result %+v", asked, res)
		}
		if got := disclosedValues(t, env.result(t, token)); got[studentID.Type] != "s1234567" {
			t.Fatalf("server got %v", got)
		}
		creds, err := w.Credentials()
		if err != nil {
			t.Fatal(err)
		}
		if len(creds) != 2 {
			t.Fatalf("credentials %+v", creds)
		}
	})
}

func TestPairing(t *testing.T) {
	env := newTestEnv(t)
	ctx := testContext(t)
	var token irma.RequestorToken
	codes := make(chan string, 1)
	w := openWalletWith(t, wallet.Options{Dir: t.TempDir(), SchemesPath: env.schemes, OnPairingCode: func(code string) {
		select {
		case codes <- code:
		default: // a second code would fail the test below; never block the wallet
			t.Errorf("the wallet showed a second pairing code %q", code)
		}
		// What the page showing the QR does once the user typed the code.
		if err := env.server.PairingCompleted(token); err != nil {
			t.Error(err)
		}
	}})
	qr, tok := env.start(t, irma.NewIssuanceRequest([]*irma.CredentialRequest{studentCard}))
	token = tok
	opts := irma.NewFrontendOptionsRequest()
	opts.PairingMethod = irma.PairingMethodPin
	sessionOpts, err := env.server.SetFrontendOptions(token, &opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(ctx, qr, yes); err != nil {
		t.Fatal(err)
	}
	// The wallet shows the code before the session goes on, so a session
	// that succeeded has sent it.
	select {
	case code := <-codes:
		if code != sessionOpts.PairingCode {
			t.Fatalf("wallet showed %q, server expects %q", code, sessionOpts.PairingCode)
		}
	default:
		t.Fatal("the session succeeded without the wallet showing a pairing code")
	}
}

func TestSessionEnds(t *testing.T) {
	env := newTestEnv(t)
	w := openWallet(t, env.schemes, t.TempDir())

	t.Run("context ends while asking consent", func(t *testing.T) {
		qr, token := env.start(t, irma.NewIssuanceRequest([]*irma.CredentialRequest{studentCard}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A bound that fails the test only if Run hangs.
		bound, cancelBound := context.WithTimeout(context.Background(), time.Minute)
		defer cancelBound()
		asked := make(chan struct{}, 1)
		block := make(chan struct{})
		defer close(block)
		type outcome struct {
			res *wallet.Result
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := w.Run(ctx, qr, func(wallet.Request) bool {
				select {
				case asked <- struct{}{}:
				default:
				}
				<-block // the person never answers
				return true
			})
			done <- outcome{res, err}
		}()
		select {
		case <-asked:
		case o := <-done:
			t.Fatalf("the session ended before asking consent: %+v, %v", o.res, o.err)
		case <-bound.Done():
			t.Fatal("the wallet never asked consent")
		}
		cancel()
		var o outcome
		select {
		case o = <-done:
		case <-bound.Done():
			t.Fatal("Run did not return after its context was cancelled")
		}
		if !errors.Is(o.err, wallet.ErrCancelled) || !errors.Is(o.err, context.Canceled) || o.res.Outcome != wallet.Cancelled {
			t.Fatalf("got %v, %+v", o.err, o.res)
		}
		if got := env.result(t, token); got.Status != irma.ServerStatusCancelled {
			t.Fatalf("server status %s, want CANCELLED", got.Status)
		}
	})

	t.Run("cancelled by the requestor", func(t *testing.T) {
		qr, token := env.start(t, irma.NewIssuanceRequest([]*irma.CredentialRequest{studentCard}))
		res, err := w.Run(testContext(t), qr, func(wallet.Request) bool {
			if err := env.server.CancelSession(token); err != nil {
				t.Error(err)
			}
			return true
		})
		if err == nil || res.Outcome == wallet.Success {
			t.Fatalf("got %v, %+v", err, res)
		}
		t.Log(err)
	})

	t.Run("unknown session", func(t *testing.T) {
		qr, _ := env.start(t, irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")))
		bad := *qr
		bad.URL = qr.URL[:strings.LastIndex(qr.URL, "/")+1] + "abcdefghijklmnopqrst"
		res, err := w.Run(testContext(t), &bad, yes)
		var serr *wallet.SessionError
		if !errors.As(err, &serr) || res.Outcome != wallet.Failed || serr.Remote == nil || serr.Remote.Error != "SESSION_UNKNOWN" {
			t.Fatalf("got %v (%#v), %+v", err, serr, res)
		}
		t.Log(err)
	})

	t.Run("server gone", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		start := time.Now()
		res, err := w.Run(testContext(t), &irma.Qr{URL: dead.URL + "/irma/session/abcdefghijklmnopqrst", Type: irma.ActionDisclosing}, yes)
		var serr *wallet.SessionError
		if !errors.As(err, &serr) || res.Outcome != wallet.Failed {
			t.Fatalf("got %v, %+v", err, res)
		}
		t.Logf("%v after %v", err, time.Since(start))
	})

	t.Run("bad pointer", func(t *testing.T) {
		for _, qr := range []*irma.Qr{nil, {URL: "ftp://x/y", Type: irma.ActionDisclosing}, {URL: "http://x/y", Type: "nonsense"}} {
			res, err := w.Run(testContext(t), qr, yes)
			if err == nil || res == nil || res.Outcome != wallet.Failed {
				t.Fatalf("%+v: got %v, %+v", qr, err, res)
			}
		}
	})
}

func TestPersistenceAndLock(t *testing.T) {
	env := newTestEnv(t)
	dir := filepath.Join(t.TempDir(), "wallet")
	w, err := wallet.Open(wallet.Options{Dir: dir, SchemesPath: env.schemes, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	env.issue(t, testContext(t), w)

	_, err = wallet.Open(wallet.Options{Dir: dir, SchemesPath: env.schemes})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Credentials(); err == nil {
		t.Fatal("Credentials on a closed wallet")
	}
	if res, err := w.Run(testContext(t), &irma.Qr{URL: "http://localhost/irma/session/abcdefghijklmnopqrst", Type: irma.ActionDisclosing}, yes); err == nil || res.Outcome != wallet.Failed {
		t.Fatalf("Run on a closed wallet: %v", err)
	}

	for _, name := range []string{"storage.key", "signer.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", name, fi.Mode())
		}
	}

	w = openWallet(t, env.schemes, dir)
	creds, err := w.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].Type != studentCard.CredentialTypeID {
		t.Fatalf("after reopening: %+v", creds)
	}
	// And the credential still works.
	qr, token := env.start(t, irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")))
	if _, err := w.Run(testContext(t), qr, yes); err != nil {
		t.Fatal(err)
	}
	disclosedValues(t, env.result(t, token))
}

func TestOpenErrors(t *testing.T) {
	schemes := t.TempDir()
	for name, opts := range map[string]wallet.Options{
		"no dir":          {SchemesPath: schemes},
		"no schemes":      {Dir: t.TempDir()},
		"missing schemes": {Dir: t.TempDir(), SchemesPath: filepath.Join(schemes, "nope")},
		"empty schemes":   {Dir: t.TempDir(), SchemesPath: schemes},
	} {
		if _, err := wallet.Open(opts); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
