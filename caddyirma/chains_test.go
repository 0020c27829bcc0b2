package caddyirma

import (
	"net/url"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
)

// TestChainRegistry: the server asks the API that started a session about
// its next session, for as long as one handler with that API's key is in
// use (a reload provisions the new handlers before it cleans up the old);
// sessions that no requestor API started never chain.
func TestChainRegistry(t *testing.T) {
	cfg := requestor.Config{
		Requestors: map[string]requestor.Requestor{
			"app": {AuthMethod: requestor.AuthToken, Key: "t0ken", Permissions: requestor.Permissions{Disclose: []string{"*"}}},
		},
		SignedCallbacks: true,
	}
	handler := func() *requestor.Handler {
		h, err := requestor.New(requestorSessions{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	key := chainKey(cfg)
	request := irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("irma-demo.MijnOverheid.fullName.firstname"))
	ask := func(requestor string) string {
		if ok, reason := authorizeNextSession(requestor, request); !ok {
			return reason
		}
		return ""
	}

	old := registerChains(key, handler())
	if got := ask(key + "/app"); got != "" {
		t.Fatalf("the API's own requestor: %s", got)
	}
	reloaded := registerChains(key, handler()) // the reload's new handler
	old()
	old() // a second Cleanup changes nothing
	if got := ask(key + "/app"); got != "" {
		t.Fatalf("after the reload: %s", got)
	}
	for requestor, want := range map[string]string{
		"app":                         "not started by a requestor API",
		"":                            "not started by a requestor API",
		key + "/":                     "unknown",
		key + "/nobody":               "unknown",
		"0123456789ab/app":            "no longer configured",
		key + "x/app":                 "no longer configured",
		strings.ToUpper(key) + "/app": "no longer configured",
	} {
		if got := ask(requestor); !strings.Contains(got, want) {
			t.Errorf("requestor %q: %q, want %q", requestor, got, want)
		}
	}

	changed := cfg
	changed.AllowUnsignedCallbacks = true
	if chainKey(changed) == key {
		t.Error("a change of the API's settings keeps its key")
	}
	reloaded()
	if got := ask(key + "/app"); !strings.Contains(got, "no longer configured") {
		t.Errorf("after the last handler's cleanup: %q", got)
	}
}

func TestAdminTarget(t *testing.T) {
	for raw, want := range map[string]bool{
		"http://localhost:2019/load":     true,
		"http://LOCALHOST.:2019/config/": true,
		"http://127.0.0.1:2019/config/":  true,
		"http://127.1.2.3:2019/":         true,
		"http://[::1]:2019/":             true,
		"http://0.0.0.0:2019/":           true,
		"http://admin.localhost:2019/":   true,
		"http://localhost:2020/cb":       false,
		"http://localhost/cb":            false,
		"https://app.example:2019/cb":    false,
		"http://10.0.0.5:2019/cb":        false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := adminTarget(u); got != want {
			t.Errorf("adminTarget(%s) = %v, want %v", raw, got, want)
		}
	}
}
