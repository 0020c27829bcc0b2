package caddyirma

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("irma", parseGlobalOption)
}

// parseGlobalOption sets up the irma app from the global option. Syntax:
//
//	irma {
//		url                      <public URL of the IRMA endpoints>
//		schemes_path             <dir>
//		default_schemes          on|off
//		default_schemes_path     <dir>
//		issuer_private_keys_path <dir>
//		schemes_update           off | <interval>
//		max_session_lifetime     <duration>
//		scan_timeout             <duration>
//		session_result_lifetime  <duration>
//		production
//		timestamp_key_file       <file>
//		jwt_privkey_file         <RSA PEM file>
//		jwt_issuer               <iss>
//		allow_unsigned_callbacks
//		policy <name> {
//			require <expression> [{
//				label <lang> <text>
//			}]
//			revocation [<max age>]
//		}
//		static_session <name> <session request JSON>
//		login {
//			cookie_name     <name>
//			cookie_domain   <domain>
//			cookie_lifetime <duration>
//			cookie_keys     <base64 key> ...
//			identity_header <header name>
//			algorithm       EdDSA|ES256|RS256
//			key_file        <PEM file>
//			token_lifetime  <duration>
//			issuer          <iss>
//			audience        <aud>
//		}
//		session_limits {
//			per_client <number> [<window>]
//			total      <number>
//		}
//		revocation {
//			db_type    postgres|mysql|sqlserver
//			db_str     <connection string>
//			credential <credential type> {
//				authority
//				tolerance <duration>
//			}
//		}
//		redis [<host:port>] {
//			sentinel_addresses        <host:port> ...
//			sentinel_master_name      <name>
//			sentinel_username         <name>
//			sentinel_password         <password>
//			accept_inconsistency_risk
//			username                  <name>
//			password                  <password>
//			db                        <number>
//			disable_tls
//			tls_ca_cert_file          <file>
//			tls_client_cert_file      <file>
//			tls_client_key_file       <file>
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
	// Settings that may be given more than once, each with a name.
	repeatable := map[string]func(*caddyfile.Dispenser) error{
		"policy":         a.unmarshalPolicy,
		"static_session": a.unmarshalStaticSession,
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if parse, ok := repeatable[name]; ok {
			if err := parse(d); err != nil {
				return err
			}
			continue
		}
		if seen[name] {
			return d.Errf("irma: %s given twice", name)
		}
		seen[name] = true
		if err := a.unmarshalSetting(d, name); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSetting parses one setting of the irma option, given once.
func (a *App) unmarshalSetting(d *caddyfile.Dispenser, name string) error {
	var err error
	switch name {
	case "url":
		err = oneArg(d, &a.URL)
	case "schemes_path":
		err = oneArg(d, &a.SchemesPath)
	case "default_schemes":
		a.DefaultSchemes, err = onOff(d)
	case "default_schemes_path":
		err = oneArg(d, &a.DefaultSchemesPath)
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
		err = durationValue(d, &a.MaxSessionLifetime)
	case "scan_timeout":
		err = durationValue(d, &a.ScanTimeout)
	case "session_result_lifetime":
		err = durationValue(d, &a.SessionResultLifetime)
	case "production":
		err = noArg(d)
		a.Production = true
	case "jwt_privkey_file":
		err = oneArg(d, &a.JWTPrivateKeyFile)
	case "jwt_issuer":
		err = oneArg(d, &a.JWTIssuer)
	case "allow_unsigned_callbacks":
		err = noArg(d)
		a.AllowUnsignedCallbacks = true
	case "redis":
		a.Redis = new(RedisConfig)
		err = a.Redis.unmarshalCaddyfile(d)
	case "login":
		a.Login = new(LoginConfig)
		err = a.Login.unmarshalCaddyfile(d)
	case "session_limits":
		a.SessionLimits = new(SessionLimits)
		err = a.SessionLimits.unmarshalCaddyfile(d)
	case "revocation":
		a.Revocation = new(RevocationConfig)
		err = a.Revocation.unmarshalCaddyfile(d)
	default:
		return d.Errf("irma: unknown setting %q", name)
	}
	return err
}

// unmarshalPolicy parses a named policy: policy <name> { require ... }.
func (a *App) unmarshalPolicy(d *caddyfile.Dispenser) error {
	var name string
	if err := oneArg(d, &name); err != nil {
		return err
	}
	if _, dup := a.Policies[name]; dup {
		return d.Errf("irma: policy %q given twice", name)
	}
	var p policy.Policy
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() == "revocation" {
			if err := unmarshalPolicyRevocation(d, name, &p); err != nil { // loginrevocation.go
				return err
			}
			continue
		}
		if d.Val() != "require" {
			return d.Errf("irma: policy %q: unknown setting %q (want require or revocation)", name, d.Val())
		}
		req, err := parseRequire(d)
		if err != nil {
			return err
		}
		p.Requirements = append(p.Requirements, req)
	}
	if len(p.Requirements) == 0 {
		return d.Errf("irma: policy %q: at least one require line is needed", name)
	}
	if a.Policies == nil {
		a.Policies = map[string]policy.Policy{}
	}
	a.Policies[name] = p
	return nil
}

func (l *LoginConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("irma: login: unexpected argument %q", d.Val())
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("irma: login: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "cookie_name":
			err = oneArg(d, &l.CookieName)
		case "cookie_domain":
			err = oneArg(d, &l.CookieDomain)
		case "cookie_lifetime":
			err = durationValue(d, &l.CookieLifetime)
		case "cookie_keys":
			l.CookieKeys = d.RemainingArgs()
			if len(l.CookieKeys) == 0 {
				err = d.Err("cookie_keys needs at least one key")
			}
		case "identity_header":
			err = oneArg(d, &l.IdentityHeader)
		case "algorithm":
			err = oneArg(d, &l.Algorithm)
		case "key_file":
			err = oneArg(d, &l.KeyFile)
		case "token_lifetime":
			err = durationValue(d, &l.TokenLifetime)
		case "issuer":
			err = oneArg(d, &l.Issuer)
		case "audience":
			err = oneArg(d, &l.Audience)
		default:
			return d.Errf("irma: login: unknown setting %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseRequire parses a requirement: one expression, and an optional block
// of labels. The subdirective (require, or disclose in irma_issue) is the
// current token; messages name it.
func parseRequire(d *caddyfile.Dispenser) (policy.Requirement, error) {
	directive := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return policy.Requirement{}, d.Errf("%s needs an expression, such as caddy-demo.gateway.person.over18=yes", directive)
	}
	if len(args) > 1 && strings.Contains(strings.Join(args, " "), `"`) {
		// Caddy's lexer honours a quote only at the start of a token, so a
		// quoted value with spaces would be cut up and joined with one space:
		// a required value could change unnoticed.
		return policy.Requirement{}, d.Errf("%s: put an expression with a quoted value in backticks, such as `a.b.c.d=\"Alice Demo\"`", directive)
	}
	req, err := policy.ParseRequirement(strings.Join(args, " "))
	if err != nil {
		return policy.Requirement{}, d.Errf("%s %q: %v", directive, strings.Join(args, " "), err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "label" {
			return policy.Requirement{}, d.Errf("%s: unknown setting %q (want label)", directive, d.Val())
		}
		args := d.RemainingArgs()
		if len(args) != 2 {
			return policy.Requirement{}, d.Err("label takes a language and a text, such as: label en \"Proof of age\"")
		}
		if req.Label == nil {
			req.Label = map[string]string{}
		}
		if _, dup := req.Label[args[0]]; dup {
			return policy.Requirement{}, d.Errf("label %s given twice", args[0])
		}
		req.Label[args[0]] = args[1]
	}
	return req, nil
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

// noArg checks that the current directive, a flag, has no argument.
func noArg(d *caddyfile.Dispenser) error {
	if name := d.Val(); d.NextArg() {
		return d.Errf("irma: %s takes no argument, got %q", name, d.Val())
	}
	return nil
}

// durationValue reads the one argument of the current directive, a
// duration, into into.
func durationValue(d *caddyfile.Dispenser, into *caddy.Duration) error {
	name := d.Val()
	var v string
	if err := oneArg(d, &v); err != nil {
		return err
	}
	return durationArg(d, name, v, into)
}

// onOff reads the one argument of the current directive, on or off.
func onOff(d *caddyfile.Dispenser) (*bool, error) {
	name := d.Val()
	var v string
	if err := oneArg(d, &v); err != nil {
		return nil, err
	}
	if v != "on" && v != "off" {
		return nil, d.Errf("irma: %s %q: want on or off", name, v)
	}
	on := v == "on"
	return &on, nil
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
