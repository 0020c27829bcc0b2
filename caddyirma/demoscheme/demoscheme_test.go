package demoscheme_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/privacybydesign/gabi/signed"
	"github.com/privacybydesign/irmago/irma"
	"github.com/sirupsen/logrus"
)

const tsURL = "http://127.0.0.1:9/atum/"

func TestMain(m *testing.M) {
	// irmago logs every parse through its package-wide logger.
	irma.Logger.SetOutput(io.Discard)
	os.Exit(m.Run())
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.ErrorLevel)
	return l
}

// readTree returns every file under dir, keyed by slash path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func opts(s *demoscheme.Scheme) demoscheme.Options {
	return demoscheme.Options{Dir: s.Dir, TimestampServer: s.TimestampServer, SchemeURL: s.URL, KeyBits: s.KeyBits}
}

// parse parses the schemes folder with irmago the way the IRMA server does and returns the
// configuration, or an error if the scheme is not there and valid.
func parse(t *testing.T, s *demoscheme.Scheme) (*irma.Configuration, error) {
	t.Helper()
	conf, err := irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	err = conf.ParseFolder()
	t.Cleanup(func() {
		conf.Scheduler.Stop()
		_ = conf.Revocation.Close()
	})
	if err != nil {
		return conf, err
	}
	scheme := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(s.ID)]
	if scheme == nil {
		return conf, os.ErrNotExist
	}
	if scheme.Status != irma.SchemeManagerStatusValid {
		return conf, &irma.SchemeManagerError{Scheme: s.ID, Status: scheme.Status}
	}
	return conf, nil
}

// TestEnsureTwiceIsStable runs Ensure on a complete scheme: it must reuse
// everything, generating, signing and writing nothing. (How fast that is,
// BenchmarkEnsureExisting measures.)
func TestEnsureTwiceIsStable(t *testing.T) {
	s := testscheme.New(t, tsURL)
	if !s.Resigned {
		t.Fatal("first Ensure did not sign the scheme")
	}
	before := readTree(t, s.Dir)
	stats := statTree(t, s.Dir)

	s2, err := demoscheme.Ensure(opts(s))
	if err != nil {
		t.Fatal(err)
	}
	if s2.Resigned || len(s2.GeneratedKeys) != 0 {
		t.Fatalf("second Ensure changed something: resigned=%v generated=%v", s2.Resigned, s2.GeneratedKeys)
	}
	after := readTree(t, s.Dir)
	if len(before) != len(after) {
		t.Fatalf("file set changed: %d files, then %d", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed", name)
		}
	}
	// Not rewritten either, not even with the same bytes: every file is
	// the same file (an atomic replace would make a new one), unmodified.
	for name, fi := range statTree(t, s.Dir) {
		old, ok := stats[name]
		switch {
		case !ok:
			t.Errorf("%s is new", name)
		case !os.SameFile(old, fi):
			t.Errorf("%s was replaced", name)
		case !old.ModTime().Equal(fi.ModTime()):
			t.Errorf("%s was written to (modified %s, then %s)", name, old.ModTime(), fi.ModTime())
		}
	}
	// Keys are the committed pair, byte for byte.
	priv, pub := testscheme.KeyPair()
	if !bytes.Equal(after["privkeys/caddy-demo.gateway.0.xml"], priv) || !bytes.Equal(after["pubkeys/caddy-demo.gateway.0.xml"], pub) {
		t.Fatal("issuer keys are not the installed pair")
	}
	for _, f := range []string{s.PrivateKeyFile(), s.SigningKeyFile, s.TimestampKeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}
}

// statTree returns the FileInfo of every file under dir, keyed by slash
// path.
func statTree(t *testing.T, dir string) map[string]os.FileInfo {
	t.Helper()
	out := map[string]os.FileInfo{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fi
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkEnsureExisting measures Ensure on a complete scheme, what every
// `make run` after the first does.
func BenchmarkEnsureExisting(b *testing.B) {
	s := testscheme.New(b, tsURL)
	for b.Loop() {
		if _, err := demoscheme.Ensure(opts(s)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSchemeParses(t *testing.T) {
	s := testscheme.New(t, tsURL)
	conf, err := parse(t, s)
	if err != nil {
		t.Fatalf("irmago does not accept the scheme: %v", err)
	}
	if len(conf.Warnings) != 0 {
		t.Errorf("irmago warnings: %q", conf.Warnings)
	}
	scheme := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(s.ID)]
	if scheme.TimestampServer != tsURL || scheme.Demo || scheme.URL != "https://caddy-demo.invalid/" || scheme.Contact == "" {
		t.Fatalf("scheme fields: timestamp %q demo %v url %q contact %q", scheme.TimestampServer, scheme.Demo, scheme.URL, scheme.Contact)
	}
	if got := conf.Issuers[s.Issuer()]; got == nil || got.Name["en"] != "Caddy IRMA demo issuer" {
		t.Fatalf("issuer %s: %+v", s.Issuer(), got)
	}
	for _, a := range []irma.AttributeTypeIdentifier{
		s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeFullname),
		s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail),
		s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeOver18),
		s.Attribute(demoscheme.CredentialMembership, demoscheme.AttributeClub),
		s.Attribute(demoscheme.CredentialMembership, demoscheme.AttributeLevel),
	} {
		at := conf.AttributeTypes[a]
		if at == nil || at.Name["nl"] == "" || at.Description["en"] == "" {
			t.Errorf("attribute %s missing or untranslated: %+v", a, at)
		}
	}
	if got := s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail).String(); got != "caddy-demo.gateway.person.email" {
		t.Errorf("attribute identifier %q", got)
	}
	pk, err := conf.PublicKeyLatest(s.Issuer())
	if err != nil || pk.N.BitLen() != 1024 {
		t.Fatalf("public key: %v", err)
	}
	warnings, err := s.Check()
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Check: %v %q", err, warnings)
	}
}

func TestChangedURLsResign(t *testing.T) {
	s := testscheme.New(t, tsURL)
	oldStamp, _ := os.ReadFile(filepath.Join(s.SchemeDir, "timestamp"))
	keysBefore := readTree(t, s.PrivateKeysPath)

	o := opts(s)
	o.TimestampServer = "http://127.0.0.1:12345/"
	s2, err := demoscheme.Ensure(o)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Resigned {
		t.Fatal("a new timestamp server did not re-sign the scheme")
	}
	conf, err := parse(t, s2)
	if err != nil {
		t.Fatal(err)
	}
	if got := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(s.ID)].TimestampServer; got != o.TimestampServer {
		t.Fatalf("timestamp server %q, want %q", got, o.TimestampServer)
	}
	newStamp, _ := os.ReadFile(filepath.Join(s.SchemeDir, "timestamp"))
	if ts(t, newStamp) <= ts(t, oldStamp) {
		t.Fatalf("timestamp did not grow: %s then %s (wallets would keep the old scheme)", oldStamp, newStamp)
	}
	if after := readTree(t, s.PrivateKeysPath); !bytes.Equal(after["caddy-demo.gateway.0.xml"], keysBefore["caddy-demo.gateway.0.xml"]) {
		t.Fatal("issuer private key changed")
	}

	o.SchemeURL = "https://gateway.example/schemes/caddy-demo/"
	s3, err := demoscheme.Ensure(o)
	if err != nil || !s3.Resigned {
		t.Fatalf("new scheme URL: resigned=%v err=%v", s3 != nil && s3.Resigned, err)
	}
	conf, err = parse(t, s3)
	if err != nil || conf.SchemeManagers[irma.NewSchemeManagerIdentifier(s.ID)].URL != o.SchemeURL {
		t.Fatalf("scheme URL not updated: %v", err)
	}
}

func ts(t *testing.T, b []byte) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTamperedSchemeDetected changes the scheme folder behind Ensure's back: irmago must refuse
// the scheme (or skip it), Check must report it, and Ensure must repair it.
func TestTamperedSchemeDetected(t *testing.T) {
	appendTo := func(rel, text string) func(*testing.T, *demoscheme.Scheme) {
		return func(t *testing.T, s *demoscheme.Scheme) {
			p := filepath.Join(s.SchemeDir, filepath.FromSlash(rel))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, append(b, text...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		tamper func(*testing.T, *demoscheme.Scheme)
		irmago bool // whether irmago itself notices (it does not pin the signing key)
	}{
		{"credential description", func(t *testing.T, s *demoscheme.Scheme) {
			p := filepath.Join(s.SchemeDir, "gateway", "Issues", "person", "description.xml")
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, bytes.Replace(b, []byte("Full name"), []byte("Fool name"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"scheme description", func(t *testing.T, s *demoscheme.Scheme) {
			p := filepath.Join(s.SchemeDir, "description.xml")
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, bytes.Replace(b, []byte(tsURL), []byte("http://evil.example/"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"public key", appendTo("gateway/PublicKeys/0.xml", "\n"), true},
		{"timestamp", func(t *testing.T, s *demoscheme.Scheme) {
			if err := os.WriteFile(filepath.Join(s.SchemeDir, "timestamp"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"index", appendTo("index", "00 caddy-demo/x\n"), true},
		{"index.sig", func(t *testing.T, s *demoscheme.Scheme) {
			p := filepath.Join(s.SchemeDir, "index.sig")
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"removed file", func(t *testing.T, s *demoscheme.Scheme) {
			if err := os.Remove(filepath.Join(s.SchemeDir, "gateway", "Issues", "membership", "description.xml")); err != nil {
				t.Fatal(err)
			}
		}, true},
		// Someone edits the scheme and re-signs it consistently with their own key: irmago
		// accepts whatever pk.pem the folder has, so only our pinned check sees it.
		{"re-signed with another key", func(t *testing.T, s *demoscheme.Scheme) {
			p := filepath.Join(s.SchemeDir, "description.xml")
			b, _ := os.ReadFile(p)
			b = bytes.Replace(b, []byte(tsURL), []byte("http://evil.example/"), 1)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			idx, _ := os.ReadFile(filepath.Join(s.SchemeDir, "index"))
			idx = rehash(t, s, idx)
			sk, _ := signed.GenerateKey()
			sig, _ := signed.Sign(sk, idx)
			pk, _ := signed.MarshalPemPublicKey(&sk.PublicKey)
			for name, data := range map[string][]byte{"index": idx, "index.sig": sig, "pk.pem": pk} {
				if err := os.WriteFile(filepath.Join(s.SchemeDir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testscheme.New(t, tsURL)
			tc.tamper(t, s)
			_, err := parse(t, s)
			t.Logf("irmago: %v", err)
			if tc.irmago && err == nil {
				t.Fatal("irmago accepted the tampered scheme")
			}
			if !tc.irmago && err != nil {
				t.Fatalf("expected irmago to accept a consistently re-signed scheme, got %v", err)
			}
			if _, err := s.Check(); err == nil {
				t.Fatal("Check accepted the tampered scheme")
			} else {
				t.Logf("Check: %v", err)
			}
			s2, err := demoscheme.Ensure(opts(s))
			if err != nil {
				t.Fatal(err)
			}
			if !s2.Resigned {
				t.Fatal("Ensure did not repair the scheme")
			}
			if _, err := parse(t, s2); err != nil {
				t.Fatalf("repaired scheme does not parse: %v", err)
			}
			if _, err := s2.Check(); err != nil {
				t.Fatalf("repaired scheme fails Check: %v", err)
			}
		})
	}
}

// rehash recomputes the description.xml line of an index after it was edited.
func rehash(t *testing.T, s *demoscheme.Scheme, idx []byte) []byte {
	t.Helper()
	m := irma.SchemeManagerIndex{}
	if err := m.FromString(string(idx)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.SchemeDir, "description.xml"))
	sum := sha256Sum(b)
	m[s.ID+"/description.xml"] = sum
	return []byte(m.String())
}

// TestInterruptedRun leaves what a killed Ensure could leave behind and checks that the next run
// neither trusts nor trips over it.
func TestInterruptedRun(t *testing.T) {
	s := testscheme.New(t, tsURL)
	// A half-built scheme in a build folder, and the scheme folder gone mid-swap.
	half := filepath.Join(s.Dir, ".build-123", s.ID)
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "description.xml"), []byte("<half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(s.SchemeDir); err != nil {
		t.Fatal(err)
	}
	// An orphan temporary key file from an interrupted atomic write.
	if err := os.WriteFile(filepath.Join(s.PrivateKeysPath, ".caddy-demo.gateway.0.xml.tmp-1"), []byte("<half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := demoscheme.Ensure(opts(s))
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Resigned {
		t.Fatal("missing scheme was not rebuilt")
	}
	if _, err := os.Stat(filepath.Join(s.Dir, ".build-123")); !os.IsNotExist(err) {
		t.Fatalf("leftover build folder still there: %v", err)
	}
	if _, err := s2.Check(); err != nil {
		t.Fatal(err)
	}

	// A scheme folder that lost its signature is rebuilt, not trusted.
	if err := os.Remove(filepath.Join(s.SchemeDir, "index.sig")); err != nil {
		t.Fatal(err)
	}
	s3, err := demoscheme.Ensure(opts(s))
	if err != nil || !s3.Resigned {
		t.Fatalf("resigned=%v err=%v", s3 != nil && s3.Resigned, err)
	}
}

func TestKeyProblems(t *testing.T) {
	priv, pub := testscheme.KeyPair()
	tests := []struct {
		name  string
		setup func(t *testing.T, s *demoscheme.Scheme)
		want  []string
	}{
		{"mismatched pair", func(t *testing.T, s *demoscheme.Scheme) {
			// Another modulus: change the public key's n.
			start := bytes.Index(pub, []byte("<n>")) + 3
			bad := append([]byte(nil), pub...)
			if bad[start] == '9' {
				bad[start] = '8'
			} else {
				bad[start]++
			}
			write(t, s.PublicKeyFile(), bad, 0o644)
		}, []string{"do not belong together", "privkeys/caddy-demo.gateway.0.xml", "pubkeys/caddy-demo.gateway.0.xml"}},
		{"private key without public key", func(t *testing.T, s *demoscheme.Scheme) {
			if err := os.Remove(s.PublicKeyFile()); err != nil {
				t.Fatal(err)
			}
		}, []string{"has no public key", "pubkeys/caddy-demo.gateway.0.xml"}},
		{"garbage private key", func(t *testing.T, s *demoscheme.Scheme) {
			write(t, s.PrivateKeyFile(), []byte("<IssuerPrivateKey"), 0o600)
		}, []string{"private key", "privkeys/caddy-demo.gateway.0.xml"}},
		{"empty private key element", func(t *testing.T, s *demoscheme.Scheme) {
			write(t, s.PrivateKeyFile(), []byte(`<IssuerPrivateKey xmlns="http://www.zurich.ibm.com/security/idemix"></IssuerPrivateKey>`), 0o600)
		}, []string{"missing p, q"}},
		{"key size other than asked", func(t *testing.T, s *demoscheme.Scheme) {}, []string{"1024 bits but 2048 were asked"}},
		{"broken signing key", func(t *testing.T, s *demoscheme.Scheme) {
			write(t, s.SigningKeyFile, []byte("nope"), 0o600)
		}, []string{"scheme-signing-key.pem"}},
		{"broken timestamp key", func(t *testing.T, s *demoscheme.Scheme) {
			write(t, s.TimestampKeyFile, []byte("nope"), 0o600)
		}, []string{"timestamp.key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testscheme.New(t, tsURL)
			tc.setup(t, s)
			o := opts(s)
			if tc.name == "key size other than asked" {
				o.KeyBits = 2048
			}
			_, err := demoscheme.Ensure(o)
			if err == nil {
				t.Fatal("Ensure succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(filepath.ToSlash(err.Error()), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// Nothing was regenerated behind the user's back.
			if b, _ := os.ReadFile(s.PrivateKeyFile()); tc.name != "garbage private key" && tc.name != "empty private key element" && !bytes.Equal(b, priv) {
				t.Error("private key was replaced")
			}
		})
	}
}

func write(t *testing.T, p string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		o    demoscheme.Options
		want []string
	}{
		{"empty", demoscheme.Options{}, []string{"dir: required", "timestamp server: required"}},
		{"no timestamp server", demoscheme.Options{Dir: dir}, []string{"timestamp server: required"}},
		{"relative timestamp server", demoscheme.Options{Dir: dir, TimestampServer: "/atum"}, []string{"timestamp server", "http or https"}},
		{"timestamp server with query", demoscheme.Options{Dir: dir, TimestampServer: "https://x.example/?a=b"}, []string{"query"}},
		{"ftp scheme url", demoscheme.Options{Dir: dir, TimestampServer: tsURL, SchemeURL: "ftp://x.example/"}, []string{"scheme url"}},
		{"bad key bits", demoscheme.Options{Dir: dir, TimestampServer: tsURL, KeyBits: 4096}, []string{"key bits 4096: must be 1024 or 2048"}},
		{"bad key bits small", demoscheme.Options{Dir: dir, TimestampServer: tsURL, KeyBits: 512}, []string{"key bits 512"}},
		{"negative validity", demoscheme.Options{Dir: dir, TimestampServer: tsURL, KeyValidity: -time.Hour}, []string{"key validity"}},
		{"dotted scheme id", demoscheme.Options{Dir: dir, TimestampServer: tsURL, SchemeID: "a.b"}, []string{`scheme id "a.b"`}},
		{"reserved scheme id", demoscheme.Options{Dir: dir, TimestampServer: tsURL, SchemeID: "tempscheme1"}, []string{"reserves"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := demoscheme.Ensure(tc.o)
			if err == nil {
				t.Fatal("Ensure accepted bad options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("bad options still wrote files: %v", entries)
	}
}

// TestConcurrentEnsure runs Ensure calls for one directory at once, as overlapping Caddy config
// loads would: all must succeed and agree.
func TestConcurrentEnsure(t *testing.T) {
	s := testscheme.New(t, tsURL)
	o := opts(s)
	o.TimestampServer = "http://127.0.0.1:4242/"
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := demoscheme.Ensure(o)
			errs <- err
		}()
	}
	// A bound that fails the test only if Ensure hangs (on its lock, say).
	bound := time.After(time.Minute)
	for range 8 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-bound:
			t.Fatal("concurrent Ensure calls did not all return")
		}
	}
	if _, err := parse(t, s); err != nil {
		t.Fatal(err)
	}
}

// TestInstallIssuerKeyPairRefusesOverwrite guards the pre-generated-keys path.
func TestInstallIssuerKeyPairRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	priv, pub := testscheme.KeyPair()
	if err := demoscheme.InstallIssuerKeyPair(dir, "", priv, pub); err != nil {
		t.Fatal(err)
	}
	if err := demoscheme.InstallIssuerKeyPair(dir, "", priv, pub); err == nil {
		t.Fatal("second install succeeded")
	}
	if err := demoscheme.InstallIssuerKeyPair(t.TempDir(), "", priv, pub[:len(pub)/2]); err == nil {
		t.Fatal("installed a truncated public key")
	}
}

func sha256Sum(b []byte) irma.SchemeFileHash {
	sum := sha256.Sum256(b)
	return sum[:]
}
