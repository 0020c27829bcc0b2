package schemecache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/privacybydesign/gabi/gabikeys"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/atomicfile"
)

// A demo scheme (<Demo>true</Demo>, such as irma-demo) publishes the private key of each issuer
// key pair beside its public key, so that anyone can issue its credentials: irmago's wallets
// accept them in developer mode only. The index does not sign them.

// publicKeyPath matches the public key files of an index: <issuer>/PublicKeys/<counter>.xml.
var publicKeyPath = regexp.MustCompile(`^([^/]+)/PublicKeys/([0-9]{1,9})\.xml$`)

// stageDemoKeys puts into root the private key of every public key in the index: from the
// current copy if it is still the right one, else from the server. A key that cannot be had,
// or that is not the private half of its public key, is left out with a log line, as irmago
// does: a demo scheme is of use without them. It returns how many it put there.
func (f *Fetcher) stageDemoKeys(ctx context.Context, r Remote, index irma.SchemeManagerIndex, cur, root string) int {
	var rels []string
	for p := range index {
		if m := publicKeyPath.FindStringSubmatch(strings.TrimPrefix(p, r.ID+"/")); m != nil {
			rels = append(rels, m[1]+"/PrivateKeys/"+m[2]+".xml")
		}
	}
	sort.Strings(rels)
	var n atomic.Int64
	inParallel(rels, func(rel string) {
		if err := f.stageDemoKey(ctx, r, cur, root, rel); err != nil {
			f.logger().Warn("leaving out an issuer private key of the demo scheme", zap.String("scheme", r.ID), zap.String("file", rel), zap.Error(err))
			return
		}
		n.Add(1)
	})
	return int(n.Load())
}

func (f *Fetcher) stageDemoKey(ctx context.Context, r Remote, cur, root, rel string) error {
	issuer, file, _ := strings.Cut(rel, "/PrivateKeys/")
	counter, _ := strconv.ParseUint(strings.TrimSuffix(file, ".xml"), 10, 32)
	pub, err := os.ReadFile(filepath.Join(root, issuer, "PublicKeys", file))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(cur, filepath.FromSlash(rel)))
	if err != nil || checkPrivateKey(pub, data, uint(counter)) != nil {
		if data, err = f.get(ctx, r, rel, maxSmallFile); err != nil {
			return err
		}
		if err := checkPrivateKey(pub, data, uint(counter)); err != nil {
			return err
		}
	}
	dest := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteSynced(dest, data, 0o644)
}

// checkPrivateKey tells whether data is the private key of the public key pub (both gabikeys
// XML) with the given counter.
func checkPrivateKey(pub, data []byte, counter uint) error {
	pk, err := gabikeys.NewPublicKeyFromBytes(pub)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	sk, err := parseDemoPrivateKey(data)
	if err != nil {
		return err
	}
	if sk.Counter != counter || pk.N == nil || sk.N.Cmp(pk.N) != 0 {
		return fmt.Errorf("not the private key of public key %d", counter)
	}
	return nil
}

// parseDemoPrivateKey parses a private key of a demo scheme (gabikeys skips the safe-prime
// checks for those). gabikeys multiplies the primes without checking that they are there: a
// key file without them makes it panic, which here is an error.
func parseDemoPrivateKey(data []byte) (sk *gabikeys.PrivateKey, err error) {
	defer func() {
		if recover() != nil {
			sk, err = nil, fmt.Errorf("not an issuer private key")
		}
	}()
	sk, err = gabikeys.NewPrivateKeyFromXML(string(data), true)
	if err == nil && (sk.N == nil || sk.P == nil || sk.Q == nil || sk.PPrime == nil || sk.QPrime == nil) {
		err = fmt.Errorf("not an issuer private key")
	}
	return sk, err
}

// DemoKeyRing holds the issuer private keys that demo schemes publish inside their folders
// (<scheme>/<issuer>/PrivateKeys/<counter>.xml), as irma server uses them: give it to
// irma.Configuration.AddPrivateKeyRing to issue a demo scheme's credentials. Keys of schemes
// that are not demo schemes are never read.
type DemoKeyRing struct {
	keys map[irma.IssuerIdentifier]map[uint]*gabikeys.PrivateKey
}

// NewDemoKeyRing reads the private keys of the demo schemes of conf, from the folder dirs
// gives for each scheme, keeping each that belongs to its public key in conf; the others are
// left out with a log line.
func NewDemoKeyRing(conf *irma.Configuration, dirs map[irma.SchemeManagerIdentifier]string, logger *zap.Logger) *DemoKeyRing {
	ring := &DemoKeyRing{keys: map[irma.IssuerIdentifier]map[uint]*gabikeys.PrivateKey{}}
	for id, dir := range dirs {
		if sm := conf.SchemeManagers[id]; sm == nil || !sm.Demo {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*", "PrivateKeys", "*.xml"))
		for _, file := range files {
			iss := irma.NewIssuerIdentifier(id.String() + "." + filepath.Base(filepath.Dir(filepath.Dir(file))))
			if err := ring.add(conf, iss, file); err != nil {
				logger.Warn("leaving out an issuer private key of the demo scheme", zap.String("scheme", id.String()), zap.String("file", file), zap.Error(err))
			}
		}
	}
	return ring
}

func (ring *DemoKeyRing) add(conf *irma.Configuration, iss irma.IssuerIdentifier, file string) error {
	counter, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(file), ".xml"), 10, 32)
	if err != nil {
		return err
	}
	if conf.Issuers[iss] == nil {
		return fmt.Errorf("unknown issuer %s", iss)
	}
	pk, err := conf.PublicKey(iss, uint(counter))
	if err != nil || pk == nil {
		return fmt.Errorf("no public key %d of issuer %s", counter, iss)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sk, err := parseDemoPrivateKey(data)
	if err != nil {
		return err
	}
	if sk.Counter != uint(counter) || sk.N.Cmp(pk.N) != 0 {
		return fmt.Errorf("not the private key of public key %d of issuer %s", counter, iss)
	}
	if ring.keys[iss] == nil {
		ring.keys[iss] = map[uint]*gabikeys.PrivateKey{}
	}
	ring.keys[iss][uint(counter)] = sk
	return nil
}

// Len returns the number of keys in the ring.
func (ring *DemoKeyRing) Len() int {
	n := 0
	for _, ks := range ring.keys {
		n += len(ks)
	}
	return n
}

// Get implements irma.PrivateKeyRing.
func (ring *DemoKeyRing) Get(id irma.IssuerIdentifier, counter uint) (*gabikeys.PrivateKey, error) {
	if sk := ring.keys[id][counter]; sk != nil {
		return sk, nil
	}
	return nil, irma.ErrMissingPrivateKey
}

// Latest implements irma.PrivateKeyRing.
func (ring *DemoKeyRing) Latest(id irma.IssuerIdentifier) (*gabikeys.PrivateKey, error) {
	var latest *gabikeys.PrivateKey
	for _, sk := range ring.keys[id] {
		if latest == nil || sk.Counter > latest.Counter {
			latest = sk
		}
	}
	if latest == nil {
		return nil, irma.ErrMissingPrivateKey
	}
	return latest, nil
}

// Iterate implements irma.PrivateKeyRing.
func (ring *DemoKeyRing) Iterate(id irma.IssuerIdentifier, f func(sk *gabikeys.PrivateKey) error) error {
	for _, sk := range ring.keys[id] {
		if err := f(sk); err != nil {
			return err
		}
	}
	return nil
}

// Interface guard
var _ irma.PrivateKeyRing = (*DemoKeyRing)(nil)
