package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// gateway is a test gateway: a loopback port, and a test scheme whose
// timestamp service is the gateway's.
type gateway struct {
	ln     *caddytest.Listener
	port   int
	base   string // http://127.0.0.1:<port>
	scheme *demoscheme.Scheme
}

func newGateway(t testing.TB) *gateway { return newGatewayFor(t, "http") }

// newGatewayFor is newGateway whose scheme names the timestamp service at
// the gateway's URL with protocol proto: "https" for a gateway that
// startHTTPS runs, as a production scheme names an https timestamp server.
func newGatewayFor(t testing.TB, proto string) *gateway {
	t.Helper()
	ln := caddytest.Listen(t)
	g := &gateway{ln: ln, port: ln.Port, base: "http://" + ln.Addr()}
	g.scheme = testscheme.New(t, proto+"://"+ln.Addr()+"/irma/timestamp")
	return g
}

// config is the Caddyfile of the gateway: the irma option with irmaExtra
// added, and one site with the directives in site.
func (g *gateway) config(irmaExtra, site string) string {
	return fmt.Sprintf(`{
	admin off
	storage file_system %[5]s
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[6]s
		schemes_update off
		%[7]s
	}
}
http://127.0.0.1:%[1]d {
	%[9]s
	%[8]s
}
`, g.port, g.base, g.scheme.SchemesPath, g.scheme.PrivateKeysPath, filepath.Join(g.scheme.Dir, "caddy"),
		g.scheme.TimestampKeyFile, irmaExtra, site, g.ln.Bind())
}

// start runs the gateway until the test ends, and returns its irma app.
func (g *gateway) start(t testing.TB, irmaExtra, site string) *caddyirma.App {
	t.Helper()
	caddytest.Start(t, g.config(irmaExtra, site))
	return caddytest.App[*caddyirma.App](t, "irma")
}
