package caddyirma

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "irma",
		Usage: "demo-scheme [--dir <dir>] [--url <irma url>] [--bits 1024|2048] [--id <scheme id>]",
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
and keys the scheme is signed with. Wallets trust the folder schemes/<id>.`,
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
		KeyBits:         bits,
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
