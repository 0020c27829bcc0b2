package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
)

// Chained sessions (a session request's nextSession). When a session that
// names a next-session URL is done, irmaserver posts its result there,
// gets the next session request in answer, asks its
// NextSessionAuthorization whether the session's requestor may start it,
// and starts it for the app to go on with. irmaserver knows a session's
// requestor only by the string it was started with, and one IRMA server
// serves every irma_requestor_api of the gateway, each with its own
// requestors (two may have one named alike): so each API starts its
// sessions as "<key>/<name>", where key names the API's requestors and
// their permissions, and the server asks the API of that key. The key
// depends on nothing else, so that a reload that keeps an API's
// requestors keeps its chains going, and another instance with the same
// configuration (the sessions in Redis) answers alike; a reload that
// changes them ends the chains begun under the old ones, as it should.

// chainAPIs are the requestor APIs in use, by key: several handlers may
// share one (the same API on two sites, or the old and the new
// configuration during a reload).
var chainAPIs = struct {
	sync.Mutex
	m map[string]*chainAPI
}{m: map[string]*chainAPI{}}

type chainAPI struct {
	users     int
	authorize func(requestor string, request irma.SessionRequest) (bool, string)
}

// chainKey names a requestor API by what decides its answers.
func chainKey(cfg requestor.Config) string {
	perms := make(map[string]any, len(cfg.Requestors))
	for name, r := range cfg.Requestors {
		perms[name] = r.Permissions
	}
	b, _ := json.Marshal(struct {
		URL      string
		Perms    map[string]any
		Signed   bool
		Unsigned bool
	}{cfg.URL, perms, cfg.SignedCallbacks, cfg.AllowUnsignedCallbacks})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// registerChains makes the server ask h about the next sessions of the
// sessions started with requestor names under key, until release is called.
func registerChains(key string, h *requestor.Handler) (release func()) {
	chainAPIs.Lock()
	defer chainAPIs.Unlock()
	api := chainAPIs.m[key]
	if api == nil {
		api = new(chainAPI)
		chainAPIs.m[key] = api
	}
	api.users++
	api.authorize = h.AuthorizeNext
	var once sync.Once
	return func() {
		once.Do(func() {
			chainAPIs.Lock()
			defer chainAPIs.Unlock()
			if api.users--; api.users == 0 {
				delete(chainAPIs.m, key)
			}
		})
	}
}

// authorizeNextSession is the IRMA server's NextSessionAuthorization: it
// refuses the next session of any session that no requestor API in use
// started (logins, issuances and signatures never chain).
func authorizeNextSession(requestor string, request irma.SessionRequest) (bool, string) {
	key, name, ok := strings.Cut(requestor, "/")
	if !ok {
		return false, "the session was not started by a requestor API"
	}
	if key == staticChains {
		return authorizeStaticNext(request)
	}
	chainAPIs.Lock()
	api := chainAPIs.m[key]
	chainAPIs.Unlock()
	if api == nil {
		return false, "the requestor API that started the session is no longer configured"
	}
	return api.authorize(name, request)
}

// Cleanup implements caddy.CleanerUpper: the API's chains are no longer
// its to authorize (unless its successor has the same key).
func (h *RequestorAPI) Cleanup() error {
	if h.releaseChains != nil {
		h.releaseChains()
	}
	return nil
}

// adminTarget says whether u points at Caddy's default admin endpoint
// (localhost:2019, or CADDY_ADMIN's), where a requestor's callback or
// next-session URL could post to /load or /config: a requestor is trusted
// with its own results, not with the gateway's configuration. An admin
// endpoint configured elsewhere is the operator's to keep from requestors
// (SECURITY.md).
func adminTarget(u *url.URL) bool {
	_, port, err := net.SplitHostPort(caddy.DefaultAdminListen)
	if err != nil {
		return false
	}
	// As numbers: "02019" dials port 2019 too.
	admin, err1 := strconv.Atoi(port)
	target, err2 := strconv.Atoi(u.Port())
	if err1 != nil || err2 != nil || admin != target {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
