package sessionpage

import (
	"encoding/base64"
	"html/template"
	"net/http"
)

// The pages around a session: the redirect, the signed statement, a
// message, the logout.

// RenderRedirect writes a page that sends the browser on to target (a
// same-site URL) at once, for a status that cannot redirect, such as a 401
// that a forward-auth proxy hands to the browser.
func RenderRedirect(w http.ResponseWriter, code int, lang, target string) error {
	lang, text := pageText(lang, "redirect")
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	w.Header().Set("Location", target) // for clients that follow it on any status
	return write(w, code, messageTemplate, pageData{Lang: lang, Nonce: nonce, Text: text, Link: target, Refresh: template.URL(target)})
}

// RenderSigned writes the page that ends a signature session: the message
// that was signed, the signature to download (a JSON file), and a link to
// verifyURL, where anyone can check it.
func RenderSigned(w http.ResponseWriter, lang, message string, signature []byte, verifyURL string) error {
	lang, text := pageText(lang, "signed")
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	return write(w, http.StatusOK, signedTemplate, pageData{
		Lang: lang, Nonce: nonce, Text: text, Link: verifyURL, Message: message, Signature: string(signature),
		// A data URL the page builds itself: no second request, and the
		// file is exactly what was shown.
		Download: template.URL("data:application/json;base64," + base64.StdEncoding.EncodeToString(signature)),
	})
}

// RenderMessage writes a page that says one thing, such as why a login was
// refused (kind "refused"), with a link to try again at retryURL (a
// same-site path).
func RenderMessage(w http.ResponseWriter, code int, lang, kind, retryURL string) error {
	lang, text := pageText(lang, "common", kind)
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	return write(w, code, messageTemplate, pageData{Lang: lang, Nonce: nonce, Text: text, Link: retryURL})
}

// RenderLogout writes the page of a logout link: a button that posts the
// logout to action (a same-site URL), and a link back to backURL (a
// same-site path; none if empty). The page cannot be framed, so that no
// other site can trick a click on its button; and it keeps the Origin of
// the post (Referrer-Policy same-origin: under no-referrer, browsers send
// Origin: null with a form's post).
func RenderLogout(w http.ResponseWriter, lang, action, backURL string) error {
	lang, text := pageText(lang, "logout")
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	w.Header().Set("X-Frame-Options", "DENY") // for browsers without CSP frame-ancestors
	return write(w, http.StatusOK, logoutTemplate, pageData{Lang: lang, Nonce: nonce, Text: text, Action: action, Link: backURL,
		ReferrerPolicy: "same-origin"})
}
