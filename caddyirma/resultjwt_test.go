package caddyirma

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testkeys"
)

// TestRequestorAPIResultJWT: irma_requestor_api signs with the app's key
// and issuer; its own (deprecated) jwt_key_file and jwt_issuer still work,
// with a warning, unless they contradict the app's.
func TestRequestorAPIResultJWT(t *testing.T) {
	appFile, otherFile := testkeys.WriteRSA(t), testkeys.WriteRSA(t)
	appKey, err := readRSAKey(appFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                string
		appKey, appIssuer   string
		ownKey, ownIssuer   string
		wantKey, wantIssuer string // wantKey: "app", "own" or ""
		wantWarnings        int
		wantErr             string
	}{
		{"nothing", "", "", "", "", "", "irmaserver", 0, ""},
		{"the app's", appFile, "gw", "", "", "app", "gw", 0, ""},
		{"own key only", "", "", otherFile, "", "own", "irmaserver", 1, ""},
		{"own key, the app's", appFile, "", appFile, "", "app", "irmaserver", 1, ""},
		{"own key, not the app's", appFile, "", otherFile, "", "", "", 0, "is not the key of the irma app's jwt_privkey_file"},
		{"own issuer, app's default", "", "", "", "mine", "", "mine", 1, ""},
		{"own issuer, the app's", "", "gw", "", "gw", "", "gw", 1, ""},
		{"own issuer, not the app's", "", "gw", "", "mine", "", "", 0, `jwt_issuer "mine" is not the irma app's jwt_issuer "gw"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &App{JWTPrivateKeyFile: tc.appKey, JWTIssuer: tc.appIssuer, serverConf: new(server.Configuration)}
			if err := app.provisionResultJWT(caddy.NewReplacer()); err != nil {
				t.Fatal(err)
			}
			// irmaserver signs callbacks with these.
			if conf := app.serverConf; conf.JwtIssuer != app.JWTIssuer || (conf.JwtRSAPrivateKey != nil) != (tc.appKey != "") || (app.resultKeyID() != "") != (tc.appKey != "") {
				t.Errorf("irmaserver's settings: issuer %q, key %v", conf.JwtIssuer, conf.JwtRSAPrivateKey != nil)
			}
			core, logs := observer.New(zap.WarnLevel)
			h := &RequestorAPI{JWTKeyFile: tc.ownKey, JWTIssuer: tc.ownIssuer}
			key, issuer, err := h.resultJWT(app, caddy.NewReplacer(), zap.New(core))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantKey == "" && key != nil, tc.wantKey == "app" && (key == nil || !key.PublicKey.Equal(&appKey.PublicKey)),
				tc.wantKey == "own" && (key == nil || key.PublicKey.Equal(&appKey.PublicKey)):
				t.Errorf("key %v, want %s", key != nil, tc.wantKey)
			}
			if issuer != tc.wantIssuer || logs.Len() != tc.wantWarnings {
				t.Errorf("issuer %q and %d warnings, want %q and %d", issuer, logs.Len(), tc.wantIssuer, tc.wantWarnings)
			}
			for _, e := range logs.All() {
				if !strings.Contains(e.Message, "deprecated") {
					t.Errorf("warning %q", e.Message)
				}
			}
		})
	}
}

// TestResultKeyRestartsServer: a reload with another result key, issuer
// or allow_unsigned_callbacks starts another IRMA server (irmaserver signs
// callbacks with the settings it started with); the same ones keep it.
func TestResultKeyRestartsServer(t *testing.T) {
	keyA, keyB := testkeys.WriteRSA(t), testkeys.WriteRSA(t)
	key := func(file, issuer string, unsigned bool) string {
		t.Helper()
		app := &App{JWTPrivateKeyFile: file, JWTIssuer: issuer, AllowUnsignedCallbacks: unsigned, serverConf: new(server.Configuration)}
		if err := app.provisionResultJWT(caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
		k, err := app.serverKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(keyA, "", false)
	if key(keyA, "", false) != base || key(keyA, DefaultJWTIssuer, false) != base {
		t.Error("the same settings start another server")
	}
	for name, other := range map[string]string{
		"another key":              key(keyB, "", false),
		"no key":                   key("", "", false),
		"another issuer":           key(keyA, "gw", false),
		"allow_unsigned_callbacks": key(keyA, "", true),
	} {
		if other == base {
			t.Errorf("%s keeps the server", name)
		}
	}
}
