// Package lifecycle owns Jira installations: what Atlassian's installed,
// uninstalled, enabled and disabled callbacks do to them, and the in-memory
// directory that finds an installation's shared secret for every signed call
// without a database round trip. Authentication of the callbacks themselves
// happens before these methods are called (see internal/httpapi); this
// package trusts its inputs only as far as they were verified.
package lifecycle

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/store"
)

// Installation states, as stored.
const (
	StateInstalled   = "installed"
	StateEnabled     = "enabled"
	StateDisabled    = "disabled"
	StateUninstalled = "uninstalled"
)

// Store is what the lifecycle needs from persistence.
type Store interface {
	UpsertInstallation(ctx context.Context, in *store.Installation) error
	GetInstallation(ctx context.Context, clientKey string) (*store.Installation, error)
	MarkUninstalled(ctx context.Context, clientKey string, at time.Time, purgeAfter *time.Time) error
	SetInstallationEnabled(ctx context.Context, clientKey string, enabled bool) error
}

// Sealer encrypts secrets at rest; aad binds a ciphertext to its row.
type Sealer interface {
	Seal(plaintext, aad []byte) (string, error)
	Open(sealed string, aad []byte) ([]byte, error)
}

// Payload is the JSON body Jira posts to every lifecycle callback.
type Payload struct {
	Key            string `json:"key"`
	ClientKey      string `json:"clientKey"`
	SharedSecret   string `json:"sharedSecret"`
	ServerVersion  string `json:"serverVersion"`
	PluginsVersion string `json:"pluginsVersion"`
	BaseURL        string `json:"baseUrl"`
	DisplayURL     string `json:"displayUrl"`
	ProductType    string `json:"productType"`
	Description    string `json:"description"`
	EventType      string `json:"eventType"`
	InstallationID string `json:"installationId"`
	OAuthClientID  string `json:"oauthClientId"`
}

// Service applies lifecycle events.
type Service struct {
	Store     Store
	Sealer    Sealer
	Directory *Directory
	AppKey    string
	JiraHosts config.HostAllowlist
	// Retention is how long ingested data outlives an uninstall.
	Retention time.Duration
	Now       func() time.Time
	Log       *slog.Logger
	// Changed, when set, hears every applied event (installed, uninstalled,
	// enabled, disabled) so the integration linked to the installation can
	// follow. Its error fails the callback, and Jira retries it.
	Changed func(ctx context.Context, clientKey, event string) error
}

func (s *Service) changed(ctx context.Context, clientKey, event string) error {
	if s.Changed == nil {
		return nil
	}
	return s.Changed(ctx, clientKey, event)
}

// Limits on what we accept from Jira; real values are far shorter.
const (
	maxClientKey = 255
	maxField     = 2048
	minSecret    = 32
	maxSecret    = 1024
)

// Validate checks an installed payload and returns one message per field.
func (s *Service) Validate(p *Payload) error {
	f := map[string]string{}
	if p.Key != s.AppKey {
		f["key"] = "is not this app's key"
	}
	if p.ClientKey == "" || len(p.ClientKey) > maxClientKey {
		f["clientKey"] = "is required (at most 255 characters)"
	}
	if n := len(p.SharedSecret); n < minSecret || n > maxSecret {
		f["sharedSecret"] = "is required (32 to 1024 characters)"
	}
	if msg := s.checkBaseURL(p.BaseURL); msg != "" {
		f["baseUrl"] = msg
	}
	if p.DisplayURL != "" {
		if u, err := url.Parse(p.DisplayURL); err != nil || u.Host == "" {
			f["displayUrl"] = "is not an absolute URL"
		}
	}
	for name, v := range map[string]string{"productType": p.ProductType, "description": p.Description, "serverVersion": p.ServerVersion,
		"pluginsVersion": p.PluginsVersion, "installationId": p.InstallationID, "oauthClientId": p.OAuthClientID, "displayUrl": p.DisplayURL} {
		if len(v) > maxField {
			f[name] = "is too long"
		}
	}
	if len(f) > 0 {
		return apperr.Validation(f)
	}
	return nil
}

func (s *Service) checkBaseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "is not an absolute URL"
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && config.IsLoopback(u.Hostname())) {
		return "must be https"
	}
	if !s.JiraHosts.Allows(u.Hostname()) {
		return "host is not an allowed Jira host"
	}
	return ""
}

// Installed records a verified install or reinstall. A reinstall replaces
// the shared secret at once: the directory entry is dropped in the same call,
// so the old secret stops verifying on this replica immediately.
func (s *Service) Installed(ctx context.Context, p *Payload) error {
	if err := s.Validate(p); err != nil {
		return err
	}
	sealed, err := s.Sealer.Seal([]byte(p.SharedSecret), []byte(p.ClientKey))
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot store the installation")
	}
	now := s.Now().UTC()
	in := &store.Installation{
		ClientKey:      p.ClientKey,
		BaseURL:        strings.TrimRight(p.BaseURL, "/"),
		DisplayURL:     strings.TrimRight(p.DisplayURL, "/"),
		ProductType:    p.ProductType,
		Description:    p.Description,
		InstallationID: p.InstallationID,
		OAuthClientID:  p.OAuthClientID,
		ServerVersion:  p.ServerVersion,
		PluginsVersion: p.PluginsVersion,
		SharedSecret:   &sealed,
		State:          StateInstalled,
		InstalledAt:    now,
		UpdatedAt:      now,
	}
	defer s.Directory.Invalidate(p.ClientKey)
	if err := s.Store.UpsertInstallation(ctx, in); err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "installation installed", "client_key", p.ClientKey, "base_url", in.BaseURL)
	return s.changed(ctx, p.ClientKey, "installed")
}

// Uninstalled erases the shared secret and marks the installation
// uninstalled. Ingested data is kept until purge_after (the configured
// retention), so a quick reinstall finds it again.
func (s *Service) Uninstalled(ctx context.Context, clientKey string) error {
	now := s.Now().UTC()
	purge := now.Add(s.Retention)
	defer s.Directory.Invalidate(clientKey)
	err := s.Store.MarkUninstalled(ctx, clientKey, now, &purge)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil // nothing to erase: uninstall is idempotent
	}
	if err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "installation uninstalled", "client_key", clientKey, "purge_after", purge)
	return s.changed(ctx, clientKey, "uninstalled")
}

// SetEnabled applies a verified enabled or disabled callback.
func (s *Service) SetEnabled(ctx context.Context, clientKey string, enabled bool) error {
	defer s.Directory.Invalidate(clientKey)
	if err := s.Store.SetInstallationEnabled(ctx, clientKey, enabled); err != nil {
		return err
	}
	if enabled {
		return s.changed(ctx, clientKey, "enabled")
	}
	return s.changed(ctx, clientKey, "disabled")
}

// IsGone reports whether clientKey names no live installation (unknown or
// uninstalled). Jira may send a last, unsigned disabled after an uninstall;
// the caller answers it 204 without touching anything.
func (s *Service) IsGone(ctx context.Context, clientKey string) (bool, error) {
	in, err := s.Directory.Lookup(ctx, clientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return in.State == StateUninstalled, nil
}
