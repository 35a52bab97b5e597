package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Tenant is an SEI account; it owns API keys and integrations.
type Tenant struct {
	ID        string    `gorm:"column:id;primaryKey"`
	Name      string    `gorm:"column:name"`
	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (Tenant) TableName() string { return "tenants" }

func (t *Tenant) AfterFind(*gorm.DB) error { t.CreatedAt = normTime(t.CreatedAt); return nil }

// APIKey authenticates a tenant's calls to /api/v1. Only a hash is kept;
// Prefix is the short visible part that tells keys apart.
type APIKey struct {
	ID         string     `gorm:"column:id;primaryKey"`
	TenantID   string     `gorm:"column:tenant_id"`
	Prefix     string     `gorm:"column:prefix"`
	Hash       string     `gorm:"column:hash"`
	CreatedAt  time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	RevokedAt  *time.Time `gorm:"column:revoked_at"`
	LastUsedAt *time.Time `gorm:"column:last_used_at"`
}

func (APIKey) TableName() string { return "api_keys" }

func (k *APIKey) AfterFind(*gorm.DB) error {
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = normTime(k.CreatedAt), normTimePtr(k.RevokedAt), normTimePtr(k.LastUsedAt)
	return nil
}

// Integration is a tenant's connection to one Jira site.
type Integration struct {
	ID             string     `gorm:"column:id;primaryKey"`
	TenantID       string     `gorm:"column:tenant_id"`
	Name           string     `gorm:"column:name"`
	Description    string     `gorm:"column:description"`
	Tags           []string   `gorm:"column:tags;serializer:json"`
	Type           string     `gorm:"column:type"`
	Timezone       string     `gorm:"column:timezone"`
	ExcludedFields []string   `gorm:"column:excluded_fields;serializer:json"`
	Settings       string     `gorm:"column:settings"`    // JSON object, non-secret
	Credentials    *string    `gorm:"column:credentials"` // sealed
	Status         string     `gorm:"column:status"`
	StatusReason   string     `gorm:"column:status_reason"`
	ClientKey      *string    `gorm:"column:client_key"`
	LinkedAt       *time.Time `gorm:"column:linked_at"`
	LastValidation *string    `gorm:"column:last_validation"` // JSON
	ValidatedAt    *time.Time `gorm:"column:validated_at"`
	CreatedAt      time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt      time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (Integration) TableName() string { return "integrations" }

func (i *Integration) AfterFind(*gorm.DB) error { i.normalizeTimes(); return nil }

func (i *Integration) normalizeTimes() {
	i.CreatedAt, i.UpdatedAt = normTime(i.CreatedAt), normTime(i.UpdatedAt)
	i.LinkedAt, i.ValidatedAt = normTimePtr(i.LinkedAt), normTimePtr(i.ValidatedAt)
}

// ConnectKey is a one-time key that links an installation to an
// integration. Only the hash of the key is stored.
type ConnectKey struct {
	Hash          string     `gorm:"column:hash;primaryKey"`
	ClientKey     string     `gorm:"column:client_key"`
	CreatedAt     time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt     time.Time  `gorm:"column:expires_at"`
	UsedAt        *time.Time `gorm:"column:used_at"`
	RevokedAt     *time.Time `gorm:"column:revoked_at"`
	IntegrationID *string    `gorm:"column:integration_id"`
}

func (ConnectKey) TableName() string { return "connect_keys" }

// CreateTenant inserts a tenant.
func (d *DB) CreateTenant(ctx context.Context, t *Tenant) error {
	t.CreatedAt = normTime(d.now())
	return mapError(d.Gorm.WithContext(ctx).Create(t).Error, "tenant")
}

// GetTenant returns a tenant or NotFound.
func (d *DB) GetTenant(ctx context.Context, id string) (*Tenant, error) {
	var t Tenant
	if err := d.Gorm.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, mapError(err, "tenant")
	}
	return &t, nil
}

// CreateAPIKey inserts an API key (hash and prefix already computed).
func (d *DB) CreateAPIKey(ctx context.Context, k *APIKey) error {
	k.CreatedAt = normTime(d.now())
	return mapError(d.Gorm.WithContext(ctx).Create(k).Error, "api key")
}

// APIKeyByPrefix returns the key with that visible prefix, revoked or not.
func (d *DB) APIKeyByPrefix(ctx context.Context, prefix string) (*APIKey, error) {
	var k APIKey
	if err := d.Gorm.WithContext(ctx).Where("prefix = ?", prefix).Take(&k).Error; err != nil {
		return nil, mapError(err, "api key")
	}
	return &k, nil
}

// RevokeAPIKey revokes the key with that id or prefix; NotFound if none is
// live.
func (d *DB) RevokeAPIKey(ctx context.Context, idOrPrefix string) (*APIKey, error) {
	var k APIKey
	err := d.Tx(ctx, func(tx *DB) error {
		if err := tx.Gorm.WithContext(ctx).Where("(id = ? OR prefix = ?) AND revoked_at IS NULL", idOrPrefix, idOrPrefix).Take(&k).Error; err != nil {
			return mapError(err, "api key")
		}
		now := normTime(d.now())
		k.RevokedAt = &now
		return mapError(tx.Gorm.WithContext(ctx).Model(&APIKey{}).Where("id = ?", k.ID).Update("revoked_at", now).Error, "api key")
	})
	return &k, err
}

// TouchAPIKey records a use of the key.
func (d *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return mapError(d.Gorm.WithContext(ctx).Model(&APIKey{}).Where("id = ?", id).Update("last_used_at", normTime(at)).Error, "api key")
}

// CreateIntegration inserts an integration; a duplicate name within the
// tenant is a Conflict.
func (d *DB) CreateIntegration(ctx context.Context, in *Integration) error {
	now := normTime(d.now())
	in.CreatedAt, in.UpdatedAt = now, now
	in.normalizeTimes()
	return mapError(d.Gorm.WithContext(ctx).Create(in).Error, "integration")
}

// GetIntegration returns the tenant's integration; another tenant's is
// NotFound, exactly like a missing one.
func (d *DB) GetIntegration(ctx context.Context, tenantID, id string) (*Integration, error) {
	var in Integration
	if err := d.Gorm.WithContext(ctx).Where("id = ? AND tenant_id = ?", id, tenantID).Take(&in).Error; err != nil {
		return nil, mapError(err, "integration")
	}
	return &in, nil
}

// IntegrationByClientKey returns the integration linked to an installation.
func (d *DB) IntegrationByClientKey(ctx context.Context, clientKey string) (*Integration, error) {
	var in Integration
	if err := d.Gorm.WithContext(ctx).Where("client_key = ?", clientKey).Take(&in).Error; err != nil {
		return nil, mapError(err, "integration")
	}
	return &in, nil
}

// ListIntegrations returns up to limit of the tenant's integrations with
// ids after `after` (ids are time-ordered, so this pages by creation).
func (d *DB) ListIntegrations(ctx context.Context, tenantID, after string, limit int) ([]Integration, error) {
	var out []Integration
	q := d.Gorm.WithContext(ctx).Where("tenant_id = ?", tenantID)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Order("id").Limit(limit).Find(&out).Error; err != nil {
		return nil, mapError(err, "integrations")
	}
	return out, nil
}

// SaveIntegration writes every column of the tenant's integration.
func (d *DB) SaveIntegration(ctx context.Context, in *Integration) error {
	in.UpdatedAt = normTime(d.now())
	in.normalizeTimes()
	res := d.Gorm.WithContext(ctx).Model(&Integration{}).Where("id = ? AND tenant_id = ?", in.ID, in.TenantID).
		Select("*").Omit("id", "tenant_id", "created_at").Updates(in)
	if res.Error != nil {
		return mapError(res.Error, "integration")
	}
	if res.RowsAffected == 0 {
		return apperr.New(apperr.NotFound, "integration not found")
	}
	return nil
}

// DeleteIntegration deletes the tenant's integration and everything
// ingested for it. Issues, users and runs go by the foreign key's cascade;
// transitions, field changes and comments have no foreign key (migration
// 00004: it cost half of a sync's database time), so they are deleted here.
func (d *DB) DeleteIntegration(ctx context.Context, tenantID, id string) error {
	return d.Tx(ctx, func(tx *DB) error {
		g := tx.Gorm.WithContext(ctx)
		res := g.Where("id = ? AND tenant_id = ?", id, tenantID).Delete(&Integration{})
		if res.Error != nil {
			return mapError(res.Error, "integration")
		}
		if res.RowsAffected == 0 {
			return apperr.New(apperr.NotFound, "integration not found")
		}
		for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}, &hygieneBase{}} {
			if err := g.Where("integration_id = ?", id).Delete(m).Error; err != nil {
				return mapError(err, "issue children")
			}
		}
		return nil
	})
}

// SetIntegrationsStatusByClientKey sets the status of the integration
// linked to clientKey (there is at most one); no linked integration is fine.
func (d *DB) SetIntegrationsStatusByClientKey(ctx context.Context, clientKey, status, reason string) error {
	return mapError(d.Gorm.WithContext(ctx).Model(&Integration{}).Where("client_key = ?", clientKey).
		Updates(map[string]any{"status": status, "status_reason": reason, "updated_at": normTime(d.now())}).Error, "integration")
}

// ReplaceConnectKey stores a new key for an installation and revokes the
// installation's earlier unused keys, in one transaction.
func (d *DB) ReplaceConnectKey(ctx context.Context, k *ConnectKey) error {
	now := normTime(d.now())
	k.CreatedAt, k.ExpiresAt = normTime(k.CreatedAt), normTime(k.ExpiresAt)
	return d.Tx(ctx, func(tx *DB) error {
		if err := tx.Gorm.WithContext(ctx).Model(&ConnectKey{}).
			Where("client_key = ? AND used_at IS NULL AND revoked_at IS NULL", k.ClientKey).
			Update("revoked_at", now).Error; err != nil {
			return mapError(err, "connect key")
		}
		return mapError(tx.Gorm.WithContext(ctx).Create(k).Error, "connect key")
	})
}

// ConsumeConnectKey marks the key with that hash used by integrationID if
// it is unused, unrevoked and unexpired at `now`, and returns its client
// key. The conditional UPDATE is the arbiter of races: of any number of
// concurrent redemptions exactly one changes the row. Any other outcome is
// NotFound, whatever the reason, so callers cannot tell which.
func (d *DB) ConsumeConnectKey(ctx context.Context, hash, integrationID string, now time.Time) (string, error) {
	now = normTime(now)
	res := d.Gorm.WithContext(ctx).Model(&ConnectKey{}).
		Where("hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?", hash, now).
		Updates(map[string]any{"used_at": now, "integration_id": integrationID})
	if res.Error != nil {
		return "", mapError(res.Error, "connect key")
	}
	if res.RowsAffected != 1 {
		return "", apperr.New(apperr.NotFound, "connect key not found")
	}
	var k ConnectKey
	if err := d.Gorm.WithContext(ctx).Where("hash = ?", hash).Take(&k).Error; err != nil {
		return "", mapError(err, "connect key")
	}
	return k.ClientKey, nil
}

// LatestConnectKey returns the installation's newest live key, if any.
func (d *DB) LatestConnectKey(ctx context.Context, clientKey string, now time.Time) (*ConnectKey, error) {
	var k ConnectKey
	err := d.Gorm.WithContext(ctx).Where("client_key = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?", clientKey, normTime(now)).
		Order("created_at DESC").Take(&k).Error
	if err != nil {
		return nil, mapError(err, "connect key")
	}
	return &k, nil
}

// GetIntegrationByID returns an integration whatever its tenant: for
// background work that has no tenant in hand.
func (d *DB) GetIntegrationByID(ctx context.Context, id string) (*Integration, error) {
	var in Integration
	if err := d.Gorm.WithContext(ctx).Where("id = ?", id).Take(&in).Error; err != nil {
		return nil, mapError(err, "integration")
	}
	return &in, nil
}

// ConnectedIntegrationIDs lists integrations that are connected, for the
// periodic sync.
func (d *DB) ConnectedIntegrationIDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := d.Gorm.WithContext(ctx).Model(&Integration{}).Where("status = ?", "connected").Order("id").Pluck("id", &ids).Error
	return ids, mapError(err, "integrations")
}
