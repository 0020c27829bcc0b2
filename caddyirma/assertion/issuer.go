package assertion

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Defaults of an Issuer.
const (
	// DefaultTTL is how long a token is valid: long enough for one request to reach the
	// upstream, short enough that a leaked token is soon useless.
	DefaultTTL = 60 * time.Second
	// DefaultCacheSize is how many tokens Token keeps for reuse: one per visitor active
	// within half a TTL.
	DefaultCacheSize = 10000
)

// Identity is what the gateway asserts about a logged-in visitor.
type Identity struct {
	// Subject is the "sub" claim: who the visitor is to the upstream. The gateway uses
	// the random id of the login: IRMA attributes are not identifiers. Empty leaves
	// "sub" out.
	Subject string
	// Attributes maps each disclosed attribute id to its value.
	Attributes map[string]string
	// Policy names the policy that the login satisfied.
	Policy string
	// Audience is the "aud" claim: the upstream the token is for. Empty
	// means the Issuer's Audience.
	Audience string
	// LoginID identifies the login (the session cookie's), so that tokens are reused
	// within one login and never across logins.
	LoginID string
	// Expires is when the login ends; no token outlives it. Zero means no limit
	// beyond the TTL.
	Expires time.Time
}

// Issuer signs identity tokens for upstreams. Set its fields before first use and do not
// change them after; an Issuer is then safe for concurrent use. It must not be copied after
// first use.
type Issuer struct {
	// Issuer is the "iss" claim: who vouches, typically the site's URL. Required.
	Issuer string
	// Audience is the "aud" claim: the upstream the tokens are for. Required.
	Audience string
	// TTL is how long a token is valid, at most; never beyond the login. Default:
	// DefaultTTL.
	TTL time.Duration
	// Keys sign the tokens. Required.
	Keys *KeyRing
	// CacheSize is how many tokens Token keeps for reuse. Default: DefaultCacheSize;
	// negative turns reuse off.
	CacheSize int

	now func() time.Time // for tests; nil means time.Now

	mu    sync.Mutex
	cache map[cacheKey]*list.Element // of *cached
	order list.List                  // of *cached, oldest first
}

// cacheKey identifies everything that goes into a token except the times and the jti.
type cacheKey [sha256.Size]byte

// cached is a token kept for reuse.
type cached struct {
	key   cacheKey
	token string
	exp   time.Time
}

// claims are the claims of the tokens Sign produces. NumericDates are whole seconds.
type claims struct {
	Issuer     string            `json:"iss"`
	Audience   string            `json:"aud"`
	Subject    string            `json:"sub,omitempty"`
	IssuedAt   int64             `json:"iat"`
	NotBefore  int64             `json:"nbf"`
	Expires    int64             `json:"exp"`
	ID         string            `json:"jti"`
	Attributes map[string]string `json:"attributes"`
	Policy     string            `json:"policy,omitempty"`
}

// Sign returns a new token asserting id, signed by the newest key, and when it expires:
// now plus the TTL, or the end of the login if that is sooner. It fails if the login has
// ended. Every call signs; Token reuses.
func (i *Issuer) Sign(id Identity) (token string, exp time.Time, err error) {
	return i.sign(id, i.clock())
}

func (i *Issuer) sign(id Identity, now time.Time) (string, time.Time, error) {
	if i.Keys == nil {
		return "", time.Time{}, errors.New("assertion: issuer: no keys")
	}
	if i.Issuer == "" || (i.Audience == "" && id.Audience == "") {
		return "", time.Time{}, errors.New("assertion: issuer: issuer and audience are required")
	}
	if i.TTL < 0 {
		return "", time.Time{}, fmt.Errorf("assertion: issuer: negative TTL %s", i.TTL)
	}
	exp := i.expiry(id, now)
	if exp <= now.Unix() {
		return "", time.Time{}, fmt.Errorf("assertion: login %s has expired", fingerprint(id.LoginID))
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // never fails (crypto/rand panics instead)
	attrs := id.Attributes
	if attrs == nil {
		attrs = map[string]string{} // "attributes" is always an object, never null
	}
	aud := id.Audience
	if aud == "" {
		aud = i.Audience
	}
	payload, err := json.Marshal(claims{
		Issuer:     i.Issuer,
		Audience:   aud,
		Subject:    id.Subject,
		IssuedAt:   now.Unix(),
		NotBefore:  now.Unix(),
		Expires:    exp,
		ID:         b64.EncodeToString(jti[:]),
		Attributes: attrs,
		Policy:     id.Policy,
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("assertion: claims: %w", err)
	}
	token, err := i.Keys.keys[0].sign(payload)
	if err != nil {
		return "", time.Time{}, err
	}
	return token, time.Unix(exp, 0), nil
}

// Token returns a token asserting id, like Sign, but reuses the token of an earlier call for
// the same login, policy, subject, attributes and signing key while more than half of its TTL
// is left (or while a new token would expire no later, at the end of the login): signing on
// every request costs too much, RSA most.
func (i *Issuer) Token(id Identity) (string, error) {
	token, _, err := i.TokenUntil(id)
	return token, err
}

// TokenUntil is Token that also says until when the token may be handed out again for the
// same id: a caller that keeps it per login (and so need not hash id on every request) reuses
// it before then, and asks again after. The zero time means not at all (reuse is off).
func (i *Issuer) TokenUntil(id Identity) (token string, reuseUntil time.Time, err error) {
	if i.CacheSize < 0 || i.Keys == nil {
		token, _, err := i.Sign(id)
		return token, time.Time{}, err
	}
	now := i.clock()
	key := i.cacheKey(id)

	i.mu.Lock()
	if el, ok := i.cache[key]; ok {
		c := el.Value.(*cached)
		if i.reusable(c, id, now) {
			i.mu.Unlock()
			return c.token, i.reuseUntil(c.exp, id), nil
		}
	}
	i.mu.Unlock()

	// Sign outside the lock: concurrent requests of one login may both sign, which costs less
	// than making every other visitor wait.
	token, exp, err := i.sign(id, now)
	if err != nil {
		return "", time.Time{}, err
	}
	i.mu.Lock()
	i.put(&cached{key: key, token: token, exp: exp}, now)
	i.mu.Unlock()
	return token, i.reuseUntil(exp, id), nil
}

// reuseUntil is when a token for id that expires at exp stops being reusable: once less than
// half its TTL is left, unless it expires with the login (a new token would expire no later).
// Never later than reusable allows.
func (i *Issuer) reuseUntil(exp time.Time, id Identity) time.Time {
	if !id.Expires.IsZero() && exp.Unix() >= id.Expires.Unix() {
		return exp
	}
	return exp.Add(-i.ttl() / 2)
}

// reusable reports whether c may be handed out for id at now.
func (i *Issuer) reusable(c *cached, id Identity, now time.Time) bool {
	left := c.exp.Sub(now)
	if left <= 0 {
		return false
	}
	if 2*left > i.ttl() {
		return true
	}
	// Near the end of the login a new token would expire no later than this one.
	return c.exp.Unix() >= i.expiry(id, now)
}

// put caches c, dropping tokens that are no longer worth reusing and, if the cache is still
// full, the oldest. Tokens are added in order of signing and all live one TTL, so the stale
// ones gather at the front.
func (i *Issuer) put(c *cached, now time.Time) {
	if i.cache == nil {
		i.cache = make(map[cacheKey]*list.Element)
	}
	if el, ok := i.cache[c.key]; ok {
		i.order.Remove(el)
		delete(i.cache, c.key)
	}
	size := i.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	for el := i.order.Front(); el != nil; el = i.order.Front() {
		old := el.Value.(*cached)
		if len(i.cache) < size && 2*old.exp.Sub(now) > i.ttl() {
			break
		}
		i.order.Remove(el)
		delete(i.cache, old.key)
	}
	i.cache[c.key] = i.order.PushBack(c)
}

// expiry returns the exp of a token for id signed at now, in Unix seconds.
func (i *Issuer) expiry(id Identity, now time.Time) int64 {
	exp := now.Add(i.ttl())
	if !id.Expires.IsZero() && id.Expires.Before(exp) {
		exp = id.Expires
	}
	return exp.Unix()
}

// cacheKey hashes what goes into a token apart from the times and the jti; the hash keeps the
// cache's memory per entry small and fixed however many attributes a login has.
func (i *Issuer) cacheKey(id Identity) cacheKey {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	str(i.Keys.keys[0].kid)
	str(id.LoginID)
	str(id.Policy)
	str(id.Subject)
	str(id.Audience)
	// Not UnixNano: it is undefined for the zero time, which means "no limit" here.
	buf = binary.BigEndian.AppendUint64(buf[:0], uint64(id.Expires.Unix()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(id.Expires.Nanosecond()))
	h.Write(buf)
	names := make([]string, 0, len(id.Attributes))
	for name := range id.Attributes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		str(name)
		str(id.Attributes[name])
	}
	var key cacheKey
	h.Sum(key[:0])
	return key
}

func (i *Issuer) ttl() time.Duration {
	if i.TTL == 0 {
		return DefaultTTL
	}
	return i.TTL
}

func (i *Issuer) clock() time.Time {
	if i.now != nil {
		return i.now()
	}
	return time.Now()
}

// fingerprint names a login in errors without revealing its id, which may be a bearer secret.
func fingerprint(loginID string) string {
	sum := sha256.Sum256([]byte(loginID))
	return b64.EncodeToString(sum[:6])
}
