package caddyirma

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// policyCommand is 'caddy irma policy': the policies of a config, checked
// against the schemes and shown per route.
func policyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy [--config <Caddyfile>] [--adapter <name>] [--format text|json]",
		Short: "Checks the policies of a config and shows, per route, what a visitor is asked",
		Long: `
Checks the disclosure policies of a config against the schemes that its irma
app trusts, offline (schemes_path, and the copy of the default schemes that
'caddy irma schemes' fetches; this command never fetches), and shows per
irma_auth route what a visitor is asked: in words, as the IRMA session request
that the gateway starts for a login, and which credential types and issuers
can satisfy each item. Named policies that no route uses follow, as the login
and forward-auth endpoints ask them. Any problem (an attribute that the
schemes do not have, a policy that is not defined) is named with its route,
and the exit status is then 1.`,
		Args: cobra.NoArgs,
		RunE: cmdPolicy,
	}
	c.Flags().StringP("config", "c", "Caddyfile", "Configuration file")
	c.Flags().StringP("adapter", "a", "caddyfile", "Name of config adapter to apply")
	c.Flags().String("format", "text", "Output format: text or json")
	return c
}

func cmdPolicy(cmd *cobra.Command, _ []string) error {
	config, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	format, _ := cmd.Flags().GetString("format")
	if format != "text" && format != "json" {
		return fmt.Errorf("--format %q: want text or json", format)
	}
	cfg, _, _, err := caddycmd.LoadConfig(config, adapter)
	if err == nil && len(cfg) == 0 {
		err = errors.New("no config")
	}
	if err != nil {
		return fmt.Errorf("irma policy: %s: %w", config, err)
	}
	report, err := checkConfigPolicies(cfg)
	if err != nil {
		return fmt.Errorf("irma policy: %s: %w", config, err)
	}
	if format == "json" {
		err = writePolicyJSON(cmd.OutOrStdout(), report)
	} else {
		err = writePolicyText(cmd.OutOrStdout(), report)
	}
	if err != nil {
		return err
	}
	if len(report.Errors) > 0 {
		return fmt.Errorf("irma policy: %s: %d problems:\n%s", config, len(report.Errors), strings.Join(report.Errors, "\n"))
	}
	return nil
}

func writePolicyJSON(w io.Writer, report *policyReport) error {
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writePolicyText writes the report for people.
func writePolicyText(w io.Writer, report *policyReport) error {
	var b bytes.Buffer
	var schemes []string
	for _, s := range report.Schemes {
		schemes = append(schemes, fmt.Sprintf("%s (%s)", s.ID, s.Name))
	}
	fmt.Fprintf(&b, "schemes: %s\n", strings.Join(schemes, ", "))
	for _, r := range report.Routes {
		fmt.Fprintf(&b, "\n%s\n", routeWhere(r.Sites, r.Paths))
		if r.Server != "" {
			fmt.Fprintf(&b, "  server:  %s\n", r.Server)
		}
		if len(r.Match) > 0 {
			fmt.Fprintf(&b, "  matched: %s\n", strings.Join(r.Match, "; "))
		}
		name := r.Policy
		if name == "" {
			name = "the route's own (require lines)"
		}
		fmt.Fprintf(&b, "  policy:  %s\n  the visitor is asked:\n", name)
		for i, it := range r.Asks {
			writeItemText(&b, i+1, it)
		}
		pairing := "off"
		if r.Pairing {
			pairing = "on"
		}
		fmt.Fprintf(&b, "  pairing: %s\n  session request:\n", pairing)
		var req bytes.Buffer
		if err := json.Indent(&req, r.SessionRequest, "    ", "  "); err != nil {
			return err
		}
		fmt.Fprintf(&b, "    %s\n", req.Bytes())
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeItemText writes item n of a policy, with what can satisfy it: the
// credential types of its option, or of each option in words.
func writeItemText(b *bytes.Buffer, n int, it askedItem) {
	fmt.Fprintf(b, "    %d. %s\n", n, it.Text)
	for _, o := range it.Options {
		var creds []string
		for _, c := range o.Credentials {
			creds = append(creds, fmt.Sprintf("%s (%s), issuer %s (%s), scheme %s (%s)", c.Name, c.ID, c.Issuer.Name, c.Issuer.ID, c.Scheme.Name, c.Scheme.ID))
		}
		if len(it.Options) == 1 {
			fmt.Fprintf(b, "       from: %s\n", strings.Join(creds, "; and "))
			continue
		}
		fmt.Fprintf(b, "       - %s, from: %s\n", o.Text, strings.Join(creds, "; and "))
	}
}
