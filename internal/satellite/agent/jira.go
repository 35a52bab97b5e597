package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sei-io/jira-connect/internal/satellite/config"
	"github.com/sei-io/jira-connect/internal/satellite/wire"

	"github.com/sei-io/jira-connect/internal/jira"
)

// site is how the satellite reaches one integration's Jira Data Center.
// The authenticator lives as long as the satellite, so an ADFS token is
// obtained once and renewed before it expires, not once per sync.
type site struct {
	cfg  config.Integration
	auth jira.Authenticator
	tls  *tls.Config // nil: the system's roots, verified
	opts []jira.Option
}

func newSite(it config.Integration, allowUnsafeSSL bool, userAgent string, extra []jira.Option) (*site, error) {
	s := &site{cfg: it}
	if allowUnsafeSSL {
		// Asked for by name in satellite.yml (jira.allow_unsafe_ssl), and
		// warned about when the file is read.
		s.tls = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec
	}
	switch it.Auth {
	case config.AuthPAT:
		s.auth = jira.Bearer{Token: it.APIKey.Reveal()}
	case config.AuthBasic:
		s.auth = jira.Basic{Username: it.Username, Password: it.APIKey.Reveal()}
	case config.AuthADFS:
		// ADFS is reached like the site it signs in to: inside the same
		// network, under the same allow_unsafe_ssl.
		a, err := jira.NewADFS(jira.ADFSConfig{TokenURL: it.ADFS.URL, ClientID: it.ADFS.ClientID, Resource: it.ADFS.Resource,
			Username: it.ADFS.Username, Password: it.ADFS.Password.Reveal(), TLS: s.tls})
		if err != nil {
			return nil, fmt.Errorf("integration %s: %w", it.ID, err)
		}
		s.auth = a
	default:
		return nil, fmt.Errorf("integration %s: unknown authentication %q", it.ID, it.Auth)
	}
	s.opts = append([]jira.Option{jira.WithUserAgent(userAgent)}, extra...)
	if s.tls != nil {
		s.opts = append(s.opts, jira.WithTLSConfig(s.tls))
	}
	// A client that does not build (a bad URL) fails at start, not at the
	// first sync.
	if _, err := s.client(); err != nil {
		return nil, err
	}
	return s, nil
}

// client is a new REST client for one sync: its request counters are the
// sync's own, while the authenticator (and its ADFS token) is shared.
func (s *site) client() (*jira.Client, error) {
	return jira.New(s.cfg.URL, s.auth, s.opts...)
}

// checks runs what the service's Validate Connection would run if it could
// reach the site, from inside the network: one call to /myself says
// whether the site answers, its certificate is trusted and the
// credentials are accepted.
func (s *site) checks(ctx context.Context) []wire.Check {
	c, err := s.client()
	if err != nil {
		return []wire.Check{{Name: "site_reachable", Status: "fail", Message: clip(err.Error())}}
	}
	u, _ := url.Parse(s.cfg.URL)
	tlsPass := wire.Check{Name: "tls", Status: "pass", Message: "The certificate is valid and trusted."}
	switch {
	case u != nil && u.Scheme == "http":
		tlsPass.Message = "The URL is http: traffic to the site is not encrypted."
	case s.tls != nil:
		tlsPass.Message = "Certificate verification is off (jira.allow_unsafe_ssl: true): traffic is encrypted, but the site's identity is not checked."
	}
	me, err := c.MyselfV2(ctx)
	if err == nil {
		who := me.DisplayName
		if me.Name != "" {
			who += " (" + me.Name + ")"
		}
		out := []wire.Check{
			{Name: "site_reachable", Status: "pass", Message: "Jira Data Center answered at " + s.cfg.URL + "."},
			tlsPass,
			{Name: "credentials", Status: "pass", Message: clip(fmt.Sprintf("Signed in as %s with %s; Jira's time zone for the account is %s, this integration's %s.",
				who, authName(s.cfg.Auth), orUnknown(me.TimeZone), s.cfg.Timezone))},
		}
		// Only a count (maxResults 0): whether the account may search,
		// and how much it sees, which is what a sync will read.
		page, err := c.SearchV2(ctx, jira.SearchV2Request{JQL: "", MaxResults: 0, Fields: []string{"id"}})
		if err != nil {
			return append(out, wire.Check{Name: "search_issues", Status: "fail", Message: clip("The issue search failed (" + err.Error() + "): the account needs the Browse Projects permission on the projects to ingest.")})
		}
		msg := fmt.Sprintf("The account sees %d issues.", page.Total)
		if page.Total == 0 {
			return append(out, wire.Check{Name: "search_issues", Status: "fail", Message: "The account sees no issues: give it the Browse Projects permission on the projects to ingest."})
		}
		return append(out, wire.Check{Name: "search_issues", Status: "pass", Message: msg})
	}
	skipped := func(name string) wire.Check {
		return wire.Check{Name: name, Status: "skipped", Message: "Not checked: the check before it failed."}
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid):
		return []wire.Check{
			{Name: "site_reachable", Status: "pass", Message: "Jira answered at " + s.cfg.URL + "."},
			{Name: "tls", Status: "fail", Message: clip("The site's certificate is not trusted (" + tlsReason(err) + "). Install the certificate of the CA that signed it on this host, or, only if you accept an unverified connection, set jira.allow_unsafe_ssl: true in satellite.yml.")},
			skipped("credentials"), skipped("search_issues"),
		}
	case errors.Is(err, jira.ErrCredentialsRejected):
		return []wire.Check{
			{Name: "site_reachable", Status: "pass", Message: "Jira Data Center answered at " + s.cfg.URL + "."},
			tlsPass,
			{Name: "credentials", Status: "fail", Message: clip("Jira refused the credentials (" + err.Error() + "): " + credentialsAdvice(s.cfg))},
			skipped("search_issues"),
		}
	}
	var je *jira.Error
	if errors.As(err, &je) && je.Status != 0 {
		msg := fmt.Sprintf("Jira answered %d to %s: ", je.Status, jira.PathMyselfV2)
		if je.Status == http.StatusForbidden {
			msg += "the account may not use the REST API."
		} else {
			msg += err.Error()
		}
		return []wire.Check{
			{Name: "site_reachable", Status: "pass", Message: "Jira answered at " + s.cfg.URL + "."},
			tlsPass,
			{Name: "credentials", Status: "fail", Message: clip(msg)},
			skipped("search_issues"),
		}
	}
	return []wire.Check{
		{Name: "site_reachable", Status: "fail", Message: clip("Jira did not answer at " + s.cfg.URL + " (" + err.Error() + "): check the URL, DNS and that this host may connect to it.")},
		skipped("tls"), skipped("credentials"), skipped("search_issues"),
	}
}

func tlsReason(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return "signed by an authority this host does not trust, or self-signed"
	case errors.As(err, &hostErr):
		return "issued for another host name: " + hostErr.Error()
	case errors.As(err, &invalid):
		return invalid.Error()
	}
	return err.Error()
}

// credentialsAdvice says which keys of satellite.yml to fix.
func credentialsAdvice(it config.Integration) string {
	switch it.Auth {
	case config.AuthADFS:
		return "check adfs_username and adfs_password (and adfs_client_id, adfs_resource) in satellite.yml."
	case config.AuthBasic:
		return "check username and api_key (its password) in satellite.yml; a password changed in Jira must be changed there too."
	}
	return "check api_key (the personal access token) in satellite.yml: it may be revoked or expired; create a new one in Jira (Profile, Personal Access Tokens)."
}

func authName(method string) string {
	switch method {
	case config.AuthADFS:
		return "an ADFS token"
	case config.AuthBasic:
		return "a password"
	}
	return "a personal access token"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// clip keeps a check's message within the protocol's 2,000 characters.
func clip(s string) string {
	if len(s) <= 2000 {
		return s
	}
	return strings.ToValidUTF8(s[:1996], "") + " …"
}
