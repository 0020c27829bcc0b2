package sealedcookie

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
)

type session struct {
	LoginID string            `json:"login_id"`
	Attrs   map[string]string `json:"attrs"`
}

var (
	keyA = bytes.Repeat([]byte{'a'}, 64)
	keyB = bytes.Repeat([]byte{'b'}, 32)
	keyC = bytes.Repeat([]byte{'c'}, 100)
)

func ring(t testing.TB, keys ...[]byte) *KeyRing {
	t.Helper()
	k, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var alice = session{LoginID: "login-1", Attrs: map[string]string{"pbdf.sidn-pbdf.email.email": "alice@example.com"}}

func seal(t testing.TB, k *KeyRing, name string, v any, expires time.Time) string {
	t.Helper()
	s, err := k.Seal(name, v, expires)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	now := time.Now()
	for _, key := range [][]byte{keyA, keyB, keyC} {
		k := ring(t, key)
		sealed := seal(t, k, "irma_session", alice, now.Add(time.Hour))
		var got session
		if err := k.Open("irma_session", sealed, &got, now); err != nil {
			t.Fatal(err)
		}
		if got.LoginID != alice.LoginID || got.Attrs["pbdf.sidn-pbdf.email.email"] != "alice@example.com" {
			t.Errorf("got %+v", got)
		}
		raw, err := base64.URLEncoding.DecodeString(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("alice")) || bytes.Contains(raw, []byte("login-1")) {
			t.Error("the sealed value is readable")
		}
	}
	if first := seal(t, ring(t, keyA), "n", alice, now.Add(time.Hour)); first == seal(t, ring(t, keyA), "n", alice, now.Add(time.Hour)) {
		t.Error("sealing twice gives the same value: no random IV")
	}
}

func TestExpiry(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	expires := now.Add(time.Minute).Truncate(time.Second)
	sealed := seal(t, k, "n", alice, expires)
	var got session
	if err := k.Open("n", sealed, &got, expires.Add(-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	// OpenUntil says when Open starts refusing: what a cache of opened values honours.
	if until, err := k.OpenUntil("n", sealed, &got, now); err != nil || !until.Equal(expires) {
		t.Errorf("OpenUntil: %s, %v; want %s", until, err, expires)
	}
	if until, err := k.OpenUntil("n", sealed, &got, expires); !errors.Is(err, ErrExpired) || !until.IsZero() {
		t.Errorf("OpenUntil at expiry: %s, %v; want ErrExpired", until, err)
	}
	for _, at := range []time.Time{expires, expires.Add(time.Second), expires.Add(MaxLifetime)} {
		var got session
		if err := k.Open("n", sealed, &got, at); !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) {
			t.Errorf("at %s: %v, want ErrExpired", at.Sub(expires), err)
		}
		if got.LoginID != "" {
			t.Error("an expired value was decoded")
		}
	}

	if _, err := k.Seal("n", alice, time.Time{}); err == nil {
		t.Error("sealed without an expiry")
	}
	if _, err := k.Seal("n", alice, now.Add(MaxLifetime+time.Hour)); err == nil {
		t.Error("sealed beyond MaxLifetime")
	}
}

func TestRotation(t *testing.T) {
	now := time.Now()
	old := ring(t, keyA)
	sealedOld := seal(t, old, "n", alice, now.Add(time.Hour))

	rotated := ring(t, keyB, keyA)
	var got session
	if err := rotated.Open("n", sealedOld, &got, now); err != nil || got.LoginID != alice.LoginID {
		t.Errorf("value of the old key after rotation: %v", err)
	}
	sealedNew := seal(t, rotated, "n", alice, now.Add(time.Hour))
	if err := ring(t, keyB).Open("n", sealedNew, &got, now); err != nil {
		t.Errorf("the newest key does not seal: %v", err)
	}
	if err := old.Open("n", sealedNew, &got, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("new value opened with the old key only: %v", err)
	}
	if err := ring(t, keyB, keyC).Open("n", sealedOld, &got, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("value of a retired key: %v, want ErrInvalid", err)
	}
}

func TestNameBound(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	sealed := seal(t, k, "irma_pending", alice, now.Add(time.Hour))
	var got session
	for _, name := range []string{"irma_session", "irma_pendin", "irma_pending ", "IRMA_PENDING", ""} {
		if err := k.Open(name, sealed, &got, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("opened as %q: %v", name, err)
		}
	}
}

func TestTampered(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	sealed := seal(t, k, "n", alice, now.Add(time.Hour))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
	check := func(what, value string) {
		t.Helper()
		var got session
		if err := k.Open("n", value, &got, now); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: %v, want ErrInvalid", what, err)
		}
		if got.LoginID != "" {
			t.Fatalf("%s: decoded into v", what)
		}
	}
	for i := range len(sealed) {
		b := []byte(sealed)
		b[i] ^= 1
		check("flipped bit at "+strconv.Itoa(i), string(b))
		// Every other character of the alphabet too: with the unused bits of the last
		// characters, a lenient decoder would accept some of these.
		for _, c := range []byte(alphabet) {
			if c == sealed[i] {
				continue
			}
			b[i] = c
			check("replaced at "+strconv.Itoa(i)+" by "+string(c), string(b))
		}
	}
	for i := range len(sealed) {
		check("truncated to "+strconv.Itoa(i), sealed[:i])
	}
	check("appended", sealed+"A")
	check("line break", sealed[:10]+"\n"+sealed[10:])
	check("quoted", `"`+sealed+`"`)
}

func TestOversized(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	var got string
	if err := k.Open("n", strings.Repeat("A", MaxValueSize+4), &got, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized input: %v", err)
	}
	if _, err := k.Seal("n", strings.Repeat("x", MaxValueSize), now.Add(time.Hour)); err == nil {
		t.Error("sealed a value too large for a cookie")
	}
	// Just under the raw limit, but too large once encrypted and encoded.
	if _, err := k.Seal("n", strings.Repeat("x", 3500), now.Add(time.Hour)); err == nil {
		t.Error("sealed a value whose encoding is too large for a cookie")
	}
}

func TestWrongType(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	sealed := seal(t, k, "n", "a string", now.Add(time.Hour))
	var n int
	if err := k.Open("n", sealed, &n, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := New(keyA, make([]byte, 31)); err == nil || !strings.Contains(err.Error(), "key 1: 31 bytes") {
		t.Errorf("short key: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 22) // 66 bytes, with + and / in standard base64
	for name, s := range map[string]string{
		"standard":      base64.StdEncoding.EncodeToString(key),
		"standard, raw": base64.RawStdEncoding.EncodeToString(key[:64]),
		"URL":           base64.URLEncoding.EncodeToString(key[:64]),
		"URL, raw":      base64.RawURLEncoding.EncodeToString(key[:65]),
		"spaces":        "  " + base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseKey(s)
		if err != nil || !bytes.HasPrefix(key, got) || len(got) < 64 {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	secret := "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0!"
	for name, c := range map[string]struct{ in, want string }{
		"empty":      {"", "empty"},
		"too short":  {base64.StdEncoding.EncodeToString(make([]byte, 31)), "31 bytes, want at least 32"},
		"not base64": {secret, "not base64"},
		"mixed":      {strings.Repeat("+_", 30), "not base64"},
	} {
		_, err := ParseKey(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		if err != nil && c.in != "" && strings.Contains(err.Error(), c.in) {
			t.Errorf("%s: the error reveals the key: %v", name, err)
		}
	}
}

func TestLoadOrCreateKeys(t *testing.T) {
	ctx := context.Background()
	var s keystore.Memory
	const callers = 8
	got := make([][][]byte, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			keys, err := LoadOrCreateKeys(ctx, &s, "sealedcookie/keys")
			if err != nil {
				t.Error(err)
			}
			got[i] = keys
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) != 1 || len(got[i][0]) != GeneratedKeySize || !bytes.Equal(got[i][0], got[0][0]) {
			t.Fatalf("caller %d got %x, caller 0 %x", i, got[i], got[0])
		}
	}
	// A second instance on the same storage opens the first one's cookies.
	first, second := ring(t, got[0]...), ring(t, got[1]...)
	now := time.Now()
	var v session
	if err := second.Open("n", seal(t, first, "n", alice, now.Add(time.Hour)), &v, now); err != nil {
		t.Error(err)
	}

	// Rotation: a new key in front.
	stored, _ := s.Load(ctx, "sealedcookie/keys")
	_ = s.Store(ctx, "sealedcookie/keys", append([]byte(base64.StdEncoding.EncodeToString(keyC)+"\n\n"), stored...))
	keys, err := LoadOrCreateKeys(ctx, &s, "sealedcookie/keys")
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], keyC) || !bytes.Equal(keys[1], got[0][0]) {
		t.Errorf("after rotation: %d keys, %v", len(keys), err)
	}

	for name, data := range map[string]string{"empty": "\n \n", "bad line": "c2hvcnQ=\n"} {
		var s keystore.Memory
		_ = s.Store(ctx, "k", []byte(data))
		if _, err := LoadOrCreateKeys(ctx, &s, "k"); err == nil || !strings.Contains(err.Error(), `storage key "k"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCookie(t *testing.T) {
	k := ring(t, keyA)
	now := time.Now()
	expires := now.Add(time.Hour)
	c, err := k.Cookie("irma_session", alice, expires, CookieOptions{Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.HttpOnly || !c.Secure || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || !c.Expires.Equal(expires) || c.Domain != "" {
		t.Errorf("cookie %s", c)
	}
	c2, err := k.Cookie("irma_session", alice, expires, CookieOptions{Domain: "example.com", Path: "/app", SameSite: http.SameSiteStrictMode})
	if err != nil {
		t.Fatal(err)
	}
	if !c2.HttpOnly || c2.Secure || c2.Path != "/app" || c2.SameSite != http.SameSiteStrictMode || c2.Domain != "example.com" {
		t.Errorf("cookie %s", c2)
	}
	if _, err := k.Cookie("bad name;", alice, expires, CookieOptions{}); err == nil {
		t.Error("invalid cookie name accepted")
	}

	// Through a real round trip of headers.
	rec := httptest.NewRecorder()
	http.SetCookie(rec, c)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Cookie", "irma_session=forged; other=1")
	for _, sc := range rec.Result().Cookies() {
		req.AddCookie(sc)
	}
	var got session
	if err := k.ReadCookie(req, "irma_session", &got, now); err != nil || got.LoginID != alice.LoginID {
		t.Errorf("ReadCookie: %+v, %v", got, err)
	}
	if err := k.ReadCookie(req, "irma_session", &got, expires); !errors.Is(err, ErrExpired) {
		t.Errorf("ReadCookie after expiry: %v", err)
	}
	if err := k.ReadCookie(req, "other", &got, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadCookie of a plain cookie: %v", err)
	}
	if err := k.ReadCookie(req, "missing", &got, now); !errors.Is(err, http.ErrNoCookie) {
		t.Errorf("ReadCookie of a missing cookie: %v", err)
	}
}

// FuzzOpen feeds Open arbitrary values. Whatever opens must hold what the test sealed: the
// fuzzing engine runs the seed corpus in other processes, where the same plaintexts were sealed
// with other random IVs, so the sealed strings themselves cannot be compared.
func FuzzOpen(f *testing.F) {
	k := ring(f, keyA, keyB)
	now := time.Now()
	sealed := map[string]bool{}
	for _, v := range []any{alice, "x", 42, nil} {
		raw, _ := json.Marshal(v)
		sealed[string(raw)] = true
		s := seal(f, k, "n", v, now.Add(time.Hour))
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(strings.TrimRight(s, "="))
		f.Add(s + "=")
	}
	f.Add(seal(f, ring(f, keyC), "n", alice, now.Add(time.Hour))) // foreign key
	f.Add(seal(f, k, "other", alice, now.Add(time.Hour)))         // other name
	f.Add(seal(f, k, "n", alice, now.Add(-time.Hour)))            // expired
	f.Add("")
	f.Add("=")
	f.Add("MTIzfHh8eQ==") // "123|x|y"
	f.Add(strings.Repeat("A", MaxValueSize+1))

	f.Fuzz(func(t *testing.T, value string) {
		var v json.RawMessage
		err := k.Open("n", value, &v, now)
		if err == nil && !sealed[string(v)] {
			t.Errorf("opened a value never sealed for this name: %q holds %s", value, v)
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
			t.Errorf("error %v is neither ErrInvalid nor ErrExpired", err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	k := ring(b, keyA)
	expires := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal("n", alice, expires); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := ring(b, keyB, keyA) // opened with the second key, as after a rotation
	now := time.Now()
	sealed := seal(b, ring(b, keyA), "n", alice, now.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		var v session
		if err := k.Open("n", sealed, &v, now); err != nil {
			b.Fatal(err)
		}
	}
}
