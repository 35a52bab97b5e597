package store

import "context"

// SetStatusIfCredentials sets an integration's status and reason only if
// its sealed credentials are still `sealed` (nil: none). A sync that met
// rejected credentials marks the integration with it; if someone
// re-authenticated meanwhile, the new credentials were not the ones
// rejected and the integration keeps its status. It reports whether the
// row changed.
func (d *DB) SetStatusIfCredentials(ctx context.Context, id string, sealed *string, status, reason string) (bool, error) {
	q := d.Gorm.WithContext(ctx).Model(&Integration{}).Where("id = ?", id)
	if sealed == nil {
		q = q.Where("credentials IS NULL")
	} else {
		q = q.Where("credentials = ?", *sealed)
	}
	res := q.Updates(map[string]any{"status": status, "status_reason": reason, "updated_at": normTime(d.now())})
	return res.RowsAffected > 0, mapError(res.Error, "integration")
}
