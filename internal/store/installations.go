package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Installation states. The lifecycle moves installed → enabled ⇄ disabled
// and any of them → uninstalled; a new "installed" event revives an
// uninstalled row.
const (
	StateInstalled   = "installed"
	StateEnabled     = "enabled"
	StateDisabled    = "disabled"
	StateUninstalled = "uninstalled"
)

// ValidState reports whether s is one of the four installation states.
func ValidState(s string) bool {
	switch s {
	case StateInstalled, StateEnabled, StateDisabled, StateUninstalled:
		return true
	}
	return false
}

// Installation is one installation of the app on a Jira site, keyed by
// Atlassian's clientKey. SharedSecret holds the sealed (internal/secrets)
// shared secret with the clientKey as its aad, and is nil once uninstalled.
type Installation struct {
	ClientKey      string     `gorm:"column:client_key;primaryKey"`
	BaseURL        string     `gorm:"column:base_url"`
	DisplayURL     string     `gorm:"column:display_url"`
	ProductType    string     `gorm:"column:product_type"`
	Description    string     `gorm:"column:description"`
	InstallationID string     `gorm:"column:installation_id"` // an ARI
	OAuthClientID  string     `gorm:"column:oauth_client_id"`
	ServerVersion  string     `gorm:"column:server_version"`
	PluginsVersion string     `gorm:"column:plugins_version"`
	SharedSecret   *string    `gorm:"column:shared_secret"`
	State          string     `gorm:"column:state"`
	InstalledAt    time.Time  `gorm:"column:installed_at"`
	UpdatedAt      time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	UninstalledAt  *time.Time `gorm:"column:uninstalled_at"`
	PurgeAfter     *time.Time `gorm:"column:purge_after"`
}

// TableName is the gorm table name.
func (Installation) TableName() string { return "installations" }

// AfterFind returns times in UTC whatever the driver handed back
// (pgx gives time.Local for timestamptz).
func (i *Installation) AfterFind(*gorm.DB) error {
	i.normalizeTimes()
	return nil
}

func (i *Installation) normalizeTimes() {
	i.InstalledAt = normTime(i.InstalledAt)
	i.UpdatedAt = normTime(i.UpdatedAt)
	i.UninstalledAt = normTimePtr(i.UninstalledAt)
	i.PurgeAfter = normTimePtr(i.PurgeAfter)
}

var installationUpdateColumns = []string{
	"base_url", "display_url", "product_type", "description", "installation_id", "oauth_client_id",
	"server_version", "plugins_version", "shared_secret", "state", "installed_at", "updated_at",
	"uninstalled_at", "purge_after",
}

// UpsertInstallation inserts inst or overwrites every column of the row
// with its client key, in one statement. UpdatedAt is set from the store's
// clock, InstalledAt too when zero, and the times in inst are normalized to
// what is stored (UTC, microseconds), so inst equals a later
// GetInstallation.
func (d *DB) UpsertInstallation(ctx context.Context, inst *Installation) error {
	if inst.ClientKey == "" {
		return apperr.New(apperr.Invalid, "installation has no client key")
	}
	if inst.BaseURL == "" {
		return apperr.New(apperr.Invalid, "installation has no base URL")
	}
	if !ValidState(inst.State) {
		return apperr.New(apperr.Invalid, "invalid installation state %q", inst.State)
	}
	if inst.State == StateUninstalled && inst.SharedSecret != nil {
		return apperr.New(apperr.Invalid, "an uninstalled installation keeps no shared secret")
	}
	now := d.now()
	inst.UpdatedAt = now
	if inst.InstalledAt.IsZero() {
		inst.InstalledAt = now
	}
	inst.normalizeTimes()
	err := d.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "client_key"}},
		DoUpdates: clause.AssignmentColumns(installationUpdateColumns),
	}).Create(inst).Error
	if err != nil {
		return mapError(err, "installation")
	}
	d.notifyInstallation(ctx, inst.ClientKey)
	return nil
}

// GetInstallation returns the installation, in any state, or NotFound.
func (d *DB) GetInstallation(ctx context.Context, clientKey string) (*Installation, error) {
	var inst Installation
	err := d.Gorm.WithContext(ctx).Where("client_key = ?", clientKey).Take(&inst).Error
	if err != nil {
		return nil, mapError(err, "installation")
	}
	return &inst, nil
}

// ListInstallations returns every installation, uninstalled ones included,
// ordered by client key, to warm caches at startup.
func (d *DB) ListInstallations(ctx context.Context) ([]Installation, error) {
	var out []Installation
	err := d.Gorm.WithContext(ctx).Order("client_key").Find(&out).Error
	if err != nil {
		return nil, mapError(err, "installations")
	}
	return out, nil
}

// MarkUninstalled erases the shared secret and records the uninstall at
// `at`, keeping ingested data until purgeAfter (nil: no scheduled purge).
// It returns NotFound for an unknown client key. Repeating it overwrites
// the times with the new values.
func (d *DB) MarkUninstalled(ctx context.Context, clientKey string, at time.Time, purgeAfter *time.Time) error {
	return d.updateInstallation(ctx, clientKey, false, map[string]any{
		"state":          StateUninstalled,
		"shared_secret":  nil,
		"uninstalled_at": normTime(at),
		"purge_after":    normTimePtr(purgeAfter),
	})
}

// SetInstallationEnabled moves an installation to enabled or disabled. An
// uninstalled installation is NotFound, like a missing one: only a new
// install brings it back.
func (d *DB) SetInstallationEnabled(ctx context.Context, clientKey string, enabled bool) error {
	state := StateDisabled
	if enabled {
		state = StateEnabled
	}
	return d.updateInstallation(ctx, clientKey, true, map[string]any{"state": state})
}

func (d *DB) updateInstallation(ctx context.Context, clientKey string, skipUninstalled bool, set map[string]any) error {
	set["updated_at"] = d.now()
	q := d.Gorm.WithContext(ctx).Model(&Installation{}).Where("client_key = ?", clientKey)
	if skipUninstalled {
		q = q.Where("state <> ?", StateUninstalled)
	}
	res := q.Updates(set)
	if res.Error != nil {
		return mapError(res.Error, "installation")
	}
	if res.RowsAffected == 0 {
		return apperr.New(apperr.NotFound, "installation not found")
	}
	d.notifyInstallation(ctx, clientKey)
	return nil
}
