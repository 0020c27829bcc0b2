package requestor

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
)

// validatePermissions checks the patterns of one requestor as irma server's validatePermissionSet does:
// at most one asterisk, only at the end; the right number of parts; known scheme, issuer, credential type
// and attribute (when Conf is set); an installed private key for issue permissions.
func (h *Handler) validatePermissions(label string, p Permissions) error {
	var errs []error
	for _, set := range []struct {
		typ   string
		perms []string
		parts int
	}{
		{"disclose", p.Disclose, 4},
		{"sign", p.Sign, 4},
		{"issue", p.Issue, 3},
		{"revoke", p.Revoke, 3},
	} {
		for _, perm := range set.perms {
			if err := h.validatePermission(set.typ, perm, set.parts); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s permission %q: %w", label, set.typ, perm, err))
			}
		}
	}
	for _, host := range p.Hosts {
		if _, err := path.Match(host, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: host permission %q: %w", label, host, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Handler) validatePermission(typ, perm string, length int) error {
	switch strings.Count(perm, "*") {
	case 0:
	case 1:
		if !strings.HasSuffix(perm, "*") {
			return errors.New("asterisk not at the end")
		}
	default:
		return errors.New("too many asterisks (at most 1 permitted)")
	}
	parts := strings.Split(perm, ".")
	if parts[len(parts)-1] == "*" {
		if len(parts) > length {
			return fmt.Errorf("should have at most %d parts", length)
		}
		if strings.Contains(strings.Join(parts[:len(parts)-1], "."), "*") || (len(parts) > 1 && slices.Contains(parts[:len(parts)-1], "")) {
			return errors.New("malformed wildcard")
		}
	} else if len(parts) != length {
		return fmt.Errorf("should have %d parts", length)
	}
	conf := h.cfg.Conf
	if conf == nil {
		return nil
	}
	if parts[0] != "*" && conf.SchemeManagers[irma.NewSchemeManagerIdentifier(parts[0])] == nil {
		return errors.New("unknown scheme")
	}
	if len(parts) > 1 && parts[1] != "*" && conf.Issuers[irma.NewIssuerIdentifier(strings.Join(parts[:2], "."))] == nil {
		return errors.New("unknown issuer")
	}
	if len(parts) > 2 && parts[2] != "*" {
		credtype := conf.CredentialTypes[irma.NewCredentialTypeIdentifier(strings.Join(parts[:3], "."))]
		if credtype == nil {
			return errors.New("unknown credential type")
		}
		if (typ == "issue" || typ == "revoke") && !h.cfg.SkipPrivateKeysCheck {
			if conf.PrivateKeys == nil {
				return errors.New("private key not installed")
			}
			sk, err := conf.PrivateKeys.Latest(credtype.IssuerIdentifier())
			if err != nil {
				return fmt.Errorf("failed to load private key: %w", err)
			}
			if sk == nil {
				return errors.New("private key not installed")
			}
		}
	}
	if len(parts) > 3 && parts[3] != "*" && conf.AttributeTypes[irma.NewAttributeTypeIdentifier(strings.Join(parts[:4], "."))] == nil {
		return errors.New("unknown attribute type")
	}
	return nil
}

// CanRequest reports whether requestor may start request, and if not, why (irma server's reason).
func (h *Handler) CanRequest(requestor string, request irma.SessionRequest) (bool, string) {
	perms := h.perms[requestor]
	if request.Action() == irma.ActionIssuing {
		creds := request.(*irma.IssuanceRequest).Credentials
		if ok, reason := canIssue(perms.Issue, creds); !ok {
			return false, reason
		}
		if ok, reason := h.canIssueRevocable(creds); !ok {
			return false, reason
		}
	}
	if condiscon := request.Disclosure().Disclose; len(condiscon) > 0 {
		list := perms.Disclose
		if request.Action() == irma.ActionSigning {
			list = perms.Sign
		}
		if ok, reason := canVerifyOrSign(list, condiscon); !ok {
			return false, reason
		}
	}

	// A request without host uses the server's URL; without host permissions only that host is allowed.
	var defaultHost string
	if h.cfg.URL != "" {
		u, err := url.Parse(h.cfg.URL)
		if err != nil {
			return false, "default host is invalid"
		}
		defaultHost = u.Host
	}
	host := request.Base().Host
	if host == "" {
		host = defaultHost
	}
	if len(perms.Hosts) == 0 && host == defaultHost {
		return true, ""
	}
	if !validHost.MatchString(host) {
		// A pattern such as *.example.com would match "evil.com#.example.com".
		return false, "requestor not allowed to use the requested host"
	}
	for _, pattern := range perms.Hosts {
		if match, _ := path.Match(pattern, host); match {
			return true, ""
		}
	}
	return false, "requestor not allowed to use the requested host"
}

// validHost is what a session request's host may be before it is matched
// against host permissions: a DNS name or IPv4 address, or a bracketed
// IPv6 address, with an optional port; nothing that a URL would read as
// another part (user info, path, query, fragment).
var validHost = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

func canIssue(perms []string, creds []*irma.CredentialRequest) (bool, string) {
	if len(perms) == 0 {
		return false, "No issuer permissions configured"
	}
	for _, cred := range creds {
		id := cred.CredentialTypeID
		if !slices.Contains(perms, "*") &&
			!slices.Contains(perms, id.Root()+".*") &&
			!slices.Contains(perms, id.IssuerIdentifier().String()+".*") &&
			!slices.Contains(perms, id.String()) {
			return false, fmt.Sprintf("No issuer permissions configured for credential '%s'", id.String())
		}
	}
	return true, ""
}

func canVerifyOrSign(perms []string, condiscon irma.AttributeConDisCon) (bool, string) {
	if len(perms) == 0 {
		return false, ""
	}
	err := condiscon.Iterate(func(attr *irma.AttributeRequest) error {
		cred := attr.Type.CredentialTypeIdentifier()
		if slices.Contains(perms, "*") ||
			slices.Contains(perms, attr.Type.Root()+".*") ||
			slices.Contains(perms, cred.IssuerIdentifier().String()+".*") ||
			slices.Contains(perms, cred.String()+".*") ||
			slices.Contains(perms, attr.Type.String()) {
			return nil
		}
		return errors.New(attr.Type.String())
	})
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}
