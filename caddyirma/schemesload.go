package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// loadedSchemes is a parse of the schemes with their issuer keys, and the
// fingerprint of what it was parsed from.
type loadedSchemes struct {
	conf        *irma.Configuration
	fingerprint string
	fetches     []schemeFetch // the schemes that have a source to update from
}

// load parses the schemes and the issuer private keys, checking every
// signature (those of the default schemes against their pinned keys),
// offline.
func (s *schemeSources) load(logger *zap.Logger) (*loadedSchemes, error) {
	return s.loadWith(logger, irma.ConfigurationOptions{})
}

// loadWith is load with irmago's revocation options (openRevocation).
func (s *schemeSources) loadWith(logger *zap.Logger, opts irma.ConfigurationOptions) (*loadedSchemes, error) {
	// The fingerprint first: what changes while we parse shows next time.
	fp, err := s.fingerprint()
	if err != nil {
		return nil, err
	}
	for _, r := range s.Remotes {
		if _, err := schemecache.Verify(s.Cache, r); err != nil {
			return nil, fmt.Errorf("irma: default schemes in %q: %w", s.Cache, err)
		}
		if s.Local == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Local, r.ID)); err == nil {
			return nil, fmt.Errorf("irma: schemes_path %q: holds scheme %s, which the default schemes bring too: remove it there, or turn default_schemes off", s.Local, r.ID)
		}
	}
	// irmago logs what it skips to its package-wide logger: ours.
	irma.SetLogger(irmaLogs.Logger())
	root, label := s.Local, fmt.Sprintf("schemes_path %q", s.Local)
	if root == "" {
		root, label = s.Cache, fmt.Sprintf("default schemes in %q", s.Cache)
	}
	// Not read-only: irmaserver refuses to start sessions on a read-only
	// configuration, even when it has everything the session needs.
	// Issuer private keys come from issuer_private_keys_path, and in
	// development from demo schemes (which publish them), never from other
	// scheme folders, which wallets copy.
	opts.IgnorePrivateKeys = true
	conf, err := irma.NewConfiguration(root, opts)
	if err != nil {
		return nil, fmt.Errorf("irma: %s: %w", label, err)
	}
	done := false
	defer func() {
		if !done {
			closeSchemes(conf)
		}
	}()
	if err := conf.ParseFolder(); err != nil {
		return nil, fmt.Errorf("irma: %s: %w", label, err)
	}
	dirs := map[irma.SchemeManagerIdentifier]string{}
	var fetches []schemeFetch
	if s.Local != "" {
		if err := checkLocalSchemes(conf, s.Local, dirs, s.Production); err != nil {
			return nil, err
		}
		fetches = localFetches(conf, dirs, s.Local)
	}
	for _, r := range s.Remotes {
		fetches = append(fetches, schemeFetch{s.Cache, r})
	}
	if s.Cache != "" {
		if err := s.addDefaultSchemes(conf, dirs); err != nil {
			return nil, err
		}
	}
	if err := s.addKeys(conf, dirs, logger); err != nil {
		return nil, err
	}
	done = true
	return &loadedSchemes{conf: conf, fingerprint: fp, fetches: fetches}, nil
}

// checkLocalSchemes checks that every folder of schemes_path loaded as a
// valid scheme, and notes where each is. In production, an empty
// schemes_path is not met with the demo scheme's hint.
func checkLocalSchemes(conf *irma.Configuration, local string, dirs map[irma.SchemeManagerIdentifier]string, production bool) error {
	// irmago skips a scheme that fails to parse or whose signature does not
	// verify, with only a log line; a gateway must not run without it.
	for id, serr := range conf.DisabledSchemeManagers {
		return fmt.Errorf("irma: schemes_path %q: scheme %s is invalid: %w", local, id, serr)
	}
	// A scheme whose signature does not verify is skipped without a word.
	entries, _ := os.ReadDir(local)
	for _, d := range entries {
		if _, err := os.Stat(filepath.Join(local, d.Name(), "description.xml")); err != nil {
			continue
		}
		id := irma.NewSchemeManagerIdentifier(d.Name())
		if _, ok := conf.SchemeManagers[id]; !ok {
			return fmt.Errorf("irma: schemes_path %q: scheme %s did not load: its signature (index.sig, pk.pem) or its files are invalid", local, d.Name())
		}
		dirs[id] = filepath.Join(local, d.Name())
	}
	if len(conf.SchemeManagers) == 0 {
		return fmt.Errorf("irma: schemes_path %q: no schemes found (%s)", local, noSchemesHint(production))
	}
	return nil
}

// noSchemesHint says what to do about an empty schemes_path: in production,
// install the schemes to trust; in development, the demo scheme does.
func noSchemesHint(production bool) string {
	if production {
		return "put each scheme to trust there, one folder per scheme as its publisher signs it, with its pk.pem; " +
			"or, for the Yivi schemes (pbdf), leave schemes_path out and fetch the default schemes with 'caddy irma schemes'"
	}
	return "for development, create the demo scheme with 'caddy irma demo-scheme --dir <dir>' and set schemes_path to <dir>/schemes"
}

// addDefaultSchemes parses the default schemes from the cache beside the
// local ones (if the cache is not what conf parsed already), and checks
// that each is there, valid, and alone in the cache.
func (s *schemeSources) addDefaultSchemes(conf *irma.Configuration, dirs map[irma.SchemeManagerIdentifier]string) error {
	wanted := map[irma.SchemeManagerIdentifier]bool{}
	for _, r := range s.Remotes {
		id := irma.NewSchemeManagerIdentifier(r.ID)
		wanted[id] = true
		if s.Local == "" {
			continue
		}
		if _, err := conf.ParseSchemeFolder(filepath.Join(s.Cache, r.ID)); err != nil {
			return fmt.Errorf("irma: default schemes in %q: %w", s.Cache, err)
		}
	}
	for id, serr := range conf.DisabledSchemeManagers {
		return fmt.Errorf("irma: default schemes in %q: scheme %s is invalid: %w", s.Cache, id, serr)
	}
	for id := range conf.SchemeManagers {
		if _, local := dirs[id]; !local && !wanted[id] {
			// Only the default schemes are verified against pinned keys.
			return fmt.Errorf("irma: default schemes in %q: scheme %s is not one of them (%s): move it to schemes_path", s.Cache, id, strings.Join(schemecache.IDs(s.Remotes), ", "))
		}
	}
	for id := range wanted {
		if sm := conf.SchemeManagers[id]; sm == nil || sm.Status != irma.SchemeManagerStatusValid {
			return fmt.Errorf("irma: default schemes in %q: scheme %s did not load", s.Cache, id)
		}
		dirs[id] = filepath.Join(s.Cache, id.String())
	}
	return nil
}

// addKeys adds the issuer private keys: those of issuer_private_keys_path,
// and in development those that demo schemes publish.
func (s *schemeSources) addKeys(conf *irma.Configuration, dirs map[irma.SchemeManagerIdentifier]string, logger *zap.Logger) error {
	if s.KeysPath != "" {
		if rel, err := filepath.Rel(s.Local, s.KeysPath); s.Local != "" && err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("irma: issuer_private_keys_path %q: inside schemes_path %q, which wallets copy: keep private keys outside it", s.KeysPath, s.Local)
		}
		ring, err := irma.NewPrivateKeyRingFolder(s.KeysPath, conf)
		if err == nil {
			err = conf.AddPrivateKeyRing(ring)
		}
		if err != nil {
			return fmt.Errorf("irma: issuer_private_keys_path %q: %w", s.KeysPath, err)
		}
	}
	if !s.DemoKeys {
		return nil
	}
	ring := schemecache.NewDemoKeyRing(conf, dirs, logger)
	if ring.Len() == 0 {
		return nil
	}
	if err := conf.AddPrivateKeyRing(ring); err != nil {
		return fmt.Errorf("irma: the issuer private keys of the demo schemes: %w", err)
	}
	logger.Info("issuing with the issuer private keys that demo schemes publish (development mode; never in production)", zap.Int("keys", ring.Len()))
	return nil
}

// fingerprint hashes what load reads: the signed index of every scheme,
// the private keys of demo schemes if they are used, and the files of
// issuer_private_keys_path. It changes whenever what load would give does.
func (s *schemeSources) fingerprint() (string, error) {
	var dirs []string
	if s.Local != "" {
		fi, err := os.Stat(s.Local)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("not a directory")
		}
		if err != nil {
			return "", fmt.Errorf("irma: schemes_path %q: %w", s.Local, err)
		}
		entries, err := os.ReadDir(s.Local)
		if err != nil {
			return "", fmt.Errorf("irma: schemes_path %q: %w", s.Local, err)
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				dirs = append(dirs, filepath.Join(s.Local, e.Name()))
			}
		}
	}
	for _, r := range s.Remotes {
		dirs = append(dirs, filepath.Join(s.Cache, r.ID))
	}
	h := sha256.New()
	hashFile := func(label, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(h, "%s %q none\n", label, path)
			return
		}
		fmt.Fprintf(h, "%s %q %x\n", label, path, sha256.Sum256(b))
	}
	for _, d := range dirs {
		hashFile("index", filepath.Join(d, "index"))
		if s.DemoKeys {
			keys, _ := filepath.Glob(filepath.Join(d, "*", "PrivateKeys", "*.xml"))
			sort.Strings(keys)
			for _, k := range keys {
				hashFile("demo key", k)
			}
		}
	}
	if s.KeysPath != "" {
		entries, err := os.ReadDir(s.KeysPath)
		if err != nil {
			return "", fmt.Errorf("irma: issuer_private_keys_path %q: %w", s.KeysPath, err)
		}
		for _, e := range entries {
			hashFile("key", filepath.Join(s.KeysPath, e.Name()))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// closeSchemes stops what irma.Configuration.ParseFolder started.
func closeSchemes(conf *irma.Configuration) {
	if conf.Scheduler != nil {
		conf.Scheduler.Stop()
	}
	if conf.Revocation != nil && !sharedRevocation(conf.Revocation) {
		closeRevocationStorage(conf.Revocation)
	}
}
