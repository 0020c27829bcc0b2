// Package demoscheme generates, offline, a small signed IRMA scheme with one issuer and its keys,
// so that a gateway can issue and verify demo credentials without any outside scheme.
//
// Ensure lays out a state directory:
//
//	<Dir>/scheme-signing-key.pem        ECDSA P-256 key that signs the scheme index (0600)
//	<Dir>/timestamp.key                 Ed25519 key of the timestamp service (PKCS#8 PEM, 0600)
//	<Dir>/privkeys/<id>.gateway.0.xml   issuer private key (0600): server.Configuration.IssuerPrivateKeysPath
//	<Dir>/pubkeys/<id>.gateway.0.xml    issuer public key, the source the scheme copies it from
//	<Dir>/schemes/<id>/                 the signed scheme: server.Configuration.SchemesPath is <Dir>/schemes
//	    description.xml timestamp index index.sig pk.pem
//	    gateway/description.xml gateway/logo.png gateway/PublicKeys/0.xml
//	    gateway/Issues/{person,membership,staff}/{description.xml,logo.png}
//
// The issuer key pair has revocation keys (as irmago's 'irma scheme issuer keygen' makes them):
// staff, the revocable credential type, names RevocationServer and has a revocation attribute;
// a pair made before it is given revocation keys, once. Keys are made once and kept; the scheme folder is derived from them and the options, and is
// rebuilt and re-signed whenever it differs from what they give (a changed timestamp URL, a
// missing or altered file).
//
// <Dir>/.lock serializes Ensure calls across processes (an flock, Unix only).
//
// The scheme is not marked <Demo>. To irmago a demo scheme is one whose private keys are public:
// every scheme update (an IRMA server with updates on, a wallet) then also tries to download
// sk.pem and the issuer private keys from the scheme's <Url>, private keys skip the safe-prime
// check, and every issuer and credential name must start with "Demo ". Its credentials prove
// nothing all the same: the issuer key lives beside the gateway that uses it.
//
// Before an IRMA server starts on SchemesPath, call Scheme.Check: irmago skips, with only a log
// line, a scheme whose index or signature does not verify, and a server that then has no scheme
// at all downloads irmago's default schemes from the internet, even with scheme updates off.
package demoscheme

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/dirlock"
)

const (
	// DefaultSchemeID is the scheme identifier used when Options.SchemeID is empty.
	DefaultSchemeID = "caddy-demo"

	// IssuerID is the identifier of the scheme's only issuer.
	IssuerID = "gateway"

	// DefaultKeyBits is the issuer key size generated when Options.KeyBits is zero.
	DefaultKeyBits = 2048

	// DefaultKeyValidity is how long a newly generated issuer key pair is valid by default.
	DefaultKeyValidity = 10 * 365 * 24 * time.Hour

	// keyCounter is the counter of the one issuer key pair; a new pair would need a new counter
	// for credentials issued under the old one to stay verifiable.
	keyCounter = 0

	// numKeyAttributes is the number of bases generated into an issuer key: irmago's default,
	// which leaves room for credential types with up to ten attributes without new keys.
	numKeyAttributes = 12

	contactURL = "https://github.com/caddy-irma/caddy-irma"
)

// File and directory names inside Options.Dir.
const (
	signingKeyName   = "scheme-signing-key.pem"
	timestampKeyName = "timestamp.key"
	schemesDirName   = "schemes"
	privKeysDirName  = "privkeys"
	pubKeysDirName   = "pubkeys"
)

// Options says where and how to make the scheme.
type Options struct {
	// Dir is the demo state directory; it is created (mode 0700) if missing. Required.
	Dir string

	// SchemeID is the scheme identifier; default DefaultSchemeID. Letters, digits, '-' and '_'.
	SchemeID string

	// TimestampServer is the URL of the atum timestamp service that the scheme names, signed into
	// it (see package timestamp). Wallets post to it and verifiers of attribute-based signatures
	// ask it whether a timestamp key is trusted. Required: an absolute http or https URL.
	TimestampServer string

	// SchemeURL is written as the scheme's <Url>, where IRMA servers and wallets look for updates
	// (and, for demo schemes, private keys). Default: https://<SchemeID>.invalid/, a name that
	// never resolves, so an IRMA server or wallet with scheme updates on fails fast instead of
	// asking some real host. Set it if the gateway serves the scheme folder.
	SchemeURL string

	// RevocationServer is the URL that the revocable credential type (CredentialStaff) names as
	// its revocation server, signed into the scheme: the gateway's irma URL without its trailing
	// slash, under which irma_endpoints serves revocation/. Wallets fetch revocation updates
	// there that a session did not bring. irmago accepts only https revocation servers in a
	// scheme that is not a demo scheme. Default: https://<SchemeID>.invalid/irma, a name that
	// never resolves.
	RevocationServer string

	// KeyBits is the issuer key size, 1024 or 2048. Zero generates DefaultKeyBits and accepts an
	// existing key of either size; a non-zero value must match an existing key. Generating takes
	// about 1 to 15 s at 1024 bits and 40 to 90 s at 2048 bits.
	KeyBits int

	// KeyValidity is how long a newly generated issuer key pair is valid; default
	// DefaultKeyValidity. It does not affect existing keys.
	KeyValidity time.Duration

	// Logger receives a line when keys are generated or the scheme is re-signed; nil is silent.
	Logger *zap.Logger
}

// Scheme describes a generated scheme and where its parts are.
type Scheme struct {
	// ID is the scheme identifier.
	ID string
	// Dir is the absolute demo state directory.
	Dir string
	// SchemesPath (<Dir>/schemes) holds the scheme folder: point the IRMA server's schemes path
	// and a wallet's scheme assets at it.
	SchemesPath string
	// SchemeDir is <Dir>/schemes/<ID>.
	SchemeDir string
	// PrivateKeysPath (<Dir>/privkeys) holds the issuer private key, named
	// <ID>.gateway.<counter>.xml as irmago's IssuerPrivateKeysPath wants; it is outside the
	// scheme folder because scheme folders get copied to wallets.
	PrivateKeysPath string
	// PublicKeysPath (<Dir>/pubkeys) holds the issuer public key the scheme is built from.
	PublicKeysPath string
	// SigningKeyFile is the scheme signing key (ECDSA, PEM).
	SigningKeyFile string
	// TimestampKeyFile is the timestamp service's Ed25519 key (PKCS#8 PEM, 0600); load it with
	// timestamp.LoadKey.
	TimestampKeyFile string
	// TimestampServer, RevocationServer and URL are the URLs signed into the scheme.
	TimestampServer, RevocationServer, URL string
	// KeyBits is the size of the issuer key in use.
	KeyBits int
	// KeyExpiry is when the issuer key pair expires.
	KeyExpiry time.Time
	// Resigned is true if this Ensure call (re)wrote and signed the scheme folder.
	Resigned bool
	// GeneratedKeys lists the key files this Ensure call generated.
	GeneratedKeys []string
}

// Issuer returns the identifier of the scheme's issuer, <ID>.gateway.
func (s *Scheme) Issuer() irma.IssuerIdentifier {
	return irma.NewIssuerIdentifier(s.ID + "." + IssuerID)
}

// Credential returns the identifier of a credential type, such as Credential(CredentialPerson).
func (s *Scheme) Credential(name string) irma.CredentialTypeIdentifier {
	return irma.NewCredentialTypeIdentifier(s.ID + "." + IssuerID + "." + name)
}

// Attribute returns the identifier of an attribute type, such as
// Attribute(CredentialPerson, AttributeEmail) for <ID>.gateway.person.email.
func (s *Scheme) Attribute(credential, attribute string) irma.AttributeTypeIdentifier {
	return irma.NewAttributeTypeIdentifier(s.ID + "." + IssuerID + "." + credential + "." + attribute)
}

// PrivateKeyFile is the issuer private key file.
func (s *Scheme) PrivateKeyFile() string {
	return filepath.Join(s.PrivateKeysPath, keyFileName(s.ID))
}

// PublicKeyFile is the issuer public key file outside the scheme folder.
func (s *Scheme) PublicKeyFile() string {
	return filepath.Join(s.PublicKeysPath, keyFileName(s.ID))
}

func keyFileName(id string) string {
	return fmt.Sprintf("%s.%s.%d.xml", id, IssuerID, keyCounter)
}

// layout fills in a Scheme's paths for a state directory and scheme identifier.
func layout(dir, id string) *Scheme {
	schemes := filepath.Join(dir, schemesDirName)
	return &Scheme{
		ID:               id,
		Dir:              dir,
		SchemesPath:      schemes,
		SchemeDir:        filepath.Join(schemes, id),
		PrivateKeysPath:  filepath.Join(dir, privKeysDirName),
		PublicKeysPath:   filepath.Join(dir, pubKeysDirName),
		SigningKeyFile:   filepath.Join(dir, signingKeyName),
		TimestampKeyFile: filepath.Join(dir, timestampKeyName),
	}
}

// schemeIDPattern admits identifiers irmago can use as a folder name and inside dotted
// identifiers (so no dots), and that no file system mangles.
var schemeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// normalize checks the options and fills in defaults, reporting every problem at once.
func (o Options) normalize() (Options, error) {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	} else if abs, err := filepath.Abs(o.Dir); err != nil {
		errs = append(errs, fmt.Errorf("dir %q: %w", o.Dir, err))
	} else {
		o.Dir = abs
	}

	if o.SchemeID == "" {
		o.SchemeID = DefaultSchemeID
	}
	switch {
	case !schemeIDPattern.MatchString(o.SchemeID):
		errs = append(errs, fmt.Errorf("scheme id %q: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit", o.SchemeID))
	case strings.HasPrefix(o.SchemeID, "tempscheme"), strings.HasPrefix(o.SchemeID, "oldscheme"):
		// irmago deletes folders with these prefixes as leftovers of its own updates.
		errs = append(errs, fmt.Errorf("scheme id %q: irmago reserves the prefixes tempscheme and oldscheme", o.SchemeID))
	}

	if o.TimestampServer == "" {
		errs = append(errs, errors.New("timestamp server: required (the URL of the atum service that the scheme names)"))
	} else if err := checkURL(o.TimestampServer); err != nil {
		errs = append(errs, fmt.Errorf("timestamp server: %w", err))
	}

	if o.SchemeURL == "" {
		o.SchemeURL = "https://" + strings.ToLower(o.SchemeID) + ".invalid/"
	} else if err := checkURL(o.SchemeURL); err != nil {
		errs = append(errs, fmt.Errorf("scheme url: %w", err))
	}

	if o.RevocationServer == "" {
		o.RevocationServer = "https://" + strings.ToLower(o.SchemeID) + ".invalid/irma"
	} else if err := checkURL(o.RevocationServer); err != nil {
		errs = append(errs, fmt.Errorf("revocation server: %w", err))
	} else if !strings.HasPrefix(o.RevocationServer, "https://") || strings.HasSuffix(o.RevocationServer, "/") {
		errs = append(errs, fmt.Errorf("revocation server %q: want an https URL without a trailing slash (irmago refuses others)", o.RevocationServer))
	}

	switch o.KeyBits {
	case 0, 1024, 2048:
	default:
		errs = append(errs, fmt.Errorf("key bits %d: must be 1024 or 2048", o.KeyBits))
	}
	switch {
	case o.KeyValidity < 0:
		errs = append(errs, fmt.Errorf("key validity %v: must not be negative", o.KeyValidity))
	case o.KeyValidity == 0:
		o.KeyValidity = DefaultKeyValidity
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("demo scheme options: %w", errors.Join(errs...))
	}
	return o, nil
}

// checkURL accepts absolute http and https URLs without query, fragment or credentials: go-atum
// appends "checkPublicKey?..." to the timestamp URL, and both URLs end up in every wallet.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: must be an http or https URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q: has no host", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%q: must not have a query or fragment", raw)
	case u.User != nil:
		return fmt.Errorf("%q: must not carry credentials", raw)
	}
	return nil
}

// Ensure makes sure Options.Dir holds a complete, signed scheme for opts and returns where
// everything is. Keys are generated only when missing and reused otherwise; the scheme folder
// is rewritten and re-signed only when it differs from what the keys and options give. A second
// call with the same options only reads and compares files (milliseconds).
//
// Calls for the same directory are serialized, within the process and, on Unix, across
// processes, so concurrent first starts cannot generate two different key pairs.
func Ensure(opts Options) (*Scheme, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	s := layout(opts.Dir, opts.SchemeID)
	s.TimestampServer, s.RevocationServer, s.URL = opts.TimestampServer, opts.RevocationServer, opts.SchemeURL

	for _, d := range []struct {
		path string
		perm os.FileMode
	}{{s.Dir, 0o700}, {s.PrivateKeysPath, 0o700}, {s.PublicKeysPath, 0o755}, {s.SchemesPath, 0o755}} {
		if err := os.MkdirAll(d.path, d.perm); err != nil {
			return nil, fmt.Errorf("demo scheme: %w", err)
		}
	}

	unlock, err := dirlock.Lock(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo scheme: lock %s: %w", s.Dir, err)
	}
	defer unlock()

	if err := removeLeftovers(s.Dir); err != nil {
		return nil, err
	}
	signer, err := ensureSigningKey(s)
	if err != nil {
		return nil, err
	}
	if err := ensureTimestampKey(s); err != nil {
		return nil, err
	}
	pubXML, err := ensureIssuerKeys(s, opts)
	if err != nil {
		return nil, err
	}
	files, err := renderFiles(s.ID, s.URL, s.TimestampServer, s.RevocationServer, pubXML)
	if err != nil {
		return nil, fmt.Errorf("demo scheme %s: %w", s.ID, err)
	}
	current, lastStamp := schemeMatches(s, files, signer)
	if current {
		return s, nil
	}
	if err := buildScheme(s, files, signer, lastStamp); err != nil {
		return nil, err
	}
	s.Resigned = true
	opts.Logger.Info("signed demo IRMA scheme",
		zap.String("scheme", s.ID), zap.String("dir", s.SchemeDir), zap.String("timestamp_server", s.TimestampServer))
	return s, nil
}

// removeLeftovers deletes the build folders of interrupted runs (which may hold a half-built
// scheme, or an old one moved aside). They live in Dir, not in the schemes folder, because
// irmago and wallets treat every folder there as a scheme.
func removeLeftovers(dir string) error {
	matches, err := filepath.Glob(filepath.Join(dir, buildPrefix+"*"))
	if err != nil {
		return fmt.Errorf("demo scheme: %w", err)
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return fmt.Errorf("demo scheme: remove leftover %s: %w", m, err)
		}
	}
	return nil
}
