//go:build cgo

package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/privacybydesign/irmago/client"
	"github.com/privacybydesign/irmago/common/clientmodels"
	"github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"
)

// DefaultSessionTimeout bounds a session whose context has no deadline: the default maximum lifetime of a session
// on an IRMA server.
const DefaultSessionTimeout = 15 * time.Minute

// cancelAckTimeout bounds how long Run waits, after cancelling a session, for the server to report it cancelled.
const cancelAckTimeout = 2 * time.Second

// Request is what a session asks of the wallet: what the consent function is shown. A chained session asks more
// than once.
type Request struct {
	// Type is irma.ActionDisclosing, irma.ActionSigning or irma.ActionIssuing.
	Type irma.Action
	// Requestor is who asks: for a server not listed in a requestor scheme, its host name, unverified.
	Requestor Requestor
	// Disclose has one entry per item the request asks to be disclosed (the request's outer conjunction), in the
	// request's order, with the attributes the wallet will disclose for it. Issuance requests may ask for a
	// disclosure too.
	Disclose []Disclosure
	// Issue lists the credentials an issuance request offers, with their values.
	Issue []Credential
	// Message is the message to sign, for a signature request.
	Message string
}

// Requestor identifies who asks.
type Requestor struct {
	// ID is the requestor's id in a requestor scheme, or the server's host name.
	ID string
	// Name is the requestor's English name, or the server's host name.
	Name string
	// Verified is true if a requestor scheme vouches for the requestor.
	Verified bool
}

// Disclosure is one requested item and the attributes the wallet chose for it: of the options the request allows
// (its inner disjunction), the first the wallet can satisfy, in the request's order. For an optional item the wallet
// discloses the first option it can satisfy too, and nothing if it can satisfy none.
type Disclosure struct {
	// Optional is true if the request allows disclosing nothing for this item.
	Optional bool
	// Attributes are the attributes the wallet will disclose, with its values.
	Attributes []Attribute
	// Choices is how many ways the wallet had to satisfy this item: the options it can satisfy, an option counted
	// once for each set of credentials it holds that satisfy it.
	Choices int
}

// Accept is a consent function that agrees to every request.
func Accept(Request) bool { return true }

// Refuse is a consent function that refuses every request.
func Refuse(Request) bool { return false }

// Outcome says how a session ended.
type Outcome string

// The outcomes of Run.
const (
	// Success: the session completed; the server has the disclosure, the signature or the issued credentials.
	Success Outcome = "success"
	// Refused: the consent function said no; the wallet cancelled the session.
	Refused Outcome = "refused"
	// Cancelled: the context ended, the wallet was closed, or the session was cancelled without the wallet refusing.
	Cancelled Outcome = "cancelled"
	// Failed: the session failed: the server or the network reported an error (a *SessionError), the wallet lacks
	// credentials the request needs (a *MissingError), or the session could not be started.
	Failed Outcome = "failed"
)

// Result is how a session went.
type Result struct {
	// Outcome says how it ended.
	Outcome Outcome
	// Requests are what the session asked, in order (a chained session asks more than once), including a request
	// the wallet refused or could not satisfy.
	Requests []Request
	// Disclosed lists the attributes the wallet disclosed in the requests it agreed to.
	Disclosed []Attribute
	// Issued lists the credentials offered in the requests the wallet agreed to: on Success, those it received.
	Issued []Credential
	// Err is nil on Success, and otherwise the error Run returned.
	Err error
}

var (
	// ErrRefused is the error of a session the consent function refused.
	ErrRefused = errors.New("refused")
	// ErrCancelled is the error of a cancelled session; it is combined with the context's error when that ended it.
	ErrCancelled = errors.New("session cancelled")
)

// MissingError reports a request the wallet cannot satisfy: the items it lacks credentials for. The wallet cancels
// such a session (the server shows it as cancelled), where a phone would offer to obtain the credentials.
type MissingError struct {
	// Items has one entry per requested item the wallet cannot satisfy.
	Items []MissingItem
}

// MissingItem is a requested item the wallet cannot satisfy: any of Options would satisfy it.
type MissingItem struct {
	Options [][]WantedCredential
}

// WantedCredential is a credential the wallet would need, with the attributes asked from it.
type WantedCredential struct {
	Type       irma.CredentialTypeIdentifier
	Name       string
	Attributes []WantedAttribute
}

// WantedAttribute is a requested attribute and, if the request demands one, its value.
type WantedAttribute struct {
	Type  irma.AttributeTypeIdentifier
	Name  string
	Value *string
}

func (e *MissingError) Error() string {
	var items []string
	for _, item := range e.Items {
		var options []string
		for _, opt := range item.Options {
			var creds []string
			for _, c := range opt {
				var attrs []string
				for _, a := range c.Attributes {
					s := a.Type.Name()
					if a.Value != nil {
						s += fmt.Sprintf(" = %q", clip(*a.Value))
					}
					attrs = append(attrs, s)
				}
				creds = append(creds, fmt.Sprintf("%s (%s)", c.Type, strings.Join(attrs, ", ")))
			}
			options = append(options, strings.Join(creds, " and "))
		}
		if len(options) == 0 {
			options = []string{"something no credential type provides"}
		}
		items = append(items, strings.Join(options, ", or "))
	}
	return "the wallet lacks credentials the request needs: " + strings.Join(items, "; and ")
}

// SessionError is a session that failed: an error from the server, the network, or irmago.
type SessionError struct {
	// Type is irmago's error type, e.g. "transport", "serverResponse", "rejected", "invalidRequest".
	Type string
	// Info and Wrapped are irmago's description of what went wrong.
	Info, Wrapped string
	// Remote is the error the server sent, if it sent one.
	Remote *RemoteError
}

// RemoteError is an IRMA server's error response.
type RemoteError struct {
	Status                      int
	Error, Description, Message string
}

func (e *SessionError) Error() string {
	msg := "session failed"
	if e.Type != "" {
		msg += " (" + e.Type + ")"
	}
	var parts []string
	for _, p := range []string{e.Info, e.Wrapped} {
		if p = clip(p); p != "" && !contains(parts, p) {
			parts = append(parts, p)
		}
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ": ")
	}
	if r := e.Remote; r != nil && (r.Status != 0 || r.Error != "") {
		msg += fmt.Sprintf("; the server answered %d %s", r.Status, clip(r.Error))
		if d := clip(r.Description); d != "" {
			msg += ": " + d
		}
		if m := clip(r.Message); m != "" && m != r.Description {
			msg += ": " + m
		}
	}
	return msg
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run performs one IRMA session, with the pointer a requestor's server handed out (see FetchPointer): an issuance,
// a disclosure or an attribute-based signature, and the sessions chained after it. For each request it asks
// consent, which sees what the wallet would disclose, receive or sign and says yes or no; consent may block (it runs
// on its own goroutine, and is abandoned if ctx ends first).
//
// Run returns when the session ends, or when ctx ends (DefaultSessionTimeout if ctx has no deadline): the Result is
// never nil, and the error is nil exactly when the Outcome is Success. It is ErrRefused, ErrCancelled (joined with
// ctx's error if that ended the session), a *MissingError, or a *SessionError. When the wallet cancels a session it
// waits briefly for the server to report it cancelled, so that a caller who then asks the server sees CANCELLED.
//
// Sessions run one at a time: Run waits for a session already running in w.
func (w *Wallet) Run(ctx context.Context, ptr *irma.Qr, consent func(Request) bool) (*Result, error) {
	return w.run(ctx, ptr, nil, consent)
}

// RunSession is Run for a session from FetchSession: if the session asks for pairing, the wallet confirms the code
// it shows as the page's frontend would, after checking that it is the code the page announced (a different code
// means the app is in someone else's session: the wallet then cancels).
func (w *Wallet) RunSession(ctx context.Context, s *Session, consent func(Request) bool) (*Result, error) {
	if s == nil {
		return w.run(ctx, nil, nil, consent)
	}
	return w.run(ctx, s.Pointer, s.Pairing, consent)
}

func (w *Wallet) run(ctx context.Context, ptr *irma.Qr, pairing *Pairing, consent func(Request) bool) (*Result, error) {
	res := &Result{}
	fail := func(outcome Outcome, err error) (*Result, error) {
		res.Outcome, res.Err = outcome, err
		return res, err
	}
	if consent == nil {
		return fail(Failed, errors.New("no consent function"))
	}
	if ptr == nil {
		return fail(Failed, errors.New("no session pointer"))
	}
	// Through the same checks as a parsed pointer: it goes into irmago, and its URL gets fetched.
	if _, err := pointerFromObject(map[string]json.RawMessage{"u": jsonString(ptr.URL), "irmaqr": jsonString(string(ptr.Type))}); err != nil {
		return fail(Failed, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultSessionTimeout)
		defer cancel()
	}
	if err := w.checkOpen(); err != nil {
		return fail(Failed, err)
	}
	select {
	case <-w.runSlot:
		defer func() { w.runSlot <- struct{}{} }()
	case <-ctx.Done():
		return fail(Cancelled, errors.Join(ErrCancelled, context.Cause(ctx)))
	}

	id := int(w.nextID.Add(1))
	mb, err := w.register(id)
	if err != nil {
		return fail(Failed, err)
	}
	defer w.unregister(id)

	data, err := json.Marshal(client.SessionRequestData{Qr: *ptr, Protocol: clientmodels.Protocol_Irma})
	if err != nil {
		return fail(Failed, err)
	}
	w.logger().Debug("session starting", zap.Int("id", id), zap.String("type", string(ptr.Type)))
	w.client.NewSession(id, string(data))

	var (
		// Why the wallet cancelled the session, for when irmago reports it cancelled.
		cancelReason error
		// consentAnswer delivers the consent to the pending permission request, when one is pending.
		consentAnswer chan bool
		pending       event
	)
	dismiss := func() {
		go w.interact(clientmodels.SessionUserInteraction{SessionId: id, Type: clientmodels.UI_DismissSession})
	}
	answer := func(granted bool, choices []clientmodels.DisclosureDisconSelection) {
		go w.interact(clientmodels.SessionUserInteraction{
			SessionId: id,
			Type:      clientmodels.UI_Permission,
			Payload:   clientmodels.SessionPermissionInteractionPayload{Granted: granted, DisclosureChoices: choices},
		})
	}
	for {
		select {
		case <-ctx.Done():
			dismiss()
			w.awaitServerFinished(ptr)
			return fail(Cancelled, errors.Join(ErrCancelled, context.Cause(ctx)))
		case <-mb.closed:
			return fail(Cancelled, errors.Join(ErrCancelled, errors.New("wallet closed")))
		case granted := <-consentAnswer:
			consentAnswer = nil
			if !granted {
				cancelReason = ErrRefused
				answer(false, nil)
				continue
			}
			req := pending.request
			for _, d := range req.Disclose {
				res.Disclosed = append(res.Disclosed, d.Attributes...)
			}
			res.Issued = append(res.Issued, req.Issue...)
			answer(true, pending.choices)
		case <-mb.notify:
			for {
				ev, ok := mb.take()
				if !ok {
					break
				}
				switch ev.status {
				case clientmodels.Status_RequestPermission:
					if ev.err != nil { // could not make sense of the request
						cancelReason = ev.err
						dismiss()
						continue
					}
					res.Requests = append(res.Requests, *ev.request)
					if ev.missing != nil {
						cancelReason = ev.missing
						answer(false, nil)
						continue
					}
					pending = ev
					consentAnswer = make(chan bool, 1)
					go func(req Request, answer chan<- bool) { answer <- consent(req) }(*ev.request, consentAnswer)
				case clientmodels.Status_ShowPairingCode:
					if pairing != nil {
						if ev.pairingCode != pairing.Code {
							cancelReason = errors.New("the app shows another pairing code than the page announced")
							dismiss()
							continue
						}
						go completePairing(ctx, pairing, w.logger())
					} else if w.onPairingCode != nil {
						w.onPairingCode(ev.pairingCode)
					} else {
						w.logger().Info("the server requires pairing: enter this code on the page that showed the QR code", zap.String("code", ev.pairingCode))
					}
				case clientmodels.Status_RequestPin:
					cancelReason = errors.New("the session needs a keyshare server PIN, which the development wallet does not support")
					dismiss()
				case clientmodels.Status_Success:
					w.logger().Debug("session done", zap.Int("id", id))
					res.Outcome = Success
					return res, nil
				case clientmodels.Status_Error:
					w.logger().Debug("session failed", zap.Int("id", id), zap.Error(ev.err))
					return fail(Failed, ev.err)
				case clientmodels.Status_Dismissed:
					w.awaitServerFinished(ptr)
					switch {
					case cancelReason == nil:
						return fail(Cancelled, ErrCancelled)
					case errors.Is(cancelReason, ErrRefused):
						return fail(Refused, ErrRefused)
					default:
						return fail(Failed, cancelReason)
					}
				}
			}
		}
	}
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// interact hands the user's answer to irmago. It runs on its own goroutine: for a permission, irmago computes the
// proofs and talks to the server before it returns.
func (w *Wallet) interact(ui clientmodels.SessionUserInteraction) {
	defer func() {
		// irmago dereferences a session's dismisser without a check; a session that failed before it had one
		// panics on dismissal, and has ended anyway.
		if r := recover(); r != nil {
			w.logger().Debug("irmago panicked handling a user interaction", zap.Any("panic", r))
		}
	}()
	if err := w.client.HandleUserInteraction(ui); err != nil {
		// The session ended in the meantime.
		w.logger().Debug("user interaction not handled", zap.Int("id", ui.SessionId), zap.Error(err))
	}
}

// awaitServerFinished waits, briefly, until the server reports the session finished. irmago tells the server about
// a cancellation in the background; without this, a test asking the server right after Run could still see the
// session in progress.
func (w *Wallet) awaitServerFinished(ptr *irma.Qr) {
	if ptr.Type == irma.ActionRedirect {
		return // the pointer is not a session's
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelAckTimeout)
	defer cancel()
	statusURL := strings.TrimSuffix(ptr.URL, "/") + "/status"
	for {
		if serverSessionFinished(ctx, statusURL) {
			return
		}
		select {
		case <-ctx.Done():
			w.logger().Debug("the server did not confirm the cancellation in time")
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serverSessionFinished asks a session's status endpoint whether it is over. An unknown session (an error answer)
// is over.
func serverSessionFinished(ctx context.Context, statusURL string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, statusURL, nil)
	if err != nil {
		return true
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ctx.Err() != nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return true
	}
	var status irma.ServerStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1024)).Decode(&status); err != nil {
		return true
	}
	return status.Finished()
}

// event is a session state change, converted from irmago's on the goroutine that reported it: irmago goes on
// changing its state afterwards.
type event struct {
	status      clientmodels.SessionStatus
	request     *Request
	choices     []clientmodels.DisclosureDisconSelection
	missing     *MissingError
	pairingCode string
	err         error
}

// mailbox queues one session's events. irmago reports them synchronously, sometimes from within the call Run made
// to answer it, so queueing must never block.
type mailbox struct {
	mu     sync.Mutex
	queue  []event
	notify chan struct{} // one token: events are queued
	closed chan struct{} // closed when the wallet closes
}

func (m *mailbox) put(ev event) {
	m.mu.Lock()
	m.queue = append(m.queue, ev)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() (event, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return event{}, false
	}
	ev := m.queue[0]
	m.queue = m.queue[1:]
	return ev, true
}

func (w *Wallet) register(id int) (*mailbox, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("wallet is closed")
	}
	mb := &mailbox{notify: make(chan struct{}, 1), closed: make(chan struct{})}
	w.mailboxes[id] = mb
	return mb, nil
}

func (w *Wallet) unregister(id int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.mailboxes, id)
}

// sessionHandler receives irmago's session state changes and queues them for the Run that started the session.
type sessionHandler struct{ w *Wallet }

var _ clientmodels.SessionHandler = sessionHandler{}

func (h sessionHandler) UpdateSession(state clientmodels.SessionState) {
	h.w.mu.Lock()
	mb := h.w.mailboxes[state.Id]
	h.w.mu.Unlock()
	if mb == nil {
		return // Run gave up on it
	}
	mb.put(newEvent(state))
}

func newEvent(s clientmodels.SessionState) event {
	ev := event{status: s.Status}
	switch s.Status {
	case clientmodels.Status_RequestPermission:
		ev.request, ev.choices, ev.missing, ev.err = newRequest(s)
	case clientmodels.Status_ShowPairingCode:
		ev.pairingCode = s.PairingCode
	case clientmodels.Status_Error:
		ev.err = newSessionError(s.Error)
	}
	return ev
}

// newRequest converts a permission request: what to show, the wallet's choices, or what it lacks.
func newRequest(s clientmodels.SessionState) (*Request, []clientmodels.DisclosureDisconSelection, *MissingError, error) {
	req := &Request{
		Requestor: Requestor{ID: s.Requestor.Id, Name: s.Requestor.Name, Verified: s.Requestor.Verified},
		Message:   s.MessageToSign,
	}
	switch s.Type {
	case clientmodels.Type_Disclosure:
		req.Type = irma.ActionDisclosing
	case clientmodels.Type_Signature:
		req.Type = irma.ActionSigning
	case clientmodels.Type_Issuance:
		req.Type = irma.ActionIssuing
	default:
		return nil, nil, nil, fmt.Errorf("unsupported session type %q", s.Type)
	}
	for _, c := range s.OfferedCredentials {
		req.Issue = append(req.Issue, convertCredential(c))
	}
	plan := s.DisclosurePlan
	if plan == nil {
		return req, nil, nil, nil
	}
	if idd := plan.IssueDuringDisclosure; idd != nil {
		missing := &MissingError{}
		for _, step := range idd.Steps {
			item := MissingItem{}
			for _, bundle := range step.Options {
				var opt []WantedCredential
				for _, desc := range bundle.Credentials {
					opt = append(opt, wantedCredential(desc))
				}
				if len(opt) > 0 {
					item.Options = append(item.Options, opt)
				}
			}
			missing.Items = append(missing.Items, item)
		}
		return req, nil, missing, nil
	}

	var choices []clientmodels.DisclosureDisconSelection
	missing := &MissingError{}
	for _, pick := range plan.DisclosureChoicesOverview {
		d := Disclosure{Optional: pick.Optional, Choices: len(pick.OwnedOptions)}
		sel := clientmodels.DisclosureDisconSelection{Credentials: []clientmodels.SelectedCredential{}}
		switch {
		case len(pick.OwnedOptions) > 0:
			for _, inst := range pick.OwnedOptions[0].Credentials {
				sc := clientmodels.SelectedCredential{CredentialId: inst.CredentialId, CredentialHash: inst.Hash}
				for _, a := range inst.Attributes {
					sc.AttributePaths = append(sc.AttributePaths, a.ClaimPath)
					d.Attributes = append(d.Attributes, convertAttribute(inst.CredentialId, a))
				}
				sel.Credentials = append(sel.Credentials, sc)
			}
		case !pick.Optional:
			// irmago plans issuance for what the wallet lacks, so this is not expected; report it the same way.
			item := MissingItem{}
			for _, desc := range pick.ObtainableOptions {
				item.Options = append(item.Options, []WantedCredential{wantedCredential(desc)})
			}
			missing.Items = append(missing.Items, item)
		}
		choices = append(choices, sel)
		req.Disclose = append(req.Disclose, d)
	}
	if len(missing.Items) > 0 {
		return req, nil, missing, nil
	}
	return req, choices, nil, nil
}

func wantedCredential(desc *clientmodels.CredentialDescriptor) WantedCredential {
	wc := WantedCredential{Type: irma.NewCredentialTypeIdentifier(desc.CredentialId), Name: desc.Name}
	for _, a := range desc.Attributes {
		if a.RequestedValue == nil {
			continue // a descriptor of the whole credential type lists every attribute, requested or not
		}
		conv := convertAttribute(desc.CredentialId, a)
		wa := WantedAttribute{Type: conv.Type, Name: conv.Name}
		if a.RequestedValue.HasValue() {
			v := attributeValueString(a.RequestedValue)
			wa.Value = &v
		}
		wc.Attributes = append(wc.Attributes, wa)
	}
	return wc
}

func newSessionError(e *clientmodels.SessionError) error {
	if e == nil {
		return &SessionError{Info: "unknown error"}
	}
	se := &SessionError{Type: e.ErrorType, Info: e.Info, Wrapped: e.WrappedError}
	if r := e.RemoteError; r != nil {
		se.Remote = &RemoteError{Status: r.Status, Error: r.ErrorName, Description: r.Description, Message: r.Message}
	} else if e.RemoteStatus != 0 {
		se.Remote = &RemoteError{Status: e.RemoteStatus}
	}
	return se
}

// completePairing tells the server that the pairing code was confirmed, as a page's frontend does. If it fails, the
// session stays in pairing until it times out.
func completePairing(ctx context.Context, p *Pairing, logger *zap.Logger) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.CompletedURL, nil)
	if err != nil {
		logger.Warn("completing pairing", zap.Error(err))
		return
	}
	req.Header.Set("Authorization", p.Authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logger.Warn("completing pairing", zap.Error(err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		logger.Warn("completing pairing", zap.Int("status", resp.StatusCode))
	}
}
