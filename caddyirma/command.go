package caddyirma

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "irma",
		Usage: "demo-scheme [--dir <dir>] [--url <irma url>] [--bits 1024|2048] [--id <scheme id>] | schemes [--dir <dir>] [--timeout <duration>] | policy [--config <Caddyfile>] [--adapter <name>] [--format text|json]",
		Short: "Tools for the irma app (caddy-irma)",
		Long: `
Tools for the irma app of caddy-irma.

demo-scheme creates a local, signed IRMA scheme for development and demos,
with one issuer ("gateway") and the credential types person (fullname, email,
over18) and membership (club, level). Its issuer keys are generated once and
reused; key generation takes seconds (1024 bits) to a minute or more (2048
bits, the default). Running it again is quick: it only re-signs the scheme when the URL
changed. The scheme names this gateway's timestamp service (<url>timestamp),
which attribute-based signature sessions need.

The directory then holds:
  schemes/          the schemes_path of the irma global option
  privkeys/         the issuer_private_keys_path (keep it secret)
  timestamp.key     the timestamp_key_file
and keys the scheme is signed with. Wallets trust the folder schemes/<id>.

schemes fetches irmago's default schemes (pbdf and irma-demo) from
https://schemes.yivi.app, or updates them, into the directory the irma app
keeps them in (default_schemes_path; by default irma/schemes in Caddy's data
directory), each verified against the public key irmago pins for it. Run it
where the scheme server can be reached, for instance when building an image
that runs offline; a running gateway picks up what it wrote at its next
scheme update.

policy checks the disclosure policies of a config against the schemes,
offline, and shows per irma_auth route what a visitor is asked: in words, as
the session request the gateway starts, and which credential types and
issuers can satisfy it. It exits with status 1 on any problem, naming the
route and the attribute.`,
		CobraFunc: func(cmd *cobra.Command) {
			demo := &cobra.Command{
				Use:   "demo-scheme",
				Short: "Creates (once) a local, signed IRMA demo scheme",
				Args:  cobra.NoArgs,
				RunE:  cmdDemoScheme,
			}
			demo.Flags().String("dir", ".demo", "Directory for the scheme, its keys and the issuer private keys")
			demo.Flags().String("url", "http://localhost:8080/irma/", "Public URL of the IRMA endpoints (the url of the irma global option)")
			demo.Flags().Int("bits", 0, "Size of new issuer keys, 1024 or 2048 (default 2048); existing keys are reused, and must have this size if it is given")
			demo.Flags().String("id", demoscheme.DefaultSchemeID, "Identifier of the scheme")
			cmd.AddCommand(demo)

			schemes := &cobra.Command{
				Use:   "schemes",
				Short: "Fetches or updates the default IRMA schemes (pbdf, irma-demo)",
				Args:  cobra.NoArgs,
				RunE:  cmdSchemes,
			}
			schemes.Flags().String("dir", "", "Directory for the schemes (default: irma/schemes in Caddy's data directory, "+defaultSchemesDir()+")")
			schemes.Flags().Duration("timeout", schemecache.DefaultTimeout, "How long fetching one scheme may take")
			cmd.AddCommand(schemes)
			cmd.AddCommand(policyCommand())
		},
	})
}

func cmdDemoScheme(cmd *cobra.Command, _ []string) error {
	dir, _ := cmd.Flags().GetString("dir")
	rawURL, _ := cmd.Flags().GetString("url")
	bits, _ := cmd.Flags().GetInt("bits")
	id, _ := cmd.Flags().GetString("id")

	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want an absolute http or https URL", rawURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultPathPrefix
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}

	start := time.Now()
	cmd.PrintErrf("preparing the demo scheme in %s (generating keys the first time can take a minute)...\n", dir)
	s, err := demoscheme.Ensure(demoscheme.Options{
		Dir:             dir,
		SchemeID:        id,
		TimestampServer: u.JoinPath("timestamp").String(),
		// irmago wants an https revocation server: over http, the Yivi app
		// gets revocation updates only with sessions (see the README).
		RevocationServer: "https://" + u.Host + strings.TrimSuffix(u.Path, "/"),
		KeyBits:          bits,
	})
	if err != nil {
		return err
	}
	cmd.Printf(`demo scheme %q ready in %s (%s)

	irma {
		url                      %s
		schemes_path             %s
		issuer_private_keys_path %s
		timestamp_key_file       %s
		schemes_update           off
	}
`, s.ID, dir, time.Since(start).Round(time.Millisecond), u, s.SchemesPath, s.PrivateKeysPath, s.TimestampKeyFile)
	return nil
}

func cmdSchemes(cmd *cobra.Command, _ []string) error {
	dir, _ := cmd.Flags().GetString("dir")
	timeout, _ := cmd.Flags().GetDuration("timeout")
	if dir == "" {
		dir = defaultSchemesDir()
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	fetcher := newFetcher(caddy.Log().Named("irma.schemes"))
	fetcher.Timeout = timeout
	var errs []error
	for _, r := range schemeSource.remotes() {
		res, err := fetcher.Fetch(ctx, dir, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		what := "up to date"
		switch {
		case res.Changed && res.Previous.IsZero():
			what = "installed"
		case res.Changed:
			what = "updated from " + res.Previous.UTC().Format(time.RFC3339)
		}
		cmd.Printf("%-10s %s: %s", r.ID, res.Timestamp.UTC().Format(time.RFC3339), what)
		if res.PrivateKeys > 0 {
			cmd.Printf(", with the %d issuer private keys it publishes (a demo scheme)", res.PrivateKeys)
		}
		cmd.Println()
	}
	if len(errs) > 0 {
		return fmt.Errorf("irma schemes: in %s: %w", dir, errors.Join(errs...))
	}
	if dir != defaultSchemesDir() {
		cmd.Printf("\nthe default schemes are in %s; for the irma app:\n\n\tirma {\n\t\tdefault_schemes_path %s\n\t}\n", dir, dir)
	} else {
		cmd.Printf("\nthe default schemes are in %s, where the irma app looks for them\n", dir)
	}
	return nil
}
