package schemecache

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/atomicfile"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/dirlock"
)

// DefaultTimeout bounds one Fetch when Fetcher.Timeout is zero: the real schemes are a few
// hundred files and some megabytes (irma-demo about 14 MB, mostly logos).
const DefaultTimeout = 5 * time.Minute

// Limits on what a server may send: far above the real schemes (whose largest file is a logo
// of under 2 MB), far below what would hurt.
const (
	maxFileSize  = 16 << 20
	maxIndexSize = 4 << 20
	maxSmallFile = 64 << 10
	parallel     = 8 // downloads at once
)

// Fetcher downloads schemes into a cache directory. Its zero value works.
type Fetcher struct {
	// Client makes the requests. Nil: a client with the system's roots and proxy settings,
	// which waits at most 30 seconds for a connection and for each response's headers.
	Client *http.Client
	// Timeout bounds a whole Fetch, from the first request to the swap. Zero: DefaultTimeout.
	Timeout time.Duration
	// Logger receives a line for what changes or goes wrong on the side (a demo scheme's
	// private key that could not be had). Nil: nothing.
	Logger *zap.Logger
}

// Result says what a Fetch did.
type Result struct {
	// Changed is true if a new copy was swapped in.
	Changed bool
	// Timestamp is the signed timestamp of the copy in the cache now.
	Timestamp time.Time
	// Previous is the timestamp of the copy before, zero if there was none (or none valid).
	Previous time.Time
	// PrivateKeys is the number of issuer private keys the copy holds: those of a demo scheme.
	PrivateKeys int
}

var defaultClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}(), CheckRedirect: noDowngrade}

// noDowngrade follows up to 10 redirects, as Go does, but none from https
// to plain http: the signature guards what a scheme holds, not who sees
// which files a gateway fetches.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("a redirect from https to %s://%s refused", req.URL.Scheme, req.URL.Host)
	}
	return nil
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return defaultClient
}

func (f *Fetcher) logger() *zap.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return zap.NewNop()
}

// Fetch brings the copy of r in dir up to date: it fetches the signed index, and if the index
// is newer than the copy (or there is no valid copy), every file the index names (reusing the
// copy's files that did not change), checks each against the index, has irmago parse the
// result, and swaps it in. On any error the copy in dir stays as it was. Writers of one
// directory take turns (see package dirlock).
func (f *Fetcher) Fetch(ctx context.Context, dir string, r Remote) (Result, error) {
	pk, err := r.key()
	if err != nil {
		return Result{}, err
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	unlock, err := dirlock.Lock(dir)
	if err != nil {
		return Result{}, fmt.Errorf("scheme %s: locking %s: %w", r.ID, dir, err)
	}
	defer unlock()
	// What a fetch that was cut short (a crash, a power cut) left behind:
	// with the lock held, no fetch is under way.
	if leftovers, err := filepath.Glob(filepath.Join(dir, ".fetch-*")); err == nil {
		for _, l := range leftovers {
			_ = os.RemoveAll(l)
		}
	}

	root := filepath.Join(dir, r.ID)
	var res Result
	cur, err := verifyCopy(root, r.ID, pk)
	switch {
	case err == nil:
		res.Previous, res.Timestamp = cur.Timestamp, cur.Timestamp
	case !errors.Is(err, ErrNoCopy):
		f.logger().Warn("the cached copy of the scheme is not valid: fetching it anew", zap.String("scheme", r.ID), zap.Error(err))
	}
	remote, err := f.fetchSigned(ctx, r, pk)
	if err != nil {
		return res, err
	}
	if !res.Previous.IsZero() && !remote.timestamp.After(res.Previous) {
		if remote.timestamp.Before(res.Previous) {
			f.logger().Warn("the server has an older copy of the scheme than the cache: keeping the cache",
				zap.String("scheme", r.ID), zap.Time("server", remote.timestamp), zap.Time("cache", res.Previous))
		}
		return res, nil
	}
	var old irma.SchemeManagerIndex
	if !res.Previous.IsZero() {
		old = cur.index
	}
	keys, err := f.install(ctx, dir, r, remote, old)
	if err != nil {
		return res, err
	}
	res.Changed, res.Timestamp, res.PrivateKeys = true, remote.timestamp, keys
	return res, nil
}

// signedState is the signed part of a scheme as its server has it.
type signedState struct {
	index                  irma.SchemeManagerIndex
	indexBytes, sig, stamp []byte
	timestamp              time.Time
}

func (f *Fetcher) fetchSigned(ctx context.Context, r Remote, pk *ecdsa.PublicKey) (*signedState, error) {
	var s signedState
	var err error
	if s.indexBytes, err = f.get(ctx, r, "index", maxIndexSize); err != nil {
		return nil, err
	}
	if s.sig, err = f.get(ctx, r, "index.sig", maxSmallFile); err != nil {
		return nil, err
	}
	if s.stamp, err = f.get(ctx, r, "timestamp", maxSmallFile); err != nil {
		return nil, err
	}
	if s.index, s.timestamp, err = checkSigned(r.ID, pk, s.indexBytes, s.sig, s.stamp); err != nil {
		return nil, fmt.Errorf("scheme %s from %s: refused: %w", r.ID, r.URL, err)
	}
	return &s, nil
}

// install builds the new copy in a hidden folder in dir, checks it, and swaps it in. It
// returns the number of issuer private keys the copy holds.
func (f *Fetcher) install(ctx context.Context, dir string, r Remote, s *signedState, old irma.SchemeManagerIndex) (int, error) {
	stage, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return 0, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	defer os.RemoveAll(stage)
	root, cur := filepath.Join(stage, r.ID), filepath.Join(dir, r.ID)
	if err := os.Mkdir(root, 0o755); err != nil {
		return 0, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	for name, data := range map[string][]byte{"index": s.indexBytes, "index.sig": s.sig, "timestamp": s.stamp, "pk.pem": r.PublicKey} {
		if err := atomicfile.WriteSynced(filepath.Join(root, name), data, 0o644); err != nil {
			return 0, fmt.Errorf("scheme %s: %w", r.ID, err)
		}
	}
	if err := f.stageFiles(ctx, r, s.index, old, cur, root); err != nil {
		return 0, err
	}
	demo, err := checkDescription(root, r.ID)
	if err != nil {
		return 0, fmt.Errorf("scheme %s from %s: refused: %w", r.ID, r.URL, err)
	}
	if err := parseWithIrmago(stage, root); err != nil {
		return 0, fmt.Errorf("scheme %s from %s: refused: %w", r.ID, r.URL, err)
	}
	keys := 0
	if demo {
		keys = f.stageDemoKeys(ctx, r, s.index, cur, root)
	}
	if err := syncTree(root); err != nil {
		return 0, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	// Swap: the old copy into the stage (removed with it), the new one into its place.
	if _, err := os.Stat(cur); err == nil {
		if err := os.Rename(cur, filepath.Join(stage, "old")); err != nil {
			return 0, fmt.Errorf("scheme %s: moving the old copy aside: %w", r.ID, err)
		}
	}
	if err := os.Rename(root, cur); err != nil {
		return 0, fmt.Errorf("scheme %s: moving the new copy in: %w", r.ID, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return 0, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	return keys, nil
}

// stageFiles writes every file the index names into root, verified against its hash: taken
// from the current copy if unchanged there, else downloaded, a few at a time.
func (f *Fetcher) stageFiles(ctx context.Context, r Remote, index, old irma.SchemeManagerIndex, cur, root string) error {
	var rels []string
	for p := range index {
		if rel := strings.TrimPrefix(p, r.ID+"/"); rel != "timestamp" {
			rels = append(rels, rel)
		}
	}
	sort.Strings(rels)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	inParallel(rels, func(rel string) {
		if ctx.Err() != nil {
			return
		}
		if err := f.stageFile(ctx, r, index[r.ID+"/"+rel], old[r.ID+"/"+rel], cur, root, rel); err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			cancel()
		}
	})
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scheme %s from %s: %w", r.ID, r.URL, err)
	}
	return nil
}

// inParallel calls fn for each item, a few at a time, and returns when all calls have.
func inParallel(items []string, fn func(string)) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(parallel, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				fn(item)
			}
		}()
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
}

func (f *Fetcher) stageFile(ctx context.Context, r Remote, want, had []byte, cur, root, rel string) error {
	var data []byte
	if bytes.Equal(want, had) {
		if b, err := os.ReadFile(filepath.Join(cur, filepath.FromSlash(rel))); err == nil && hashIs(b, want) {
			data = b
		}
	}
	if data == nil {
		b, err := f.get(ctx, r, rel, maxFileSize)
		if err != nil {
			return err
		}
		if !hashIs(b, want) {
			return fmt.Errorf("scheme %s from %s: refused: %s is not the file the index signs", r.ID, r.URL, rel)
		}
		data = b
	}
	dest := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	if err := atomicfile.WriteSynced(dest, data, 0o644); err != nil {
		return fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	return nil
}

func hashIs(b, want []byte) bool {
	sum := sha256.Sum256(b)
	return bytes.Equal(sum[:], want)
}

// get downloads <r.URL>/<rel>, at most limit bytes.
func (f *Fetcher) get(ctx context.Context, r Remote, rel string, limit int64) ([]byte, error) {
	u, err := url.JoinPath(r.URL, strings.Split(rel, "/")...)
	if err != nil {
		return nil, fmt.Errorf("scheme %s: %s: %w", r.ID, rel, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("scheme %s: %w", r.ID, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("scheme %s: fetching %s: %w", r.ID, rel, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{id: r.ID, url: u, status: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("scheme %s: fetching %s: %w", r.ID, rel, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("scheme %s: fetching %s: more than %d bytes", r.ID, rel, limit)
	}
	return b, nil
}

type statusError struct {
	id, url string
	status  int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("scheme %s: fetching %s: %d %s", e.id, e.url, e.status, http.StatusText(e.status))
}

// checkDescription reads the scheme's description (whose hash irmago checks when it parses the
// folder) for its identifier, which must be the expected one, and whether it is a demo scheme.
func checkDescription(root, id string) (demo bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, "description.xml"))
	if err != nil {
		return false, err
	}
	var desc struct {
		ID   string `xml:"Id"`
		Demo bool   `xml:"Demo"`
	}
	if err := xml.Unmarshal(b, &desc); err != nil {
		return false, fmt.Errorf("description.xml: %w", err)
	}
	if desc.ID != id {
		return false, fmt.Errorf("description.xml names scheme %q", desc.ID)
	}
	return desc.Demo, nil
}

// parseWithIrmago has irmago parse the scheme folder root (inside schemesPath) as a server
// would: the signature against pk.pem, every file against the index, and the contents.
func parseWithIrmago(schemesPath, root string) error {
	conf, err := irma.NewConfiguration(schemesPath, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		return err
	}
	scheme, err := conf.ParseSchemeFolder(root)
	if err != nil {
		return err
	}
	if sm, ok := scheme.(*irma.SchemeManager); !ok || sm.Status != irma.SchemeManagerStatusValid {
		return errors.New("irmago does not take it as a valid issuer scheme")
	}
	return nil
}

// syncTree flushes the folders of a staged copy, so that its renamed files survive a power cut.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return atomicfile.SyncDir(p)
	})
}
