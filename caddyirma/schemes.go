package caddyirma

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// schemeSources says where the app's schemes are: a folder of local
// schemes (schemes_path), the cache of the default schemes, or both; and
// which issuer private keys go with them. Its JSON is part of the server's
// pool key.
type schemeSources struct {
	Local    string               `json:"local,omitempty"`
	Cache    string               `json:"cache,omitempty"` // empty: default schemes off
	Remotes  []schemecache.Remote `json:"remotes,omitempty"`
	KeysPath string               `json:"keys,omitempty"`
	DemoKeys bool                 `json:"demo_keys,omitempty"` // use the keys demo schemes publish
	// Production: the irma app's production mode, for hints that fit it.
	Production bool `json:"production,omitempty"`
}

// schemeSource is where the default schemes come from: irmago's pinned
// schemes, over the default HTTP client. Tests point it at a local server;
// nothing else changes it.
var schemeSource = struct {
	remotes func() []schemecache.Remote
	client  *http.Client  // nil: schemecache's default
	timeout time.Duration // 0: schemecache.DefaultTimeout
}{remotes: schemecache.Defaults}

func newFetcher(logger *zap.Logger) *schemecache.Fetcher {
	return &schemecache.Fetcher{Client: schemeSource.client, Timeout: schemeSource.timeout, Logger: logger}
}

// defaultSchemesDir is where the default schemes live unless
// default_schemes_path says otherwise.
func defaultSchemesDir() string { return filepath.Join(caddy.AppDataDir(), "irma", "schemes") }

// provisionSchemes finds the schemes, fetches the default schemes if there
// is no copy of them yet (the first start: the handlers check their
// policies against the schemes in Provision), and parses them with the
// issuer keys. With a copy it never goes online: updates come after Start.
func (a *App) provisionSchemes(repl *caddy.Replacer) error {
	if err := a.findSchemeSources(repl); err != nil {
		return err
	}
	if a.sources.Cache != "" {
		if err := a.installDefaultSchemes(); err != nil {
			return err
		}
	}
	loaded, err := a.sources.load(a.logger)
	if err != nil {
		return err
	}
	a.irmaConf, a.schemes, a.ownsConf = loaded.conf, loaded, true
	return nil
}

// findSchemeSources works out from the settings where the schemes are
// (a.sources), reading and fetching nothing.
func (a *App) findSchemeSources(repl *caddy.Replacer) error {
	a.SchemesPath = repl.ReplaceAll(a.SchemesPath, "")
	a.IssuerPrivateKeysPath = repl.ReplaceAll(a.IssuerPrivateKeysPath, "")
	a.DefaultSchemesPath = repl.ReplaceAll(a.DefaultSchemesPath, "")
	defaults := a.SchemesPath == ""
	if a.DefaultSchemes != nil {
		defaults = *a.DefaultSchemes
	}
	if !defaults && a.SchemesPath == "" {
		return errors.New("irma: default_schemes off, and no schemes_path: no schemes to trust")
	}
	if !defaults && a.DefaultSchemesPath != "" {
		return fmt.Errorf("irma: default_schemes_path %q: the default schemes are off (with schemes_path, turn them on with default_schemes on)", a.DefaultSchemesPath)
	}
	// Issuer private keys that a demo scheme publishes are for development:
	// in production only issuer_private_keys_path issues.
	a.sources = schemeSources{Local: a.SchemesPath, KeysPath: a.IssuerPrivateKeysPath, DemoKeys: !a.Production, Production: a.Production}
	if defaults {
		if a.DefaultSchemesPath == "" {
			a.DefaultSchemesPath = defaultSchemesDir()
		}
		a.sources.Cache, a.sources.Remotes = a.DefaultSchemesPath, schemeSource.remotes()
	}
	return nil
}

// installDefaultSchemes fetches each default scheme that has no valid copy
// in the cache yet.
func (a *App) installDefaultSchemes() error {
	dir := a.sources.Cache
	var missing []schemecache.Remote
	for _, r := range a.sources.Remotes {
		if _, err := schemecache.Verify(dir, r); err != nil {
			if !errors.Is(err, schemecache.ErrNoCopy) {
				a.logger.Warn("the copy of an IRMA scheme is not valid: fetching it anew", zap.String("scheme", r.ID), zap.Error(err))
			}
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	a.logger.Info("fetching the default IRMA schemes (first start)", zap.String("dir", dir), zap.Strings("schemes", schemecache.IDs(missing)))
	fetcher := newFetcher(a.logger.Named("schemes"))
	for _, r := range missing {
		res, err := fetcher.Fetch(context.Background(), dir, r)
		if err != nil {
			return fmt.Errorf("irma: default schemes: no copy of scheme %s in %q, and fetching it failed: %w; "+
				"run 'caddy irma schemes --dir <dir>' on a machine that reaches %s and copy <dir> to %q (or point default_schemes_path at it), "+
				"or trust local schemes only (schemes_path, and default_schemes off)", r.ID, dir, err, r.URL, dir)
		}
		a.logger.Info("installed IRMA scheme", zap.String("scheme", r.ID), zap.String("dir", dir),
			zap.Time("timestamp", res.Timestamp), zap.Int("issuer_private_keys", res.PrivateKeys))
	}
	return nil
}

// serverKey identifies a server by the settings that would make a new one
// differ from a running one. What is on disk (the schemes, the issuer keys)
// is not part of it: a running server takes on new schemes and keys (see
// schemeUpdater), so a reload that changes only them keeps its sessions.
func (a *App) serverKey() (string, error) {
	settings, err := json.Marshal(struct {
		Server       any           `json:"server"`
		Schemes      schemeSources `json:"schemes"`
		UpdatesOff   bool          `json:"updates_off"`
		UpdatesEvery time.Duration `json:"updates_every"`
		ResultKey    string        `json:"result_key"` // the server's copy is not marshalled
	}{a.serverConf, a.sources, a.DisableSchemesUpdate, time.Duration(a.SchemesUpdateInterval), a.resultKeyID()})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(settings)
	return hex.EncodeToString(sum[:]), nil
}
