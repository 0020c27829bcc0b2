//go:build cgo

package wallet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privacybydesign/irmago/client"
	"github.com/privacybydesign/irmago/common/clientmodels"
	"github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	// Replaces go-atum's process-wide timestamp cache, a bolt database under $HOME, by one in memory: see the
	// package documentation.
	_ "github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
)

// Options configures Open.
type Options struct {
	// Dir is where the wallet keeps its state: credentials, keys and its copy of the schemes. It is created (0700)
	// if missing; credentials persist across runs. One process at a time may open it.
	Dir string

	// SchemesPath is a directory of IRMA schemes, one subfolder per scheme (named by its id, each with a
	// "timestamp" file), that the wallet trusts: irmago's scheme assets. The wallet copies a scheme from there into
	// Dir when the copy there is missing or older (by the scheme's timestamp file), so regenerating a scheme is
	// picked up on the next Open. Credentials issued under keys that are no longer in the scheme stop working.
	SchemesPath string

	// Logger receives the wallet's logs and irmago's. Nil discards them. Attribute values are never logged above
	// Debug.
	Logger *zap.Logger

	// OnPairingCode, if set, is called when a server requires device pairing: the code must be entered on the page
	// that showed the QR before the session continues. If nil, the code is logged at Info.
	OnPairingCode func(code string)

	// Production turns irmago's developer mode off, as the Yivi app is out of the box: the wallet then refuses the
	// sessions of servers that are not in production mode, and servers on plain http. Use it to try a gateway as
	// the Yivi app on a visitor's phone sees it. The mode is set at every Open, whatever the directory held before.
	// Default: off (developer mode on).
	Production bool
}

// Wallet is an IRMA wallet for development and tests: irmago's wallet library (the one in the Yivi app) with its
// storage in a directory, developer mode on unless Options.Production, and no PIN or keyshare server. Its methods may be called from several
// goroutines; sessions run one at a time.
type Wallet struct {
	client *client.Client
	// log is the wallet's logger until Close, a no-op logger after: irmago goroutines can outlive a session and
	// the wallet, and a test's logger must not be used after the test.
	log          atomic.Pointer[zap.Logger]
	irmagoLogger *zap.Logger
	dir          string
	lock         *os.File

	onPairingCode func(string)

	// runSlot holds one token: Run takes it for the duration of a session.
	runSlot chan struct{}
	nextID  atomic.Int64

	mu        sync.Mutex
	mailboxes map[int]*mailbox
	closed    bool
}

// Open opens (creating it on first use) the wallet in opts.Dir.
//
// Open points irmago's process-wide logger at opts.Logger (see the package documentation).
func Open(opts Options) (*Wallet, error) {
	if opts.Dir == "" {
		return nil, errors.New("wallet directory not set")
	}
	if opts.SchemesPath == "" {
		return nil, errors.New("schemes directory not set")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wallet directory: %w", err)
	}
	schemes, err := filepath.Abs(opts.SchemesPath)
	if err != nil {
		return nil, fmt.Errorf("schemes directory: %w", err)
	}
	if err := checkSchemesDir(schemes); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating wallet directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w, err := open(dir, schemes, logger, lock, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return w, nil
}

func open(dir, schemes string, logger *zap.Logger, lock *os.File, opts Options) (*Wallet, error) {
	aesKey, err := loadOrCreateStorageKey(dir)
	if err != nil {
		return nil, err
	}
	signer, err := loadOrCreateSigner(dir)
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, "irma")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, fmt.Errorf("creating wallet storage: %w", err)
	}

	w := &Wallet{
		irmagoLogger:  logger.Named("irmago"),
		dir:           dir,
		lock:          lock,
		onPairingCode: opts.OnPairingCode,
		runSlot:       make(chan struct{}, 1),
		mailboxes:     map[int]*mailbox{},
	}
	w.log.Store(logger)
	w.runSlot <- struct{}{}
	installLogger(w.irmagoLogger)
	c, err := client.New(storage, schemes, filepath.Join(dir, "eudi"), clientHandler{w}, sessionHandler{w}, signer, aesKey, "en")
	if err != nil {
		irmagoLogs.Release(w.irmagoLogger)
		return nil, fmt.Errorf("opening wallet %s: %w", dir, err)
	}
	w.client = c
	// irmago schedules, a second after it opens, a periodic job that refreshes the nonrevocation witnesses of
	// revocable credentials at random times, so that an issuer cannot recognise a phone by its update rhythm. The job
	// reads the wallet's credential map while sessions write it, unguarded (a data race inside irmago v1.3.0, which
	// the race detector reports when a session is in progress at that moment). A development wallet does not need the
	// privacy, and sessions update witnesses themselves before they use them, so the job is removed. The
	// configuration's scheduler holds nothing else a wallet uses (its other jobs are an issuer's revocation upkeep).
	if s := c.GetIrmaConfiguration().Scheduler; s != nil {
		s.Clear()
	}
	// Servers not in production mode mark their sessions as development sessions, which wallets refuse unless
	// developer mode is on. The preference persists, so it is set either way: a directory that a development
	// wallet used opens in production mode when asked. Switching it on makes irmago fetch certificate revocation
	// lists for the EUDI trust anchors once, which offline fails with warnings only.
	if prefs := c.GetPreferences(); prefs.DeveloperMode == opts.Production {
		prefs.DeveloperMode = !opts.Production
		c.SetPreferences(prefs)
	}
	logger.Debug("wallet opened", zap.String("dir", dir), zap.String("schemes", schemes), zap.Bool("production", opts.Production))
	return w, nil
}

// checkSchemesDir fails early, and clearly, where irmago would fail with less context.
func checkSchemesDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("schemes directory %s does not exist", dir)
		}
		return fmt.Errorf("schemes directory: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "timestamp")); err != nil {
			return fmt.Errorf("schemes directory %s: %s is not a scheme (no timestamp file)", dir, e.Name())
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("schemes directory %s holds no schemes", dir)
	}
	return nil
}

func (w *Wallet) logger() *zap.Logger { return w.log.Load() }

// Dir returns the wallet's directory, absolute.
func (w *Wallet) Dir() string { return w.dir }

// Close closes the wallet's storage and releases its directory. A session still running is abandoned.
func (w *Wallet) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	for _, mb := range w.mailboxes {
		close(mb.closed)
	}
	w.mu.Unlock()
	err := w.client.Close()
	w.log.Store(zap.NewNop())
	irmagoLogs.Release(w.irmagoLogger)
	if lerr := w.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// Credential is a credential in the wallet, or one offered in an issuance session.
type Credential struct {
	// Type is the credential type, e.g. irma-demo.MijnOverheid.fullName.
	Type irma.CredentialTypeIdentifier
	// Name is the credential type's English name.
	Name string
	// Issuer is the issuer's English name.
	Issuer string
	// Attributes are the attributes in the scheme's display order. Optional attributes without a value are left
	// out.
	Attributes []Attribute
	// IssuedAt and Expires come from the credential's signature (IRMA rounds them to the week).
	IssuedAt, Expires time.Time
	// Revoked is true if the issuer revoked the credential.
	Revoked bool
}

// Attribute is one attribute with its value.
type Attribute struct {
	// Type is the attribute type, e.g. irma-demo.MijnOverheid.fullName.firstname.
	Type irma.AttributeTypeIdentifier
	// Name is the attribute's English name.
	Name string
	// Value is the attribute's value. irmago shows attributes whose scheme says they are yes/no as a boolean:
	// their value reads "yes" or "no" here, whatever the capitalisation issued.
	Value string
}

// Credentials lists the credentials in the wallet, sorted by type and then by issuance.
func (w *Wallet) Credentials() ([]Credential, error) {
	if err := w.checkOpen(); err != nil {
		return nil, err
	}
	creds, err := w.client.GetCredentials()
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	out := make([]Credential, 0, len(creds))
	for _, c := range creds {
		out = append(out, convertCredential(c))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type.String() < out[j].Type.String()
		}
		return out[i].IssuedAt.Before(out[j].IssuedAt)
	})
	return out, nil
}

func (w *Wallet) checkOpen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("wallet is closed")
	}
	return nil
}

func convertCredential(c *clientmodels.Credential) Credential {
	out := Credential{
		Type:    irma.NewCredentialTypeIdentifier(c.CredentialId),
		Name:    c.Name,
		Issuer:  c.Issuer.Name,
		Revoked: c.Revoked,
	}
	if c.IssuanceDate != nil {
		out.IssuedAt = time.Unix(*c.IssuanceDate, 0)
	}
	if c.ExpiryDate != nil && *c.ExpiryDate != 0 {
		out.Expires = time.Unix(*c.ExpiryDate, 0)
	}
	for _, a := range c.Attributes {
		out.Attributes = append(out.Attributes, convertAttribute(c.CredentialId, a))
	}
	return out
}

// convertAttribute converts an attribute of credential type credType. IRMA attributes have one-element claim paths,
// the attribute's id.
func convertAttribute(credType string, a clientmodels.Attribute) Attribute {
	out := Attribute{}
	if len(a.ClaimPath) > 0 {
		if id, ok := a.ClaimPath[0].(string); ok {
			out.Type = irma.NewAttributeTypeIdentifier(credType + "." + id)
		}
	}
	if a.DisplayName != nil {
		out.Name = *a.DisplayName
	}
	out.Value = attributeValueString(a.Value)
	return out
}

func attributeValueString(v *clientmodels.AttributeValue) string {
	switch {
	case v == nil:
		return ""
	case v.String != nil:
		return *v.String
	case v.Bool != nil:
		if *v.Bool {
			return "yes"
		}
		return "no"
	case v.Int != nil:
		return strconv.FormatInt(*v.Int, 10)
	case v.Base64Image != nil:
		return *v.Base64Image
	case v.ImagePath != nil:
		return *v.ImagePath
	}
	return ""
}

// clientHandler receives irmago's wallet-wide notifications, none of which a development wallet acts on.
type clientHandler struct{ w *Wallet }

var _ client.ClientHandler = clientHandler{}

func (clientHandler) CredentialsChanged() {}
func (h clientHandler) ReportError(err error) {
	h.w.logger().Warn("irmago reported an error", zap.Error(err))
}
func (h clientHandler) EnrollmentSuccess(scheme irma.SchemeManagerIdentifier) {}
func (h clientHandler) EnrollmentFailure(scheme irma.SchemeManagerIdentifier, err error) {
	h.w.logger().Warn("keyshare enrollment failed", zap.Stringer("scheme", scheme), zap.Error(err))
}
func (clientHandler) ChangePinSuccess()                                    {}
func (clientHandler) ChangePinFailure(irma.SchemeManagerIdentifier, error) {}
func (clientHandler) ChangePinIncorrect(irma.SchemeManagerIdentifier, int) {}
func (clientHandler) ChangePinBlocked(irma.SchemeManagerIdentifier, int)   {}
