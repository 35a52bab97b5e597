package store

import (
	"context"
	"time"
)

// MissingUserIDs lists account ids that an integration's stored issues,
// transitions, field changes or comments reference but jira_users lacks.
// A sync that resumed from checkpoints never saw the users of the pages
// before its checkpoint; this is how it finds them without re-reading.
func (d *DB) MissingUserIDs(ctx context.Context, integrationID, after string, limit int) ([]string, error) {
	const q = `
SELECT DISTINCT account_id FROM (
    SELECT assignee_account_id AS account_id FROM jira_issues WHERE integration_id = ?
    UNION SELECT reporter_account_id FROM jira_issues WHERE integration_id = ?
    UNION SELECT creator_account_id FROM jira_issues WHERE integration_id = ?
    UNION SELECT author_account_id FROM jira_transitions WHERE integration_id = ?
    UNION SELECT author_account_id FROM jira_field_changes WHERE integration_id = ?
    UNION SELECT author_account_id FROM jira_comments WHERE integration_id = ?
) refs
WHERE account_id IS NOT NULL AND account_id > ?
  AND NOT EXISTS (SELECT 1 FROM jira_users u WHERE u.integration_id = ? AND u.account_id = refs.account_id)
ORDER BY account_id
LIMIT ?`
	var ids []string
	err := d.Gorm.WithContext(ctx).Raw(q, integrationID, integrationID, integrationID, integrationID, integrationID, integrationID,
		after, integrationID, limit).Scan(&ids).Error
	return ids, mapError(err, "users")
}

// InterruptRuns marks an integration's runs still "running" as failed: only
// one sync of an integration runs at a time, so when a new one starts, any
// other "running" row belongs to a run that died (a crash, a kill, a lost
// database) and would otherwise show as running forever.
func (d *DB) InterruptRuns(ctx context.Context, integrationID string, at time.Time) error {
	msg := "interrupted: the process running it stopped; a later run resumed from its checkpoints"
	return mapError(d.Gorm.WithContext(ctx).Model(&SyncRun{}).Where("integration_id = ? AND state = ?", integrationID, "running").
		Updates(map[string]any{"state": "failed", "finished_at": normTime(at), "error": msg}).Error, "sync runs")
}
