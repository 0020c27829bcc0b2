package requestor

import (
	"strings"
	"testing"
)

func TestNewValidates(t *testing.T) {
	irmaserv, conf := newIRMAServer(t)
	tests := []struct {
		name      string
		requestor Requestor
		want      string // substring of the error; "" for none
	}{
		{"token ok", Requestor{AuthMethod: AuthToken, Key: "k"}, ""},
		{"unknown method", Requestor{AuthMethod: "password", Key: "k"}, `requestor "r": unsupported authentication method "password"`},
		{"no method", Requestor{Key: "k"}, `requestor "r": unsupported authentication method ""`},
		{"no key", Requestor{AuthMethod: AuthToken}, `requestor "r": no key`},
		{"hmac not base64", Requestor{AuthMethod: AuthHMAC, Key: "not base64!!"}, `requestor "r": hmac key is not base64`},
		{"hmac url base64", Requestor{AuthMethod: AuthHMAC, Key: "c2VjcmV0LWtleS0_"}, ""},
		{"publickey not PEM", Requestor{AuthMethod: AuthPublicKey, Key: "MIIB-not-a-key"}, `requestor "r": public key:`},
		{"disclose exact", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"caddy-demo.gateway.person.fullname"}}}, ""},
		{"disclose wildcards", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"*", "caddy-demo.*", "caddy-demo.gateway.*", "caddy-demo.gateway.person.*"}}}, ""},
		{"issue wildcards", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Issue: []string{"*", "caddy-demo.*", "caddy-demo.gateway.*", "caddy-demo.gateway.person"}}}, ""},
		{"asterisk inside", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"caddy-demo.*.person.fullname"}}}, `requestor "r": disclose permission "caddy-demo.*.person.fullname": asterisk not at the end`},
		{"two asterisks", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Sign: []string{"*.*"}}}, "too many asterisks"},
		{"too many parts", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"caddy-demo.gateway.person.fullname.x"}}}, "should have 4 parts"},
		{"issue attribute", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Issue: []string{"caddy-demo.gateway.person.fullname"}}}, "should have 3 parts"},
		{"issue credential wildcard", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Issue: []string{"caddy-demo.gateway.person.*"}}}, "should have at most 3 parts"},
		{"unknown scheme", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"nope.*"}}}, "unknown scheme"},
		{"unknown issuer", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"caddy-demo.nope.*"}}}, "unknown issuer"},
		{"unknown credential", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Issue: []string{"caddy-demo.gateway.nope"}}}, "unknown credential type"},
		{"unknown attribute", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Sign: []string{"caddy-demo.gateway.person.nope"}}}, "unknown attribute type"},
		{"bad host pattern", Requestor{AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Hosts: []string{"["}}}, `host permission "["`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(irmaserv, Config{Conf: conf.IrmaConfiguration, Requestors: map[string]Requestor{"r": tt.requestor}})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.requestor.Key != "" && len(tt.requestor.Key) > 3 && strings.Contains(err.Error(), tt.requestor.Key) {
				t.Fatalf("error %q shows the key", err)
			}
		})
	}

	t.Run("duplicate tokens", func(t *testing.T) {
		_, err := New(irmaserv, Config{Requestors: map[string]Requestor{
			"a": {AuthMethod: AuthToken, Key: "same-token"}, "b": {AuthMethod: AuthToken, Key: "same-token"},
		}})
		if err == nil || !strings.Contains(err.Error(), "same token as requestor") || strings.Contains(err.Error(), "same-token") {
			t.Fatal(err)
		}
	})
	t.Run("anonymous requestor takes no key", func(t *testing.T) {
		_, err := New(irmaserv, Config{Requestors: map[string]Requestor{"": {AuthMethod: AuthToken, Key: "k"}}})
		if err == nil || !strings.Contains(err.Error(), `requestor ""`) {
			t.Fatal(err)
		}
		if _, err := New(irmaserv, Config{Requestors: map[string]Requestor{"": {AuthMethod: AuthNone}}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("syntax only without scheme", func(t *testing.T) {
		if _, err := New(irmaserv, Config{Requestors: map[string]Requestor{"r": {AuthMethod: AuthToken, Key: "k", Permissions: Permissions{Disclose: []string{"any.scheme.at.all"}}}}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("all errors at once", func(t *testing.T) {
		_, err := New(irmaserv, Config{Requestors: map[string]Requestor{
			"a": {AuthMethod: "x", Key: "k"}, "b": {AuthMethod: AuthHMAC, Key: "!!"},
		}})
		if err == nil || !strings.Contains(err.Error(), `requestor "a"`) || !strings.Contains(err.Error(), `requestor "b"`) {
			t.Fatal(err)
		}
	})
	t.Run("negative limits", func(t *testing.T) {
		if _, err := New(irmaserv, Config{MaxRequestAge: -1}); err == nil {
			t.Fatal("negative max request age accepted")
		}
		if _, err := New(irmaserv, Config{MaxBodySize: -1}); err == nil {
			t.Fatal("negative max body size accepted")
		}
		if _, err := New(nil, Config{}); err == nil {
			t.Fatal("nil server accepted")
		}
	})
}
