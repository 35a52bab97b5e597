package integrations

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
	"github.com/sei-io/jira-connect/internal/store"
)

// Check names of the API-token and Data Center types, in the order they
// run (site_reachable and search_issues are shared with the Connect app).
const (
	CheckURL         = "url"
	CheckTLS         = "tls"
	CheckCredentials = "credentials"
	CheckSatellite   = "satellite"
	// satelliteCheckPrefix names the checks a satellite ran itself.
	satelliteCheckPrefix = "satellite:"
)

// satelliteSilentAfter is when a satellite that has not reported counts as
// not running: three missed heartbeats.
const satelliteSilentAfter = 3 * wire.HeartbeatEvery

// validationRetry: a person is waiting, so one quick retry, not an
// ingester's patience.
var validationRetry = jira.RetryPolicy{MaxAttempts: 2, MaxElapsed: 10 * time.Second, BaseDelay: 200 * time.Millisecond,
	MaxDelay: time.Second, MaxRetryAfter: 5 * time.Second}

// validationHTTPTimeout bounds one call of a validation.
const validationHTTPTimeout = 15 * time.Second

// REST API paths of each type: Jira Cloud's v3, Data Center's v2.
type apiPaths struct{ serverInfo, myself string }

func pathsOf(typ string) apiPaths {
	if typ == TypeDataCenter {
		return apiPaths{"/rest/api/2/serverInfo", "/rest/api/2/myself"}
	}
	return apiPaths{jira.PathServerInfo, jira.PathMyself}
}

// runValidation runs the checks that fit the integration's type.
func (s *Service) runValidation(ctx context.Context, it *store.Integration) *Validation {
	switch {
	case it.Type == TypeConnectApp:
		return s.Validator.run(ctx, it)
	case BySatellite(it):
		return s.validateSatellite(ctx, it)
	}
	return s.validateDirect(ctx, it)
}

// checks collects checks with their durations.
type checks struct{ v *Validation }

func (c checks) add(name string, started time.Time, err error, passMsg string) bool {
	ch := Check{Name: name, Status: Pass, Message: passMsg, DurationMS: time.Since(started).Milliseconds()}
	if err != nil {
		ch.Status, ch.Message = Fail, err.Error()
	}
	c.v.Checks = append(c.v.Checks, ch)
	return err == nil
}

func (c checks) skip(names ...string) {
	for _, n := range names {
		c.v.Checks = append(c.v.Checks, Check{Name: n, Status: Skipped, Message: "Not run: an earlier check failed."})
	}
}

func (c checks) done() *Validation {
	c.v.OK = len(c.v.Checks) > 0
	for _, ch := range c.v.Checks {
		c.v.OK = c.v.OK && ch.Status == Pass
	}
	return c.v
}

func (s *Service) validationNow() time.Time {
	if s.Validator != nil && s.Validator.Now != nil {
		return s.Validator.Now().UTC().Truncate(time.Microsecond)
	}
	return s.Now().UTC().Truncate(time.Microsecond)
}

// validateDirect checks, from the service, a site it calls itself: the
// URL, reaching it, its certificate, the credentials (through /myself,
// whose time zone it reports), and the issue search.
func (s *Service) validateDirect(ctx context.Context, it *store.Integration) *Validation {
	c := checks{&Validation{At: s.validationNow()}}
	started := time.Now()
	st, err := ParseSettings(it)
	var u *url.URL
	if err == nil {
		if _, msg := s.checkSiteURL(it.Type, st.Connection, st.URL); msg != "" {
			err = say("The URL %q %s.", st.URL, msg)
		} else {
			u, _ = url.Parse(st.URL)
		}
	}
	if !c.add(CheckURL, started, err, fmt.Sprintf("The URL %s is well-formed.", st.URL)) {
		c.skip(CheckReachable, CheckTLS, CheckCredentials, CheckSearch)
		return c.done()
	}
	cfg, err := TLSConfig(st)
	if err != nil {
		c.add(CheckReachable, started, say("The integration's TLS settings are unusable: %v", apperr.As(err).Message), "")
		c.skip(CheckTLS, CheckCredentials, CheckSearch)
		return c.done()
	}
	opts := []jira.Option{jira.WithTimeout(validationHTTPTimeout), jira.WithRetryPolicy(validationRetry)}
	if cfg != nil {
		opts = append(opts, jira.WithTLSConfig(cfg))
	}
	paths := pathsOf(it.Type)

	// Anonymous first: whether the site answers at all must not depend on
	// the credentials, which are the next check.
	started = time.Now()
	anon, err := jira.New(st.URL, nil, opts...)
	var info struct {
		Version        string `json:"version"`
		DeploymentType string `json:"deploymentType"`
	}
	if err == nil {
		err = anon.Get(ctx, paths.serverInfo, nil, &info)
	}
	reachErr, tlsErr := explainReach(err, u, it.Type, paths.serverInfo)
	reachMsg := fmt.Sprintf("%s answers.", u.Host)
	if info.Version != "" {
		reachMsg = fmt.Sprintf("%s answers: Jira %s %s.", u.Host, strings.TrimSpace(info.DeploymentType), info.Version)
	}
	if !c.add(CheckReachable, started, reachErr, reachMsg) {
		c.skip(CheckTLS, CheckCredentials, CheckSearch)
		return c.done()
	}
	tlsMsg := fmt.Sprintf("The certificate of %s is valid and trusted.", u.Hostname())
	switch {
	case u.Scheme == "http":
		tlsMsg = "The URL is http: traffic to the site is not encrypted."
	case st.TLS.AllowUnsafeSSL:
		tlsMsg = "Certificate verification is off (allow_unsafe_ssl): traffic is encrypted, but the site's identity is not checked."
	}
	if !c.add(CheckTLS, started, tlsErr, tlsMsg) {
		c.skip(CheckCredentials, CheckSearch)
		return c.done()
	}

	started = time.Now()
	auth, err := s.Authenticator(it, st)
	if err != nil {
		c.add(CheckCredentials, started, say("The stored credentials cannot be used: %s", apperr.As(err).Message), "")
		c.skip(CheckSearch)
		return c.done()
	}
	client, err := jira.New(st.URL, auth, opts...)
	if err != nil {
		c.add(CheckCredentials, started, say("The site URL is not usable: %v", err), "")
		c.skip(CheckSearch)
		return c.done()
	}
	var me myself
	err = client.Get(ctx, paths.myself, nil, &me)
	if err == nil && me.who() == "" {
		// Data Center answers an unauthenticated session as the
		// anonymous user rather than with a 401 on some setups.
		err = &jira.Error{Status: http.StatusUnauthorized, Method: http.MethodGet, Path: paths.myself}
	}
	if !c.add(CheckCredentials, started, explainCredentials(err, it.Type, st), me.describe(it.Timezone)) {
		c.skip(CheckSearch)
		return c.done()
	}

	started = time.Now()
	msg, err := searchCheck(ctx, client, it.Type)
	c.add(CheckSearch, started, err, msg)
	return c.done()
}

// myself is /myself on Cloud (accountId) and Data Center (name, key).
type myself struct {
	AccountID    string `json:"accountId"`
	Name         string `json:"name"`
	Key          string `json:"key"`
	DisplayName  string `json:"displayName"`
	EmailAddress string `json:"emailAddress"`
	TimeZone     string `json:"timeZone"`
}

func (m *myself) who() string {
	for _, s := range []string{m.Name, m.AccountID, m.Key} {
		if s != "" {
			return s
		}
	}
	return ""
}

func (m *myself) describe(integrationTZ string) string {
	who := m.DisplayName
	if id := m.Name; id != "" && id != who {
		who += " (" + id + ")"
	} else if m.EmailAddress != "" {
		who += " (" + m.EmailAddress + ")"
	}
	msg := fmt.Sprintf("Jira accepted the credentials of %s. The account's time zone: %s; this integration's: %s.",
		strings.TrimSpace(who), orUnknown(m.TimeZone), integrationTZ)
	if m.TimeZone != "" && !sameZone(m.TimeZone, integrationTZ) {
		msg += " They differ: dates without an offset (due dates) are read in the integration's time zone; change it if the team works in " + m.TimeZone + "."
	}
	return msg
}

// sameZone treats the names of UTC as one zone ("Etc/UTC" is "UTC").
func sameZone(a, b string) bool {
	utc := func(z string) string {
		switch z {
		case "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "Etc/UCT", "UCT":
			return "UTC"
		}
		return z
	}
	return utc(a) == utc(b)
}

// searchCheck makes one bounded search of one issue id.
func searchCheck(ctx context.Context, client *jira.Client, typ string) (string, error) {
	const jql = "updated >= -36500d ORDER BY updated DESC"
	if typ == TypeDataCenter {
		var page struct {
			Total int `json:"total"`
		}
		err := client.Get(ctx, "/rest/api/2/search", url.Values{"jql": {jql}, "maxResults": {"1"}, "fields": {"id"}}, &page)
		if err != nil {
			return "", explainSearch(err)
		}
		if page.Total == 0 {
			return "The account can search issues, but sees none: give it the Browse Projects permission on the projects to ingest.", nil
		}
		return fmt.Sprintf("The account can search issues (%d visible).", page.Total), nil
	}
	if _, err := client.SearchJQL(ctx, jira.SearchRequest{JQL: jql, MaxResults: 1, Fields: []string{"id"}}); err != nil {
		return "", explainSearch(err)
	}
	return "The account can search issues.", nil
}

func explainSearch(err error) error {
	detail := jiraSaid(err)
	switch {
	case jira.IsForbidden(err):
		return say("The account may not search issues (403). Give it the Browse Projects permission on the projects to ingest.%s", detail)
	case jira.IsUnauthorized(err):
		return say("Jira refused the credentials on the search (401) after accepting them on /myself: the session may have expired; validate again.%s", detail)
	case jira.IsNetwork(err):
		return say("The search failed on the network (%v); validate again.", networkCause(err))
	case jira.IsRateLimited(err):
		return say("Jira is rate limiting the account (429); validate again in a minute.%s", detail)
	}
	return say("The search failed: %v", err)
}

func jiraSaid(err error) string {
	var je *jira.Error
	if errors.As(err, &je) && len(je.Messages) > 0 {
		return " Jira said: " + je.Messages[0]
	}
	return ""
}

// explainReach turns the anonymous serverInfo call's outcome into the
// site_reachable and tls checks. Any HTTP answer from Jira's REST API
// (401 and 403 included: nobody signed in) means reachable.
func explainReach(err error, u *url.URL, typ, path string) (reach, tlsErr error) {
	if err == nil {
		return nil, nil
	}
	hostPort := u.Host
	if u.Port() == "" {
		hostPort = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	if msg := explainTLS(err, u.Hostname(), typ); msg != "" {
		return nil, sentence(msg)
	}
	var je *jira.Error
	if errors.As(err, &je) && je.Status != 0 {
		switch s := je.Status; {
		case s == http.StatusUnauthorized, s == http.StatusForbidden, s == http.StatusTooManyRequests, s < 300,
			s == http.StatusNotFound && je.Anonymous: // Data Center hiding itself from nobody
			return nil, nil
		case s == http.StatusNotFound:
			return say("%s answers, but has no Jira REST API at %s%s (404). Check the URL, including a context path such as /jira.", u.Host, u.Path, path), nil
		case s >= 300 && s < 400:
			return say("%s redirects (%d) instead of answering: give the URL Jira is served at (https rather than http, with its context path, the host name users see).", u.Host, s), nil
		case s >= 500:
			return say("%s answers with an error (%d): Jira may be down, starting or behind a failing proxy; validate again later.", u.Host, s), nil
		}
		return nil, nil
	}
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		if typ == TypeDataCenter {
			return say("The host name %s does not resolve (DNS: %s). Check its spelling; a site only known inside your network is reached through a satellite (connection satellite).", u.Hostname(), dns.Err), nil
		}
		return say("The host name %s does not resolve (DNS: %s). Check the site's name.", u.Hostname(), dns.Err), nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return say("%s refused the connection: nothing listens on that port. Check the port in the URL.", hostPort), nil
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return say("%s did not answer within %s: a firewall may be dropping the traffic. Allow the service's addresses, or use a satellite inside your network.", hostPort, validationHTTPTimeout), nil
	case errors.Is(err, syscall.ECONNRESET) || jira.IsNetwork(err):
		return say("The connection to %s broke off (%v): a proxy or firewall may be in the way.", hostPort, networkCause(err)), nil
	}
	return say("The site could not be called: %v", err), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// explainTLS says what is wrong with a site's certificate, or "" if err is
// not about TLS.
func explainTLS(err error, host, typ string) string {
	fix := "Give the certificate of the CA that signed it in tls.ca_certificate or, as a last resort, set tls.allow_unsafe_ssl."
	if typ == TypeCloudToken {
		fix = "Jira Cloud's certificates are publicly trusted: something in between (a TLS-inspecting proxy?) presents its own."
	}
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Sprintf("The certificate of %s is signed by an authority this service does not trust (self-signed, or a private CA). %s", host, fix)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		if c := invalid.Cert; c != nil && time.Now().Before(c.NotBefore) {
			return fmt.Sprintf("The certificate of %s is not valid before %s: check the clock of the server (or of this service).", host, c.NotBefore.UTC().Format(time.RFC3339))
		} else if c != nil {
			return fmt.Sprintf("The certificate of %s expired on %s: renew it on the server.", host, c.NotAfter.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("The certificate of %s has expired: renew it on the server.", host)
	case errors.As(err, &invalid):
		return fmt.Sprintf("The certificate of %s is invalid (%s). %s", host, invalid.Error(), fix)
	case errors.As(err, &hostname):
		names := "other names"
		if c := hostname.Certificate; c != nil && len(c.DNSNames)+len(c.IPAddresses) > 0 {
			var all []string
			all = append(all, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				all = append(all, ip.String())
			}
			names = strings.Join(all, ", ")
		}
		return fmt.Sprintf("The certificate of %s is for %s, not %s: use a URL with a name the certificate covers, or reissue it.", host, names, host)
	case errors.As(err, &record):
		return fmt.Sprintf("%s does not speak TLS on that port: is the site served over http rather than https?", host)
	case errors.As(err, &verify):
		return fmt.Sprintf("The certificate of %s could not be verified (%v). %s", host, verify.Err, fix)
	case errors.As(err, &alert):
		return fmt.Sprintf("The TLS handshake with %s failed: the server said %v.", host, alert)
	}
	return ""
}

// explainCredentials says why Jira refused the credentials, by method.
func explainCredentials(err error, typ string, st Settings) error {
	if err == nil {
		return nil
	}
	detail := jiraSaid(err)
	var je *jira.Error
	errors.As(err, &je)
	var adfs *jira.ADFSError
	switch {
	case errors.As(err, &adfs) && errors.Is(adfs, jira.ErrCredentialsRejected):
		return say("ADFS refused to sign in %s (%s): the password may be wrong or expired, the account locked, or the client id and resource unknown to ADFS. Check them and re-authenticate.", st.Auth.Username, adfsReason(adfs))
	case errors.As(err, &adfs) && adfs.Status == 0:
		return say("ADFS at %s could not be reached (%v): check the ADFS URL, and that this service may reach it.", st.Auth.ADFSURL, adfs.Err)
	case errors.As(err, &adfs):
		return say("ADFS did not issue a token (%s); check the ADFS URL and validate again.", adfsReason(adfs))
	case je != nil && je.Status == http.StatusForbidden && je.DeniedReason != "":
		return say("Jira refused the account until someone signs in with it in a browser (403, %s): after several failed logins Jira asks for a CAPTCHA. Sign in once as %s, then validate again.", je.DeniedReason, orUnknown(st.Auth.Username))
	case je != nil && je.Anonymous && je.Status == http.StatusNotFound:
		return say("Jira answered as if nobody had signed in (404 with X-AUSERNAME: anonymous): the credentials or the session were not accepted. Check them and re-authenticate.%s", detail)
	case jira.IsUnauthorized(err):
		switch st.Auth.Method {
		case AuthAPIToken:
			return say("Jira refused the email and API token (401): the token may be revoked or expired, or belong to another account than %s. Create one at id.atlassian.com (Security, API tokens) and re-authenticate.%s", st.Auth.Email, detail)
		case AuthPAT:
			return say("Jira refused the personal access token (401): it may be expired or revoked. Create a new one in Jira (Profile, Personal Access Tokens) and re-authenticate.%s", detail)
		case AuthBasic:
			return say("Jira refused the username and password of %s (401). Check them and re-authenticate.%s", st.Auth.Username, detail)
		case AuthADFS:
			return say("Jira refused the token ADFS issued for %s (401): check the client id and resource (the relying party Jira trusts) and re-authenticate.%s", st.Auth.Username, detail)
		}
		return say("Jira refused the credentials (401); re-authenticate.%s", detail)
	case jira.IsForbidden(err):
		if typ == TypeDataCenter {
			return say("Jira knows the account but refused it (403): after several failed logins Jira asks for a CAPTCHA (sign in once in a browser), or the account may not use Jira (the Jira Users global permission).%s", detail)
		}
		return say("Jira knows the account but refused it (403): it may be deactivated or lack access to Jira on this site.%s", detail)
	case jira.IsNetwork(err):
		return say("The call with the credentials failed on the network (%v); validate again.", networkCause(err))
	case jira.IsRateLimited(err):
		return say("Jira is rate limiting the account (429); validate again in a minute.%s", detail)
	}
	if ae := (*apperr.Error)(nil); errors.As(err, &ae) {
		return say("The credentials could not be used: %s", ae.Message)
	}
	return say("The call to /myself failed: %v", err)
}

func adfsReason(e *jira.ADFSError) string {
	parts := []string{}
	if e.Status != 0 {
		parts = append(parts, fmt.Sprint(e.Status))
	}
	for _, p := range []string{e.Code, e.Description} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, ": ")
}

// validateSatellite does not call the site: a satellite integration's site
// is only reachable from inside the customer's network, where the
// satellite checks it and reports with its heartbeat.
func (s *Service) validateSatellite(ctx context.Context, it *store.Integration) *Validation {
	c := checks{&Validation{At: s.validationNow()}}
	started := time.Now()
	st, err := ParseSettings(it)
	if err == nil {
		if _, msg := s.checkSiteURL(it.Type, st.Connection, st.URL); msg != "" {
			err = say("The URL %q %s.", st.URL, msg)
		}
	}
	c.add(CheckURL, started, err, fmt.Sprintf("The URL %s is well-formed. The service does not call it: the satellite validates the connection from inside your network.", st.URL))

	started = time.Now()
	contact, err := s.DB.SatelliteContactOf(ctx, it.ID)
	switch {
	case apperr.CodeOf(err) == apperr.NotFound:
		c.add(CheckSatellite, started, say("No satellite has reported for this integration yet. The satellite validates the connection from inside your network: download satellite.yml (GET …/satellite.yml), fill in the secrets and run `satellite --config satellite.yml` on a host that reaches %s.", st.URL), "")
		return c.done()
	case err != nil:
		c.add(CheckSatellite, started, say("The satellite's last contact could not be read; try again."), "")
		return c.done()
	}
	var hb wire.Heartbeat
	if contact.Heartbeat != nil {
		_ = json.Unmarshal([]byte(*contact.Heartbeat), &hb)
	}
	now := s.validationNow()
	ago := now.Sub(contact.ContactAt).Round(time.Second)
	if ago > satelliteSilentAfter {
		c.add(CheckSatellite, started, say("The satellite last reported at %s, %s ago: check that it runs and reaches this service.", contact.ContactAt.Format(time.RFC3339), ago), "")
	} else {
		msg := fmt.Sprintf("The satellite reported at %s", contact.ContactAt.Format(time.RFC3339))
		if hb.Version != "" {
			msg += " (version " + hb.Version + ")"
		}
		c.add(CheckSatellite, started, nil, msg+".")
	}
	// What the satellite found when it checked Jira itself.
	for _, ch := range hb.Checks {
		if contact.HeartbeatAt == nil {
			break
		}
		c.v.Checks = append(c.v.Checks, Check{Name: satelliteCheckPrefix + ch.Name, Status: ch.Status,
			Message: fmt.Sprintf("Reported by the satellite at %s: %s", contact.HeartbeatAt.Format(time.RFC3339), ch.Message)})
	}
	return c.done()
}
