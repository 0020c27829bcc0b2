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

// RedisConfig says how to reach Redis. Sessions are polled, never pushed,
// so nothing in caddy-irma depends on what irmago cannot do with Redis
// (session handlers, status channels and server-sent events).
type RedisConfig struct {
	// Address is host:port of the Redis server. Required.
	Address string `json:"address,omitempty"`
	// Username for Redis ACL authentication. Default: none.
	Username string `json:"username,omitempty"`
	// Password for Redis authentication; placeholders such as
	// {env.REDIS_PASSWORD} are replaced when the config loads. Default: none.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number. Default: 0.
	DB int `json:"db,omitempty"`
	// DisableTLS makes plain connections. Default: TLS.
	DisableTLS bool `json:"disable_tls,omitempty"`
	// TLSCACertFile is a PEM file with the CA certificate that the Redis
	// server's certificate must chain to. Default: the system roots.
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
	if r.Address == "" {
		return nil, errors.New("irma: redis: address is required")
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
	return &server.RedisSettings{
		Addr:                     repl.ReplaceAll(r.Address, ""),
		Username:                 repl.ReplaceAll(r.Username, ""),
		Password:                 repl.ReplaceAll(r.Password, ""),
		DB:                       r.DB,
		DisableTLS:               r.DisableTLS,
		TLSCertificateFile:       repl.ReplaceAll(r.TLSCACertFile, ""),
		TLSClientCertificateFile: repl.ReplaceAll(r.TLSClientCertFile, ""),
		TLSClientKeyFile:         repl.ReplaceAll(r.TLSClientKeyFile, ""),
	}, nil
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
//	redis <host:port> {
//		username             <name>
//		password             <password>
//		db                   <number>
//		disable_tls
//		tls_ca_cert_file     <file>
//		tls_client_cert_file <file>
//		tls_client_key_file  <file>
//	}
func (r *RedisConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := oneArg(d, &r.Address); err != nil {
		return err
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
		case "disable_tls":
			if d.NextArg() {
				return d.Errf("irma: redis: disable_tls takes no argument, got %q", d.Val())
			}
			r.DisableTLS = true
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

// isLoopback says whether host (a name or an address) is this machine:
// traffic to it never crosses a network.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
