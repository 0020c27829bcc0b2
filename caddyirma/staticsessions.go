package caddyirma

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// Static sessions, as irma server's static_sessions: a session request
// that the operator configured by name, whose fixed pointer
// {"irmaqr":"redirect","u":"<url>session/<name>"} can be printed once.
// The Yivi app that scans it POSTs to that URL, and the gateway starts a
// fresh session of the request and answers with its pointer, which the
// app then runs; the result goes to the request's callbackUrl. Every such
// POST is an anonymous session start: it passes the session limits.

// staticSessionName is what irma server allows as the name of a static
// session.
var staticSessionName = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

// staticSession is a checked static session: its request as JSON, with
// the scan timeout in it and without its callbackUrl, parsed anew at each
// start (irmaserver keeps the request it is handed with the session it
// starts); the gateway posts the result to callback itself
// (resultpost.go).
type staticSession struct {
	request        []byte
	action         irma.Action
	callback       string
	resultValidity int
}

// staticChains is the key of the chains of static sessions (chains.go):
// not a requestor API's, whose keys are hex.
const staticChains = "static"

// provisionStaticSessions checks the static sessions, as irma server
// does at start, and as the gateway runs them.
func (a *App) provisionStaticSessions(*caddy.Replacer) error {
	a.staticSessions = map[string]staticSession{}
	for _, name := range slices.Sorted(maps.Keys(a.StaticSessions)) {
		s, err := a.checkStaticSession(name, a.StaticSessions[name])
		if err != nil {
			return fmt.Errorf("irma: static_sessions %q: %w", name, err)
		}
		a.staticSessions[name] = s
	}
	if len(a.staticSessions) == 0 {
		return nil
	}
	a.requireSchemes(a.checkStaticSchemes)
	return a.checkStaticSchemes(a.irmaConf)
}

// checkStaticSchemes checks that conf has what the static sessions ask
// to disclose (irmaserver would refuse each start of one that it lacks).
func (a *App) checkStaticSchemes(conf *irma.Configuration) error {
	for _, name := range slices.Sorted(maps.Keys(a.staticSessions)) {
		rreq, err := server.ParseSessionRequest(a.staticSessions[name].request)
		if err != nil {
			return fmt.Errorf("irma: static_sessions %q: %w", name, err)
		}
		req := rreq.SessionRequest()
		err = req.Disclosure().Disclose.Iterate(func(attr *irma.AttributeRequest) error {
			if attr.Type.IsCredential() && conf.ContainsCredentialType(attr.Type.CredentialTypeIdentifier()) ||
				!attr.Type.IsCredential() && conf.ContainsAttributeType(attr.Type) {
				return nil
			}
			return fmt.Errorf("%s: not in the schemes", attr.Type)
		})
		if err == nil {
			err = req.Disclosure().Disclose.Validate(conf)
		}
		if err == nil {
			err = req.Base().Validate(conf)
		}
		if err != nil {
			return fmt.Errorf("irma: static_sessions %q: %w", name, err)
		}
	}
	return nil
}

func (a *App) checkStaticSession(name string, raw json.RawMessage) (staticSession, error) {
	if !staticSessionName.MatchString(name) {
		return staticSession{}, fmt.Errorf("not a valid name: letters, digits and _ only, as in irma server")
	}
	rreq, err := server.ParseSessionRequest([]byte(raw))
	if err != nil {
		return staticSession{}, fmt.Errorf("not a session request: %w", err)
	}
	action := rreq.SessionRequest().Action()
	if action != irma.ActionDisclosing && action != irma.ActionSigning {
		return staticSession{}, fmt.Errorf("a %s session: want a disclosure or a signature session, as irma server", action)
	}
	base := rreq.Base()
	if base.CallbackURL == "" && (base.NextSession == nil || base.NextSession.URL == "") {
		return staticSession{}, fmt.Errorf("it has no callbackUrl and no nextSession URL: the result of a static session goes there, since no requestor holds its token")
	}
	for field, target := range map[string]string{"callbackUrl": base.CallbackURL, "nextSession": nextURL(base)} {
		if _, err := requestor.CheckResultURL(target); target != "" && err != nil {
			return staticSession{}, fmt.Errorf("%s %q: %w", field, target, err)
		}
	}
	if a.resultKey == nil && !a.AllowUnsignedCallbacks {
		return staticSession{}, fmt.Errorf("its result is posted: it needs jwt_privkey_file to sign it (or allow_unsigned_callbacks)")
	}
	callback := base.CallbackURL
	base.CallbackURL = ""
	if base.ClientTimeout == 0 {
		// Anonymous work: it waits for the app no longer than a login.
		base.ClientTimeout = int(time.Duration(a.ScanTimeout) / time.Second)
	} else if lifetime := time.Duration(a.MaxSessionLifetime); time.Duration(base.ClientTimeout)*time.Second > lifetime {
		return staticSession{}, fmt.Errorf("timeout %d s: longer than max_session_lifetime (%s)", base.ClientTimeout, lifetime)
	}
	b, err := json.Marshal(rreq)
	if err != nil {
		return staticSession{}, err
	}
	return staticSession{request: b, action: action, callback: callback, resultValidity: base.ResultJwtValidity}, nil
}

// staticSessionOf returns the name of the static session that r starts,
// if it starts one: a POST to session/<name> of a configured name. rest is
// the path under the prefix, with its leading slash.
func (a *App) staticSessionOf(r *http.Request, rest string) (string, bool) {
	name, ok := strings.CutPrefix(rest, "/session/")
	if !ok || r.Method != http.MethodPost {
		return "", false
	}
	_, known := a.staticSessions[name]
	return name, known
}

// serveStaticSession starts a fresh session of the named static session
// for the Yivi app that posted to its pointer, and answers with the new
// session's pointer, as irma server does: 403 for a browser that another
// site made post, 429 or 503 if the session limits say no.
func (e *Endpoints) serveStaticSession(w http.ResponseWriter, r *http.Request, name string) error {
	a := e.app
	s := a.staticSessions[name]
	if source, why := sourceOf(r, a.serverURL); source == sourceForeign {
		// The Yivi app sends neither Origin nor Sec-Fetch-Site. A page of
		// another site could otherwise spend its visitors' session limits
		// on sessions that it cannot even read.
		a.logger.Debug("static session refused: a cross-site request", zap.String("static_session", name), zap.String("source", why))
		w.Header().Set("Cache-Control", "no-store")
		sessionpage.WriteJSON(w, http.StatusForbidden, map[string]string{
			"error": "cross_site", "message": "a static session is started by the Yivi app, not by another site's page"})
		return nil
	}
	rs := a.srv.Load()
	if rs == nil {
		return e.notRunning(w, r, fmt.Errorf("irma: the IRMA server is not running"))
	}
	if !admitSession(w, r, a.limiter, a.logger) {
		return nil
	}
	rreq, err := server.ParseSessionRequest(s.request)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: static session %q: %w", name, err))
	}
	ptr, token, _, err := rs.StartSession(rreq, nil, staticChains+"/"+name)
	if err != nil {
		err = fmt.Errorf("irma: static session %q: starting session: %w", name, err)
		if storeDown(err) {
			return answerUnavailable(w, r, a.logger, err)
		}
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	countSessionStarted(s.action, "static_session")
	entry := auditEntry{decision: decisionStatic, route: name, session: s.action}
	started := entry
	started.outcome = auditStarted
	started.log(a.audit)
	a.followSession(token, ptr.Type, entry, func(rs *runningServer) {
		if s.callback != "" {
			a.postStaticResult(rs, name, token, s)
		}
	})
	w.Header().Set("Cache-Control", "no-store")
	sessionpage.WriteJSON(w, http.StatusOK, ptr)
	return nil
}

// unmarshalStaticSession parses a static session of the irma global
// option: static_session <name> <request JSON>, the JSON best in
// backticks.
func (a *App) unmarshalStaticSession(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Err("irma: static_session takes a name and a session request in JSON, such as static_session door `{\"callbackUrl\": ..., \"request\": {...}}`")
	}
	name, request := args[0], args[1]
	if _, dup := a.StaticSessions[name]; dup {
		return d.Errf("irma: static_session %q given twice", name)
	}
	if !json.Valid([]byte(request)) {
		return d.Errf("irma: static_session %q: the request is not valid JSON (put it in backticks)", name)
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("irma: static_session %q takes no block", name)
	}
	if a.StaticSessions == nil {
		a.StaticSessions = map[string]json.RawMessage{}
	}
	a.StaticSessions[name] = json.RawMessage(request)
	return nil
}

// nextURL is the next-session URL of a request, "" for none.
func nextURL(base *irma.RequestorBaseRequest) string {
	if base.NextSession == nil {
		return ""
	}
	return base.NextSession.URL
}

// authorizeStaticNext says whether the next session of a chain that a
// static session began may start: a disclosure or a signature, as a
// static session itself, on the gateway's own host. Its request comes
// from the operator's next-session URL, but no requestor's permissions
// say what it may issue.
func authorizeStaticNext(request irma.SessionRequest) (bool, string) {
	if action := request.Action(); action != irma.ActionDisclosing && action != irma.ActionSigning {
		return false, fmt.Sprintf("the next session of a static session must be a disclosure or a signature, not %s", action)
	}
	if request.Base().Host != "" {
		return false, "the next session of a static session may not name a host"
	}
	return true, ""
}
