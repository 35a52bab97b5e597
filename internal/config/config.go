// Package config owns the service's configuration: it reads the environment
// once at start-up, applies the defaults, validates everything and reports
// every problem at once, so an operator fixes a bad deployment in one pass.
// The result is a plain Config value passed explicitly; nothing here is global.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Environments: development tolerates a missing encryption key (one is
// generated into the data directory); production refuses to start without it.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// DefaultJiraHosts are Atlassian Cloud's site domains.
const DefaultJiraHosts = "*.atlassian.net,*.jira.com,*.jira-dev.com"

// Config is the validated configuration of the connect service.
type Config struct {
	Env        string
	BaseURL    *url.URL // the app's public URL, no trailing slash
	BasePath   string   // BaseURL's path ("" or "/prefix"), where every route is mounted
	ListenAddr string
	DataDir    string
	// DatabaseURL is a postgres:// URL or an SQLite location. It may carry
	// a password, so it is never logged as is (see RedactedDatabaseURL).
	DatabaseURL        string
	AppKey             string
	AppName            string
	InstallKeysURL     string
	JiraHosts          HostAllowlist
	EncryptionKeys     string // key ring spec; empty in development means "generate"
	LogLevel           string
	LogFormat          string
	UninstallRetention time.Duration
	CacheTTL           time.Duration
	ShutdownTimeout    time.Duration
	// TrustedProxies are the addresses (IPs or CIDRs) whose
	// X-Forwarded-For is believed when deciding a client's address.
	TrustedProxies []string
	// Background jobs.
	SyncInterval     time.Duration
	SyncTimeout      time.Duration
	Workers          int
	JobsPollInterval time.Duration
}

// Var documents one environment variable; the README's table is generated
// from (and tested against) this list so the two never drift apart.
type Var struct {
	Name, Default, Description string
	Secret                     bool // also readable from NAME_FILE
}

// Vars lists every environment variable the service reads.
var Vars = []Var{
	{"BASE_URL", "http://localhost:8080", "The app's public URL, as Jira reaches it. https, except http for loopback hosts. A path prefix is allowed; every route is served under it.", false},
	{"LISTEN_ADDR", ":8080", "Address the HTTP server listens on.", false},
	{"DATABASE_URL", "sqlite:./data/connect.db", "`postgres://…` selects PostgreSQL; `sqlite:PATH` (or a plain path) selects the embedded SQLite database.", true},
	{"APP_KEY", "io.sei.jira-connect", "The descriptor's app key; installs for another key are refused.", false},
	{"APP_NAME", "SEI for Jira", "The app name shown in Jira.", false},
	{"CONNECT_INSTALL_KEYS_URL", "https://connect-install-keys.atlassian.com", "Where Atlassian publishes the RS256 public keys that sign install and uninstall callbacks.", false},
	{"JIRA_HOST_ALLOWLIST", DefaultJiraHosts, "Comma-separated host patterns an installation's baseUrl must match; `*` stands for one or more DNS labels. A bare host or IP allows just that host.", false},
	{"ENCRYPTION_KEYS", "(generated in development)", "Key ring for secrets at rest: `kid:base64(32 bytes)`, comma-separated, the first one encrypts. Required in production.", true},
	{"APP_ENV", EnvDevelopment, "`development` or `production`.", false},
	{"DATA_DIR", "./data", "Directory for the embedded database and the generated development key.", false},
	{"LOG_LEVEL", "info", "debug, info, warn or error.", false},
	{"LOG_FORMAT", "json", "json or text.", false},
	{"UNINSTALL_RETENTION", "720h", "How long ingested data of an uninstalled site is kept (a reinstall within it keeps the data). 0 purges at once.", false},
	{"INSTALLATION_CACHE_TTL", "30s", "How long a replica trusts its in-memory copy of an installation before re-reading it.", false},
	{"SHUTDOWN_TIMEOUT", "15s", "Grace period for in-flight requests on SIGTERM.", false},
	{"SYNC_INTERVAL", "15m", "How often every connected integration gets an incremental sync (webhooks keep it fresh in between).", false},
	{"SYNC_TIMEOUT", "1h", "Longest a single sync may run before it is cancelled and retried from its checkpoints.", false},
	{"WORKERS", "4", "Background jobs run at once per replica and per queue (syncs; webhooks).", false},
	{"JOBS_POLL_INTERVAL", "1s", "How often a replica looks for new jobs (SQLite; PostgreSQL is also notified).", false},
	{"TRUSTED_PROXIES", "", "Comma-separated IPs or CIDRs of the load balancers whose X-Forwarded-For is believed (for per-address rate limits). Empty: the connection's address is the client's.", false},
}

// Load reads the configuration through getenv (os.Getenv in production,
// a map in tests). Secrets may come from NAME_FILE instead of NAME.
func Load(getenv func(string) string) (*Config, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	get := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			for _, d := range Vars {
				if d.Name == name && !strings.HasPrefix(d.Default, "(") {
					return d.Default
				}
			}
		}
		return v
	}
	secret := func(name string) string {
		v, file := getenv(name), getenv(name+"_FILE")
		switch {
		case v != "" && file != "":
			bad(name, "set either %s or %s_FILE, not both", name, name)
		case file != "":
			b, err := os.ReadFile(file)
			if err != nil {
				bad(name+"_FILE", "cannot read: %v", err)
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		if v == "" {
			return get(name)
		}
		return strings.TrimSpace(v)
	}
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < 0 {
			bad(name, "want a non-negative duration such as 30s or 720h, got %q", get(name))
		}
		return d
	}

	c := &Config{
		Env:                get("APP_ENV"),
		ListenAddr:         get("LISTEN_ADDR"),
		DataDir:            get("DATA_DIR"),
		AppKey:             get("APP_KEY"),
		AppName:            get("APP_NAME"),
		InstallKeysURL:     strings.TrimRight(get("CONNECT_INSTALL_KEYS_URL"), "/"),
		LogLevel:           strings.ToLower(get("LOG_LEVEL")),
		LogFormat:          strings.ToLower(get("LOG_FORMAT")),
		UninstallRetention: dur("UNINSTALL_RETENTION"),
		CacheTTL:           dur("INSTALLATION_CACHE_TTL"),
		ShutdownTimeout:    dur("SHUTDOWN_TIMEOUT"),
		SyncInterval:       dur("SYNC_INTERVAL"),
		SyncTimeout:        dur("SYNC_TIMEOUT"),
		JobsPollInterval:   dur("JOBS_POLL_INTERVAL"),
	}
	if n, err := strconv.Atoi(get("WORKERS")); err != nil || n < 1 || n > 256 {
		bad("WORKERS", "want an integer from 1 to 256, got %q", get("WORKERS"))
	} else {
		c.Workers = n
	}
	if c.SyncInterval < time.Minute && c.Env == EnvProduction {
		bad("SYNC_INTERVAL", "at least 1m in production")
	}
	if c.Env != EnvDevelopment && c.Env != EnvProduction {
		bad("APP_ENV", "want development or production, got %q", c.Env)
	}

	if u, err := ParsePublicURL(get("BASE_URL")); err != nil {
		bad("BASE_URL", "%v", err)
	} else {
		c.BaseURL, c.BasePath = u, u.Path
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		bad("LISTEN_ADDR", "want host:port such as :8080, got %q", c.ListenAddr)
	}
	if c.AppKey == "" || len(c.AppKey) > 64 || strings.ContainsAny(c.AppKey, " /?#&") {
		bad("APP_KEY", "want 1-64 characters without spaces or URL delimiters")
	}
	if u, err := url.Parse(c.InstallKeysURL); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) || u.Host == "" {
		bad("CONNECT_INSTALL_KEYS_URL", "want an https URL (http only for loopback hosts)")
	}
	for _, p := range strings.Split(get("TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad("TRUSTED_PROXIES", "%q is neither an IP nor a CIDR", p)
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	if al, err := ParseHostAllowlist(get("JIRA_HOST_ALLOWLIST")); err != nil {
		bad("JIRA_HOST_ALLOWLIST", "%v", err)
	} else {
		c.JiraHosts = al
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "want json or text, got %q", c.LogFormat)
	}

	c.DatabaseURL = secret("DATABASE_URL")
	if getenv("DATABASE_URL") == "" && getenv("DATABASE_URL_FILE") == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "connect.db")
	}
	c.EncryptionKeys = secret("ENCRYPTION_KEYS")
	if c.EncryptionKeys == "" && c.Env == EnvProduction {
		bad("ENCRYPTION_KEYS", "required in production (generate one with `connect keygen`)")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n  %w", joinIndented(errs))
	}
	return c, nil
}

func joinIndented(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}

// ParsePublicURL accepts an absolute https URL, or http for a loopback host
// (development and tests), and returns it without a trailing slash.
func ParsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("want an absolute URL such as https://sei.example.com, got %q", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("must not carry credentials, a query or a fragment")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && IsLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("want https (http only for loopback hosts), got %q", u.Scheme+"://"+u.Host)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostAllowlist matches hosts against patterns like "*.atlassian.net".
type HostAllowlist []string

// ParseHostAllowlist validates a comma-separated list of host patterns. A
// "*" may only be a whole leading label, so "*.atlassian.net" is fine and
// "evil*.net" or "*" alone (which would allow anything) are refused.
func ParseHostAllowlist(spec string) (HostAllowlist, error) {
	var out HostAllowlist
	for _, p := range strings.Split(spec, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		rest := strings.TrimPrefix(p, "*.")
		if strings.Contains(rest, "*") || rest == "" {
			return nil, fmt.Errorf("pattern %q: '*' may only stand as the first label, as in *.atlassian.net", p)
		}
		if strings.ContainsAny(rest, "/:@ ") && net.ParseIP(rest) == nil {
			return nil, fmt.Errorf("pattern %q: want a host name or IP, without scheme or port", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("at least one host pattern is required")
	}
	return out, nil
}

// Allows reports whether host (without port) matches one of the patterns.
// "*" stands for one or more DNS labels.
func (a HostAllowlist) Allows(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return false
	}
	for _, p := range a {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			// suffix is ".atlassian.net"; the part before it must be a
			// non-empty run of labels.
			if lead, ok := strings.CutSuffix(host, suffix); ok && lead != "" && !strings.HasPrefix(lead, ".") && !strings.HasSuffix(lead, ".") {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}

// RedactedDatabaseURL returns the database URL with any password replaced,
// for log lines.
func (c *Config) RedactedDatabaseURL() string {
	u, err := url.Parse(c.DatabaseURL)
	if err != nil || u.User == nil {
		if strings.Contains(c.DatabaseURL, "password=") {
			return "(redacted)"
		}
		return c.DatabaseURL
	}
	return u.Redacted()
}
