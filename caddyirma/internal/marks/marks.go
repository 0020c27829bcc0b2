// Package marks keeps the gateway's own short-lived state: small values
// under a key, each until it is taken or its time is up. A mark records
// what one step of a flow leaves for a later step, to be used once: when
// the credentials disclosed in a session expire (recorded from the proofs,
// taken by the login), or that a signature has not been fetched yet. Or it
// records a fact that many later steps look at, until its time is up: that
// a login was logged out (put by the logout, looked at by every request
// that the login's cookie comes with).
//
// The store is in the process, or in the Redis that holds the IRMA
// sessions, so that every instance of the gateway sees the same marks: a
// mark taken on one is gone on all. New chooses; both implementations pass
// the one conformance suite in package storetest.
package marks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis/v8"
)

// ErrUnavailable is wrapped by the errors of a store that cannot answer
// now (Redis is down or unreachable): the same call may work later.
var ErrUnavailable = errors.New("the store failed")

// Store keeps marks.
type Store interface {
	// Put records value under key for ttl, replacing what was there.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Add records value under key for ttl if no mark is there, and says
	// whether it did: of concurrent adders, one does.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (added bool, err error)

	// Take returns the value under key and removes it. Of concurrent
	// takers, one gets it; ok is false for the others, and for a key that
	// was never put, was taken, or whose time is up.
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)

	// Has says whether a mark is under key whose time is not up, and
	// leaves it there.
	Has(ctx context.Context, key string) (bool, error)
}

// Config chooses and configures a Store.
type Config struct {
	// Redis, if set, keeps the marks in Redis, shared by every instance
	// that uses it. Default: in this process.
	Redis redis.UniversalClient

	// Prefix goes before every key in Redis. Default: none.
	Prefix string

	// Now is the clock that decides when a mark's time is up. Default:
	// time.Now.
	Now func() time.Time
}

// New returns the store that c chooses.
func New(c Config) Store {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Redis != nil {
		return &redisStore{client: c.Redis, prefix: c.Prefix, now: c.Now}
	}
	return &memoryStore{now: c.Now, m: map[string]memoryMark{}}
}

// sweepEvery is how often the memory store forgets the marks whose time
// is up and that nobody took.
const sweepEvery = time.Minute

type memoryStore struct {
	now       func() time.Time
	mu        sync.RWMutex // read-locked by Has, which every logged-in request calls
	m         map[string]memoryMark
	lastSweep time.Time
}

type memoryMark struct {
	value   []byte
	expires time.Time
}

func (s *memoryStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= sweepEvery {
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			}
		}
		s.lastSweep = now
	}
	s.m[key] = memoryMark{value: append([]byte(nil), value...), expires: now.Add(ttl)}
	return nil
}

func (s *memoryStore) Add(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok && now.Before(v.expires) {
		return false, nil
	}
	s.m[key] = memoryMark{value: append([]byte(nil), value...), expires: now.Add(ttl)}
	return true, nil
}

func (s *memoryStore) Take(_ context.Context, key string) ([]byte, bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	delete(s.m, key)
	if !ok || !now.Before(v.expires) {
		return nil, false, nil
	}
	return v.value, true, nil
}

func (s *memoryStore) Has(_ context.Context, key string) (bool, error) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[key]
	return ok && now.Before(v.expires), nil
}

// redisStore keeps each mark as the time its time is up (Unix
// milliseconds, in decimal) and a colon, followed by its value: the clock of
// the instance that reads it decides, as in memory; Redis's own expiry only
// clears what nobody took.
type redisStore struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
}

// encode is a mark as Redis keeps it.
func (s *redisStore) encode(key string, value []byte, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("marks: %s: a time to live of %s", key, ttl)
	}
	b := strconv.AppendInt(make([]byte, 0, 14+len(value)), s.now().Add(ttl).UnixMilli(), 10)
	return append(append(b, ':'), value...), nil
}

// decode returns the value of a mark as Redis keeps it, or false if its
// time is up.
func (s *redisStore) decode(key string, b []byte) ([]byte, bool, error) {
	ms, value, found := bytes.Cut(b, []byte{':'})
	expires, err := strconv.ParseInt(string(ms), 10, 64)
	if !found || err != nil {
		return nil, false, fmt.Errorf("marks: redis: %s: not a mark", key)
	}
	if !s.now().Before(time.UnixMilli(expires)) {
		return nil, false, nil
	}
	return value, true, nil
}

// addScript sets a mark unless one whose time is not up by the caller's
// clock (ARGV[3], Unix milliseconds) is there: atomic in Redis.
var addScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	local i = string.find(v, ':', 1, true)
	local expires = i and tonumber(string.sub(v, 1, i - 1))
	if expires == nil or expires > tonumber(ARGV[3]) then
		return 0
	end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

func (s *redisStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	b, err := s.encode(key, value, ttl)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.prefix+key, b, ttl).Err(); err != nil {
		return fmt.Errorf("marks: redis: %w: %w", ErrUnavailable, err)
	}
	return nil
}

func (s *redisStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	b, err := s.encode(key, value, ttl)
	if err != nil {
		return false, err
	}
	added, err := addScript.Run(ctx, s.client, []string{s.prefix + key}, b, ttl.Milliseconds(), s.now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("marks: redis: %w: %w", ErrUnavailable, err)
	}
	return added == 1, nil
}

func (s *redisStore) Has(ctx context.Context, key string) (bool, error) {
	b, err := s.client.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("marks: redis: %w: %w", ErrUnavailable, err)
	}
	_, ok, err := s.decode(key, b)
	return ok, err
}

func (s *redisStore) Take(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := s.client.GetDel(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("marks: redis: %w: %w", ErrUnavailable, err)
	}
	return s.decode(key, b)
}
