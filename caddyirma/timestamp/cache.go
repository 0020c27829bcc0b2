package timestamp

import (
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
}

// NewMemoryCache returns an empty MemoryCache.
func NewMemoryCache() *MemoryCache {
	return &MemoryCache{
		keys:  make(map[string]time.Time),
		infos: make(map[string]atum.ServerInfo),
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

// TrustOwnKey records in this package's cache that the service at serverURL trusts key until
// until. A process that runs the service and also verifies its timestamps (the gateway's IRMA
// server, in signature sessions) can call it so that verification does not have to reach the
// service over the network: through its public URL, which need not route back to the gateway.
// It has no effect if atum.SetCache has since replaced this package's cache.
func TrustOwnKey(serverURL string, key ed25519.PublicKey, until time.Time) {
	// go-atum looks keys up under the URL with a trailing slash.
	if !strings.HasSuffix(serverURL, "/") {
		serverURL += "/"
	}
	installed.StorePublicKey(serverURL, atum.Ed25519, key, until)
}
