package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// JiraIssue is one ingested issue. Pointer fields are NULL when Jira has no
// value or the field is excluded.
type JiraIssue struct {
	IntegrationID     string     `gorm:"column:integration_id;primaryKey"`
	IssueID           int64      `gorm:"column:issue_id;primaryKey;autoIncrement:false"`
	Key               string     `gorm:"column:key"`
	ProjectKey        string     `gorm:"column:project_key"`
	ProjectID         string     `gorm:"column:project_id"`
	IssueType         string     `gorm:"column:issue_type"`
	Status            string     `gorm:"column:status"`
	StatusCategory    string     `gorm:"column:status_category"`
	Priority          *string    `gorm:"column:priority"`
	AssigneeAccountID *string    `gorm:"column:assignee_account_id"`
	ReporterAccountID *string    `gorm:"column:reporter_account_id"`
	CreatorAccountID  *string    `gorm:"column:creator_account_id"`
	Summary           *string    `gorm:"column:summary"`
	Description       *string    `gorm:"column:description"`
	Created           time.Time  `gorm:"column:created"`
	Updated           time.Time  `gorm:"column:updated"`
	Resolved          *time.Time `gorm:"column:resolved"`
	DueDate           *string    `gorm:"column:due_date"`
	DueAt             *time.Time `gorm:"column:due_at"`
	Components        string     `gorm:"column:components"`
	Labels            string     `gorm:"column:labels"`
	FixVersions       string     `gorm:"column:fix_versions"`
	Sprint            *string    `gorm:"column:sprint"`
	ParentKey         *string    `gorm:"column:parent_key"`
	StoryPoints       *float64   `gorm:"column:story_points"`
	Fields            string     `gorm:"column:fields"`
	SyncedAt          time.Time  `gorm:"column:synced_at"`
}

func (JiraIssue) TableName() string { return "jira_issues" }

func (i *JiraIssue) AfterFind(*gorm.DB) error {
	i.Created, i.Updated, i.SyncedAt = normTime(i.Created), normTime(i.Updated), normTime(i.SyncedAt)
	i.Resolved, i.DueAt = normTimePtr(i.Resolved), normTimePtr(i.DueAt)
	return nil
}

// JiraTransition is a status change from an issue's changelog.
type JiraTransition struct {
	IntegrationID   string    `gorm:"column:integration_id;primaryKey"`
	IssueID         int64     `gorm:"column:issue_id;primaryKey;autoIncrement:false"`
	HistoryID       string    `gorm:"column:history_id;primaryKey"`
	Item            int       `gorm:"column:item;primaryKey;autoIncrement:false"`
	FromStatus      *string   `gorm:"column:from_status"`
	ToStatus        *string   `gorm:"column:to_status"`
	FromStatusID    *string   `gorm:"column:from_status_id"`
	ToStatusID      *string   `gorm:"column:to_status_id"`
	AuthorAccountID *string   `gorm:"column:author_account_id"`
	At              time.Time `gorm:"column:at"`
}

func (JiraTransition) TableName() string { return "jira_transitions" }

func (t *JiraTransition) AfterFind(*gorm.DB) error { t.At = normTime(t.At); return nil }

// JiraFieldChange is any other changelog item.
type JiraFieldChange struct {
	IntegrationID   string    `gorm:"column:integration_id;primaryKey"`
	IssueID         int64     `gorm:"column:issue_id;primaryKey;autoIncrement:false"`
	HistoryID       string    `gorm:"column:history_id;primaryKey"`
	Item            int       `gorm:"column:item;primaryKey;autoIncrement:false"`
	Field           string    `gorm:"column:field"`
	FieldID         *string   `gorm:"column:field_id"`
	FromValue       *string   `gorm:"column:from_value"`
	FromString      *string   `gorm:"column:from_string"`
	ToValue         *string   `gorm:"column:to_value"`
	ToString        *string   `gorm:"column:to_string"`
	AuthorAccountID *string   `gorm:"column:author_account_id"`
	At              time.Time `gorm:"column:at"`
}

func (JiraFieldChange) TableName() string { return "jira_field_changes" }

// JiraComment is a comment; Body is NULL when comments are excluded.
type JiraComment struct {
	IntegrationID   string    `gorm:"column:integration_id;primaryKey"`
	IssueID         int64     `gorm:"column:issue_id;primaryKey;autoIncrement:false"`
	CommentID       string    `gorm:"column:comment_id;primaryKey"`
	AuthorAccountID *string   `gorm:"column:author_account_id"`
	Body            *string   `gorm:"column:body"`
	Created         time.Time `gorm:"column:created"`
	Updated         time.Time `gorm:"column:updated"`
}

func (JiraComment) TableName() string { return "jira_comments" }

func (c *JiraComment) AfterFind(*gorm.DB) error {
	c.Created, c.Updated = normTime(c.Created), normTime(c.Updated)
	return nil
}

// JiraUser is a Jira account the data references. Email is NULL, never
// "", when Jira shows none.
type JiraUser struct {
	IntegrationID string    `gorm:"column:integration_id;primaryKey"`
	AccountID     string    `gorm:"column:account_id;primaryKey"`
	DisplayName   string    `gorm:"column:display_name"`
	Email         *string   `gorm:"column:email"`
	Active        bool      `gorm:"column:active"`
	TimeZone      *string   `gorm:"column:time_zone"`
	AccountType   *string   `gorm:"column:account_type"`
	UpdatedAt     time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (JiraUser) TableName() string { return "jira_users" }

// SyncRun records one sync of an integration.
type SyncRun struct {
	ID            string     `gorm:"column:id;primaryKey"`
	IntegrationID string     `gorm:"column:integration_id"`
	Mode          string     `gorm:"column:mode"`
	State         string     `gorm:"column:state"`
	StartedAt     time.Time  `gorm:"column:started_at"`
	FinishedAt    *time.Time `gorm:"column:finished_at"`
	Requests      int        `gorm:"column:requests"`
	Pages         int        `gorm:"column:pages"`
	Issues        int        `gorm:"column:issues"`
	Transitions   int        `gorm:"column:transitions"`
	Comments      int        `gorm:"column:comments"`
	Users         int        `gorm:"column:users"`
	Deleted       int        `gorm:"column:deleted"`
	Error         *string    `gorm:"column:error"`
}

func (SyncRun) TableName() string { return "sync_runs" }

func (r *SyncRun) AfterFind(*gorm.DB) error {
	r.StartedAt, r.FinishedAt = normTime(r.StartedAt), normTimePtr(r.FinishedAt)
	return nil
}

// SyncCheckpoint is where a sync partition resumes.
type SyncCheckpoint struct {
	IntegrationID string    `gorm:"column:integration_id;primaryKey"`
	Partition     string    `gorm:"column:partition;primaryKey"`
	Position      string    `gorm:"column:position"`
	UpdatedAt     time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (SyncCheckpoint) TableName() string { return "sync_checkpoints" }

// WebhookEvent is a received Jira webhook, reduced to what changed.
type WebhookEvent struct {
	ID            int64      `gorm:"column:id;primaryKey"`
	ClientKey     string     `gorm:"column:client_key"`
	Event         string     `gorm:"column:event"`
	IssueID       *int64     `gorm:"column:issue_id"`
	IssueKey      *string    `gorm:"column:issue_key"`
	JiraTimestamp *int64     `gorm:"column:jira_timestamp"`
	ReceivedAt    time.Time  `gorm:"column:received_at"`
	ProcessedAt   *time.Time `gorm:"column:processed_at"`
	Attempts      int        `gorm:"column:attempts"`
	Error         *string    `gorm:"column:error"`
}

func (WebhookEvent) TableName() string { return "webhook_events" }

// IssueBatch is one page of transformed issues with their children.
type IssueBatch struct {
	Issues       []JiraIssue
	Transitions  []JiraTransition
	FieldChanges []JiraFieldChange
	Comments     []JiraComment
}

// issueColumns are overwritten by a newer version of an issue.
var issueColumns = []string{"key", "project_key", "project_id", "issue_type", "status", "status_category", "priority",
	"assignee_account_id", "reporter_account_id", "creator_account_id", "summary", "description", "created", "updated",
	"resolved", "due_date", "due_at", "components", "labels", "fix_versions", "sprint", "parent_key", "story_points",
	"fields", "synced_at"}

// insertBatch keeps multi-row INSERTs under SQLite's and PostgreSQL's
// parameter limits while making few round trips.
const insertBatch = 500

// WriteIssues stores a batch and, in the same transaction, the checkpoint
// that follows it (nil for none), so a crash never separates the two. An
// issue whose stored version is newer than the incoming one is left alone
// (with its children): out-of-order pages and webhooks cannot go back in
// time. It returns how many issues were written.
func (d *DB) WriteIssues(ctx context.Context, integrationID string, b *IssueBatch, cp *SyncCheckpoint) (int, error) {
	written := 0
	err := d.Tx(ctx, func(tx *DB) error {
		g := tx.Gorm.WithContext(ctx)
		keep, err := tx.newerOrEqual(ctx, integrationID, b.Issues)
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(keep))
		issues := make([]JiraIssue, 0, len(keep))
		for i := range b.Issues {
			if keep[b.Issues[i].IssueID] {
				iss := b.Issues[i]
				iss.Created, iss.Updated, iss.SyncedAt = normTime(iss.Created), normTime(iss.Updated), normTime(iss.SyncedAt)
				iss.Resolved, iss.DueAt = normTimePtr(iss.Resolved), normTimePtr(iss.DueAt)
				issues = append(issues, iss)
				ids = append(ids, iss.IssueID)
			}
		}
		if len(issues) > 0 {
			for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}} {
				if err := g.Where("integration_id = ? AND issue_id IN ?", integrationID, ids).Delete(m).Error; err != nil {
					return mapError(err, "issue children")
				}
			}
			if err := g.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "integration_id"}, {Name: "issue_id"}},
				DoUpdates: clause.AssignmentColumns(issueColumns),
			}).CreateInBatches(issues, insertBatch/len(issueColumns)*10).Error; err != nil {
				return mapError(err, "issues")
			}
			if err := insertKept(g, b.Transitions, keep, func(t JiraTransition) int64 { return t.IssueID }); err != nil {
				return err
			}
			if err := insertKept(g, b.FieldChanges, keep, func(t JiraFieldChange) int64 { return t.IssueID }); err != nil {
				return err
			}
			if err := insertKept(g, b.Comments, keep, func(t JiraComment) int64 { return t.IssueID }); err != nil {
				return err
			}
		}
		written = len(issues)
		if cp != nil {
			return tx.SaveCheckpoint(ctx, cp)
		}
		return nil
	})
	return written, err
}

func insertKept[T any](g *gorm.DB, rows []T, keep map[int64]bool, issueOf func(T) int64) error {
	out := make([]T, 0, len(rows))
	for _, r := range rows {
		if keep[issueOf(r)] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	// Children of one issue can repeat on a retried page; the first wins.
	return mapError(g.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(out, insertBatch).Error, "issue children")
}

// newerOrEqual returns which incoming issues are at least as new as what
// is stored (or not stored at all).
func (d *DB) newerOrEqual(ctx context.Context, integrationID string, in []JiraIssue) (map[int64]bool, error) {
	keep := make(map[int64]bool, len(in))
	if len(in) == 0 {
		return keep, nil
	}
	ids := make([]int64, len(in))
	for i, iss := range in {
		ids[i] = iss.IssueID
		keep[iss.IssueID] = true
	}
	var stored []struct {
		IssueID int64
		Updated time.Time
	}
	if err := d.Gorm.WithContext(ctx).Table("jira_issues").Select("issue_id, updated").
		Where("integration_id = ? AND issue_id IN ?", integrationID, ids).Scan(&stored).Error; err != nil {
		return nil, mapError(err, "issues")
	}
	incoming := make(map[int64]time.Time, len(in))
	for _, iss := range in {
		incoming[iss.IssueID] = normTime(iss.Updated)
	}
	for _, s := range stored {
		if incoming[s.IssueID].Before(normTime(s.Updated)) {
			keep[s.IssueID] = false
		}
	}
	return keep, nil
}

// DeleteIssues removes issues (and their children) by id.
func (d *DB) DeleteIssues(ctx context.Context, integrationID string, ids []int64) (int, error) {
	n := 0
	for start := 0; start < len(ids); start += insertBatch {
		chunk := ids[start:min(start+insertBatch, len(ids))]
		err := d.Tx(ctx, func(tx *DB) error {
			g := tx.Gorm.WithContext(ctx)
			// Children first: SQLite enforces the cascade only with
			// foreign_keys on; deleting explicitly works either way.
			for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}} {
				if err := g.Where("integration_id = ? AND issue_id IN ?", integrationID, chunk).Delete(m).Error; err != nil {
					return mapError(err, "issue children")
				}
			}
			res := g.Where("integration_id = ? AND issue_id IN ?", integrationID, chunk).Delete(&JiraIssue{})
			n += int(res.RowsAffected)
			return mapError(res.Error, "issues")
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// IssueIDsAfter pages through stored issue ids in ascending order.
func (d *DB) IssueIDsAfter(ctx context.Context, integrationID string, after int64, limit int) ([]int64, error) {
	var ids []int64
	err := d.Gorm.WithContext(ctx).Model(&JiraIssue{}).Where("integration_id = ? AND issue_id > ?", integrationID, after).
		Order("issue_id").Limit(limit).Pluck("issue_id", &ids).Error
	return ids, mapError(err, "issues")
}

// UpsertUsers writes users; a later write replaces an earlier one.
func (d *DB) UpsertUsers(ctx context.Context, users []JiraUser) error {
	if len(users) == 0 {
		return nil
	}
	now := normTime(d.now())
	for i := range users {
		users[i].UpdatedAt = now
		if users[i].Email != nil && *users[i].Email == "" {
			users[i].Email = nil
		}
	}
	return mapError(d.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "integration_id"}, {Name: "account_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"display_name", "email", "active", "time_zone", "account_type", "updated_at"}),
	}).CreateInBatches(users, insertBatch).Error, "users")
}

// Checkpoints returns an integration's checkpoints by partition.
func (d *DB) Checkpoints(ctx context.Context, integrationID string) (map[string]string, error) {
	var rows []SyncCheckpoint
	if err := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID).Find(&rows).Error; err != nil {
		return nil, mapError(err, "checkpoints")
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Partition] = r.Position
	}
	return out, nil
}

// SaveCheckpoint upserts one checkpoint.
func (d *DB) SaveCheckpoint(ctx context.Context, cp *SyncCheckpoint) error {
	cp.UpdatedAt = normTime(d.now())
	return mapError(d.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "integration_id"}, {Name: "partition"}},
		DoUpdates: clause.AssignmentColumns([]string{"position", "updated_at"}),
	}).Create(cp).Error, "checkpoint")
}

// DeleteCheckpoints removes an integration's checkpoints whose partition
// starts with prefix ("" for all).
func (d *DB) DeleteCheckpoints(ctx context.Context, integrationID, prefix string) error {
	q := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID)
	if prefix != "" {
		q = q.Where("partition LIKE ?", prefix+"%")
	}
	return mapError(q.Delete(&SyncCheckpoint{}).Error, "checkpoints")
}

// StartRun records a sync's start.
func (d *DB) StartRun(ctx context.Context, r *SyncRun) error {
	r.StartedAt = normTime(r.StartedAt)
	return mapError(d.Gorm.WithContext(ctx).Create(r).Error, "sync run")
}

// FinishRun records a sync's outcome and counts.
func (d *DB) FinishRun(ctx context.Context, r *SyncRun) error {
	r.FinishedAt = normTimePtr(r.FinishedAt)
	return mapError(d.Gorm.WithContext(ctx).Model(&SyncRun{}).Where("id = ?", r.ID).
		Select("state", "finished_at", "requests", "pages", "issues", "transitions", "comments", "users", "deleted", "error").
		Updates(r).Error, "sync run")
}

// LatestRun returns an integration's newest sync run, or NotFound.
func (d *DB) LatestRun(ctx context.Context, integrationID string) (*SyncRun, error) {
	var r SyncRun
	err := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID).Order("started_at DESC, id DESC").Take(&r).Error
	if err != nil {
		return nil, mapError(err, "sync run")
	}
	return &r, nil
}

// LastSucceededRun returns the newest successful run, or NotFound.
func (d *DB) LastSucceededRun(ctx context.Context, integrationID string) (*SyncRun, error) {
	var r SyncRun
	err := d.Gorm.WithContext(ctx).Where("integration_id = ? AND state = ?", integrationID, "succeeded").
		Order("started_at DESC, id DESC").Take(&r).Error
	if err != nil {
		return nil, mapError(err, "sync run")
	}
	return &r, nil
}

// InsertWebhookEvent records a received webhook.
func (d *DB) InsertWebhookEvent(ctx context.Context, e *WebhookEvent) error {
	e.ReceivedAt = normTime(e.ReceivedAt)
	return mapError(d.Gorm.WithContext(ctx).Create(e).Error, "webhook event")
}

// GetWebhookEvent returns one event or NotFound.
func (d *DB) GetWebhookEvent(ctx context.Context, id int64) (*WebhookEvent, error) {
	var e WebhookEvent
	if err := d.Gorm.WithContext(ctx).Where("id = ?", id).Take(&e).Error; err != nil {
		return nil, mapError(err, "webhook event")
	}
	return &e, nil
}

// PendingWebhookEvents returns unprocessed events received before `before`.
func (d *DB) PendingWebhookEvents(ctx context.Context, before time.Time, limit int) ([]WebhookEvent, error) {
	var out []WebhookEvent
	err := d.Gorm.WithContext(ctx).Where("processed_at IS NULL AND received_at < ?", normTime(before)).Order("id").Limit(limit).Find(&out).Error
	return out, mapError(err, "webhook events")
}

// FinishWebhookEvent marks an event processed (err nil) or records a failed
// attempt.
func (d *DB) FinishWebhookEvent(ctx context.Context, id int64, at time.Time, failure error) error {
	set := map[string]any{"attempts": gorm.Expr("attempts + 1")}
	if failure == nil {
		set["processed_at"], set["error"] = normTime(at), nil
	} else {
		set["error"] = failure.Error()
	}
	return mapError(d.Gorm.WithContext(ctx).Model(&WebhookEvent{}).Where("id = ?", id).Updates(set).Error, "webhook event")
}

// IssueFilter narrows a listing of issues.
type IssueFilter struct {
	Project     string
	Status      string
	UpdatedFrom *time.Time
	UpdatedTo   *time.Time
}

// ListIssues pages through an integration's issues by id.
func (d *DB) ListIssues(ctx context.Context, integrationID string, f IssueFilter, after int64, limit int) ([]JiraIssue, error) {
	q := d.Gorm.WithContext(ctx).Where("integration_id = ? AND issue_id > ?", integrationID, after)
	if f.Project != "" {
		q = q.Where("project_key = ?", f.Project)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.UpdatedFrom != nil {
		q = q.Where("updated >= ?", normTime(*f.UpdatedFrom))
	}
	if f.UpdatedTo != nil {
		q = q.Where("updated < ?", normTime(*f.UpdatedTo))
	}
	var out []JiraIssue
	err := q.Order("issue_id").Limit(limit).Find(&out).Error
	return out, mapError(err, "issues")
}

// IssueByKey returns one issue with its transitions and comments.
func (d *DB) IssueByKey(ctx context.Context, integrationID, key string) (*JiraIssue, []JiraTransition, []JiraComment, error) {
	var is JiraIssue
	g := d.Gorm.WithContext(ctx)
	if err := g.Where("integration_id = ? AND key = ?", integrationID, key).Take(&is).Error; err != nil {
		return nil, nil, nil, mapError(err, "issue")
	}
	var tr []JiraTransition
	if err := g.Where("integration_id = ? AND issue_id = ?", integrationID, is.IssueID).Order("at, history_id, item").Find(&tr).Error; err != nil {
		return nil, nil, nil, mapError(err, "transitions")
	}
	var cs []JiraComment
	if err := g.Where("integration_id = ? AND issue_id = ?", integrationID, is.IssueID).Order("created, comment_id").Find(&cs).Error; err != nil {
		return nil, nil, nil, mapError(err, "comments")
	}
	return &is, tr, cs, nil
}

// ListUsers pages through an integration's users by account id.
func (d *DB) ListUsers(ctx context.Context, integrationID, after string, limit int) ([]JiraUser, error) {
	var out []JiraUser
	err := d.Gorm.WithContext(ctx).Where("integration_id = ? AND account_id > ?", integrationID, after).
		Order("account_id").Limit(limit).Find(&out).Error
	return out, mapError(err, "users")
}

// CountIngested returns how many issues, transitions, comments and users
// an integration has stored.
func (d *DB) CountIngested(ctx context.Context, integrationID string) (map[string]int64, error) {
	out := map[string]int64{}
	for name, table := range map[string]string{"issues": "jira_issues", "transitions": "jira_transitions", "comments": "jira_comments", "users": "jira_users"} {
		var n int64
		if err := d.Gorm.WithContext(ctx).Table(table).Where("integration_id = ?", integrationID).Count(&n).Error; err != nil {
			return nil, mapError(err, table)
		}
		out[name] = n
	}
	return out, nil
}

// PurgeExpired deletes the ingested data of integrations whose installation
// was uninstalled longer ago than the retention (purge_after passed), and
// clears purge_after so each is purged once. It returns how many
// integrations were purged.
func (d *DB) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	var keys []string
	if err := d.Gorm.WithContext(ctx).Model(&Installation{}).Where("state = ? AND purge_after IS NOT NULL AND purge_after <= ?",
		StateUninstalled, normTime(now)).Pluck("client_key", &keys).Error; err != nil {
		return 0, mapError(err, "installations")
	}
	purged := 0
	for _, ck := range keys {
		err := d.Tx(ctx, func(tx *DB) error {
			g := tx.Gorm.WithContext(ctx)
			var ids []string
			if err := g.Model(&Integration{}).Where("client_key = ?", ck).Pluck("id", &ids).Error; err != nil {
				return mapError(err, "integrations")
			}
			for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}, &JiraIssue{}, &JiraUser{}, &SyncCheckpoint{}} {
				if len(ids) > 0 {
					if err := g.Where("integration_id IN ?", ids).Delete(m).Error; err != nil {
						return mapError(err, "purge")
					}
				}
			}
			if err := g.Where("client_key = ?", ck).Delete(&ConnectKey{}).Error; err != nil {
				return mapError(err, "purge")
			}
			if err := g.Where("client_key = ?", ck).Delete(&WebhookEvent{}).Error; err != nil {
				return mapError(err, "purge")
			}
			return mapError(g.Model(&Installation{}).Where("client_key = ?", ck).Update("purge_after", nil).Error, "installation")
		})
		if err != nil {
			return purged, err
		}
		purged++
	}
	return purged, nil
}

// StaleWebhookEventIDs lists unprocessed events received before `before`:
// their job was never enqueued (a crash between commit and enqueue).
func (d *DB) StaleWebhookEventIDs(ctx context.Context, before time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := d.Gorm.WithContext(ctx).Model(&WebhookEvent{}).Where("processed_at IS NULL AND received_at < ? AND attempts = 0", normTime(before)).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	return ids, mapError(err, "webhook events")
}
