//go:build cgo

package wallet_test

import (
	"strings"
	"testing"

	"github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestProductionMode: Options.Production switches irmago's developer mode off, as the Yivi app is out of the box,
// even in a directory that a development wallet used, and opening without it switches it back on. A production
// wallet refuses a server on plain http before it sends anything; the development wallet in the same directory
// performs the same session. (That a production wallet refuses the development sessions of an https server is shown
// end to end, against the gateway: caddyirma/e2e/production_test.go.)
func TestProductionMode(t *testing.T) {
	env := newTestEnv(t)
	dir := t.TempDir()
	studentID := irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID"))

	dev := openWallet(t, env.schemes, dir)
	env.issue(t, testContext(t), dev)
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}

	prod := openWalletWith(t, wallet.Options{Dir: dir, SchemesPath: env.schemes, Production: true})
	qr, token := env.start(t, studentID)
	res, err := prod.Run(testContext(t), qr, yes)
	if err == nil || res.Outcome == wallet.Success || !strings.Contains(err.Error(), "https") {
		t.Fatalf("a production wallet on a plain http server: %+v, %v; want a refusal that names https", res, err)
	}
	if status := env.result(t, token).Status; status != irma.ServerStatusInitialized {
		t.Errorf("the server saw the refused session reach %s, want %s: the wallet contacted it", status, irma.ServerStatusInitialized)
	}
	if err := prod.Close(); err != nil {
		t.Fatal(err)
	}

	dev = openWallet(t, env.schemes, dir)
	qr, token = env.start(t, studentID)
	if res, err := dev.Run(testContext(t), qr, yes); err != nil {
		t.Fatalf("the development wallet in the same directory: %+v, %v", res, err)
	}
	if got := disclosedValues(t, env.result(t, token))[irma.NewAttributeTypeIdentifier("irma-demo.RU.studentCard.studentID")]; got != "s1234567" {
		t.Errorf("disclosed %q", got)
	}
}
