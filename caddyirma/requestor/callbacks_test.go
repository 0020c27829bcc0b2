package requestor

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
)

// TestAuthorizeNext checks the embedded server's question before it starts
// the next session of a chain: the requestor's permissions apply to it as
// to a session it starts itself, and only an authenticated requestor of
// an API that may post results chains.
func TestAuthorizeNext(t *testing.T) {
	irmaserv, conf := newIRMAServer(t)
	handler := func(mod func(*Config)) *Handler {
		cfg := testConfig(t, conf)
		cfg.SignedCallbacks = true
		if mod != nil {
			mod(&cfg)
		}
		h, err := New(irmaserv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	signed := handler(nil)
	unsigned := handler(func(c *Config) { c.SignedCallbacks, c.AllowUnsignedCallbacks = false, true })
	neither := handler(func(c *Config) { c.SignedCallbacks = false })
	disclose := func(attr string) irma.SessionRequest {
		return irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier(attr))
	}
	issue := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: irma.NewCredentialTypeIdentifier("caddy-demo.gateway.membership"),
		Attributes:       map[string]string{"club": "chess"},
	}})
	issuePerson := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: irma.NewCredentialTypeIdentifier("caddy-demo.gateway.person"),
		Attributes:       map[string]string{"fullname": "Mallory", "email": "m@example.com", "over18": "yes"},
	}})
	foreignHost := disclose("caddy-demo.gateway.person.fullname")
	foreignHost.Base().Host = "evil.example"
	tests := []struct {
		name      string
		h         *Handler
		requestor string
		request   irma.SessionRequest
		want      string // "" for allowed, else part of the reason
	}{
		{"permitted disclosure", signed, "tok", disclose("caddy-demo.gateway.person.fullname"), ""},
		{"permitted issuance", signed, "tok", issue, ""},
		{"unsigned posts allowed", unsigned, "tok", issue, ""},
		{"disclosure not permitted", signed, "tok", disclose("caddy-demo.gateway.person.email"), "caddy-demo.gateway.person.email"},
		{"issuance not permitted", signed, "tok", issuePerson, "caddy-demo.gateway.person"},
		{"foreign host", signed, "tok", foreignHost, "host"},
		{"unauthenticated", signed, "", disclose("caddy-demo.gateway.person.over18"), "unknown"},
		{"unknown requestor", signed, "gone", disclose("caddy-demo.gateway.person.fullname"), "unknown"},
		{"no result key and no unsigned posts", neither, "tok", disclose("caddy-demo.gateway.person.fullname"), "JWT private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.h.AuthorizeNext(tt.requestor, tt.request)
			if tt.want == "" {
				if !ok {
					t.Fatalf("refused: %s", reason)
				}
				return
			}
			if ok || !strings.Contains(reason, tt.want) {
				t.Fatalf("AuthorizeNext = %v, %q; want refused for %q", ok, reason, tt.want)
			}
		})
	}
}

// TestRefuseTarget: a callbackUrl or nextSession URL that Config.RefuseTarget
// refuses gets 400, before any session starts.
func TestRefuseTarget(t *testing.T) {
	ts, _ := setup(t, func(c *Config) {
		c.SignedCallbacks = true
		c.RefuseTarget = func(u *url.URL) bool { return u.Host == "localhost:2019" }
	})
	for _, body := range []string{
		`{"callbackUrl":"http://localhost:2019/load","request":` + discloseFullname + `}`,
		`{"nextSession":{"url":"http://localhost:2019/config/"},"request":` + discloseFullname + `}`,
	} {
		r := do(t, http.MethodPost, ts.URL+"/session", jsonHeaders(testToken), body)
		if rerr := checkError(t, r, 400, "INVALID_REQUEST"); !strings.Contains(rerr.Message, "the gateway does not post results there") {
			t.Errorf("%s: %+v", body, rerr)
		}
	}
	if r := do(t, http.MethodPost, ts.URL+"/session", jsonHeaders(testToken), `{"callbackUrl":"http://localhost:2020/cb","request":`+discloseFullname+`}`); r.status != 200 {
		t.Errorf("another port: %d %s", r.status, r.body)
	}
}
