// Command caddy is Caddy with the caddy-irma modules: the standard Caddy
// modules plus the irma app, its handlers and the "caddy irma" subcommands.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-irma/caddy-irma/caddyirma"
)

func main() {
	caddycmd.Main()
}
