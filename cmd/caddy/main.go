// Command caddy is Caddy with the caddy-irma modules: the standard Caddy
// modules plus the irma app, its handlers and the "caddy irma" subcommands.
// It imports caddy-irma the way `xcaddy build --with
// github.com/caddy-irma/caddy-irma` does, through the module's root package.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-irma/caddy-irma"
)

func main() {
	caddycmd.Main()
}
