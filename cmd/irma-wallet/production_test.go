//go:build cgo

package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/privacybydesign/irmago/irma"
)

// TestProductionFlag: with --production the wallet refuses what the Yivi app refuses out of the box, here a server
// on plain http (the test server), and says so; without it, the same session works.
func TestProductionFlag(t *testing.T) {
	srv, schemes := startServer(t)
	c := &cli{t: t, dir: filepath.Join(t.TempDir(), "wallet"), schemes: schemes}
	pointer := func() string {
		qr, _, _, err := srv.StartSession(irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: irma.NewCredentialTypeIdentifier("irma-demo.RU.studentCard"),
			Attributes:       map[string]string{"university": "Radboud", "studentCardNumber": "31415927", "studentID": "s1234567", "level": "42"},
		}}), nil, "")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(qr)
		return string(data)
	}
	c.run("", "--production", "session", "--yes", pointer())
	c.want(1, "", "remote server does not use https")
	c.run("", "session", "--yes", pointer())
	c.want(0, "Done: received 1 credential.", "")
}
