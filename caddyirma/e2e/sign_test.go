package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestSigning asks the wallet to sign a message made from placeholders:
// the upstream receives the signature and its verification, the visitor
// gets it too, and irmago's own verification accepts it.
func TestSigning(t *testing.T) {
	var mu sync.Mutex
	var received []caddyirma.SignResult
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var res caddyirma.SignResult
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &res); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		received = append(received, res)
		mu.Unlock()
	}))
	defer up.Close()

	g := newGateway(t)
	base, scheme := g.base, g.scheme
	app := g.start(t, "", fmt.Sprintf(`irma_endpoints
	handle /sign {
		irma_sign {
			message "I, {http.request.uri.query.name}, agree to the terms."
			require caddy-demo.gateway.person.email
			upstream %s/signed
		}
	}
	handle /sign-form {
		irma_sign {
			message_field statement
			require caddy-demo.gateway.person.fullname
		}
	}`, up.URL))
	site := &authSite{base: base, scheme: scheme, app: app}
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	site.issue(t, w, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b := newBrowser(t)
	sess, err := wallet.FetchSession(ctx, b.c, base+"/sign?name=Alice")
	if err != nil {
		t.Fatal(err)
	}
	pending := b.cookiePrefix(base, "irma_session_pending_")
	if pending == nil {
		t.Fatal("no pending cookie")
	}
	res, err := w.RunSession(ctx, sess, wallet.Accept)
	if err != nil {
		t.Fatalf("signing: %+v, %v", res, err)
	}
	if len(res.Requests) != 1 || res.Requests[0].Message != "I, Alice, agree to the terms." {
		t.Errorf("the wallet was asked to sign %+v", res.Requests)
	}
	resp, body := b.get(base+"/sign?name=Alice", nil)
	var got caddyirma.SignResult
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after signing: %d %v %s", resp.StatusCode, err, body)
	}
	v := got.Verification
	if !v.Valid || v.Message != "I, Alice, agree to the terms." || len(v.Attributes) != 1 ||
		v.Attributes[0].ID != "caddy-demo.gateway.person.email" || v.Attributes[0].Value != "alice@example.com" || v.Timestamp == nil {
		t.Errorf("verification %+v", v)
	}
	// The upstream got the same signature.
	mu.Lock()
	n := len(received)
	mu.Unlock()
	if n != 1 || received[0].Signature == nil || received[0].Signature.Message != got.Signature.Message {
		t.Fatalf("the upstream received %d signatures", n)
	}
	// A kept copy of the pending cookie fetches nothing more, and the
	// upstream hears of the signature once.
	if resp, _ := newBrowser(t).get(base+"/sign?name=Alice", map[string]string{"Cookie": pending.Name + "=" + pending.Value}); resp.StatusCode != http.StatusGone {
		t.Errorf("a replayed pending cookie: %d, want 410", resp.StatusCode)
	}
	mu.Lock()
	n = len(received)
	mu.Unlock()
	if n != 1 {
		t.Errorf("the upstream received the signature %d times", n)
	}
	// Anyone can verify it later with irmago; a changed message does not.
	if _, status, err := got.Signature.Verify(app.Configuration(), nil); status != irma.ProofStatusValid || err != nil {
		t.Errorf("irmago's verification: %s %v", status, err)
	}
	forged := *got.Signature
	forged.Message = "I, Alice, agree to nothing."
	if _, status, _ := forged.Verify(app.Configuration(), nil); status == irma.ProofStatusValid {
		t.Error("a signature with another message verified")
	}

	// The verification endpoint: anyone can check it, and the message.
	sigJSON, _ := json.Marshal(got.Signature)
	for _, tc := range []struct {
		body  string
		valid bool
	}{
		{string(sigJSON), true},
		{`{"signature":` + string(sigJSON) + `,"message":"I, Alice, agree to the terms."}`, true},
		{`{"signature":` + string(sigJSON) + `,"message":"I, Alice, agree to nothing."}`, false},
	} {
		resp, err := http.Post(base+"/irma/verify", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Valid   bool   `json:"valid"`
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || v.Valid != tc.valid {
			t.Errorf("verify %.80s: %d %+v %v", tc.body, resp.StatusCode, v, err)
		}
	}
	if resp, err := http.Post(base+"/irma/verify", "application/json", strings.NewReader(`{"signature":`)); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("verify garbage: %v %v", resp.StatusCode, err)
	}
	if resp, err := http.Get(base + "/irma/verify"); err != nil || resp.StatusCode != 200 {
		t.Errorf("verify form: %v %v", resp.StatusCode, err)
	}

	status := func(req *http.Request) int {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Another site cannot start a signature session in this visitor's name.
	xreq, _ := http.NewRequestWithContext(ctx, "POST", base+"/sign-form", strings.NewReader("statement=I+owe+you."))
	xreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	xreq.Header.Set("Sec-Fetch-Site", "cross-site")
	if code := status(xreq); code != http.StatusForbidden {
		t.Errorf("cross-site signing: %d", code)
	}
	xreq, _ = http.NewRequestWithContext(ctx, "POST", base+"/sign-form", strings.NewReader("statement=%ff%fe"))
	xreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code := status(xreq); code != http.StatusBadRequest {
		t.Errorf("a message that is not UTF-8: %d", code)
	}
	xreq, _ = http.NewRequestWithContext(ctx, "POST", base+"/sign-form", strings.NewReader("statement="+strings.Repeat("a", 80<<10)))
	xreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code := status(xreq); code != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized message: %d", code)
	}

	// The message from a form field; GET is refused for it.
	if resp, _ := newBrowser(t).get(base+"/sign-form", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET for a form message: %d", resp.StatusCode)
	}
	fb := newBrowser(t)
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/sign-form", strings.NewReader("statement=I+resign."))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	presp, err := fb.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ptrBody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	fsess, err := wallet.ParseSession(ptrBody, base+"/sign-form")
	if err != nil {
		t.Fatalf("form signing session: %v: %s", err, ptrBody)
	}
	if res, err := w.RunSession(ctx, fsess, wallet.Accept); err != nil || res.Requests[0].Message != "I resign." {
		t.Fatalf("form signing: %+v, %v", res, err)
	}
	resp, body = fb.get(base+"/sign-form", nil)
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 || !got.Verification.Valid || got.Verification.Message != "I resign." {
		t.Errorf("after form signing: %d %s", resp.StatusCode, body)
	}
}
