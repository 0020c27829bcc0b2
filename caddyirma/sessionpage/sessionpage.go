// Package sessionpage renders the pages and JSON answers through which a
// browser, or a client that runs sessions itself, follows one IRMA session:
// a QR code for the Yivi app on another device, a link that opens the app on
// the same device, and the session status until it is done.
//
// It knows nothing of Caddy: handlers start the session and hand it here.
package sessionpage

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
)

// Session is what a browser needs to follow one IRMA session. None of it is
// secret from the visitor: the requestor token, which is, never appears here.
type Session struct {
	// Pointer is the session pointer that the Yivi app scans or opens.
	Pointer *irma.Qr
	// FrontendAuth authorizes the browser at the frontend endpoints.
	FrontendAuth irma.FrontendAuthorization
	// PathPrefix is where the IRMA endpoints live on this site ("/irma/").
	PathPrefix string
	// PairingCode, if set, must be entered in the browser when the Yivi app
	// shows it, before the session goes on: it binds the session to the
	// app of the person in front of this browser, so a QR code seen on
	// someone's screen is of no use to another phone.
	PairingCode string
}

// clientToken is the last path element of the pointer URL.
func (s Session) clientToken() (string, error) {
	if s.Pointer == nil {
		return "", errors.New("no session pointer")
	}
	u, err := url.Parse(s.Pointer.URL)
	if err != nil {
		return "", fmt.Errorf("session pointer url: %w", err)
	}
	tok := path.Base(u.Path)
	if tok == "" || tok == "/" || tok == "." {
		return "", fmt.Errorf("session pointer url %q has no client token", s.Pointer.URL)
	}
	return tok, nil
}

// frontendURL returns the site-relative URL of one of the session's
// frontend endpoints.
func (s Session) frontendURL(endpoint string) (string, error) {
	tok, err := s.clientToken()
	if err != nil {
		return "", err
	}
	return s.PathPrefix + "session/" + url.PathEscape(tok) + "/frontend/" + endpoint, nil
}

// StatusURL returns the site-relative URL of the session's frontend status
// endpoint.
func (s Session) StatusURL() (string, error) { return s.frontendURL("status") }

// UniversalLink returns the link that opens the session in the Yivi app on
// the same device.
func UniversalLink(ptr *irma.Qr) (string, error) {
	b, err := json.Marshal(ptr)
	if err != nil {
		return "", fmt.Errorf("encoding session pointer: %w", err)
	}
	return "https://open.yivi.app/-/session#" + url.QueryEscape(string(b)), nil
}

// Info is the JSON answer for clients that run the session themselves
// (scripts, the development wallet, a Yivi frontend): the session pointer to
// hand to the app, and where and how to follow its status.
type Info struct {
	// SessionPtr is the session pointer, as irma server answers it.
	SessionPtr *irma.Qr `json:"sessionPtr"`
	// Frontend tells how to follow the session from a browser.
	Frontend FrontendInfo `json:"frontend"`
	// Link is the universal link that opens the session in the Yivi app.
	Link string `json:"link"`
	// QR is the QR code of the session pointer, for another device's Yivi
	// app to scan: a data URL of an SVG image, ready for an <img>.
	QR string `json:"qr"`
}

// FrontendInfo is how a browser follows a session.
type FrontendInfo struct {
	// Authorization goes in the Authorization header of every request to the
	// frontend endpoints.
	Authorization irma.FrontendAuthorization `json:"authorization"`
	// StatusURL answers GET with {"status": "..."}; the status is one of
	// INITIALIZED, PAIRING, CONNECTED, DONE, CANCELLED and TIMEOUT.
	StatusURL string `json:"statusUrl"`
	// StatusEventsURL answers GET with a stream of server-sent events, one
	// per change of the status, each with the JSON that StatusURL answers:
	// the status without polling. A client that cannot open it (an error,
	// or 429 for too many streams) polls StatusURL instead.
	StatusEventsURL string `json:"statusEventsUrl"`
	// PairingCode, if set, is the code the Yivi app shows when it connects
	// (status PAIRING). Once the person has entered it and it matches, POST
	// to PairingCompletedURL, and the session goes on.
	PairingCode         string `json:"pairingCode,omitempty"`
	PairingCompletedURL string `json:"pairingCompletedUrl,omitempty"`
}

// NewInfo builds the JSON answer for s.
func NewInfo(s Session) (*Info, error) {
	status, err := s.StatusURL()
	if err != nil {
		return nil, err
	}
	events, err := s.frontendURL("statusevents")
	if err != nil {
		return nil, err
	}
	link, err := UniversalLink(s.Pointer)
	if err != nil {
		return nil, err
	}
	ptrJSON, err := json.Marshal(s.Pointer)
	if err != nil {
		return nil, fmt.Errorf("encoding session pointer: %w", err)
	}
	qr, err := QRDataURL(string(ptrJSON))
	if err != nil {
		return nil, err
	}
	info := &Info{
		SessionPtr: s.Pointer,
		Frontend:   FrontendInfo{Authorization: s.FrontendAuth, StatusURL: status, StatusEventsURL: events},
		Link:       link,
		QR:         qr,
	}
	if s.PairingCode != "" {
		info.Frontend.PairingCode = s.PairingCode
		if info.Frontend.PairingCompletedURL, err = s.frontendURL("pairingcompleted"); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// WriteJSON writes v as a JSON answer with the given status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// WantsPage says whether r is a browser's page navigation, which gets an
// HTML page; anything else (fetch, XHR, scripts, the wallet) gets JSON.
func WantsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode == "navigate"
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "text/html")
}

// Kind is the kind of session a page is for; it decides the wording.
type Kind string

// The kinds of page.
const (
	KindIssue Kind = "issue"
	KindLogin Kind = "login"
	KindSign  Kind = "sign"
)

// Page is one session page.
type Page struct {
	Kind    Kind
	Lang    string // "en" or "nl"; see Language
	Session Session
	// DoneURL, if set, is where the browser goes when the session is done
	// (a same-site path). Without it the page says that it is done.
	DoneURL string
	// RetryURL is where "try again" leads. Default: the current page.
	RetryURL string
	// Site is the host name of the site that asks, as the visitor sees it
	// in the address bar; see SiteName.
	Site string
	// Request is the session's request, whose asks and gifts the page lists
	// in the words of Schemes (DescribeRequest), when it renders: a client
	// that gets JSON needs none of it. Without it, or without Site, the page
	// says in general words what it asks.
	Request irma.SessionRequest
	Schemes *irma.Configuration
}

// SiteName is the name of the site of host (a request's Host): without a
// port.
func SiteName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return strings.Trim(h, "[]")
	}
	return host
}

// Language picks the page language from Accept-Language: Dutch or English.
func Language(r *http.Request) string {
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case tag == "nl" || strings.HasPrefix(tag, "nl-"):
			return "nl"
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return "en"
		}
	}
	return "en"
}

//go:embed page.html message.html signed.html logout.html
var templates embed.FS

var (
	pageTemplate    = template.Must(template.New("page.html").ParseFS(templates, "page.html"))
	messageTemplate = template.Must(template.New("message.html").ParseFS(templates, "message.html"))
	signedTemplate  = template.Must(template.New("signed.html").ParseFS(templates, "signed.html"))
	logoutTemplate  = template.Must(template.New("logout.html").ParseFS(templates, "logout.html"))
)

// pageData is what page.html renders.
type pageData struct {
	Lang    string
	Nonce   string
	Text    map[string]string
	QR      template.URL // a data URL of the QR code's image
	Link    string
	Refresh template.URL
	Config  map[string]string
	// For the signed page: the message, the signature JSON and a data URL
	// to download it.
	Message   string
	Signature string
	Download  template.URL
	// For the logout page: where its button posts.
	Action string
	// ReferrerPolicy is the page's; default no-referrer.
	ReferrerPolicy string
	// What the session asks and gives (Page.Request): the sentence that
	// introduces it, the items to show and the credentials to receive.
	AsksIntro string
	Disclose  []askLine
	Issue     []askLine
}

// Render writes the HTML page for p, with a strict Content-Security-Policy.
func Render(w http.ResponseWriter, p Page) error { return RenderStatus(w, http.StatusOK, p) }

// RenderStatus is Render with another status code than 200, such as 401
// for a login page.
func RenderStatus(w http.ResponseWriter, code int, p Page) error {
	info, err := NewInfo(p.Session)
	if err != nil {
		return err
	}
	return renderPage(w, code, p, info)
}

// RenderStart writes the page of a session that is not started yet
// (p.Session is ignored). Its script starts the session with a JSON request
// (GET, Accept: application/json) to the page's own URL, which the handler
// answers with the session's Info, and then shows it as RenderStatus
// would; without script, a button posts to the same URL for the page with
// the session. So a client that runs no script, such as a crawler or a
// link preview, makes the gateway start no session.
func RenderStart(w http.ResponseWriter, code int, p Page) error {
	return renderPage(w, code, p, nil)
}

// renderPage writes page.html for p: with the session of info, or, if info
// is nil, one that its script starts.
func renderPage(w http.ResponseWriter, code int, p Page, info *Info) error {
	lang, text := pageText(p.Lang, "common", string(p.Kind))
	// What the script may have to say if it starts the session itself.
	_, busy := pageText(lang, "busy")
	_, refused := pageText(lang, "refused")
	_, unavailable := pageText(lang, "unavailable")
	text["busy"], text["refused"], text["unavailable"] = busy["message"], refused["message"], unavailable["message"]
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	data := pageData{
		Lang:   lang,
		Nonce:  nonce,
		Text:   text,
		Config: map[string]string{"doneUrl": p.DoneURL, "retryUrl": p.RetryURL},
	}
	if p.Request != nil && p.Site != "" {
		asks := DescribeRequest(p.Schemes, p.Request)
		data.AsksIntro = fmt.Sprintf(text["asks"], p.Site)
		data.Disclose, data.Issue = asks.lines(lang)
		data.Message = asks.Message
	}
	if info == nil {
		data.Config["start"] = "1"
	} else {
		data.QR = template.URL(info.QR)
		data.Link = info.Link
		data.Config["statusUrl"] = info.Frontend.StatusURL
		data.Config["statusEventsUrl"] = info.Frontend.StatusEventsURL
		data.Config["authorization"] = string(info.Frontend.Authorization)
		data.Config["pairingCode"] = info.Frontend.PairingCode
		data.Config["pairingCompletedUrl"] = info.Frontend.PairingCompletedURL
	}
	return write(w, code, pageTemplate, data)
}

// pageText returns the language to use for lang (English if it has no
// texts) and the texts of the given kinds of page; a later kind's text wins.
func pageText(lang string, kinds ...string) (string, map[string]string) {
	if _, ok := texts[lang]; !ok {
		lang = "en"
	}
	text := map[string]string{}
	for _, kind := range kinds {
		for k, v := range texts[lang][kind] {
			text[k] = v
		}
	}
	return lang, text
}

// write renders a template with the headers every page gets.
func write(w http.ResponseWriter, code int, t *template.Template, data pageData) error {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return fmt.Errorf("rendering page: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	referrer := data.ReferrerPolicy
	if referrer == "" {
		referrer = "no-referrer"
	}
	h.Set("Referrer-Policy", referrer)
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+data.Nonce+"'; style-src 'nonce-"+data.Nonce+"'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(code)
	_, err := w.Write(buf.Bytes())
	return err
}

func newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
