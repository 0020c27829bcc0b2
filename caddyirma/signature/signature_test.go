//go:build cgo

package signature

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

const signedMessage = "I agree"

// fixture is a scheme with its timestamp service, and signatures made on it by a real wallet
// through a real IRMA server.
type fixture struct {
	conf   *irma.Configuration
	email  irma.AttributeTypeIdentifier
	signed []byte // over signedMessage, disclosing email
	// signing and signed bound when the signature session ran (to the
	// second, as timestamps go).
	signing, signedAt time.Time
}

// newFixture issues a credential to a fresh wallet and has it sign signedMessage.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	s := testscheme.NewWithTimestampServer(t)

	var handler http.Handler = http.NotFoundHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv, err := irmaserver.New(&server.Configuration{
		URL:                   ts.URL + "/irma/",
		SchemesPath:           s.SchemesPath,
		IssuerPrivateKeysPath: s.PrivateKeysPath,
		RevocationSettings:    testscheme.RevocationSettings(s),
		DisableSchemesUpdate:  true,
		Logger:                quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	handler = http.StripPrefix("/irma", srv.HandlerFunc())

	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: s.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	run := func(request irma.SessionRequest) *server.SessionResult {
		t.Helper()
		qr, token, _, err := srv.StartSession(request, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Run(ctx, qr, wallet.Accept); err != nil {
			t.Fatal(err)
		}
		for {
			res, err := srv.GetSessionResult(token)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Finished() {
				return res
			}
			select {
			case <-ctx.Done():
				t.Fatal("session did not finish")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	f := &fixture{email: s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)}
	run(irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: s.Credential(demoscheme.CredentialPerson),
		Attributes: map[string]string{
			demoscheme.AttributeFullname: "Alice Demo",
			demoscheme.AttributeEmail:    "alice@example.com",
			demoscheme.AttributeOver18:   "yes",
		},
	}}))
	f.signing = time.Now().Truncate(time.Second)
	res := run(irma.NewSignatureRequest(signedMessage, f.email))
	f.signedAt = time.Now()
	if res.Signature == nil {
		t.Fatalf("no signature in %+v", res)
	}
	if f.signed, err = json.Marshal(res.Signature); err != nil {
		t.Fatal(err)
	}
	if f.conf, err = irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{IgnorePrivateKeys: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.conf.ParseFolder(); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSignatures(t *testing.T) {
	f := newFixture(t)
	t.Run("verify", func(t *testing.T) { testVerify(t, f) })
	t.Run("tampered", func(t *testing.T) { testTampered(t, f) })
	t.Run("handler", func(t *testing.T) { testHandler(t, f) })
	t.Run("mutations", func(t *testing.T) { testMutations(t, f) })
	t.Run("inflated", func(t *testing.T) { testInflated(t, f) })
}

// testMutations replaces, one at a time, every member of the signature (at every depth) by values
// of other shapes: no change may panic or verify. Inputs that pass parse reach irmago, which trusts
// their shape in places.
func testMutations(t *testing.T, f *fixture) {
	replacements := []any{nil, json.Number("0"), json.Number("-1"), "", "AA==", "////", map[string]any{}, []any{}, []any{nil}, true, json.Number("99999999999999999999")}
	var paths [][]string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		if len(path) > 0 {
			paths = append(paths, append([]string(nil), path...))
		}
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, append(path, k))
			}
		case []any:
			for i, c := range v {
				walk(c, append(path, strconv.Itoa(i)))
			}
		}
	}
	walk(decode(t, f.signed), nil)
	set := func(root any, path []string, val any, remove bool) {
		for i, k := range path {
			last := i == len(path)-1
			switch v := root.(type) {
			case map[string]any:
				if last {
					if remove {
						delete(v, k)
					} else {
						v[k] = val
					}
					return
				}
				root = v[k]
			case []any:
				n, _ := strconv.Atoi(k)
				if last {
					v[n] = val
					return
				}
				root = v[n]
			}
		}
	}
	checked := 0
	for _, path := range paths {
		for i := -1; i < len(replacements); i++ {
			m := decode(t, f.signed)
			if i < 0 {
				set(m, path, nil, true)
			} else {
				set(m, path, replacements[i], false)
			}
			sig, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Verify(f.conf, sig, nil, time.Now())
			if err != nil {
				continue
			}
			checked++
			if res.Valid {
				// Members irmago ignores without a request may change: the indices (which
				// attribute answers which part of a request; without one, the attributes are
				// read from the proofs), the timestamp's server URL (irmago takes the scheme's)
				// and its "Hashing" (recomputed). What the result says must not.
				p := strings.Join(path, "/")
				if p != "timestamp/ServerUrl" && !strings.HasPrefix(p, "timestamp/Hashing") && !strings.HasPrefix(p, "indices") {
					t.Errorf("%s = %v: still valid", p, i)
				}
				if len(res.Attributes) != 1 || res.Attributes[0].Value != "alice@example.com" || res.Message != signedMessage {
					t.Errorf("%s = %v: result %+v", p, i, res)
				}
			}
		}
	}
	t.Logf("%d paths, %d mutations reached verification", len(paths), checked)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func ptr(s string) *string { return &s }

func testVerify(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name     string
		expected *string
		now      time.Time
		status   string
	}{
		{"no expected message", nil, time.Now(), StatusValid},
		{"expected message", ptr(signedMessage), time.Now(), StatusValid},
		{"other message", ptr("I disagree"), time.Now(), StatusUnmatchedMessage},
		{"message with a trailing space", ptr(signedMessage + " "), time.Now(), StatusUnmatchedMessage},
		{"empty expected message", ptr(""), time.Now(), StatusUnmatchedMessage},
		{"timestamp in the future", nil, time.Now().Add(-time.Hour), StatusInvalidTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(f.conf, f.signed, tc.expected, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status || res.Valid != (tc.status == StatusValid) {
				t.Fatalf("got %+v, want status %s", res, tc.status)
			}
			if res.Message != signedMessage {
				t.Errorf("message %q", res.Message)
			}
			if len(res.Attributes) != 1 || res.Attributes[0].ID != f.email.String() || res.Attributes[0].Value != "alice@example.com" {
				t.Errorf("attributes %+v", res.Attributes)
			}
			if res.Attributes[0].IssuanceTime.IsZero() {
				t.Error("no issuance time")
			}
			if res.Timestamp == nil || res.Timestamp.Before(f.signing) || res.Timestamp.After(f.signedAt) {
				t.Errorf("timestamp %v, want while the session ran (%v to %v)", res.Timestamp, f.signing, f.signedAt)
			}
			if res.Valid != (res.Error == "") {
				t.Errorf("error %q", res.Error)
			}
		})
	}

	if _, err := Verify(nil, f.signed, nil, time.Now()); err == nil {
		t.Error("verified without a configuration")
	}
}

// edit decodes sig, lets change modify it, and encodes it again.
func edit(t *testing.T, sig []byte, change func(m map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(sig))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	change(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bump changes the number at key in obj: +1 for a JSON number, the last bit flipped for a
// base64 string (how gabi writes its big integers).
func bump(t *testing.T, obj map[string]any, key string) {
	t.Helper()
	switch v := obj[key].(type) {
	case json.Number:
		n, ok := new(big.Int).SetString(string(v), 10)
		if !ok {
			t.Fatalf("%s: %v", key, v)
		}
		obj[key] = json.Number(n.Add(n, big.NewInt(1)).String())
	case string:
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %q: %v", key, v, err)
		}
		b[len(b)-1] ^= 1
		obj[key] = base64.StdEncoding.EncodeToString(b)
	default:
		t.Fatalf("%s: %T", key, v)
	}
}

func proof(m map[string]any) map[string]any { return m["signature"].([]any)[0].(map[string]any) }

func testTampered(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, m map[string]any)
		status string // empty: any invalid status
	}{
		{"message", func(t *testing.T, m map[string]any) { m["message"] = "I disagree" }, ""},
		{"attribute value", func(t *testing.T, m map[string]any) {
			disclosed := proof(m)["a_disclosed"].(map[string]any)
			for k := range disclosed {
				if k != "1" {
					bump(t, disclosed, k)
				}
			}
		}, ""},
		{"metadata attribute", func(t *testing.T, m map[string]any) { bump(t, proof(m)["a_disclosed"].(map[string]any), "1") }, ""},
		{"challenge", func(t *testing.T, m map[string]any) { bump(t, proof(m), "c") }, ""},
		{"e response", func(t *testing.T, m map[string]any) { bump(t, proof(m), "e_response") }, ""},
		{"nonce", func(t *testing.T, m map[string]any) { bump(t, m, "nonce") }, ""},
		{"timestamp time", func(t *testing.T, m map[string]any) { bump(t, m["timestamp"].(map[string]any), "Time") }, StatusInvalidTimestamp},
		{"no timestamp", func(t *testing.T, m map[string]any) { delete(m, "timestamp") }, StatusMissingTimestamp},
		{"null timestamp", func(t *testing.T, m map[string]any) { m["timestamp"] = nil }, StatusMissingTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := edit(t, f.signed, func(m map[string]any) { tc.change(t, m) })
			res, err := Verify(f.conf, sig, nil, time.Now())
			if err != nil {
				t.Fatalf("error %v, want an invalid result", err)
			}
			if res.Valid || res.Status == StatusValid || res.Error == "" || (tc.status != "" && res.Status != tc.status) {
				t.Fatalf("got %+v, want invalid %s", res, tc.status)
			}
			if res.Status == StatusInvalid || res.Status == StatusInvalidTimestamp || res.Status == StatusMissingTimestamp {
				if len(res.Attributes) != 0 || res.Timestamp != nil {
					t.Errorf("unverified attributes or timestamp shown: %+v", res)
				}
			}
			t.Logf("%s: %s", res.Status, res.Error)
		})
	}
}

func testHandler(t *testing.T, f *fixture) {
	h := Handler(func() *irma.Configuration { return f.conf })
	wrapped := func(msg *string) string {
		m := map[string]any{"signature": json.RawMessage(f.signed)}
		if msg != nil {
			m["message"] = *msg
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	asString, _ := json.Marshal(map[string]string{"signature": string(f.signed), "message": signedMessage})

	post := func(ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/verify", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	t.Run("json", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   string
			code   int
			status string
		}{
			{"bare", string(f.signed), 200, StatusValid},
			{"wrapped", wrapped(nil), 200, StatusValid},
			{"wrapped with message", wrapped(ptr(signedMessage)), 200, StatusValid},
			{"wrapped with other message", wrapped(ptr("no")), 200, StatusUnmatchedMessage},
			{"signature as a string", string(asString), 200, StatusValid},
			{"tampered", string(edit(t, f.signed, func(m map[string]any) { m["message"] = "x" })), 200, ""},
			{"no timestamp", string(edit(t, f.signed, func(m map[string]any) { delete(m, "timestamp") })), 200, StatusMissingTimestamp},
			{"garbage", "nonsense", 400, ""},
			{"empty", "", 400, ""},
			{"array", "[]", 400, ""},
			{"wrapper with extra member", `{"signature": {}, "message": "x", "other": 1}`, 400, ""},
			{"wrapper with bad message", `{"signature": ` + string(f.signed) + `, "message": 1}`, 400, ""},
			{"trailing data", string(f.signed) + "{}", 400, ""},
			{"oversized", `{"signature": "` + strings.Repeat("a", MaxSize+1) + `"}`, 413, ""},
			{"oversized body", strings.Repeat(" ", maxJSONBody+1), 413, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := post("application/json; charset=utf-8", tc.body)
				if w.Code != tc.code || w.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("%d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
				}
				if tc.code != 200 {
					var e struct{ Error string }
					if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
						t.Fatalf("error body %s", w.Body)
					}
					return
				}
				var res Result
				if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
					t.Fatal(err)
				}
				if (tc.status != "" && res.Status != tc.status) || res.Valid != (res.Status == StatusValid) || (tc.status == "" && res.Valid) {
					t.Fatalf("got %s", w.Body)
				}
			})
		}
	})

	t.Run("form", func(t *testing.T) {
		form := func(sig, msg string) string {
			return url.Values{"signature": {sig}, "message": {msg}}.Encode()
		}
		for _, tc := range []struct {
			name, body string
			code       int
			want       []string
		}{
			{"valid", form(string(f.signed), ""), 200, []string{"The signature is valid", "alice@example.com", signedMessage, "Signed at"}},
			{"expected message", form(string(f.signed), signedMessage), 200, []string{"The signature is valid"}},
			{"other message", form(string(f.signed), "<b>no</b>"), 200, []string{"is not valid", "UNMATCHED_MESSAGE", "&lt;b&gt;no&lt;/b&gt;"}},
			{"tampered", form(string(edit(t, f.signed, func(m map[string]any) { m["message"] = "<script>x</script>" })), ""), 200, []string{"is not valid", "&lt;script&gt;x&lt;/script&gt;"}},
			{"garbage", form("<not json>", ""), 400, []string{"This is not a signature", "&lt;not json&gt;"}},
			{"empty", form("", ""), 400, []string{"This is not a signature"}},
			{"oversized", form(strings.Repeat("{", MaxSize+1), ""), 413, []string{"This is not a signature"}},
			{"oversized body", strings.Repeat("a", maxFormBody+1), 413, []string{"too large"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := post("application/x-www-form-urlencoded", tc.body)
				body := w.Body.String()
				if w.Code != tc.code || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
					t.Fatalf("%d %s: %.300s", w.Code, w.Header().Get("Content-Type"), body)
				}
				for _, s := range tc.want {
					if !strings.Contains(body, s) {
						t.Errorf("page lacks %q: %.2000s", s, body)
					}
				}
				if strings.Contains(body, "<script>") || strings.Contains(body, "<b>") {
					t.Error("unescaped input on the page")
				}
				checkPageHeaders(t, w)
			})
		}
	})

	t.Run("form with CRLF message", func(t *testing.T) {
		// A browser sends a textarea's line breaks as CRLF; the signed message here has none, so
		// this checks that the fallback does not make a wrong message match.
		w := post("application/x-www-form-urlencoded", url.Values{"signature": {string(f.signed)}, "message": {"I\r\nagree"}}.Encode())
		if !strings.Contains(w.Body.String(), "UNMATCHED_MESSAGE") {
			t.Fatalf("%.500s", w.Body)
		}
	})
}
