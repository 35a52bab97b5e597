package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SatelliteBatch records a batch an Ingestion Satellite pushed, so that the
// same batch pushed again (a retry after a lost answer) is answered from
// here instead of being applied twice.
type SatelliteBatch struct {
	IntegrationID string    `gorm:"column:integration_id;primaryKey"`
	BatchID       string    `gorm:"column:batch_id;primaryKey"`
	Digest        string    `gorm:"column:digest"`
	Result        string    `gorm:"column:result"` // JSON
	ReceivedAt    time.Time `gorm:"column:received_at"`
}

func (SatelliteBatch) TableName() string { return "satellite_batches" }

func (b *SatelliteBatch) AfterFind(*gorm.DB) error { b.ReceivedAt = normTime(b.ReceivedAt); return nil }

// SatelliteContact is a satellite's last contact with the service.
type SatelliteContact struct {
	IntegrationID string     `gorm:"column:integration_id;primaryKey"`
	ContactAt     time.Time  `gorm:"column:contact_at"`
	HeartbeatAt   *time.Time `gorm:"column:heartbeat_at"`
	Heartbeat     *string    `gorm:"column:heartbeat"` // JSON
	BatchAt       *time.Time `gorm:"column:batch_at"`
	Batches       int64      `gorm:"column:batches"`
}

func (SatelliteContact) TableName() string { return "satellite_contacts" }

func (c *SatelliteContact) AfterFind(*gorm.DB) error {
	c.ContactAt, c.HeartbeatAt, c.BatchAt = normTime(c.ContactAt), normTimePtr(c.HeartbeatAt), normTimePtr(c.BatchAt)
	return nil
}

// GetSatelliteBatch returns a recorded batch, or NotFound.
func (d *DB) GetSatelliteBatch(ctx context.Context, integrationID, batchID string) (*SatelliteBatch, error) {
	var b SatelliteBatch
	if err := d.Gorm.WithContext(ctx).Where("integration_id = ? AND batch_id = ?", integrationID, batchID).Take(&b).Error; err != nil {
		return nil, mapError(err, "satellite batch")
	}
	return &b, nil
}

// InsertSatelliteBatch records a batch; one already recorded is a Conflict.
// Inside the transaction that applies the batch it goes first: a
// concurrent push of the same batch then waits on the primary key and
// fails instead of writing everything a second time.
func (d *DB) InsertSatelliteBatch(ctx context.Context, b *SatelliteBatch) error {
	b.ReceivedAt = normTime(b.ReceivedAt)
	return mapError(d.Gorm.WithContext(ctx).Create(b).Error, "satellite batch")
}

// SetSatelliteBatchResult stores what applying a recorded batch wrote.
func (d *DB) SetSatelliteBatchResult(ctx context.Context, integrationID, batchID, result string) error {
	return mapError(d.Gorm.WithContext(ctx).Model(&SatelliteBatch{}).Where("integration_id = ? AND batch_id = ?", integrationID, batchID).
		Update("result", result).Error, "satellite batch")
}

// TouchSatellite records a contact at `at`: a heartbeat (its JSON) when
// heartbeat is non-nil, otherwise a batch.
func (d *DB) TouchSatellite(ctx context.Context, integrationID string, at time.Time, heartbeat *string) error {
	at = normTime(at)
	row := SatelliteContact{IntegrationID: integrationID, ContactAt: at}
	set := map[string]any{"contact_at": at}
	if heartbeat != nil {
		row.HeartbeatAt, row.Heartbeat = &at, heartbeat
		set["heartbeat_at"], set["heartbeat"] = at, *heartbeat
	} else {
		row.BatchAt, row.Batches = &at, 1
		set["batch_at"] = at
		set["batches"] = gorm.Expr("satellite_contacts.batches + 1")
	}
	return mapError(d.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "integration_id"}},
		DoUpdates: clause.Assignments(set),
	}).Create(&row).Error, "satellite contact")
}

// SatelliteContactOf returns an integration's satellite contact, or
// NotFound when no satellite has reported.
func (d *DB) SatelliteContactOf(ctx context.Context, integrationID string) (*SatelliteContact, error) {
	var c SatelliteContact
	if err := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID).Take(&c).Error; err != nil {
		return nil, mapError(err, "satellite contact")
	}
	return &c, nil
}
