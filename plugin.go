// Package caddyirmaplugin is what a Caddy build imports to get caddy-irma,
// `xcaddy build --with github.com/caddy-irma/caddy-irma` as with any Caddy
// plugin: every package that registers caddy-irma's Caddy modules, Caddyfile
// directives, global option and "caddy irma" subcommands, and nothing else.
// cmd/caddy imports it too, so that both builds get the same modules.
package caddyirmaplugin

import (
	_ "github.com/caddy-irma/caddy-irma/caddyirma"
)
