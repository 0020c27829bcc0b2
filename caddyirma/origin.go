package caddyirma

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Where a request comes from, by what the browser says of it: the rule of
// every endpoint that changes state (logout, irma_sign) or starts a session
// (startsSession).

// requestSource is where a request comes from, by what the browser says.
type requestSource int

const (
	// sourceUnknown: neither Sec-Fetch-Site nor Origin, which a browser
	// sends with every POST since about 2020: an older browser, or a
	// program that is not a browser.
	sourceUnknown requestSource = iota
	// sourceOwn: a page of the gateway's own origin, or the visitor
	// (Sec-Fetch-Site none: the address bar, a bookmark).
	sourceOwn
	// sourceForeign: anything else.
	sourceForeign
)

// sourceOf says where r comes from: Sec-Fetch-Site if it has one
// (same-origin and none are the gateway's own), else Origin, which must be
// the origin of the app's URL (appURL) or of r itself (its scheme and
// Host). The second return value says what was found, for a refusal.
func sourceOf(r *http.Request, appURL string) (requestSource, string) {
	if site := r.Header.Values("Sec-Fetch-Site"); len(site) > 0 {
		if len(site) == 1 && (site[0] == "same-origin" || site[0] == "none") {
			return sourceOwn, ""
		}
		return sourceForeign, fmt.Sprintf("Sec-Fetch-Site %q", strings.Join(site, ", "))
	}
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return sourceUnknown, ""
	}
	if len(origin) == 1 {
		if o, ok := parseOrigin(origin[0]); ok {
			requestScheme := "http"
			if r.TLS != nil {
				requestScheme = "https"
			}
			own := []string{requestScheme + "://" + r.Host}
			if app, err := url.Parse(appURL); err == nil {
				own = append(own, app.Scheme+"://"+app.Host)
			}
			for _, s := range own {
				if mine, ok := parseOrigin(s); ok && mine == o {
					return sourceOwn, ""
				}
			}
		}
	}
	return sourceForeign, fmt.Sprintf("Origin %q", strings.Join(origin, ", "))
}

// webOrigin is an http or https origin, its host name in lower case and
// its port explicit.
type webOrigin struct{ scheme, host, port string }

// parseOrigin parses an origin as browsers send it: scheme://host[:port].
// "null", and anything with user info, a path, a query or a fragment, is
// no origin.
func parseOrigin(s string) (webOrigin, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return webOrigin{}, false
	}
	o := webOrigin{scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.port == "" {
		o.port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return o, true
}
