package demoscheme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/atomicfile"
	"github.com/privacybydesign/gabi/signed"
	"github.com/privacybydesign/irmago/irma"
)

// The files irmago reads beside the signed content files. The index lists the SHA-256 of every
// content file and of the timestamp; index.sig signs the index; pk.pem verifies index.sig.
const (
	fileTimestamp = "timestamp"
	fileIndex     = "index"
	fileIndexSig  = "index.sig"
	filePublicKey = "pk.pem"
)

// buildPrefix names the temporary folders in Dir where a scheme is built, and where the old one
// is moved aside during the swap; deleting such a folder never loses anything Ensure needs.
const buildPrefix = ".build-"

// schemeIndex computes the index irmago checks: scheme-relative paths, prefixed with the scheme
// identifier, mapped to SHA-256 hashes, written by irma.SchemeManagerIndex.String.
func schemeIndex(id string, files map[string][]byte, stamp []byte) []byte {
	idx := irma.SchemeManagerIndex{}
	add := func(name string, data []byte) {
		sum := sha256.Sum256(data)
		idx[id+"/"+name] = sum[:]
	}
	for name, data := range files {
		add(name, data)
	}
	add(fileTimestamp, stamp)
	return []byte(idx.String())
}

// schemeMatches tells whether the scheme folder holds exactly the expected files, each with the
// expected content, plus a timestamp, index, index.sig and pk.pem that are ours and verify. It
// also returns the folder's timestamp, if readable, so a rebuild can move forward from it.
// Anything unexpected, an extra file included, makes it false: then the folder is rebuilt.
func schemeMatches(s *Scheme, files map[string][]byte, signer *ecdsa.PrivateKey) (bool, int64) {
	stamp, err := os.ReadFile(filepath.Join(s.SchemeDir, fileTimestamp))
	if err != nil {
		return false, 0
	}
	last, err := strconv.ParseInt(strings.TrimSuffix(string(stamp), "\n"), 10, 64)
	if err != nil {
		return false, 0
	}
	if verifyFolder(s.SchemeDir, s.ID, files, &signer.PublicKey) != nil {
		return false, last
	}
	return true, last
}

// verifyFolder checks a scheme folder against the expected content files and the signing key
// the scheme must be signed with. It pins that key: irmago itself trusts whatever pk.pem lies in
// a local scheme folder, so a consistently re-signed folder would pass irmago's check.
func verifyFolder(dir, id string, files map[string][]byte, pub *ecdsa.PublicKey) error {
	want := map[string]bool{fileTimestamp: true, fileIndex: true, fileIndexSig: true, filePublicKey: true}
	wantDirs := map[string]bool{}
	for name := range files {
		want[name] = true
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			wantDirs[d] = true
		}
	}
	found := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			if !wantDirs[rel] {
				return fmt.Errorf("unexpected folder %s", rel)
			}
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", rel)
		case !want[rel]:
			return fmt.Errorf("unexpected file %s", rel)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found[rel] = data
		return nil
	})
	if err != nil {
		return err
	}
	for name := range want {
		if _, ok := found[name]; !ok {
			return fmt.Errorf("missing file %s", name)
		}
	}
	for name, data := range files {
		if !bytes.Equal(found[name], data) {
			return fmt.Errorf("file %s differs from what the options and keys give", name)
		}
	}
	pubPEM, err := signed.MarshalPemPublicKey(pub)
	if err != nil {
		return err
	}
	if !bytes.Equal(found[filePublicKey], pubPEM) {
		return fmt.Errorf("%s is not the public half of the scheme signing key", filePublicKey)
	}
	if !bytes.Equal(found[fileIndex], schemeIndex(id, files, found[fileTimestamp])) {
		return fmt.Errorf("%s does not match the files", fileIndex)
	}
	if err := signed.Verify(pub, found[fileIndex], found[fileIndexSig]); err != nil {
		return fmt.Errorf("%s does not verify: %w", fileIndexSig, err)
	}
	return nil
}

// buildScheme writes a complete, signed scheme folder in a temporary folder in Dir, has irmago
// parse it, and only then swaps it in for the old one. Whatever interrupts this leaves either
// the old folder, no folder (rebuilt next time), or the complete new one: never a half scheme.
func buildScheme(s *Scheme, files map[string][]byte, signer *ecdsa.PrivateKey, lastStamp int64) error {
	tmp, err := os.MkdirTemp(s.Dir, buildPrefix)
	if err != nil {
		return fmt.Errorf("demo scheme: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, s.ID)

	// The timestamp must grow: a wallet copies its scheme assets into its own storage only when
	// their timestamp is newer than the stored copy's, so an equal one (a re-sign within the same
	// second) would leave it on the old timestamp URL.
	stamp := now().Unix()
	if lastStamp < math.MaxInt64 {
		stamp = max(stamp, lastStamp+1)
	}
	stampBytes := []byte(strconv.FormatInt(stamp, 10) + "\n")
	index := schemeIndex(s.ID, files, stampBytes)
	sig, err := signed.Sign(signer, index)
	if err != nil {
		return fmt.Errorf("demo scheme: sign index: %w", err)
	}
	pubPEM, err := signed.MarshalPemPublicKey(&signer.PublicKey)
	if err != nil {
		return fmt.Errorf("demo scheme: %w", err)
	}

	all := map[string][]byte{fileTimestamp: stampBytes, fileIndex: index, fileIndexSig: sig, filePublicKey: pubPEM}
	for name, data := range files {
		all[name] = data
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	dirs := map[string]bool{root: true}
	for _, name := range names {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("demo scheme: %w", err)
		}
		for d := filepath.Dir(p); len(d) >= len(root); d = filepath.Dir(d) {
			dirs[d] = true
		}
		if err := atomicfile.WriteSynced(p, all[name], 0o644); err != nil {
			return fmt.Errorf("demo scheme: %w", err)
		}
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("demo scheme: %w", err)
		}
	}

	if _, err := parseScheme(tmp, s.ID); err != nil {
		return fmt.Errorf("demo scheme %s: irmago rejects the generated scheme: %w", s.ID, err)
	}

	// Swap: move the old folder aside (out of the schemes folder), move the new one in.
	var old string
	if ok, err := exists(s.SchemeDir); err != nil {
		return err
	} else if ok {
		old = filepath.Join(tmp, "old-"+s.ID)
		if err := os.Rename(s.SchemeDir, old); err != nil {
			return fmt.Errorf("demo scheme: move old scheme aside: %w", err)
		}
	}
	if err := os.Rename(root, s.SchemeDir); err != nil {
		return fmt.Errorf("demo scheme: move new scheme in: %w", err)
	}
	if err := atomicfile.SyncDir(s.SchemesPath); err != nil {
		return fmt.Errorf("demo scheme: %w", err)
	}
	return nil
}

// parseScheme parses the schemes folder with irmago the way the IRMA server does (read-only,
// without private keys) and checks that the scheme is there, valid and complete. The presence
// check matters: irmago skips, with only a log line, a scheme whose index or signature does not
// verify, and an IRMA server that then finds no scheme at all downloads irmago's default
// schemes from the internet into its schemes folder.
func parseScheme(schemesPath, id string) ([]string, error) {
	conf, err := irma.NewConfiguration(schemesPath, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		return nil, err
	}
	err = conf.ParseFolder()
	// ParseFolder starts a scheduler and opens revocation storage; stop both.
	if conf.Scheduler != nil {
		conf.Scheduler.Stop()
	}
	if conf.Revocation != nil {
		_ = conf.Revocation.Close()
	}
	if err != nil {
		return nil, err
	}
	scheme := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(id)]
	if scheme == nil {
		return nil, fmt.Errorf("scheme %s not found in %s (irmago skips schemes whose index or signature does not verify)", id, schemesPath)
	}
	if scheme.Status != irma.SchemeManagerStatusValid {
		return nil, fmt.Errorf("scheme %s has status %s", id, scheme.Status)
	}
	s := layout("", id)
	if conf.Issuers[s.Issuer()] == nil {
		return nil, fmt.Errorf("scheme %s: issuer %s missing", id, s.Issuer())
	}
	for _, c := range credentials {
		ct := conf.CredentialTypes[s.Credential(c.id)]
		if ct == nil {
			return nil, fmt.Errorf("scheme %s: credential type %s missing", id, s.Credential(c.id))
		}
		if len(ct.AttributeTypes) != len(c.attributes) {
			return nil, fmt.Errorf("scheme %s: credential type %s has %d attributes, want %d", id, s.Credential(c.id), len(ct.AttributeTypes), len(c.attributes))
		}
	}
	if err := conf.ValidateKeys(); err != nil {
		return nil, fmt.Errorf("scheme %s: %w", id, err)
	}
	return conf.Warnings, nil
}

// Check verifies the scheme on disk as a server about to use it should: the folder must be
// exactly what Ensure wrote (signed by the scheme signing key in Dir, which it pins) and irmago
// must parse it without error. It returns irmago's warnings, if any. Call it before starting an
// IRMA server on SchemesPath: if irmago found no valid scheme there, the server would download
// irmago's default schemes from the internet instead of failing.
func (s *Scheme) Check() ([]string, error) {
	data, err := os.ReadFile(s.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("check scheme %s: %w", s.ID, err)
	}
	sk, err := signed.UnmarshalPemPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("check scheme %s: signing key %s: %w", s.ID, s.SigningKeyFile, err)
	}
	pubXML, err := os.ReadFile(s.PublicKeyFile())
	if err != nil {
		return nil, fmt.Errorf("check scheme %s: %w", s.ID, err)
	}
	files, err := renderFiles(s.ID, s.URL, s.TimestampServer, s.RevocationServer, pubXML)
	if err != nil {
		return nil, fmt.Errorf("check scheme %s: %w", s.ID, err)
	}
	if err := verifyFolder(s.SchemeDir, s.ID, files, &sk.PublicKey); err != nil {
		return nil, fmt.Errorf("check scheme %s in %s: %w", s.ID, s.SchemeDir, err)
	}
	warnings, err := parseScheme(s.SchemesPath, s.ID)
	if err != nil {
		return nil, fmt.Errorf("check scheme %s: %w", s.ID, err)
	}
	return warnings, nil
}
