package caddyirma

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/privacybydesign/irmago/irma/server"
)

// RedisConfig says how to reach Redis: one server at Address, or the
// master that Redis Sentinel names, found through SentinelAddresses and
// followed through failovers. Sessions are polled, never pushed, so nothing
// in caddy-irma depends on what irmago cannot do with Redis (session
// handlers, status channels and server-sent events).
type RedisConfig struct {
	// Address is host:port of the Redis server. Required, unless
	// SentinelAddresses is given; not with it.
	Address string `json:"address,omitempty"`
	// SentinelAddresses are host:port of Redis Sentinels that monitor the
	// master named SentinelMasterName: the gateway asks them which server
	// is the master, and follows a failover to another without a restart.
	// One that answers is enough; list them all. Needs
	// AcceptInconsistencyRisk. Default: none (a single server at Address).
	SentinelAddresses []string `json:"sentinel_addresses,omitempty"`
	// SentinelMasterName is the name under which the sentinels monitor the
	// master (the <master-name> of their "sentinel monitor" line).
	// Required with SentinelAddresses.
	SentinelMasterName string `json:"sentinel_master_name,omitempty"`
	// SentinelUsername is the user for ACL authentication to the sentinels.
	// Default: none.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	// SentinelPassword is the password of the sentinels (their
	// requirepass, or the password of SentinelUsername); placeholders
	// such as {env.SENTINEL_PASSWORD} are replaced when the config loads.
	// Default: none.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// AcceptInconsistencyRisk says that the operator accepts what Redis
	// Sentinel risks, as irmago asks: replication is asynchronous, so the
	// writes that a master acknowledged last before it failed may be missing
	// on the replica that takes over. A session may then be found in an
	// earlier state, or not at all (its login fails and is tried again), and
	// a mark may be lost: a logout, a signature result taken, a requestor
	// JWT used, session counts (see "Several instances" in the README).
	// Required with SentinelAddresses. Default: false.
	AcceptInconsistencyRisk bool `json:"accept_inconsistency_risk,omitempty"`
	// Username for Redis ACL authentication. Default: none.
	Username string `json:"username,omitempty"`
	// Password for Redis authentication; placeholders such as
	// {env.REDIS_PASSWORD} are replaced when the config loads. Default: none.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number. Default: 0.
	DB int `json:"db,omitempty"`
	// DisableTLS makes plain connections, to Redis and to the sentinels.
	// Default: TLS, to both.
	DisableTLS bool `json:"disable_tls,omitempty"`
	// TLSCACertFile is a PEM file with the CA certificate that the Redis
	// server's certificate (and the sentinels') must chain to. Default: the
	// system roots.
	TLSCACertFile string `json:"tls_ca_cert_file,omitempty"`
	// TLSClientCertFile is a PEM client certificate for mutual TLS, with
	// TLSClientKeyFile; needs TLSCACertFile. Default: none.
	TLSClientCertFile string `json:"tls_client_cert_file,omitempty"`
	// TLSClientKeyFile is the PEM private key of TLSClientCertFile.
	// Default: none.
	TLSClientKeyFile string `json:"tls_client_key_file,omitempty"`
}

// settings checks the settings, with placeholders replaced, and returns
// them as irmago takes them.
func (r *RedisConfig) settings(repl *caddy.Replacer) (*server.RedisSettings, error) {
	if err := r.checkServers(); err != nil {
		return nil, err
	}
	if !r.DisableTLS && r.TLSCACertFile == "" && (r.TLSClientCertFile != "" || r.TLSClientKeyFile != "") {
		// irmago reads client certificates only together with a CA file.
		return nil, errors.New("irma: redis: tls_client_cert_file and tls_client_key_file need tls_ca_cert_file")
	}
	if (r.TLSClientCertFile == "") != (r.TLSClientKeyFile == "") {
		return nil, errors.New("irma: redis: tls_client_cert_file and tls_client_key_file go together")
	}
	if r.DisableTLS && (r.TLSCACertFile != "" || r.TLSClientCertFile != "") {
		return nil, errors.New("irma: redis: disable_tls cannot be combined with TLS certificate files")
	}
	if r.DB < 0 {
		return nil, fmt.Errorf("irma: redis: db %d: want a database number, 0 or more", r.DB)
	}
	if err := checkRedisTLSFiles(repl, r); err != nil {
		return nil, err
	}
	settings := &server.RedisSettings{
		Addr:                     repl.ReplaceAll(r.Address, ""),
		Username:                 repl.ReplaceAll(r.Username, ""),
		Password:                 repl.ReplaceAll(r.Password, ""),
		DB:                       r.DB,
		DisableTLS:               r.DisableTLS,
		TLSCertificateFile:       repl.ReplaceAll(r.TLSCACertFile, ""),
		TLSClientCertificateFile: repl.ReplaceAll(r.TLSClientCertFile, ""),
		TLSClientKeyFile:         repl.ReplaceAll(r.TLSClientKeyFile, ""),
	}
	for _, a := range r.SentinelAddresses {
		settings.SentinelAddrs = append(settings.SentinelAddrs, repl.ReplaceAll(a, ""))
	}
	if len(settings.SentinelAddrs) > 0 {
		settings.SentinelMasterName = repl.ReplaceAll(r.SentinelMasterName, "")
		settings.SentinelUsername = repl.ReplaceAll(r.SentinelUsername, "")
		settings.SentinelPassword = repl.ReplaceAll(r.SentinelPassword, "")
		settings.AcceptInconsistencyRisk = r.AcceptInconsistencyRisk
	}
	return settings, nil
}

// checkServers checks that the settings name one Redis server, or
// sentinels and the master they monitor, with the risk accepted.
func (r *RedisConfig) checkServers() error {
	switch {
	case r.Address == "" && len(r.SentinelAddresses) == 0:
		return errors.New("irma: redis: an address, or sentinel_addresses, is required")
	case r.Address != "" && len(r.SentinelAddresses) > 0:
		return fmt.Errorf("irma: redis %q: sentinel_addresses given too: the sentinels name the master, give one or the other", r.Address)
	case r.Address != "":
		for _, o := range []struct {
			name string
			set  bool
		}{
			{"sentinel_master_name", r.SentinelMasterName != ""}, {"sentinel_username", r.SentinelUsername != ""},
			{"sentinel_password", r.SentinelPassword != ""}, {"accept_inconsistency_risk", r.AcceptInconsistencyRisk},
		} {
			if o.set {
				return fmt.Errorf("irma: redis %q: %s goes with sentinel_addresses, not with an address", r.Address, o.name)
			}
		}
		return nil
	}
	for _, a := range r.SentinelAddresses {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("irma: redis: sentinel_addresses %q: want host:port", a)
		}
	}
	if r.SentinelMasterName == "" {
		return fmt.Errorf("irma: redis: sentinel_addresses %q: sentinel_master_name is required, the name the sentinels monitor the master under", r.SentinelAddresses)
	}
	if !r.AcceptInconsistencyRisk {
		// irmago refuses Sentinel without it, when Caddy starts; say it now.
		return fmt.Errorf("irma: redis: sentinel_addresses %q: Redis Sentinel can lose the last writes of a master that fails "+
			"(a session's progress, a logout, a used requestor JWT or signature result): add accept_inconsistency_risk if that is acceptable", r.SentinelAddresses)
	}
	return nil
}

// redisServers are the addresses that the gateway connects to first: the
// server, or the sentinels.
func redisServers(s *server.RedisSettings) []string {
	if len(s.SentinelAddrs) > 0 {
		return s.SentinelAddrs
	}
	return []string{s.Addr}
}

// checkRedisTLSFiles reads the TLS files now, so that a bad one is a config
// error naming it (irmago would ignore a CA file without certificates).
func checkRedisTLSFiles(repl *caddy.Replacer, r *RedisConfig) error {
	if f := repl.ReplaceAll(r.TLSCACertFile, ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("irma: redis: tls_ca_cert_file %q: %w", f, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("irma: redis: tls_ca_cert_file %q: no PEM certificates in it", f)
		}
	}
	if cert, key := repl.ReplaceAll(r.TLSClientCertFile, ""), repl.ReplaceAll(r.TLSClientKeyFile, ""); cert != "" {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return fmt.Errorf("irma: redis: tls_client_cert_file %q and tls_client_key_file %q: %w", cert, key, err)
		}
	}
	return nil
}

// unmarshalCaddyfile parses the redis block of the irma global option:
//
//	redis [<host:port>] {
//		sentinel_addresses        <host:port> ...
//		sentinel_master_name      <name>
//		sentinel_username         <name>
//		sentinel_password         <password>
//		accept_inconsistency_risk
//		username                  <name>
//		password                  <password>
//		db                        <number>
//		disable_tls
//		tls_ca_cert_file          <file>
//		tls_client_cert_file      <file>
//		tls_client_key_file       <file>
//	}
//
// Either the address of one server, or sentinel_addresses with
// sentinel_master_name and accept_inconsistency_risk.
func (r *RedisConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		r.Address = d.Val()
		if d.NextArg() {
			return d.Errf("irma: redis takes one address, got also %q: list sentinels with sentinel_addresses", d.Val())
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("irma: redis: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "sentinel_addresses":
			if r.SentinelAddresses = d.RemainingArgs(); len(r.SentinelAddresses) == 0 {
				return d.Errf("irma: redis: sentinel_addresses needs one or more host:port")
			}
		case "sentinel_master_name":
			err = oneArg(d, &r.SentinelMasterName)
		case "sentinel_username":
			err = oneArg(d, &r.SentinelUsername)
		case "sentinel_password":
			err = oneArg(d, &r.SentinelPassword)
		case "username":
			err = oneArg(d, &r.Username)
		case "password":
			err = oneArg(d, &r.Password)
		case "db":
			var v string
			if err = oneArg(d, &v); err == nil {
				if r.DB, err = strconv.Atoi(v); err != nil || r.DB < 0 {
					return d.Errf("irma: redis: db %q: want a database number", v)
				}
			}
		case "accept_inconsistency_risk", "disable_tls":
			if d.NextArg() {
				return d.Errf("irma: redis: %s takes no argument, got %q", name, d.Val())
			}
			r.AcceptInconsistencyRisk = r.AcceptInconsistencyRisk || name == "accept_inconsistency_risk"
			r.DisableTLS = r.DisableTLS || name == "disable_tls"
		case "tls_ca_cert_file":
			err = oneArg(d, &r.TLSCACertFile)
		case "tls_client_cert_file":
			err = oneArg(d, &r.TLSClientCertFile)
		case "tls_client_key_file":
			err = oneArg(d, &r.TLSClientKeyFile)
		default:
			return d.Errf("irma: redis: unknown setting %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// describe names the Redis of r for an error message.
func (r *RedisConfig) describe() string {
	if len(r.SentinelAddresses) > 0 {
		return fmt.Sprintf("redis sentinels %q (master %q)", r.SentinelAddresses, r.SentinelMasterName)
	}
	return fmt.Sprintf("redis at %q", r.Address)
}

// isLoopback says whether host (a name or an address) is this machine:
// traffic to it never crosses a network.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
