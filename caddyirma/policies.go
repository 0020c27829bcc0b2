package caddyirma

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"
)

func (a *App) provisionPolicies(*caddy.Replacer) error {
	if err := a.checkPolicyNames(); err != nil {
		return err
	}
	a.requireSchemes(a.checkPolicies)
	return a.checkPolicies(a.irmaConf)
}

// checkPolicies checks that conf has what the named policies ask.
func (a *App) checkPolicies(conf *irma.Configuration) error {
	for name, p := range a.Policies {
		if err := p.Validate(conf); err != nil {
			return fmt.Errorf("irma: policy %q: %w", name, err)
		}
	}
	return nil
}

// checkPolicyNames checks the names of the named policies.
func (a *App) checkPolicyNames() error {
	for name := range a.Policies {
		if name == "" || strings.ContainsAny(name, " \t{}") {
			return fmt.Errorf("irma: policy %q: not a valid name", name)
		}
	}
	return nil
}
