package caddyirma

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

func init() {
	caddy.RegisterModule(Sign{})
	httpcaddyfile.RegisterHandlerDirective("irma_sign", parseSign)
	httpcaddyfile.RegisterDirectiveOrder("irma_sign", httpcaddyfile.Before, "respond")
}

// MaxSignMessage is the longest message that irma_sign asks to sign, in
// bytes.
const MaxSignMessage = 64 << 10

// Sign asks the visitor to sign a message with attributes, in an IRMA
// attribute-based signature session: the Yivi app shows the message and
// the attributes, and the result is a signature that anyone can verify
// later. The message comes from a template with placeholders, from a form
// field of a POST, or from the request body. When the session is done, the
// gateway POSTs the signature and its verification to the upstream (if
// configured) and offers the visitor the signature to download.
type Sign struct {
	// Message is the message to sign, with placeholders. Exactly one of
	// Message, MessageField and MessageBody must be set. Default: none.
	Message string `json:"message,omitempty"`

	// MessageField is the name of the field of a POSTed form
	// (application/x-www-form-urlencoded) that holds the message. Default:
	// none.
	MessageField string `json:"message_field,omitempty"`

	// MessageBody takes the message from the request body (a POST, text, at
	// most 64 KiB). Default: off.
	MessageBody bool `json:"message_body,omitempty"`

	// Requirements are the attributes to sign with, as in irma_auth. At
	// least one.
	Requirements []policy.Requirement `json:"requirements,omitempty"`

	// Upstream is a URL that receives, when a signature is done, a POST
	// with {"signature": <the IRMA signature>, "verification": <its
	// verification result>}. In production mode it must be https, unless on
	// loopback. Optional; a failed POST is logged and the visitor still gets
	// the signature.
	Upstream string `json:"upstream,omitempty"`

	// Pairing: "auto" (irmago's advice, which for signatures is to pair),
	// "on" or "off". Default: auto.
	Pairing string `json:"pairing,omitempty"`

	app     *App
	backend backend
	route   string
	logger  *zap.Logger
	client  *http.Client
}

// CaddyModule returns the Caddy module information.
func (Sign) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.irma_sign",
		New: func() caddy.Module { return new(Sign) },
	}
}

// Provision checks the settings against the schemes.
func (h *Sign) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := irmaApp(ctx, "irma_sign")
	if err != nil {
		return err
	}
	h.app, h.backend = app, appServer{app}
	n := 0
	for _, set := range []bool{h.Message != "", h.MessageField != "", h.MessageBody} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("irma_sign: give exactly one of message, message_field and message_body")
	}
	if len(h.Requirements) == 0 {
		return errors.New("irma_sign: at least one require line is needed")
	}
	check := func(conf *irma.Configuration) error {
		if err := (policy.Policy{Requirements: h.Requirements}).Validate(conf); err != nil {
			return fmt.Errorf("irma_sign: %w", err)
		}
		return nil
	}
	if err := check(h.app.Configuration()); err != nil {
		return err
	}
	h.app.requireSchemes(check)
	if err := checkPairing(h.Pairing); err != nil {
		return fmt.Errorf("irma_sign: %w", err)
	}
	if h.Upstream != "" {
		u, err := url.Parse(h.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("irma_sign: upstream %q: want an absolute http or https URL", h.Upstream)
		}
		if app.Production && u.Scheme == "http" && !isLoopback(u.Hostname()) {
			// The signature and the attributes in it would cross the
			// network in the clear.
			return fmt.Errorf("irma_sign: upstream %q: production mode requires https unless on loopback", h.Upstream)
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	h.route = "sign:" + hex.EncodeToString(sum[:12])
	h.client = &http.Client{Timeout: 10 * time.Second}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Sign) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return answerStoreDown(w, r, h.logger, h.serve(w, r))
}

// serve starts a signature session for the visitor, or picks up the result
// of the one it started.
func (h *Sign) serve(w http.ResponseWriter, r *http.Request) error {
	if err := h.app.waitStarted(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_sign: %w", err))
	}
	cookies := &h.app.Login.cookies
	now := time.Now()
	ret := requestReturn(r)
	if err := cookies.refuseDuplicate(r); err != nil {
		return err
	}
	// A GET with a pending signature session picks up its result.
	if r.Method == http.MethodGet {
		if p := cookies.readPending(r, h.route, now); p != nil {
			return h.resume(w, r, p, ret, now)
		}
	}
	if source, why := sourceOf(r, h.app.serverURL); source == sourceForeign {
		// Another origin must not start a signature over its own statement
		// on the gateway's page, in this visitor's name: the logout's
		// check, but a client that says neither Sec-Fetch-Site nor Origin
		// is a program, not a browser another site steers.
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("irma_sign: a signature session started from another origin (%s)", why))
	}
	msg, err := h.message(r)
	if err != nil {
		return err
	}
	req := irma.NewSignatureRequest(msg)
	d := policy.Policy{Requirements: h.Requirements}.DisclosureRequest()
	req.Disclose, req.Labels = d.Disclose, d.Labels
	if deferred, err := deferStart(w, r, h.app.serverURL, http.StatusOK, h.page(sessionpage.Session{}, ret, req)); deferred {
		return err
	}
	if !admitSession(w, r, h.app.limiter, h.logger) {
		return nil
	}
	s, token, err := startSession(h.backend, h.app.prefix, req, h.Pairing, time.Duration(h.app.ScanTimeout))
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_sign: %w", err))
	}
	countSessionStarted(irma.ActionSigning, "irma_sign")
	p := newPending(s, token, h.route, ret)
	if err := h.mark(r.Context(), p); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_sign: %w", err))
	}
	if err := cookies.setPending(w, p, now.Add(time.Duration(h.app.MaxSessionLifetime))); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_sign: pending cookie: %w", err))
	}
	return h.respond(w, r, s, ret, req)
}

// mark records that the signature session has a result to fetch, once.
func (h *Sign) mark(ctx context.Context, p *pendingSession) error {
	store, err := h.backend.marks()
	if err != nil {
		return err
	}
	return store.Put(ctx, signatureKey(p.clientToken()), nil, h.app.markTTL())
}

// takeMark says whether the signature session's result is fetched for the
// first time, and makes sure it is the last.
func (h *Sign) takeMark(ctx context.Context, p *pendingSession) (bool, error) {
	store, err := h.backend.marks()
	if err != nil {
		return false, err
	}
	_, first, err := store.Take(ctx, signatureKey(p.clientToken()))
	return first, err
}

// message returns the message to sign for r.
func (h *Sign) message(r *http.Request) (string, error) {
	var msg string
	switch {
	case h.Message != "":
		repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if !ok {
			return "", caddyhttp.Error(http.StatusInternalServerError, errors.New("irma_sign: no replacer in the request"))
		}
		msg = repl.ReplaceAll(h.Message, "")
	case h.MessageField != "":
		if r.Method != http.MethodPost {
			w := http.StatusMethodNotAllowed
			return "", caddyhttp.Error(w, fmt.Errorf("irma_sign: the message comes from a POSTed form, not a %s", r.Method))
		}
		r.Body = http.MaxBytesReader(nil, r.Body, MaxSignMessage+4096)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return "", caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("irma_sign: a form of more than %d bytes", tooLarge.Limit))
			}
			return "", caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("irma_sign: reading the form: %w", err))
		}
		msg = r.PostForm.Get(h.MessageField)
	case h.MessageBody:
		if r.Method != http.MethodPost {
			return "", caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("irma_sign: the message is the body of a POST, not a %s", r.Method))
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxSignMessage+1))
		if err != nil {
			return "", caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("irma_sign: reading the body: %w", err))
		}
		if len(b) > MaxSignMessage {
			return "", caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("irma_sign: a message of more than %d bytes", MaxSignMessage))
		}
		msg = string(b)
	}
	if strings.TrimSpace(msg) == "" {
		return "", caddyhttp.Error(http.StatusBadRequest, errors.New("irma_sign: no message to sign"))
	}
	if !utf8.ValidString(msg) {
		// JSON would turn it into other text than the visitor sent.
		return "", caddyhttp.Error(http.StatusBadRequest, errors.New("irma_sign: the message is not UTF-8"))
	}
	if len(msg) > MaxSignMessage {
		return "", caddyhttp.Error(http.StatusRequestEntityTooLarge, fmt.Errorf("irma_sign: a message of more than %d bytes", MaxSignMessage))
	}
	return msg, nil
}

// respond shows the signing page, or tells a client as JSON how to run the
// session.
func (h *Sign) respond(w http.ResponseWriter, r *http.Request, s sessionpage.Session, ret string, req irma.SessionRequest) error {
	return showSession(w, r, http.StatusOK, http.StatusOK, h.page(s, ret, req))
}

// page is the signature page of session s, which returns to ret and asks
// what req does (nil: the page says so in general words).
func (h *Sign) page(s sessionpage.Session, ret string, req irma.SessionRequest) sessionpage.Page {
	return sessionpage.Page{Kind: sessionpage.KindSign, Session: s, DoneURL: ret, RetryURL: ret,
		Request: req, Schemes: h.app.Configuration()}
}

// parseSign sets up irma_sign from Caddyfile tokens. Syntax:
//
//	irma_sign [<matcher>] {
//		message       <text with placeholders>
//		message_field <form field>
//		message_body
//		require       <expression> [{
//			label <lang> <text>
//		}]
//		upstream      <url>
//		pairing       auto|on|off
//	}
func parseSign(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Sign)
	if err := s.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Sign) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("irma_sign: unexpected argument %q", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if name != "require" && seen[name] {
			return d.Errf("irma_sign: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "message":
			err = oneArg(d, &h.Message)
		case "message_field":
			err = oneArg(d, &h.MessageField)
		case "message_body":
			if d.NextArg() {
				return d.Errf("irma_sign: message_body takes no argument, got %q", d.Val())
			}
			h.MessageBody = true
		case "require":
			var req policy.Requirement
			if req, err = parseRequire(d); err == nil {
				h.Requirements = append(h.Requirements, req)
			}
		case "upstream":
			err = oneArg(d, &h.Upstream)
		case "pairing":
			if err = oneArg(d, &h.Pairing); err == nil {
				if perr := checkPairing(h.Pairing); perr != nil {
					return d.Errf("irma_sign: %v", perr)
				}
			}
		default:
			return d.Errf("irma_sign: unknown setting %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Sign)(nil)
	_ caddyhttp.MiddlewareHandler = (*Sign)(nil)
	_ caddyfile.Unmarshaler       = (*Sign)(nil)
)
