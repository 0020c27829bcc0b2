package sessionlimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-redis/redis/v8"
)

// Redis is a Limiter that counts in Redis, so that every process that uses
// the same Redis and Prefix shares the counts: together they start no more
// sessions than one would. It is safe for concurrent use; set its fields
// before the first call.
//
// Each window is a sorted set of starts, scored by the time of the start in
// microseconds: one set per client that started a session within Window,
// and one of all starts. One script checks both and adds to both, so
// concurrent callers, in one process or many, cannot both take the last
// place. A set expires a window after its last start, and a refusal adds
// nothing, so Redis holds a set for each client that started a session
// within the last Window and for no other: as many as the sessions that
// Total lets start in that time, at most. The expiry does what MaxClients
// does for Memory. The keys hold a hash of
// the client, not the client itself (an address, say); the hash keeps it
// out of plain sight, but it is not a secret: there are few enough IPv4
// addresses to try them all.
//
// The clock is the caller's, as it is in Memory: instances whose clocks
// differ see each other's starts that much earlier or later.
type Redis struct {
	Bounds
	// Client is the Redis to count in. Required.
	Client redis.UniversalClient
	// Prefix goes before every key. Default: none.
	Prefix string
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// allowScript admits a session if both windows have room, and returns 0;
// else it returns how long (in microseconds) until the first window that is
// full has room. KEYS: the client's starts, all starts. ARGV: now, a member
// unique to this start, then per window its bound, its cutoff (now minus
// the window: starts at or before it have left the window) and its set's
// time to live in milliseconds. Times travel as decimal strings, which
// Redis reads exactly (Lua would print a number of 16 digits with 14).
var allowScript = redis.NewScript(`
local function wait(key, max, cutoff)
	redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
	local n = redis.call('ZCARD', key)
	if n < max then
		return nil
	end
	local oldest = redis.call('ZRANGE', key, n - max, n - max, 'WITHSCORES')
	return tonumber(oldest[2]) - tonumber(cutoff)
end
local w = wait(KEYS[1], tonumber(ARGV[3]), ARGV[4]) or wait(KEYS[2], tonumber(ARGV[6]), ARGV[7])
if w then
	return w
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
return 0
`)

// Allow implements Limiter. It fails if Redis does not answer.
func (l *Redis) Allow(ctx context.Context, client string) (bool, time.Duration, error) {
	now := clock(l.Now).UnixMicro()
	wait, err := allowScript.Run(ctx, l.Client, []string{l.clientKey(client), l.Prefix + "total"},
		now, strconv.FormatUint(rand.Uint64(), 36),
		l.PerClient, now-l.Window.Microseconds(), ttlMillis(l.Window),
		l.Total, now-l.TotalWindow.Microseconds(), ttlMillis(l.TotalWindow),
	).Int64()
	if err != nil {
		return false, 0, fmt.Errorf("sessionlimit: redis: counting a session: %w", err)
	}
	if wait == 0 {
		return true, 0, nil
	}
	return false, time.Duration(wait) * time.Microsecond, nil
}

// clientKey is the key of client's starts: a hash of it, of a fixed length
// whatever the client.
func (l *Redis) clientKey(client string) string {
	sum := sha256.Sum256([]byte(client))
	return l.Prefix + "client:" + hex.EncodeToString(sum[:16])
}

// ttlMillis is a window in whole milliseconds, rounded up: a set lives at
// least as long as its last start counts.
func ttlMillis(window time.Duration) int64 {
	return int64((window + time.Millisecond - 1) / time.Millisecond)
}
