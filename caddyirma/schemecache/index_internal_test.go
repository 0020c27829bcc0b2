package schemecache

import (
	"net/http"
	"strings"
	"testing"
)

// TestParseIndex: a signed index names only files inside its own scheme,
// and none of the files the cache writes itself.
func TestParseIndex(t *testing.T) {
	const hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	ok := hash + " demo/description.xml\n" + hash + " demo/timestamp\n"
	if _, err := parseIndex("demo", []byte(ok)); err != nil {
		t.Fatalf("a good index: %v", err)
	}
	for _, tc := range []struct{ name, line, want string }{
		{"another scheme", hash + " other/description.xml", "not a file of scheme demo"},
		{"no scheme", hash + " description.xml", "not a file of scheme demo"},
		{"parent", hash + " demo/../other/x.xml", "not a file of scheme demo"},
		{"absolute", hash + " demo//etc/passwd", "not a file of scheme demo"},
		{"dot", hash + " demo/./x.xml", "not a file of scheme demo"},
		{"hidden", hash + " demo/.lock", "not a file of scheme demo"},
		{"backslash", hash + ` demo/a\..\..\x`, "not a file of scheme demo"},
		{"pinned key", hash + " demo/pk.pem", "not a file of scheme demo"},
		{"index", hash + " demo/index.sig", "not a file of scheme demo"},
		{"private key", hash + " demo/issuer/PrivateKeys/0.xml", "not a file of scheme demo"},
		{"short hash", "e3b0 demo/x.xml", "want a SHA-256"},
		{"no hash", "demo/x.xml", "want a SHA-256"},
		{"two spaces", hash + " demo/x.xml extra", "not a file of scheme demo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseIndex("demo", []byte(ok+tc.line+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := parseIndex("demo", []byte(hash+" demo/timestamp\n")); err == nil {
		t.Error("an index without description.xml passed")
	}
}

// TestNoDowngrade: scheme fetches follow redirects, but not from https to
// plain http, and not forever.
func TestNoDowngrade(t *testing.T) {
	req := func(u string) *http.Request {
		r, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	from := []*http.Request{req("https://schemes.example/pbdf/index")}
	if err := noDowngrade(req("https://mirror.example/pbdf/index"), from); err != nil {
		t.Errorf("https to https: %v", err)
	}
	if err := noDowngrade(req("http://mirror.example/pbdf/index"), from); err == nil {
		t.Error("https to http was followed")
	}
	if err := noDowngrade(req("http://localhost/x"), []*http.Request{req("http://localhost/y")}); err != nil {
		t.Errorf("http to http (a local test server): %v", err)
	}
	many := make([]*http.Request, 10)
	for i := range many {
		many[i] = from[0]
	}
	if err := noDowngrade(req("https://schemes.example/x"), many); err == nil {
		t.Error("an eleventh redirect was followed")
	}
}
