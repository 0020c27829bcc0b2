// Package schemecache keeps a local copy of remote IRMA schemes, such as irmago's default
// schemes (pbdf and irma-demo): it downloads a scheme, checks it against a public key pinned in
// advance, and swaps it into a cache directory in one step, so that a reader finds either the
// old copy or the complete new one, never a mix. It knows nothing of Caddy.
//
// A cache directory is an irmago schemes path, one folder per scheme, named by its identifier:
//
//	<dir>/<id>/                             the scheme as its server serves it: description.xml,
//	                                        index, index.sig, timestamp, issuers, credential
//	                                        types, public keys
//	<dir>/<id>/pk.pem                       the pinned key, written from the Remote (never
//	                                        downloaded)
//	<dir>/<id>/<issuer>/PrivateKeys/<n>.xml for a demo scheme only: the issuer private keys it
//	                                        publishes (irmago does not sign them; each is kept
//	                                        only if it belongs to the signed public key)
//	<dir>/.lock                             serializes writers, across processes on Unix
//	<dir>/.fetch-*                          a download in progress, removed when it ends (or by the
//	                                        next one, after a crash); irmago skips hidden folders
//
// What protects a copy is the signature of its index under the pinned key: the index holds the
// SHA-256 of every other file of the scheme (but the private keys of a demo scheme), and its
// timestamp, which must grow with every update: an older copy never replaces a newer one.
package schemecache

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/privacybydesign/gabi/signed"
	irma "github.com/privacybydesign/irmago/irma"
)

// Remote is a scheme to fetch: its identifier, where its server serves it, and the key its
// index must be signed with.
type Remote struct {
	// ID is the scheme identifier, such as pbdf; also the name of its folder.
	ID string
	// URL is the https URL under which the scheme's files are served: <URL>/index,
	// <URL>/description.xml, and so on.
	URL string
	// PublicKey is the PEM of the ECDSA key that signs the scheme's index.
	PublicKey []byte
}

// Defaults returns irmago's default schemes (irma.DefaultSchemes): irma-demo and pbdf at
// https://schemes.yivi.app, with the public keys that irmago pins for them.
func Defaults() []Remote {
	remotes := make([]Remote, 0, len(irma.DefaultSchemes))
	for _, s := range irma.DefaultSchemes {
		u := strings.TrimSuffix(s.URL, "/")
		remotes = append(remotes, Remote{ID: path.Base(u), URL: u, PublicKey: bytes.Clone(s.Publickey)})
	}
	return remotes
}

// IDs returns the identifiers of remotes, for messages.
func IDs(remotes []Remote) []string {
	ids := make([]string, len(remotes))
	for i, r := range remotes {
		ids[i] = r.ID
	}
	return ids
}

// key parses the pinned key, and checks the rest of r.
func (r Remote) key() (*ecdsa.PublicKey, error) {
	if r.ID == "" || r.ID != filepath.Base(r.ID) || strings.HasPrefix(r.ID, ".") || strings.ContainsAny(r.ID, `./\`) {
		return nil, fmt.Errorf("scheme %q: not a scheme identifier", r.ID)
	}
	if u, err := url.Parse(r.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("scheme %s: url %q: want an https URL", r.ID, r.URL)
	}
	pk, err := signed.UnmarshalPemPublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("scheme %s: pinned public key: %w", r.ID, err)
	}
	return pk, nil
}

// Copy describes a verified copy of a scheme.
type Copy struct {
	// Timestamp is the scheme's signed timestamp: when its publisher last changed it.
	Timestamp time.Time
	index     irma.SchemeManagerIndex
}

// ErrNoCopy is wrapped by Verify's error when the directory holds no copy of the scheme.
var ErrNoCopy = errors.New("no copy")

// Verify checks the copy of r in dir against r's pinned key: pk.pem is the pinned key, the
// index is signed with it and well formed, and the timestamp is the one the index signs. It
// reads four small files: the hashes of the other files are checked by irmago when it parses
// the scheme. A copy that passes is safe to hand to irmago.
func Verify(dir string, r Remote) (Copy, error) {
	pk, err := r.key()
	if err != nil {
		return Copy{}, err
	}
	return verifyCopy(filepath.Join(dir, r.ID), r.ID, pk)
}

func verifyCopy(root, id string, pk *ecdsa.PublicKey) (Copy, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("scheme %s: %w in %s (%s missing)", id, ErrNoCopy, filepath.Dir(root), name)
		}
		if err != nil {
			return nil, fmt.Errorf("scheme %s: %w", id, err)
		}
		return b, nil
	}
	pemBytes, err := read("pk.pem")
	if err != nil {
		return Copy{}, err
	}
	if onDisk, err := signed.UnmarshalPemPublicKey(pemBytes); err != nil || !onDisk.Equal(pk) {
		return Copy{}, fmt.Errorf("scheme %s: %s is not the pinned public key of the scheme", id, filepath.Join(root, "pk.pem"))
	}
	indexBytes, err := read("index")
	if err != nil {
		return Copy{}, err
	}
	sig, err := read("index.sig")
	if err != nil {
		return Copy{}, err
	}
	stamp, err := read("timestamp")
	if err != nil {
		return Copy{}, err
	}
	index, ts, err := checkSigned(id, pk, indexBytes, sig, stamp)
	if err != nil {
		return Copy{}, fmt.Errorf("scheme %s in %s: %w", id, root, err)
	}
	return Copy{Timestamp: ts, index: index}, nil
}

// checkSigned verifies the index against the pinned key, parses it, and checks that the
// timestamp is the one it signs.
func checkSigned(id string, pk *ecdsa.PublicKey, indexBytes, sig, stamp []byte) (irma.SchemeManagerIndex, time.Time, error) {
	if err := signed.Verify(pk, indexBytes, sig); err != nil {
		return nil, time.Time{}, fmt.Errorf("the index is not signed with the pinned key: %w", err)
	}
	index, err := parseIndex(id, indexBytes)
	if err != nil {
		return nil, time.Time{}, err
	}
	sum := sha256.Sum256(stamp)
	if !bytes.Equal(index[id+"/timestamp"], sum[:]) {
		return nil, time.Time{}, errors.New("the timestamp is not the one the index signs")
	}
	secs, err := strconv.ParseInt(strings.TrimSuffix(string(stamp), "\n"), 10, 64)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("timestamp: %w", err)
	}
	return index, time.Unix(secs, 0), nil
}

// reservedNames never occur in an index (irmago's sigExceptions): a file by such a name would
// come from the cache, or not at all, never from the server.
var reservedNames = map[string]bool{"pk.pem": true, "sk.pem": true, "index": true, "index.sig": true}

// parseIndex parses a signed index and checks every path in it: relative, clean, inside the
// scheme, and none that the cache writes itself. irmago's own parser trusts them (and panics on
// a path without a slash).
func parseIndex(id string, b []byte) (irma.SchemeManagerIndex, error) {
	index := irma.SchemeManagerIndex{}
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		sum, p, ok := strings.Cut(line, " ")
		hash, err := hex.DecodeString(sum)
		if !ok || err != nil || len(hash) != sha256.Size {
			return nil, fmt.Errorf("index line %d: want a SHA-256 in hex, a space and a path", n+1)
		}
		rel, inScheme := strings.CutPrefix(p, id+"/")
		if !inScheme || !safePath(rel) || reservedNames[rel] || strings.Contains(rel, "/PrivateKeys/") {
			return nil, fmt.Errorf("index line %d: path %q is not a file of scheme %s", n+1, p, id)
		}
		index[p] = hash
	}
	if _, ok := index[id+"/description.xml"]; !ok {
		return nil, fmt.Errorf("the index lists no %s/description.xml", id)
	}
	return index, nil
}

// safePath tells whether p is a clean, relative, slash-separated path that stays where it is
// joined to, without hidden files or spaces (irmago splits index lines at spaces).
func safePath(p string) bool {
	if p == "" || p != path.Clean(p) || path.IsAbs(p) || strings.ContainsAny(p, "\\\x00 ") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." || strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return true
}
