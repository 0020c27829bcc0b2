package caddyirma

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestInNamespace(t *testing.T) {
	a := new(App)
	for _, name := range []string{"X-Auth-Identity", "X-Email"} {
		a.identityHeaders.add(name)
	}
	for name, want := range map[string]bool{
		"X-Irma-Identity": true, "x-irma-identity": true, "X_IRMA_IDENTITY": true, "X.Irma.Identity": true,
		"X-Irma-Attr-Fullname": true, "x_irma_attr_fullname": true, "X-Irma_Attr.Fullname": true, "X-Irma-": true,
		"X-Auth-Identity": true, "x_auth_identity": true, "X.AUTH.IDENTITY": true,
		"X-Email": true, "x_email": true, "x.email": true,
		"X-Irma": false, "X-Irmax-Identity": false, "X-Iris-Identity": false, "Irma-Identity": false,
		"X-Auth-Identity-2": false, "X-Emails": false, "Accept": false, "Cookie": false, "": false,
	} {
		if got := a.inNamespace(name); got != want {
			t.Errorf("inNamespace(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestStripNamespace: the namespace's headers go, and its names leave
// Connection; other headers and names stay.
func TestStripNamespace(t *testing.T) {
	a := new(App)
	for _, c := range []struct {
		name       string
		connection []string
		want       []string
	}{
		{"none", nil, nil},
		{"others only", []string{"keep-alive, Upgrade"}, []string{"keep-alive, Upgrade"}},
		{"the identity header", []string{"X-Irma-Identity"}, nil},
		{"among others", []string{"keep-alive, x_irma_attr_email,X-Checksum"}, []string{"keep-alive, X-Checksum"}},
		{"in a second line", []string{"Upgrade", "X-IRMA-IDENTITY"}, []string{"Upgrade"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{"X-Irma-Identity": {"forged"}, "X-Checksum": {"1"}}}
			if c.connection != nil {
				r.Header["Connection"] = c.connection
			}
			a.stripNamespace(r)
			if got := r.Header.Values("Connection"); strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("Connection %q, want %q", got, c.want)
			}
			if r.Header.Get("X-Irma-Identity") != "" || r.Header.Get("X-Checksum") != "1" {
				t.Errorf("headers %v", r.Header)
			}
		})
	}
}

// TestTrailerGuard: a trailer of the namespace that turns up at the end of
// the body is removed, and the read fails with 400; others stay.
func TestTrailerGuard(t *testing.T) {
	a := new(App)
	for _, c := range []struct {
		name    string
		arrive  http.Header
		refused bool
		keep    http.Header
	}{
		{"none", http.Header{}, false, http.Header{}},
		{"another name", http.Header{"X-Checksum": {"1"}}, false, http.Header{"X-Checksum": {"1"}}},
		{"identity", http.Header{"X-Checksum": {"1"}, "X-Irma-Identity": {"forged"}}, true, http.Header{"X-Checksum": {"1"}}},
		{"underscores", http.Header{"X_irma_attr_email": {"forged"}}, true, http.Header{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			trailer := http.Header{"X-Checksum": nil}
			body := &fillAtEOF{Reader: strings.NewReader("hello"), fill: func() {
				for k, v := range c.arrive {
					trailer[k] = v
				}
			}}
			g := &trailerGuard{ReadCloser: io.NopCloser(body), trailer: trailer, refused: a.inNamespace}
			data, err := io.ReadAll(g)
			if string(data) != "hello" {
				t.Errorf("read %q", data)
			}
			var herr caddyhttp.HandlerError
			if c.refused {
				if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest || !strings.Contains(herr.Err.Error(), "only the gateway sets") {
					t.Errorf("error %v, want a 400", err)
				}
				if n, again := g.Read(make([]byte, 8)); n != 0 || again != err {
					t.Errorf("a later read: %d, %v; want the refusal again", n, again)
				}
			} else if err != nil {
				t.Errorf("error %v", err)
			}
			for k := range trailer {
				if a.inNamespace(k) {
					t.Errorf("the trailer %s is left", k)
				}
			}
			if c.keep.Get("X-Checksum") != trailer.Get("X-Checksum") {
				t.Errorf("trailers %v, want %v", trailer, c.keep)
			}
		})
	}
}

// fillAtEOF calls fill when its reader is done, as Go's server fills in a
// request's trailers.
type fillAtEOF struct {
	io.Reader
	fill func()
}

func (f *fillAtEOF) Read(p []byte) (int, error) {
	n, err := f.Reader.Read(p)
	if err == io.EOF && f.fill != nil {
		f.fill()
		f.fill = nil
	}
	return n, err
}

// The allocation-free normalization of inNamespace is normalizeHeader's.
func TestAppendNormalized(t *testing.T) {
	for _, name := range []string{"X-Irma-Identity", "x_IRMA.attr", "Accept", "", "A.B_C-d", "X-Ü-Irma", "\u212a-Irma"} {
		got, ok := appendNormalized(nil, name)
		if !ok {
			got = []byte(normalizeHeader(name))
		}
		if string(got) != normalizeHeader(name) {
			t.Errorf("%q: %q, want %q", name, got, normalizeHeader(name))
		}
	}
}
