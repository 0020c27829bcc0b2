package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
)

// loadSchemes parses the schemes, and the issuer private keys if a path is
// given, checking every signature, offline.
func loadSchemes(schemesPath, keysPath string) (*irma.Configuration, error) {
	fi, err := os.Stat(schemesPath)
	if err != nil {
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("irma: schemes_path %q: not a directory", schemesPath)
	}
	// irmago logs what it skips to its package-wide logger: ours.
	irma.SetLogger(irmaLogs.Logger())
	// Not read-only: irmaserver refuses to start sessions on a read-only
	// configuration, even when it has everything the session needs.
	// Issuer private keys come from issuer_private_keys_path only, never from
	// the scheme folders, which wallets copy.
	conf, err := irma.NewConfiguration(schemesPath, irma.ConfigurationOptions{IgnorePrivateKeys: true})
	if err != nil {
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	if err := conf.ParseFolder(); err != nil {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	// irmago skips a scheme that fails to parse or whose signature does not
	// verify, with only a log line; a gateway must not run without it.
	for id, serr := range conf.DisabledSchemeManagers {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: scheme %s is invalid: %w", schemesPath, id, serr)
	}
	// A scheme whose signature does not verify is skipped without a word.
	dirs, _ := os.ReadDir(schemesPath)
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(schemesPath, d.Name(), "description.xml")); err != nil {
			continue
		}
		if _, ok := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(d.Name())]; !ok {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: schemes_path %q: scheme %s did not load: its signature (index.sig, pk.pem) or its files are invalid", schemesPath, d.Name())
		}
	}
	if len(conf.SchemeManagers) == 0 {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: no schemes found (create the demo scheme with 'caddy irma demo-scheme')", schemesPath)
	}
	if keysPath != "" {
		if rel, err := filepath.Rel(schemesPath, keysPath); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: issuer_private_keys_path %q: inside schemes_path %q, which wallets copy: keep private keys outside it", keysPath, schemesPath)
		}
		ring, err := irma.NewPrivateKeyRingFolder(keysPath, conf)
		if err == nil {
			err = conf.AddPrivateKeyRing(ring)
		}
		if err != nil {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: issuer_private_keys_path %q: %w", keysPath, err)
		}
	}
	return conf, nil
}

// closeSchemes stops what irma.Configuration.ParseFolder started.
func closeSchemes(conf *irma.Configuration) {
	if conf.Scheduler != nil {
		conf.Scheduler.Stop()
	}
	if conf.Revocation != nil {
		_ = conf.Revocation.Close()
	}
}

// serverKey identifies a server by everything that would make a new one
// differ from a running one: the settings and the schemes and keys on disk.
func (a *App) serverKey() (string, error) {
	h := sha256.New()
	settings, err := json.Marshal(a.serverConf)
	if err != nil {
		return "", err
	}
	h.Write(settings)
	ids := make([]string, 0, len(a.irmaConf.SchemeManagers))
	for id := range a.irmaConf.SchemeManagers {
		ids = append(ids, id.String())
	}
	sort.Strings(ids)
	for _, id := range ids {
		// The signed index holds the hash of every file of the scheme.
		index, err := os.ReadFile(filepath.Join(a.SchemesPath, id, "index"))
		if err != nil {
			return "", fmt.Errorf("schemes_path %q: scheme %s: %w", a.SchemesPath, id, err)
		}
		fmt.Fprintf(h, "\x00scheme %s %x\n", id, sha256.Sum256(index))
	}
	if a.IssuerPrivateKeysPath != "" {
		entries, err := os.ReadDir(a.IssuerPrivateKeysPath)
		if err != nil {
			return "", fmt.Errorf("issuer_private_keys_path %q: %w", a.IssuerPrivateKeysPath, err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(a.IssuerPrivateKeysPath, e.Name()))
			if err != nil {
				continue // not a key file irmago reads either
			}
			fmt.Fprintf(h, "\x00key %s %x\n", e.Name(), sha256.Sum256(b))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
