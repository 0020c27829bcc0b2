package caddyirma

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// Test hooks: when the next periodic update of the schemes is due, and
// what came of one.
var (
	schemesUpdateAfter = time.After
	schemesUpdated     func(err error, changed bool) // nil: nothing
)

// schemeFetch is a scheme to update: its source, and the folder of schemes
// that holds its copy.
type schemeFetch struct {
	dir    string
	remote schemecache.Remote
}

// localFetches lists the local schemes (dirs: where each is) that have somewhere to be updated
// from: an https <Url>, under the key of their own pk.pem (which is what
// irmago checks them against too).
func localFetches(conf *irma.Configuration, dirs map[irma.SchemeManagerIdentifier]string, local string) []schemeFetch {
	var list []schemeFetch
	for id, dir := range dirs {
		sm := conf.SchemeManagers[id]
		if sm == nil || !strings.HasPrefix(sm.URL, "https://") {
			continue
		}
		pk, err := os.ReadFile(filepath.Join(dir, "pk.pem"))
		if err != nil {
			continue
		}
		list = append(list, schemeFetch{local, schemecache.Remote{ID: id.String(), URL: sm.URL, PublicKey: pk}})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].remote.ID < list[j].remote.ID })
	return list
}

// schemeUpdater keeps the schemes of a running IRMA server up to date: it
// fetches updates of every scheme that has a source (the default schemes,
// and local schemes with an https <Url>), and when the schemes on disk
// change, it parses them anew and hands the server the new configuration
// whole.
//
// irmago updates a configuration in place, writing maps that sessions read
// at the same time (a Go map written while it is read can crash the
// process), and leaves out of a configuration whatever it has not parsed
// yet. Here a server always reads one complete configuration: the old one
// or the new one.
type schemeUpdater struct {
	sources schemeSources
	rs      *runningServer
	logger  atomic.Pointer[zap.Logger]
	app     atomic.Pointer[App] // the config that started last, whose checks an update must pass

	updating sync.Mutex // one update at a time

	mu          sync.Mutex // guards the fields below; never held while fetching
	fingerprint string     // of the configuration the server uses
	fetches     []schemeFetch
	retired     *irma.Configuration // the one before, which a request may still hold

	stop context.CancelFunc
	done chan struct{}
}

// requireSchemes adds a check that every scheme update must pass: the
// handlers of the config name attributes and credentials that must stay.
func (a *App) requireSchemes(check func(*irma.Configuration) error) {
	a.schemeChecksMu.Lock()
	defer a.schemeChecksMu.Unlock()
	a.schemeChecks = append(a.schemeChecks, check)
}

// checkSchemes runs the checks of the config that started last on conf.
func (u *schemeUpdater) checkSchemes(conf *irma.Configuration) error {
	a := u.app.Load()
	if a == nil {
		return nil
	}
	a.schemeChecksMu.Lock()
	checks := a.schemeChecks
	a.schemeChecksMu.Unlock()
	var errs []error
	for _, check := range checks {
		errs = append(errs, check(conf))
	}
	return errors.Join(errs...)
}

// start runs the updates: one now, then one every interval, until close.
func (u *schemeUpdater) start(every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	u.stop, u.done = cancel, make(chan struct{})
	go func() {
		defer close(u.done)
		for {
			changed, err := u.update(ctx)
			if schemesUpdated != nil {
				schemesUpdated(err, changed)
			}
			select {
			case <-ctx.Done():
				return
			case <-schemesUpdateAfter(every):
			}
		}
	}()
}

// close stops the updates, and closes the configuration retired last.
func (u *schemeUpdater) close() {
	if u.stop != nil {
		u.stop()
		<-u.done
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.retired != nil {
		closeSchemes(u.retired)
		u.retired = nil
	}
}

// update fetches what is new of each scheme that has a source, and hands
// the server the schemes on disk if they changed (by this update, by
// 'caddy irma schemes', or by another process). It reports whether the
// server got new schemes. On an error the server keeps the schemes it has.
func (u *schemeUpdater) update(ctx context.Context) (bool, error) {
	u.updating.Lock()
	defer u.updating.Unlock()
	u.mu.Lock()
	fetches, current := u.fetches, u.fingerprint
	u.mu.Unlock()
	logger := u.logger.Load()
	fetcher := newFetcher(logger)
	var errs []error
	for _, f := range fetches {
		res, err := fetcher.Fetch(ctx, f.dir, f.remote)
		if err != nil {
			logger.Warn("updating an IRMA scheme failed: keeping the copy there is",
				zap.String("scheme", f.remote.ID), zap.String("url", f.remote.URL), zap.Error(err))
			errs = append(errs, err)
			countSchemeUpdate("fetch_failed")
			continue
		}
		if res.Changed {
			logger.Info("fetched an update of an IRMA scheme", zap.String("scheme", f.remote.ID),
				zap.Time("from", res.Previous), zap.Time("to", res.Timestamp), zap.String("dir", f.dir))
		}
	}
	fp, err := u.sources.fingerprint()
	if err != nil || fp == current {
		if len(errs) == 0 && err == nil {
			countSchemeUpdate("unchanged")
		}
		return false, errors.Join(append(errs, err)...)
	}
	loaded, err := u.sources.load(logger)
	if err != nil {
		logger.Error("the schemes on disk changed, but do not load: the IRMA server keeps the ones it has", zap.Error(err))
		countSchemeUpdate("load_failed")
		return false, errors.Join(append(errs, err)...)
	}
	if err := u.checkSchemes(loaded.conf); err != nil {
		// Taking them would break routes that run now; the copy on disk is
		// new, so a restart with this config would fail the same way.
		closeSchemes(loaded.conf)
		logger.Error("the schemes on disk changed, but lack what the config names: the IRMA server keeps the ones it has; change the config before a restart", zap.Error(err))
		countSchemeUpdate("refused")
		return false, errors.Join(append(errs, err)...)
	}
	if !u.adopt(loaded) {
		closeSchemes(loaded.conf) // a reload handed the server the same meanwhile
		return false, errors.Join(errs...)
	}
	countSchemeUpdate("applied")
	logger.Info("the IRMA server uses the schemes on disk now", zap.Int("schemes", len(loaded.conf.SchemeManagers)),
		zap.Int("credential_types", len(loaded.conf.CredentialTypes)))
	return true, errors.Join(errs...)
}

// adopt hands the server the schemes that a new config of the same server
// parsed, if they differ from the ones it uses. It reports whether it took
// them; if not, they are the caller's to close.
func (u *schemeUpdater) adopt(l *loadedSchemes) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if l.fingerprint == u.fingerprint {
		return false
	}
	u.apply(l)
	return true
}

// apply makes l the server's schemes; u.mu is held. The configuration it
// replaces may still be in a request's hands: it is closed at the next
// apply.
func (u *schemeUpdater) apply(l *loadedSchemes) {
	old := u.rs.setConf(l.conf)
	u.fingerprint, u.fetches = l.fingerprint, l.fetches
	if u.retired != nil {
		closeSchemes(u.retired)
	}
	u.retired = old
}
