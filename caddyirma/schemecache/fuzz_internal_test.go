package schemecache

import (
	"os"
	"path"
	"strings"
	"testing"
)

// FuzzParseIndex feeds parseIndex arbitrary indexes. It must never panic,
// and every path it accepts must be a clean file of the scheme, outside
// the files that the cache writes itself.
func FuzzParseIndex(f *testing.F) {
	const hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	f.Add(hash + " demo/description.xml\n" + hash + " demo/timestamp\n")
	f.Add(hash + " demo/description.xml\n" + hash + " demo/../other/x.xml\n")
	f.Add(hash + " demo/description.xml\n" + hash + " demo/issuer/PrivateKeys/0.xml\n")
	f.Add("e3b0 demo/x.xml\n")
	if b, err := os.ReadFile("../internal/testkit/schemeserver/testdata/yivi/irma-demo/index"); err == nil {
		f.Add(strings.ReplaceAll(string(b), "irma-demo/", "demo/"))
	}
	f.Fuzz(func(t *testing.T, index string) {
		parsed, err := parseIndex("demo", []byte(index))
		if err != nil {
			return
		}
		for p := range parsed {
			rel, ok := strings.CutPrefix(p, "demo/")
			if !ok || rel != path.Clean(rel) || strings.HasPrefix(rel, "/") || strings.Contains(rel, "..") ||
				reservedNames[rel] || strings.Contains(p, "/PrivateKeys/") {
				t.Fatalf("parseIndex accepted the path %q", p)
			}
		}
	})
}

// FuzzParseDemoPrivateKey feeds parseDemoPrivateKey arbitrary files, as a
// scheme server that is not what it claims could serve them (a demo
// scheme's private keys are not signed). It must never panic, and what it
// accepts must have the primes.
func FuzzParseDemoPrivateKey(f *testing.F) {
	f.Add("<PrivateKey></PrivateKey>")
	f.Add("<IssuerPrivateKey><Counter>0</Counter></IssuerPrivateKey>")
	if b, err := os.ReadFile("../internal/testkit/schemeserver/testdata/yivi/irma-demo/irvn/PrivateKeys/0.xml"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, data string) {
		sk, err := parseDemoPrivateKey([]byte(data))
		if err == nil && (sk == nil || sk.P == nil || sk.Q == nil || sk.N == nil) {
			t.Fatalf("accepted a key without its primes: %q", data)
		}
	})
}
