package caddyirma

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
)

// loginCacheSize bounds the logins that a loginCache keeps: one per visitor
// active lately; a visitor beyond it costs one opening of the cookie more.
// The values are the keys: some hundred bytes each for a login of a few
// attributes, so a few MB when full; sealedcookie.MaxValueSize (4 KiB)
// each at the very most.
const loginCacheSize = 10000

// loginCache keeps the logins that session cookies opened to, keyed by the
// cookie's whole value, so that a visitor's requests do not each verify,
// decrypt and decode the same cookie (HMAC-SHA256, AES, base64 and two JSON
// decodings). It holds only values that opened, and gives a
// login only until the sealed value expires or the login ends, whichever
// comes first. Whether a logout revoked the login is not its business:
// currentLogin asks the store of marks on every request.
//
// One cache belongs to one key ring (LoginConfig.start makes both): a
// config with other cookie keys gets a new cache, so that a cookie of a
// retired key never opens from it. When full, it forgets the login it took
// in first.
type loginCache struct {
	mu      sync.RWMutex
	entries map[string]cachedLogin
	order   []string // a ring of the values, in the order of taking in
	next    int      // the slot of order to fill next
	full    bool     // every slot of order holds a key
}

// cachedLogin is a login that a cookie value opened to, and until when it
// may be used.
type cachedLogin struct {
	login *loginState // shared by requests: never changed
	until time.Time
}

// newLoginCache returns a cache of at most size logins.
func newLoginCache(size int) *loginCache {
	return &loginCache{entries: make(map[string]cachedLogin, size), order: make([]string, size)}
}

// get returns the login that value opened to, if it is kept and usable at
// now; else nil.
func (c *loginCache) get(value string, now time.Time) *loginState {
	c.mu.RLock()
	e, ok := c.entries[value]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil
	}
	return e.login
}

// put keeps login, which value opened to, until until (or its end, if
// that comes first). The login must not change from here on.
func (c *loginCache) put(value string, login *loginState, until time.Time) {
	if login.Expires.Before(until) {
		until = login.Expires
	}
	key := strings.Clone(value) // not the request's header line it is part of
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		if c.full {
			delete(c.entries, c.order[c.next])
		}
		c.order[c.next] = key
		c.next++
		if c.next == len(c.order) {
			c.next, c.full = 0, true
		}
	}
	c.entries[key] = cachedLogin{login: login, until: until}
}

// len is how many logins c keeps.
func (c *loginCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// loginViews are what the flows derive from one cached login, the same on
// every request: one view per flow (route) that the login passed.
type loginViews struct {
	views atomic.Pointer[[]*loginView] // copied on write
}

// loginView is what a flow makes of a login: whether it satisfies the
// flow's policy, the identity its JWT asserts (the pseudonym for the flow's
// audience, the attributes its policy asks), the placeholders it sets, and
// the JWT last signed, for reuse.
type loginView struct {
	flow         *loginFlow
	satisfied    bool
	identity     assertion.Identity
	placeholders []placeholder
	token        atomic.Pointer[reusableToken]
}

// placeholder is one placeholder that irma_auth sets, its value boxed once.
type placeholder struct {
	key   string
	value any
}

// reusableToken is an identity JWT, and until when it may go out again.
type reusableToken struct {
	token string
	until time.Time
}

// view returns what f makes of login, derived once per cached login (a
// login that is not cached, just granted, is derived anew).
func (f *loginFlow) view(login *loginState) *loginView {
	if login.views == nil {
		return f.newView(login)
	}
	for {
		old := login.views.views.Load()
		if old != nil {
			for _, v := range *old {
				if v.flow == f {
					return v
				}
			}
		}
		v := f.newView(login)
		var views []*loginView
		if old != nil {
			views = append(views, *old...)
		}
		views = append(views, v)
		if login.views.views.CompareAndSwap(old, &views) {
			return v
		}
	}
}

// newView derives what f makes of login.
func (f *loginFlow) newView(login *loginState) *loginView {
	attrs := map[string]string{}
	for _, id := range f.policy.AttributeTypes() {
		if v, ok := login.Attributes[id.String()]; ok {
			attrs[id.String()] = v
		}
	}
	subject := f.subject(login)
	v := &loginView{flow: f, satisfied: f.policy.SatisfiedBy(toAttributes(login.Attributes)), identity: assertion.Identity{
		// The identity ends with the login, or earlier with what the
		// policy counts of its non-revocation proofs.
		Subject: subject, Attributes: attrs, Policy: f.name, Audience: f.audience, LoginID: login.ID, Expires: f.nonRevocationUntil(login),
	}}
	for id, value := range login.Attributes {
		v.placeholders = append(v.placeholders, placeholder{placeholderPrefix + "attr." + id, value})
	}
	v.placeholders = append(v.placeholders,
		placeholder{placeholderPrefix + "policy", f.name},
		placeholder{placeholderPrefix + "login_id", subject},
		placeholder{placeholderPrefix + "login_expires", login.Expires.UTC().Format(time.RFC3339)})
	return v
}
