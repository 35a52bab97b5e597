// Package config owns satellite.yml, the file an Ingestion Satellite runs
// from, in the format SEI's documentation publishes (and the service's
// GET …/satellite.yml fills in):
//
//	satellite: {tenant: ACME, api_key: KEY, url: "https://sei.example.com/api"}
//	integrations:
//	  - id: '4711'
//	    url: 'https://jira.acme.internal'
//	    username: jdoe          # omitted for a personal access token
//	    application: jira
//	    api_key: SECRET         # password or personal access token
//	    metadata: {timezone: 'Europe/Berlin', sensitive_fields: [summary, description]}
//	jira: {allow_unsafe_ssl: false}
//
// or, behind ADFS, authentication: adfs with adfs_url, adfs_client_id,
// adfs_resource, adfs_username and adfs_password in place of username and
// api_key.
//
// The file is read by walking the YAML syntax tree rather than by
// unmarshalling into structs: a person editing it by hand on a server
// deserves every problem at once, each with its line and key
// ("satellite.yml:7: integrations[0].url: must be an https or http URL"),
// and keys it does not know are warned about, not fatal, so a file from a
// newer SEI still runs an older satellite. Secrets are of type Secret,
// which never prints itself.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// Authentication methods of a Data Center integration.
const (
	AuthPAT   = "pat"   // a personal access token in api_key, no username (Bearer)
	AuthBasic = "basic" // username and its password in api_key (HTTP Basic)
	AuthADFS  = "adfs"  // an OAuth2 password grant against ADFS (Bearer)
)

// Config is a valid satellite.yml.
type Config struct {
	// Path is the file it was read from, as given.
	Path         string
	Satellite    Satellite
	Integrations []Integration
	Jira         Jira
}

// Satellite is how the satellite reaches the service.
type Satellite struct {
	// Tenant is the SEI tenant the API key belongs to; the service knows
	// the tenant by the key, so this only names it in logs.
	Tenant string
	// APIKey is the tenant's API key, sent as "Authorization: Bearer".
	APIKey Secret
	// URL is the service's API root, ending in /api (no trailing slash).
	URL string
}

// Integration is one Jira Data Center site the satellite ingests for an
// SEI integration.
type Integration struct {
	// ID is the SEI integration's id.
	ID string
	// URL is the Jira site's base URL (with its context path, if any; no
	// trailing slash).
	URL string
	// Application is always "jira".
	Application string
	// Auth is AuthPAT, AuthBasic or AuthADFS: written as authentication,
	// or, when absent, basic with a username and pat without.
	Auth string
	// Username and APIKey (its password, or a personal access token).
	Username string
	APIKey   Secret
	// ADFS is set for AuthADFS.
	ADFS ADFS
	// Timezone is where the team works (due dates); "UTC" when absent.
	Timezone string
	// SensitiveFields are never read into the satellite's database nor
	// pushed: Jira field ids or names (summary, description, comment…).
	SensitiveFields []string
	// Line is where the integration starts in the file.
	Line int
}

// ADFS is an OAuth2 resource owner password grant against Active
// Directory Federation Services.
type ADFS struct {
	URL      string // the token endpoint, or the ADFS host
	ClientID string
	Resource string
	Username string
	Password Secret
}

// Jira holds settings for every Jira site of the file.
type Jira struct {
	// AllowUnsafeSSL turns certificate verification off for the sites and
	// their ADFS: encrypted, but to a server nobody vouched for.
	AllowUnsafeSSL bool
}

// LogValue summarises the configuration without a secret.
func (c *Config) LogValue() slog.Value {
	ids := make([]string, len(c.Integrations))
	for i, it := range c.Integrations {
		ids[i] = it.ID
	}
	return slog.GroupValue(slog.String("path", c.Path), slog.String("tenant", c.Satellite.Tenant),
		slog.String("service", c.Satellite.URL), slog.Any("integrations", ids), slog.Bool("allow_unsafe_ssl", c.Jira.AllowUnsafeSSL))
}

// Integration returns the integration with the id, or nil.
func (c *Config) Integration(id string) *Integration {
	for i := range c.Integrations {
		if c.Integrations[i].ID == id {
			return &c.Integrations[i]
		}
	}
	return nil
}

// Secrets lists the secret values of the file, for a log handler that
// scrubs them from anything that reaches it by another way.
func (c *Config) Secrets() []string {
	out := []string{c.Satellite.APIKey.Reveal()}
	for _, it := range c.Integrations {
		out = append(out, it.APIKey.Reveal(), it.ADFS.Password.Reveal())
	}
	n := 0
	for _, s := range out {
		if s != "" {
			out[n] = s
			n++
		}
	}
	return out[:n]
}

// Secret is a value that never prints itself: String, GoString, LogValue,
// MarshalText and MarshalJSON all say "[redacted]", so a Config reaching a
// log line or an error by mistake leaks nothing. Reveal is the only way
// to the value, and only the code that sends it calls it.
type Secret string

const redacted = "[redacted]"

func (s Secret) Reveal() string                { return string(s) }
func (s Secret) String() string                { return redactedOrEmpty(s) }
func (s Secret) GoString() string              { return `config.Secret("` + redactedOrEmpty(s) + `")` }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(redactedOrEmpty(s)) }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redactedOrEmpty(s)), nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redactedOrEmpty(s) + `"`), nil }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redactedOrEmpty(s))) }

// redactedOrEmpty says whether a secret is set without saying what it is.
func redactedOrEmpty(s Secret) string {
	if s == "" {
		return ""
	}
	return redacted
}

// Problem is one thing wrong (or, as a warning, odd) in the file.
type Problem struct {
	File    string
	Line    int    // 0 when the whole file is meant
	Key     string // the key's path, e.g. integrations[0].url; "" for the file
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is an invalid file: every problem found, in file order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// IsInvalid reports whether err is an invalid (or unreadable) file, as
// opposed to another failure: the command exits 2 for it.
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Load reads and validates the file at path. It returns the warnings
// (unknown keys, risky settings) with a valid file; an invalid or
// unreadable one is an *Error listing every problem.
func Load(path string) (*Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := "cannot be read: " + err.Error()
		if errors.Is(err, os.ErrNotExist) {
			msg = "does not exist: download it from SEI (GET /api/v1/integrations/{id}/satellite.yml), fill in the secrets, or name another file with --config"
		}
		return nil, nil, &Error{Problems: []Problem{{File: path, Message: msg}}}
	}
	return Parse(path, data)
}

// Parse validates the contents of a satellite.yml; name is the file's
// name in messages.
func Parse(name string, data []byte) (*Config, []Problem, error) {
	r := &reader{file: name}
	c := r.read(data)
	if len(r.errs) > 0 {
		sortProblems(r.errs)
		sortProblems(r.warns)
		return nil, r.warns, &Error{Problems: r.errs}
	}
	c.Path = name
	sortProblems(r.warns)
	return c, r.warns, nil
}

// checkServiceURL validates satellite.url.
func checkServiceURL(raw string) (string, string, string) {
	u, msg := parseHTTPURL(raw)
	if msg != "" {
		return "", msg, ""
	}
	warn := ""
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		warn = "is http: the API key and the ingested data travel unencrypted; use https"
	}
	return strings.TrimRight(u.String(), "/"), "", warn
}

// parseHTTPURL accepts an absolute http or https URL with a host and no
// credentials, query or fragment.
func parseHTTPURL(raw string) (*url.URL, string) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "":
		return nil, "must be an https or http URL"
	case u.User != nil:
		return nil, "must not carry a user name or password: the credentials have keys of their own"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, "must not have a query or fragment"
	}
	return u, ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkSecret says what is wrong with a secret's value without showing it.
func checkSecret(v string) string {
	switch {
	case isPlaceholder(v):
		return fmt.Sprintf("is still the placeholder %s: replace it with the real value", v)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) }) >= 0:
		return "contains a control character or line break (a copy-and-paste accident?)"
	case strings.TrimSpace(v) != v:
		return "starts or ends with spaces (a copy-and-paste accident?)"
	}
	return ""
}

// isPlaceholder recognises the service's <YOUR_API_KEY>, <PASSWORD>,
// <PERSONAL_ACCESS_TOKEN> and <ADFS_PASSWORD>: not secrets, so naming them
// is safe and helps.
func isPlaceholder(v string) bool {
	if len(v) < 3 || v[0] != '<' || v[len(v)-1] != '>' {
		return false
	}
	for _, r := range v[1 : len(v)-1] {
		if !(r >= 'A' && r <= 'Z') && r != '_' {
			return false
		}
	}
	return true
}

// validID: the integration id is a path segment of the service's API.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '~') {
			return false
		}
	}
	return id != "." && id != ".."
}

func validTimezone(tz string) bool {
	_, err := time.LoadLocation(tz)
	return err == nil && tz != "Local"
}
