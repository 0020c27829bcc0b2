//go:build cgo

package wallet_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

const (
	ptrURL  = "https://gw.example/irma/session/abcdefghijklmnopqrst"
	ptrJSON = `{"u":"` + ptrURL + `","irmaqr":"disclosing"}`
)

var wantPtr = irma.Qr{URL: ptrURL, Type: irma.ActionDisclosing}

func TestParsePointer(t *testing.T) {
	valid := map[string]string{
		"pointer":                   ptrJSON,
		"whitespace":                "\n  " + ptrJSON + "\n",
		"members ignored":           `{"u":"` + ptrURL + `","irmaqr":"disclosing","x":1}`,
		"irma server answer":        `{"sessionPtr":` + ptrJSON + `,"token":"secret","frontendRequest":{"authorization":"x"}}`,
		"yivi link":                 "https://open.yivi.app/-/session#" + url.PathEscape(ptrJSON),
		"yivi link, query escaped":  "https://open.yivi.app/-/session#" + url.QueryEscape(ptrJSON),
		"irma.app link":             "https://irma.app/-/session#" + url.PathEscape(ptrJSON),
		"pilot link":                "https://irma.app/-pilot/session#" + url.PathEscape(ptrJSON),
		"upper case host":           "https://Open.Yivi.App/-/session#" + url.PathEscape(ptrJSON),
		"unescaped JSON after hash": "https://open.yivi.app/-/session#" + ptrJSON,
	}
	for name, in := range valid {
		t.Run(name, func(t *testing.T) {
			qr, err := wallet.ParsePointer(in)
			if err != nil {
				t.Fatal(err)
			}
			if *qr != wantPtr {
				t.Fatalf("got %+v", qr)
			}
		})
	}
	for _, typ := range []irma.Action{irma.ActionIssuing, irma.ActionSigning, irma.ActionRedirect} {
		qr, err := wallet.ParsePointer(`{"u":"http://localhost:8080/irma/session/x","irmaqr":"` + string(typ) + `"}`)
		if err != nil || qr.Type != typ {
			t.Errorf("%s: %v, %+v", typ, err, qr)
		}
	}

	invalid := map[string]string{
		"empty":                "  ",
		"garbage":              "hello",
		"null":                 "null",
		"array":                "[" + ptrJSON + "]",
		"trailing data":        ptrJSON + "{}",
		"trailing garbage":     ptrJSON + " x",
		"two objects":          ptrJSON + ptrJSON,
		"truncated":            ptrJSON[:20],
		"no type":              `{"u":"` + ptrURL + `"}`,
		"no url":               `{"irmaqr":"disclosing"}`,
		"wrong case":           `{"U":"` + ptrURL + `","IRMAQR":"disclosing"}`,
		"unknown type":         `{"u":"` + ptrURL + `","irmaqr":"unknown"}`,
		"url not a string":     `{"u":1,"irmaqr":"disclosing"}`,
		"relative url":         `{"u":"/irma/session/x","irmaqr":"disclosing"}`,
		"ftp url":              `{"u":"ftp://x/y","irmaqr":"disclosing"}`,
		"javascript url":       `{"u":"javascript:alert(1)","irmaqr":"disclosing"}`,
		"credentials in url":   `{"u":"https://user:pw@gw.example/irma/session/x","irmaqr":"disclosing"}`,
		"query in url":         `{"u":"https://gw.example/irma/session/x?a=b","irmaqr":"disclosing"}`,
		"ambiguous":            `{"u":"` + ptrURL + `","irmaqr":"disclosing","sessionPtr":` + ptrJSON + `}`,
		"sessionPtr not obj":   `{"sessionPtr":"` + ptrURL + `"}`,
		"sessionPtr null":      `{"sessionPtr":null}`,
		"nested sessionPtr":    `{"sessionPtr":{"sessionPtr":` + ptrJSON + `}}`,
		"server error":         `{"error":"SESSION_UNKNOWN","description":"Unknown or expired session","status":400}`,
		"plain URL":            "https://gw.example/protected",
		"link without ptr":     "https://open.yivi.app/-/session",
		"link, http":           "http://open.yivi.app/-/session#" + url.PathEscape(ptrJSON),
		"link, wrapper":        "https://open.yivi.app/-/session#" + url.PathEscape(`{"sessionPtr":`+ptrJSON+`}`),
		"link, other path":     "https://open.yivi.app/-/other#" + url.PathEscape(ptrJSON),
		"link, bad fragment":   "https://open.yivi.app/-/session#%7Bnope",
		"other host, with ptr": "https://evil.example/-/session#" + url.PathEscape(ptrJSON),
		"too long":             `{"u":"` + ptrURL + `","irmaqr":"disclosing","x":"` + strings.Repeat("a", wallet.MaxPointerSize) + `"}`,
	}
	for name, in := range invalid {
		t.Run(name, func(t *testing.T) {
			qr, err := wallet.ParsePointer(in)
			if err == nil {
				t.Fatalf("accepted, as %+v", qr)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error not lowercase: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestFetchPointer(t *testing.T) {
	wrapped := `{"sessionPtr":` + ptrJSON + `,"token":"t"}`
	mux := http.NewServeMux()
	reply := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Accept") != "application/json" {
				http.Error(w, "want Accept: application/json", http.StatusNotAcceptable)
				return
			}
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	mux.Handle("/ok", reply(200, "application/json", ptrJSON))
	mux.Handle("/wrapped", reply(200, "application/json; charset=utf-8", wrapped))
	mux.Handle("/login", reply(401, "application/json", wrapped))
	mux.Handle("/forbidden", reply(403, "application/json", `{"error":"UNAUTHORIZED","description":"You are not authorized","status":403}`))
	mux.Handle("/html", reply(200, "text/html", "<html>hello</html>"))
	mux.Handle("/json-nonsense", reply(200, "application/json", `{"hello":"world"}`))
	mux.Handle("/big", reply(200, "application/json", `{"u":"`+ptrURL+`","irmaqr":"disclosing","x":"`+strings.Repeat("a", wallet.MaxPointerSize)+`"}`))
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := testContext(t)
	for _, path := range []string{"/ok", "/wrapped", "/login", "/redirect"} {
		qr, err := wallet.FetchPointer(ctx, srv.Client(), srv.URL+path)
		if err != nil || *qr != wantPtr {
			t.Errorf("%s: %v, %+v", path, err, qr)
		}
	}
	for path, want := range map[string]string{
		"/forbidden":     "403 Forbidden: UNAUTHORIZED: You are not authorized",
		"/html":          `"text/html", not a session pointer`,
		"/json-nonsense": "no session pointer",
		"/big":           "larger than",
		"/nope":          "404",
	} {
		_, err := wallet.FetchPointer(ctx, nil, srv.URL+path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", path, err, want)
		} else {
			t.Logf("%s: %v", path, err)
		}
	}

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := wallet.FetchPointer(short, nil, srv.URL+"/slow"); err == nil {
		t.Error("/slow: no error")
	}

	// What ParsePointer takes, FetchPointer takes without a request.
	for _, in := range []string{ptrJSON, wrapped, "https://open.yivi.app/-/session#" + url.PathEscape(ptrJSON)} {
		qr, err := wallet.FetchPointer(ctx, &http.Client{Transport: failingTransport{t}}, in)
		if err != nil || *qr != wantPtr {
			t.Errorf("%s: %v, %+v", in, err, qr)
		}
	}
	if _, err := wallet.FetchPointer(ctx, nil, "https://user:pw@gw.example/x"); err == nil {
		t.Error("fetched a URL with credentials")
	}
}

type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request to %s", r.URL)
	return nil, http.ErrNotSupported
}

func FuzzParsePointer(f *testing.F) {
	for _, seed := range []string{
		ptrJSON,
		`{"sessionPtr":` + ptrJSON + `,"token":"t"}`,
		"https://open.yivi.app/-/session#" + url.PathEscape(ptrJSON),
		"https://irma.app/-/session#" + url.QueryEscape(ptrJSON),
		`{"u":"http://[::1]:8080/irma/session/x","irmaqr":"issuing"}`,
		`{"u":"https://gw.example/irma/session/x","irmaqr":"redirect"}`,
		`{"sessionPtr":{"sessionPtr":{}}}`,
		`{"u":"https://a@b/x","irmaqr":"signing"}`,
		`{"error":"SESSION_UNKNOWN","status":400}`,
		`{"u":"\u0068ttps://x/y","irmaqr":"disclosing"}`,
		`{"u":"https://x/y","irmaqr":"disclosing"} `,
		"null",
		"https://open.yivi.app/-/session#%7B",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		qr, err := wallet.ParsePointer(in)
		if err != nil {
			if qr != nil {
				t.Fatal("pointer and error")
			}
			return
		}
		if err := qr.Validate(); err != nil {
			t.Fatalf("accepted an invalid pointer %+v: %v", qr, err)
		}
		u, err := url.Parse(qr.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("accepted URL %q", qr.URL)
		}
		// What it accepted it accepts again, as pointer JSON and as a universal link.
		data, err := json.Marshal(qr)
		if err != nil {
			t.Fatal(err)
		}
		for _, again := range []string{string(data), "https://open.yivi.app/-/session#" + url.PathEscape(string(data))} {
			qr2, err := wallet.ParsePointer(again)
			if err != nil || *qr2 != *qr {
				t.Fatalf("%q parsed as %+v, but %q as %+v, %v", in, qr, again, qr2, err)
			}
		}
	})
}
