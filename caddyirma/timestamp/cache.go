package timestamp

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/bwesterb/go-atum"
)

// maxCacheEntries bounds each map of a MemoryCache. go-atum's Verify stores whatever key the
// server named in a timestamp vouches for, and that server may be chosen by whoever made the
// timestamp; without a bound such timestamps could grow the cache without end.
const maxCacheEntries = 1024

// installed is the cache this package gives go-atum; tests look into it.
var installed = NewMemoryCache()

// init replaces go-atum's default cache, a bolt database in the home directory that every stamp
// request and verification opens (and creates, with its directory), by an in-memory cache. It
// runs before main and before any importer's init, so it cannot race with go-atum's use of the
// cache; an importer that wants another cache can still call atum.SetCache in its own init.
func init() {
	atum.SetCache(installed)
}

// MemoryCache is an atum.Cache that lives in the process: trusted public keys (until the expiry
// their server gave) and server information. It is safe for concurrent use. Losing it at exit
// costs one /checkPublicKey request per key and server on the next verification.
type MemoryCache struct {
	mu    sync.Mutex
	keys  map[string]time.Time
	infos map[string]atum.ServerInfo
	own   map[string]*OwnKey // by server URL: see TrustOwnKey
}

// NewMemoryCache returns an empty MemoryCache.
func NewMemoryCache() *MemoryCache {
	return &MemoryCache{
		keys:  make(map[string]time.Time),
		infos: make(map[string]atum.ServerInfo),
		own:   make(map[string]*OwnKey),
	}
}

var _ atum.Cache = (*MemoryCache)(nil)

func cacheKey(serverURL string, alg atum.SignatureAlgorithm, pk []byte) string {
	return fmt.Sprintf("%x-%s-%s", pk, alg, serverURL)
}

// StorePublicKey records that serverURL trusts pk until expires.
func (c *MemoryCache) StorePublicKey(serverURL string, alg atum.SignatureAlgorithm, pk []byte, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey(serverURL, alg, pk)
	if _, ok := c.keys[k]; !ok && len(c.keys) >= maxCacheEntries {
		c.evictKeys()
	}
	c.keys[k] = expires
}

// GetPublicKey returns until when pk is trusted for serverURL, or nil if that is not known or
// has passed.
func (c *MemoryCache) GetPublicKey(serverURL string, alg atum.SignatureAlgorithm, pk []byte) *time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if own := c.own[serverURL]; own != nil && alg == atum.Ed25519 && bytes.Equal(own.pk, pk) {
		// As long as the service runs here with this key, it would say so.
		exp := now().Add(DefaultKeyTrustDuration)
		return &exp
	}
	k := cacheKey(serverURL, alg, pk)
	exp, ok := c.keys[k]
	if !ok {
		return nil
	}
	if !exp.After(now()) {
		delete(c.keys, k)
		return nil
	}
	return &exp
}

// StoreServerInfo records a server's information.
func (c *MemoryCache) StoreServerInfo(serverURL string, info atum.ServerInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.infos[serverURL]; !ok && len(c.infos) >= maxCacheEntries {
		for k := range c.infos { // arbitrary victim: server info is cheap to learn again
			delete(c.infos, k)
			break
		}
	}
	info.RequiredProofOfWork = maps.Clone(info.RequiredProofOfWork)
	c.infos[serverURL] = info
}

// GetServerInfo returns a server's recorded information, or nil.
func (c *MemoryCache) GetServerInfo(serverURL string) *atum.ServerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	info, ok := c.infos[serverURL]
	if !ok {
		return nil
	}
	info.RequiredProofOfWork = maps.Clone(info.RequiredProofOfWork)
	return &info
}

// evictKeys makes room: first by dropping expired entries, then, if none had expired, one
// arbitrary entry (it will be asked for again if needed). The caller holds c.mu.
func (c *MemoryCache) evictKeys() {
	t := now()
	for k, exp := range c.keys {
		if !exp.After(t) {
			delete(c.keys, k)
		}
	}
	if len(c.keys) < maxCacheEntries {
		return
	}
	for k := range c.keys {
		delete(c.keys, k)
		return
	}
}

// OwnKey is the registration of a timestamp key as the one that the
// service at a URL, running in this process, signs with.
type OwnKey struct {
	url string
	pk  ed25519.PublicKey
}

// TrustOwnKey records that the service at serverURL, which this process
// runs, signs with key: verifications in this process then trust the key
// without asking the service over the network, through its public URL,
// which need not route back to this process. It replaces the earlier
// registration for serverURL, so a key that was rotated out (because it
// leaked, say) is trusted no longer, just as the service's
// /checkPublicKey stops vouching for it. It has no effect if atum.SetCache
// has since replaced this package's cache.
func TrustOwnKey(serverURL string, key ed25519.PublicKey) *OwnKey {
	// go-atum looks keys up under the URL with a trailing slash.
	if !strings.HasSuffix(serverURL, "/") {
		serverURL += "/"
	}
	k := &OwnKey{url: serverURL, pk: bytes.Clone(key)}
	installed.mu.Lock()
	defer installed.mu.Unlock()
	installed.own[serverURL] = k
	return k
}

// Release ends the trust in k, unless a later TrustOwnKey for its URL has
// replaced it: a config reload registers the new key before it releases
// the old one.
func (k *OwnKey) Release() {
	installed.mu.Lock()
	defer installed.mu.Unlock()
	if installed.own[k.url] == k {
		delete(installed.own, k.url)
	}
}
