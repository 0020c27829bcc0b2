package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// basicAuth adds HTTP basic authentication to every request.
type basicAuth struct{ user, password string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return http.DefaultTransport.RoundTrip(r)
}

// TestIssuance issues from Caddy placeholders (the user of a preceding
// basic_auth), and disclose-then-issue: show your email, get a membership.
func TestIssuance(t *testing.T) {
	g := newGateway(t)
	base, scheme := g.base, g.scheme
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g.start(t, "", fmt.Sprintf(`irma_endpoints
	basic_auth /staff/* {
		alice %s
	}
	handle /staff/card {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname {http.auth.user.id}
				email "{http.auth.user.id}@example.com"
				over18 yes
			}
		}
	}
	handle /membership {
		irma_issue {
			disclose caddy-demo.gateway.person.email {
				label en "Your email address"
			}
			credential caddy-demo.gateway.membership {
				club "Caddy demo club"
				level silver
			}
		}
	}`, base64.StdEncoding.EncodeToString(hash)))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	holds := func(id string) string { t.Helper(); return heldValue(t, w, id) }

	// Without the disclosure, no membership.
	sess, err := wallet.FetchSession(ctx, nil, base+"/membership")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err == nil || res.Outcome == wallet.Success {
		t.Fatalf("a membership without the email disclosure: %+v", res)
	}

	// Only for the basic_auth user, and with that user's name.
	if resp, err := http.Get(base + "/staff/card"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without basic auth: %v %v", resp, err)
	}
	staff := &http.Client{Transport: basicAuth{"alice", "s3cret"}}
	if sess, err = wallet.FetchSession(ctx, staff, base+"/staff/card"); err != nil {
		t.Fatal(err)
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("issuance to the basic_auth user: %+v, %v", res, err)
	}
	if got := holds("caddy-demo.gateway.person.fullname"); got != "alice" {
		t.Errorf("fullname %q, want the basic_auth user", got)
	}
	if got := holds("caddy-demo.gateway.person.email"); got != "alice@example.com" {
		t.Errorf("email %q", got)
	}

	// Now the email can be shown, and the membership follows.
	if sess, err = wallet.FetchSession(ctx, nil, base+"/membership"); err != nil {
		t.Fatal(err)
	}
	res, err := w.RunSession(ctx, sess, wallet.Accept)
	if err != nil {
		t.Fatalf("disclose-then-issue: %+v, %v", res, err)
	}
	if len(res.Disclosed) != 1 || res.Disclosed[0].Value != "alice@example.com" {
		t.Errorf("disclosed %+v", res.Disclosed)
	}
	if got := holds("caddy-demo.gateway.membership.level"); got != "silver" {
		t.Errorf("membership level %q", got)
	}
}
