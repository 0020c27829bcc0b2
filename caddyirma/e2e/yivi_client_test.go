package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestYiviSessionClient runs irmago's own requestor client, `yivi irma
// session --server` (irmago v1.3.0), against irma_requestor_api in the
// layout the README documents: irma server's paths at the root of the site
// whose /irma/ serves the Yivi app, where the client finds the result (it
// derives `<root>/session/<token>/result` from the session pointer); and
// under a prefix with the README's route for that result at the root.
// Token, RSA and HMAC requestors; issuance, disclosure (also with
// --pairing) and a signature; the development wallet answers the pointer that the client prints, once
// consenting after a pause as a person does, once at once (the client then
// learns CONNECTED and DONE from the status stream within milliseconds of
// each other).
func TestYiviSessionClient(t *testing.T) {
	yivi := yiviBinary(t)
	both := []time.Duration{time.Second, 0}
	t.Run("memory", func(t *testing.T) { runYiviSessionClient(t, yivi, "", false, both) })
	t.Run("redis", func(t *testing.T) {
		runYiviSessionClient(t, yivi, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", startRedis(t)), false, both)
	})
	t.Run("prefix", func(t *testing.T) { runYiviSessionClient(t, yivi, "", true, []time.Duration{0}) })
}

// runYiviSessionClient runs the sessions against a gateway with store,
// whose requestor API is at the root of the site or under /api/irma/
// (prefix), with wallets that consent after each of pauses.
func runYiviSessionClient(t *testing.T, yivi, store string, prefix bool, pauses []time.Duration) {
	g := newGateway(t)
	dir := t.TempDir()
	api, privFile, hmacKey := yiviClientRequestors(t, dir)
	site, server := `@irma_requestor path /session /session/* /publickey
	handle @irma_requestor {
		`+api+`
	}`, g.base
	if prefix {
		site, server = `handle_path /api/irma/* {
		`+api+`
	}
	@irma_result path_regexp ^/session/[0-9A-Za-z]{20}/result$
	handle @irma_result {
		irma_requestor_api
	}`, g.base+"/api/irma"
	}
	g.start(t, store, "irma_endpoints\n\t"+site+"\n\trespond \"the app\" 200")
	// The client reads the schemes (to build the request) from a folder of
	// its own: it may write to it.
	schemes := filepath.Join(dir, "schemes")
	if err := os.CopyFS(schemes, os.DirFS(g.scheme.SchemesPath)); err != nil {
		t.Fatal(err)
	}
	for _, pause := range pauses {
		name := "instant wallet"
		if pause > 0 {
			name = fmt.Sprintf("wallet pausing %s", pause)
		}
		t.Run(name, func(t *testing.T) {
			w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			consent := func(wallet.Request) bool { time.Sleep(pause); return true }
			session := func(want string, args ...string) {
				t.Helper()
				args = append([]string{"irma", "session", "--server", server, "--noqr",
					"--schemes-path", schemes, "--disable-schemes-update"}, args...)
				out := runYiviSession(t, yivi, w, consent, args...)
				for _, s := range []string{`"status": "DONE"`, `"proofStatus": "VALID"`, want} {
					if !strings.Contains(out, s) {
						t.Fatalf("yivi %s: no %s in its output:\n%s", strings.Join(args, " "), s, out)
					}
				}
			}
			session(`"type": "issuing"`, "--auth-method", "token", "--key", "s3cret-token",
				"--issue", "caddy-demo.gateway.person=Alice,alice@example.com,yes")
			session(`"rawvalue": "alice@example.com"`, "--auth-method", "rsa", "--key", privFile, "--name", "verifier",
				"--disclose", "caddy-demo.gateway.person.email")
			// With pairing: the client shows the code once the wallet
			// connected (PAIRING), and confirms it (Enter) for the wallet.
			// Another request than the last: within the same second the
			// client would sign the same JWT, which starts one session only.
			session(`"rawvalue": "Alice"`, "--auth-method", "rsa", "--key", privFile, "--name", "verifier",
				"--pairing", "--disclose", "caddy-demo.gateway.person.fullname")
			session(`"message": "I agree."`, "--auth-method", "hmac", "--key", hmacKey, "--name", "signer",
				"--sign", "caddy-demo.gateway.person.email", "--message", "I agree.")
		})
	}
}

// yiviClientRequestors writes a requestor key pair into dir and returns
// an irma_requestor_api with a token requestor that issues ("issuer", its
// token s3cret-token), an RSA one that discloses ("verifier", its private
// key in privFile) and an HMAC one that signs ("signer", with hmacKey).
func yiviClientRequestors(t *testing.T, dir string) (api, privFile, hmacKey string) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privFile, pubFile := filepath.Join(dir, "requestor.pem"), filepath.Join(dir, "requestor.pub.pem")
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, privFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	writeFile(t, pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	hmacKey = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	api = fmt.Sprintf(`irma_requestor_api {
			requestor issuer {
				auth token s3cret-token
				issue caddy-demo.gateway.person
			}
			requestor verifier {
				auth publickey
				key_file %[1]s
				disclose caddy-demo.gateway.person.*
			}
			requestor signer {
				auth hmac %[2]s
				sign *
			}
		}`, pubFile, hmacKey)
	return api, privFile, hmacKey
}

// runYiviSession runs `yivi args...`, lets w answer the session pointer
// that it prints with consent, and returns its output once it exited.
func runYiviSession(t *testing.T, yivi string, w *wallet.Wallet, consent func(wallet.Request) bool, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.Command(yivi, args...)
	cmd.Stdin = strings.NewReader("\n") // pairing: the code matches
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	line, p := startProcess(t, "yivi irma session", cmd, regexp.MustCompile(`^(\{"u":.*\})\s*$`))
	var qr irma.Qr
	if err := json.Unmarshal([]byte(line), &qr); err != nil {
		t.Fatalf("session pointer %q: %v", line, err)
	}
	if slices.Contains(args, "--pairing") {
		// As a person scans the QR code: the client follows the session
		// from its start, and shows the code on the change to PAIRING (a
		// stream that opens later, at PAIRING, has no change to show, at
		// irma server as here).
		time.Sleep(300 * time.Millisecond)
	}
	if res, err := w.Run(ctx, &qr, consent); err != nil {
		t.Fatalf("wallet: %+v, %v\nyivi's output:\n%s", res, err, p.output())
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		t.Fatalf("yivi did not exit:\n%s", p.output())
	}
	<-p.drained
	if p.waitErr != nil {
		t.Fatalf("yivi: %v:\n%s", p.waitErr, p.output())
	}
	return p.output()
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
