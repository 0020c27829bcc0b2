package caddyirma

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("irma", parseGlobalOption)
}

// parseGlobalOption sets up the irma app from the global option. Syntax:
//
//	irma {
//		url                      <public URL of the IRMA endpoints>
//		schemes_path             <dir>
//		issuer_private_keys_path <dir>
//		schemes_update           off | <interval>
//		max_session_lifetime     <duration>
//		session_result_lifetime  <duration>
//		production
//		timestamp_key_file       <file>
//		redis <host:port> {
//			username             <name>
//			password             <password>
//			db                   <number>
//			disable_tls
//			tls_ca_cert_file     <file>
//			tls_client_cert_file <file>
//			tls_client_key_file  <file>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("irma: the global option may appear only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  "irma",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.Errf("irma: unexpected argument %q: settings go in a block", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("irma: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "url":
			err = oneArg(d, &a.URL)
		case "schemes_path":
			err = oneArg(d, &a.SchemesPath)
		case "issuer_private_keys_path":
			err = oneArg(d, &a.IssuerPrivateKeysPath)
		case "timestamp_key_file":
			err = oneArg(d, &a.TimestampKeyFile)
		case "schemes_update":
			var v string
			if err = oneArg(d, &v); err == nil {
				if v == "off" {
					a.DisableSchemesUpdate = true
				} else {
					err = durationArg(d, name, v, &a.SchemesUpdateInterval)
				}
			}
		case "max_session_lifetime":
			var v string
			if err = oneArg(d, &v); err == nil {
				err = durationArg(d, name, v, &a.MaxSessionLifetime)
			}
		case "session_result_lifetime":
			var v string
			if err = oneArg(d, &v); err == nil {
				err = durationArg(d, name, v, &a.SessionResultLifetime)
			}
		case "production":
			if d.NextArg() {
				return d.Errf("irma: production takes no argument, got %q", d.Val())
			}
			a.Production = true
		case "redis":
			a.Redis = new(RedisConfig)
			err = a.Redis.unmarshalCaddyfile(d)
		default:
			return d.Errf("irma: unknown setting %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

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

// oneArg reads exactly one argument of the current directive into v.
func oneArg(d *caddyfile.Dispenser, v *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a value", name)
	}
	*v = d.Val()
	if d.NextArg() {
		return d.Errf("%s takes one value, got also %q", name, d.Val())
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, name, v string, into *caddy.Duration) error {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return d.Errf("%s %q: want a duration such as 15m", name, v)
	}
	*into = caddy.Duration(dur)
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
