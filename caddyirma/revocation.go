package caddyirma

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"
	gormlogger "gorm.io/gorm/logger"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
)

func init() {
	// irmago opens its revocation database with gorm's default logger,
	// which prints to stdout, past Caddy's logs, every failed query with
	// its values (revocation keys among them). irmago returns the errors,
	// and the gateway logs them through zap.
	gormlogger.Default = gormlogger.Discard
}

// RevocationConfig makes the gateway the revocation authority of credential
// types, as irma server's revocation_db_type, revocation_db_str and
// revocation_settings (in authority mode) do: it issues them with a
// revocation key, keeps their accumulators and issuance records in a SQL
// database, revokes them on a requestor's POST /revocation, serves the
// revocation updates that wallets and other verifiers fetch (under
// revocation/ of the IRMA endpoints), and asks non-revocation proofs for
// the policies that ask them.
type RevocationConfig struct {
	// DBType is the type of the revocation database: postgres, mysql or
	// sqlserver, as irma server's revocation_db_type. Required.
	DBType string `json:"db_type,omitempty"`

	// DBStr is the connection string of the revocation database, as irma
	// server's revocation_db_str, such as
	// "host=/run/postgresql dbname=irma_revocation user=caddy" for postgres
	// (irmago hands it to gorm's driver). It may hold a password: it is never
	// logged, and placeholders such as {env.IRMA_REVOCATION_DB} are replaced
	// when the config loads. Required.
	DBStr string `json:"db_str,omitempty"`

	// Credentials are the settings of each credential type that the gateway
	// is the revocation authority of, by credential type identifier (such as
	// "caddy-demo.gateway.staff"), as irma server's revocation_settings. Each
	// must support revocation in its scheme, and its issuer's private key in
	// issuer_private_keys_path must have revocation keys. At least one.
	Credentials map[string]*RevocationCredential `json:"credentials,omitempty"`
}

// RevocationCredential is the revocation setting of one credential type.
type RevocationCredential struct {
	// Authority makes the gateway the revocation authority of the credential
	// type, as irma server's authority setting: it creates the accumulator
	// (once, in the database), records every issuance, and revokes. The
	// gateway supports no other mode (irma server's server and
	// revocation_server_url, which follow an authority elsewhere). Required:
	// true.
	Authority bool `json:"authority,omitempty"`

	// Tolerance is how old the accumulator of a non-revocation proof may
	// be for irmago to count the proof as current, as irma server's
	// tolerance. At least 30s, whole seconds. Default: 10m, irmago's.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`
}

// revocationDBTypes are the databases irmago's revocation storage speaks
// (through gorm).
var revocationDBTypes = []string{"postgres", "mysql", "sqlserver"}

// provisionRevocation checks the revocation settings and puts them in
// irmaserver's configuration; it connects to nothing (Start does).
func (a *App) provisionRevocation(repl *caddy.Replacer) error {
	settings := irma.RevocationSettings{}
	a.serverConf.RevocationSettings = settings
	if a.Revocation == nil {
		lockRevocable(a.irmaConf, settings)
		return a.checkPolicyRevocation()
	}
	r := a.Revocation
	if !slices.Contains(revocationDBTypes, r.DBType) {
		return fmt.Errorf("irma: revocation: db_type %q: want one of %v", r.DBType, revocationDBTypes)
	}
	dbStr := repl.ReplaceAll(r.DBStr, "")
	if dbStr == "" {
		return errors.New("irma: revocation: db_str is required: the connection string of the revocation database")
	}
	if len(r.Credentials) == 0 {
		return errors.New("irma: revocation: name at least one credential type, such as: credential caddy-demo.gateway.staff { authority }")
	}
	var errs []error
	for _, id := range sortedKeys(r.Credentials) {
		c := r.Credentials[id]
		if err := checkRevocable(a.irmaConf, id); err != nil {
			errs = append(errs, fmt.Errorf("irma: revocation: credential %s: %w", id, err))
			continue
		}
		if c == nil || !c.Authority {
			errs = append(errs, fmt.Errorf("irma: revocation: credential %s: authority is required: the gateway is the revocation authority of what it revokes", id))
			continue
		}
		if tolerance := time.Duration(c.Tolerance); tolerance != 0 && (tolerance < 30*time.Second || tolerance%time.Second != 0) {
			errs = append(errs, fmt.Errorf("irma: revocation: credential %s: tolerance %s: want whole seconds, at least 30s", id, tolerance))
			continue
		}
		settings[irma.NewCredentialTypeIdentifier(id)] = &irma.RevocationSetting{
			Authority: true, Server: true, Tolerance: uint64(time.Duration(c.Tolerance) / time.Second)}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	lockRevocable(a.irmaConf, settings)
	a.serverConf.RevocationDBType, a.serverConf.RevocationDBConnStr = r.DBType, dbStr
	return a.checkPolicyRevocation()
}

// checkRevocable says why the gateway cannot be the revocation authority of
// the credential type id under conf, or nil if it can.
func checkRevocable(conf *irma.Configuration, id string) error {
	ct := conf.CredentialTypes[irma.NewCredentialTypeIdentifier(id)]
	switch {
	case ct == nil:
		return errors.New("no such credential type in the schemes")
	case !ct.RevocationSupported():
		return errors.New("does not support revocation in its scheme (no RevocationServers, no revocation attribute)")
	}
	sk, err := conf.PrivateKeys.Latest(ct.IssuerIdentifier())
	if err != nil || sk == nil {
		return fmt.Errorf("no private key of issuer %s (issuer_private_keys_path)", ct.IssuerIdentifier())
	}
	if !sk.RevocationSupported() {
		return fmt.Errorf("the private key of issuer %s has no revocation keys", ct.IssuerIdentifier())
	}
	return nil
}

// lockRevocable marks, in irmaserver's settings, every revocable credential
// type that the gateway has a revocation-capable issuer key of but is not
// configured for, as its own authority: irmaserver refuses to start without
// settings for them. The gateway then refuses to issue them or to ask
// non-revocation proofs of them (revocationAuthority), and serves none of
// their revocation routes; irmaserver keeps an accumulator for them, unused
// (in memory, or with a revocation database, there).
func lockRevocable(conf *irma.Configuration, settings irma.RevocationSettings) {
	for id, ct := range conf.CredentialTypes {
		if _, ok := settings[id]; ok || !ct.RevocationSupported() {
			continue
		}
		if sk, err := conf.PrivateKeys.Latest(ct.IssuerIdentifier()); err == nil && sk != nil && sk.RevocationSupported() {
			settings[id] = &irma.RevocationSetting{Authority: true, Server: true}
		}
	}
}

// revocationAuthority says why the gateway cannot issue the credential type
// id with a revocation key, revoke it, or ask non-revocation proofs of it;
// nil if it is its revocation authority.
func (a *App) revocationAuthority(id irma.CredentialTypeIdentifier) error {
	if !revocable(a.Configuration(), id) {
		return fmt.Errorf("credential type %s does not support revocation in its scheme", id)
	}
	if a.Revocation != nil {
		if c := a.Revocation.Credentials[id.String()]; c != nil && c.Authority {
			return nil
		}
	}
	if a.Revocation == nil {
		return fmt.Errorf("credential type %s is revocable, but the irma option has no revocation settings (a database, and credential %s { authority })", id, id)
	}
	return fmt.Errorf("credential type %s is revocable, but the revocation settings do not name it (credential %s { authority })", id, id)
}

// revocable says whether the credential type id supports revocation in
// conf.
func revocable(conf *irma.Configuration, id irma.CredentialTypeIdentifier) bool {
	ct := conf.CredentialTypes[id]
	return ct != nil && ct.RevocationSupported()
}

// sharedRevocations are the revocation storages (with their database
// connections) that a running server shares among the scheme
// configurations it runs on, one after the other: closeSchemes leaves them
// open, the server closes its own when it stops.
var sharedRevocations sync.Map // *irma.RevocationStorage -> struct{}

// openRevocation parses the schemes once more with the revocation database
// and settings, which makes irmago connect to the database (and create its
// tables), and start the jobs that re-sign the accumulators every minute.
// The configuration it returns carries the storage that every scheme
// configuration of the server uses (attachRevocation). Nil without
// revocation settings.
func (a *App) openRevocation() (*irma.Configuration, error) {
	if a.Revocation == nil {
		return nil, nil
	}
	l, err := a.sources.loadWith(a.logger.Named("schemes"), irma.ConfigurationOptions{
		RevocationDBType:    a.serverConf.RevocationDBType,
		RevocationDBConnStr: a.serverConf.RevocationDBConnStr,
		RevocationSettings:  a.serverConf.RevocationSettings,
	})
	if err != nil {
		// irmago's errors name the database type and the failure; the
		// driver's may quote parts of a connection string that it could
		// not parse, which are left out.
		// The scheme loader names the folder it was loading: the database
		// is what failed.
		msg := schemesLabel.ReplaceAllString(err.Error(), "")
		return nil, fmt.Errorf("irma: revocation database (%s): %s", a.Revocation.DBType,
			redactConnString(msg, a.serverConf.RevocationDBConnStr))
	}
	sharedRevocations.Store(l.conf.Revocation, struct{}{})
	a.logger.Info("revocation database ready",
		zap.String("db_type", a.Revocation.DBType), zap.Strings("authority", sortedKeys(a.Revocation.Credentials)))
	return l.conf, nil
}

// attachRevocation makes conf use the server's revocation storage instead
// of the one in memory that parsing it made; conf is not yet in use.
func attachRevocation(conf, rev *irma.Configuration) {
	if rev == nil || conf.Revocation == rev.Revocation {
		return
	}
	if conf.Revocation != nil {
		closeRevocationStorage(conf.Revocation)
	}
	conf.Revocation = rev.Revocation
}

// closeRevocationStorage closes rs. irmago's Close dereferences the
// database of a storage that failed to connect: such a storage has
// nothing to close.
func closeRevocationStorage(rs *irma.RevocationStorage) {
	defer func() { _ = recover() }()
	_ = rs.Close()
}

// closeRevocation closes what openRevocation opened.
func closeRevocation(rev *irma.Configuration) {
	if rev == nil {
		return
	}
	sharedRevocations.Delete(rev.Revocation)
	closeSchemes(rev)
}

// sharedRevocation says whether rs is a server's shared revocation storage.
func sharedRevocation(rs *irma.RevocationStorage) bool {
	_, ok := sharedRevocations.Load(rs)
	return ok
}

// unmarshalCaddyfile parses the revocation block of the irma option:
//
//	revocation {
//		db_type    postgres|mysql|sqlserver
//		db_str     <connection string>
//		credential <credential type> {
//			authority
//			tolerance <duration>
//		}
//	}
func (r *RevocationConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("irma: revocation: unexpected argument %q", d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name != "credential" && seen[name] {
			return d.Errf("irma: revocation: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "db_type":
			err = oneArg(d, &r.DBType)
		case "db_str":
			// Not oneArg: its error would show the value, a secret.
			if args := d.RemainingArgs(); len(args) == 1 {
				r.DBStr = args[0]
			} else {
				err = d.Err("irma: revocation: db_str takes one value: quote a connection string with spaces (the value is not shown here)")
			}
		case "credential":
			err = r.unmarshalCredential(d)
		default:
			return d.Errf("irma: revocation: unknown setting %q (want db_type, db_str or credential)", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *RevocationConfig) unmarshalCredential(d *caddyfile.Dispenser) error {
	var id string
	if err := oneArg(d, &id); err != nil {
		return err
	}
	if _, dup := r.Credentials[id]; dup {
		return d.Errf("irma: revocation: credential %s given twice", id)
	}
	c := new(RevocationCredential)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("irma: revocation: credential %s: %s given twice", id, name)
		}
		seen[name] = true
		var err error
		switch name {
		case "authority":
			err = noArg(d)
			c.Authority = true
		case "tolerance":
			err = durationValue(d, &c.Tolerance)
		default:
			return d.Errf("irma: revocation: credential %s: unknown setting %q (want authority or tolerance)", id, name)
		}
		if err != nil {
			return err
		}
	}
	if r.Credentials == nil {
		r.Credentials = map[string]*RevocationCredential{}
	}
	r.Credentials[id] = c
	return nil
}

// requestorRevocation sets up the revocation of irma_requestor_api: POST
// /revocation revokes through the running server, and issuance requests
// are checked for their revocation keys. It refuses revoke permissions
// without the revocation authority they need, and exact issue permissions
// of revocable credential types the gateway cannot issue.
func (a *App) requestorRevocation(cfg *requestor.Config, requestors map[string]RequestorConfig, unauthenticated *RequestorConfig) error {
	if unauthenticated != nil && len(unauthenticated.Revoke) > 0 {
		return errors.New("irma_requestor_api: allow_unauthenticated: revoke: revocation needs an authenticated requestor")
	}
	conf := a.Configuration()
	var errs []error
	for _, name := range sortedKeys(requestors) {
		rc := requestors[name]
		for _, perm := range rc.Revoke {
			if strings.Contains(perm, "*") {
				continue // matches what the gateway can revoke, and more
			}
			if err := a.revocationAuthority(irma.NewCredentialTypeIdentifier(perm)); err != nil {
				errs = append(errs, fmt.Errorf("irma_requestor_api: requestor %q: revoke %s: %w", name, perm, err))
			}
		}
		for _, perm := range rc.Issue {
			id := irma.NewCredentialTypeIdentifier(perm)
			if strings.Contains(perm, "*") || !revocable(conf, id) {
				continue
			}
			if err := a.revocationAuthority(id); err != nil {
				errs = append(errs, fmt.Errorf("irma_requestor_api: requestor %q: issue %s: %w", name, perm, err))
			}
		}
	}
	cfg.Revoke = func(id irma.CredentialTypeIdentifier, key string, issued time.Time) error {
		if err := a.revocationAuthority(id); err != nil {
			return err
		}
		rs := a.srv.Load()
		if rs == nil {
			return errors.New("the IRMA server is not running")
		}
		return rs.Revoke(id, key, issued)
	}
	cfg.Revocable = func(id irma.CredentialTypeIdentifier) (bool, error) {
		if !revocable(a.Configuration(), id) {
			return false, nil
		}
		return true, a.revocationAuthority(id)
	}
	return errors.Join(errs...)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
