package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sei-io/jira-connect/internal/apperr"
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
//
// A kept issue's children replace the stored ones. Children exist only
// under a stored issue (every writer and deleter of children, all in this
// package, handles them with their issue in one transaction), so only the
// issues already stored have children to delete: a first sync deletes
// nothing. On PostgreSQL each table takes one INSERT … SELECT FROM unnest
// of column arrays, the same statement text whatever the batch size, so
// it is prepared once per connection and planned cheaply, where a
// multi-row VALUES list of thousands of parameters is a new statement to
// parse and plan for every page.
func (d *DB) WriteIssues(ctx context.Context, integrationID string, b *IssueBatch, cp *SyncCheckpoint) (int, error) {
	written := 0
	err := d.TxOnConn(ctx, func(tx *DB) error {
		issues := make([]JiraIssue, len(b.Issues))
		for i, iss := range b.Issues {
			iss.Created, iss.Updated, iss.SyncedAt = normTime(iss.Created), normTime(iss.Updated), normTime(iss.SyncedAt)
			iss.Resolved, iss.DueAt = normTimePtr(iss.Resolved), normTimePtr(iss.DueAt)
			issues[i] = iss
		}
		// One row per issue, the newest (an upsert may not touch a row
		// twice), in id order: writers lock issues in the same order.
		slices.SortStableFunc(issues, func(a, b JiraIssue) int {
			return cmp.Or(cmp.Compare(a.IssueID, b.IssueID), b.Updated.Compare(a.Updated))
		})
		issues = slices.CompactFunc(issues, func(a, b JiraIssue) bool { return a.IssueID == b.IssueID })
		var kept []JiraIssue
		var err error
		if tx.dialect == DialectPostgres {
			kept, err = tx.pgWriteIssues(ctx, integrationID, issues, b)
		} else {
			kept, err = tx.sqliteWriteIssues(ctx, integrationID, issues, b)
		}
		if err != nil {
			return err
		}
		written = len(kept)
		if written > 0 {
			// The hygiene report's projection and the Salesforce links of
			// the issues written, in the same transaction (hygiene.go).
			if err := tx.writeReportRows(ctx, integrationID, kept, b); err != nil {
				return err
			}
		}
		if cp != nil {
			return tx.SaveCheckpoint(ctx, cp)
		}
		return nil
	})
	return written, err
}

// sqliteWriteIssues reads which incoming issues are at least as new as the
// stored ones, then writes those. SQLite has one writer at a time, so the
// read and the writes cannot interleave with another writer's.
func (d *DB) sqliteWriteIssues(ctx context.Context, integrationID string, in []JiraIssue, b *IssueBatch) ([]JiraIssue, error) {
	keep, stored, err := d.newerOrEqual(ctx, integrationID, in)
	if err != nil {
		return nil, err
	}
	issues := make([]JiraIssue, 0, len(in))
	var replace []int64 // kept issues already stored: their children go
	for _, iss := range in {
		if keep[iss.IssueID] {
			issues = append(issues, iss)
			if stored[iss.IssueID] {
				replace = append(replace, iss.IssueID)
			}
		}
	}
	if len(issues) == 0 {
		return nil, nil
	}
	return issues, sqliteWriteRows(d.Gorm.WithContext(ctx), integrationID, issues, replace, b, keep)
}

func sqliteWriteRows(g *gorm.DB, integrationID string, issues []JiraIssue, replace []int64, b *IssueBatch, keep map[int64]bool) error {
	if len(replace) > 0 {
		for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}} {
			if err := g.Where("integration_id = ? AND issue_id IN ?", integrationID, replace).Delete(m).Error; err != nil {
				return mapError(err, "issue children")
			}
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
	return insertKept(g, b.Comments, keep, func(t JiraComment) int64 { return t.IssueID })
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

// pgExec runs a statement on the transaction's connection with arguments
// passed to pgx as they are (gorm would spread a slice into a list), and
// translates errors as gorm does (unique violations become Conflict).
func (d *DB) pgExec(ctx context.Context, what, sql string, args ...any) error {
	_, err := d.Gorm.Statement.ConnPool.ExecContext(ctx, sql, args...)
	return d.pgError(err, what)
}

func (d *DB) pgError(err error, what string) error {
	if err != nil {
		if t, ok := d.Gorm.Dialector.(gorm.ErrorTranslator); ok {
			err = t.Translate(err)
		}
	}
	return mapError(err, what)
}

// PostgreSQL statements of WriteIssues. Every batch uses the same text.
var (
	pgInsertIssues = `INSERT INTO jira_issues (integration_id, issue_id, key, project_key, project_id, issue_type, status,
status_category, priority, assignee_account_id, reporter_account_id, creator_account_id, summary, description, created, updated,
resolved, due_date, due_at, components, labels, fix_versions, sprint, parent_key, story_points, fields, synced_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
$10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[],
$18::text[], $19::timestamptz[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::float8[], $26::text[],
$27::timestamptz[])
ON CONFLICT (integration_id, issue_id) DO UPDATE SET ` + excludedList(issueColumns) + `
WHERE jira_issues.updated <= EXCLUDED.updated
RETURNING issue_id, xmax <> 0`
)

func excludedList(cols []string) string {
	var sb strings.Builder
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c + " = EXCLUDED." + c)
	}
	return sb.String()
}

// pgWriteIssues decides "newer wins" inside the upsert itself: the
// conflicting row is updated only when the incoming one is at least as new,
// and RETURNING names the rows written, with whether they existed (xmax is
// set on a row version made by an update). One statement instead of a
// SELECT … FOR UPDATE and an INSERT: the upsert locks each conflicting row
// (updated or not), in the order given, which is id order, so two writers
// of overlapping batches (a page and a webhook) take turns and the later
// one compares with what the earlier one wrote.
func (d *DB) pgWriteIssues(ctx context.Context, integrationID string, in []JiraIssue, b *IssueBatch) ([]JiraIssue, error) {
	if len(in) == 0 {
		return nil, nil
	}
	issues := in
	n := len(issues)
	var (
		integ                                                   = make([]string, n)
		ids                                                     = make([]int64, n)
		keys, projKeys, projIDs, types, statuses, cats          = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prio, assignee, reporter, creator, summary, description = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		created, updated, synced                                = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		resolved, dueAt                                         = make([]*time.Time, n), make([]*time.Time, n)
		dueDate, sprint, parent                                 = make([]*string, n), make([]*string, n), make([]*string, n)
		components, labels, fixVersions, fields                 = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		points                                                  = make([]*float64, n)
	)
	for i, is := range issues {
		integ[i], ids[i], keys[i], projKeys[i], projIDs[i], types[i] = is.IntegrationID, is.IssueID, is.Key, is.ProjectKey, is.ProjectID, is.IssueType
		statuses[i], cats[i], prio[i] = is.Status, is.StatusCategory, is.Priority
		assignee[i], reporter[i], creator[i] = is.AssigneeAccountID, is.ReporterAccountID, is.CreatorAccountID
		summary[i], description[i] = is.Summary, is.Description
		created[i], updated[i], resolved[i], dueDate[i], dueAt[i] = is.Created, is.Updated, is.Resolved, is.DueDate, is.DueAt
		components[i], labels[i], fixVersions[i], sprint[i], parent[i] = is.Components, is.Labels, is.FixVersions, is.Sprint, is.ParentKey
		points[i], fields[i], synced[i] = is.StoryPoints, is.Fields, is.SyncedAt
	}
	keep := make(map[int64]bool, n)
	var replace []int64 // written issues that existed: their children go
	rows, err := d.Gorm.Statement.ConnPool.QueryContext(ctx, pgInsertIssues, integ, ids, keys, projKeys, projIDs, types, statuses, cats, prio,
		assignee, reporter, creator, summary, description, created, updated, resolved, dueDate, dueAt,
		components, labels, fixVersions, sprint, parent, points, fields, synced)
	if err != nil {
		return nil, d.pgError(err, "issues")
	}
	for rows.Next() {
		var id int64
		var existed bool
		if err := rows.Scan(&id, &existed); err != nil {
			rows.Close()
			return nil, d.pgError(err, "issues")
		}
		keep[id] = true
		if existed {
			replace = append(replace, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, d.pgError(err, "issues")
	}
	if len(replace) > 0 {
		for _, table := range []string{"jira_transitions", "jira_field_changes", "jira_comments"} {
			if err := d.pgExec(ctx, "issue children", "DELETE FROM "+table+" WHERE integration_id = $1 AND issue_id = ANY($2::bigint[])",
				integrationID, replace); err != nil {
				return nil, err
			}
		}
	}

	// Children of one issue can repeat on a retried page; the first wins.
	// Duplicates are dropped here, so the children are a plain COPY: a
	// kept issue has no stored children (a new issue has none, a replaced
	// one's were deleted above), and an ON CONFLICT probe per row was a
	// tenth of PostgreSQL's work in a sync.
	type historyItem struct {
		issue int64
		id    string
		item  int
	}
	if tr := kept(b.Transitions, keep, func(t *JiraTransition) int64 { return t.IssueID },
		func(t *JiraTransition) historyItem { return historyItem{t.IssueID, t.HistoryID, t.Item} }); len(tr) > 0 {
		err := copyRows(ctx, d, "jira_transitions", transitionCols, tr, func(c *copyBuf, t *JiraTransition) {
			c.tuple(10)
			c.text(t.IntegrationID)
			c.int8(t.IssueID)
			c.text(t.HistoryID)
			c.int4(t.Item)
			c.textOrNull(t.FromStatus)
			c.textOrNull(t.ToStatus)
			c.textOrNull(t.FromStatusID)
			c.textOrNull(t.ToStatusID)
			c.textOrNull(t.AuthorAccountID)
			c.timestamptz(t.At)
		})
		if err != nil {
			return nil, err
		}
	}
	if fc := kept(b.FieldChanges, keep, func(c *JiraFieldChange) int64 { return c.IssueID },
		func(c *JiraFieldChange) historyItem { return historyItem{c.IssueID, c.HistoryID, c.Item} }); len(fc) > 0 {
		err := copyRows(ctx, d, "jira_field_changes", fieldChangeCols, fc, func(cb *copyBuf, c *JiraFieldChange) {
			cb.tuple(12)
			cb.text(c.IntegrationID)
			cb.int8(c.IssueID)
			cb.text(c.HistoryID)
			cb.int4(c.Item)
			cb.text(c.Field)
			cb.textOrNull(c.FieldID)
			cb.textOrNull(c.FromValue)
			cb.textOrNull(c.FromString)
			cb.textOrNull(c.ToValue)
			cb.textOrNull(c.ToString)
			cb.textOrNull(c.AuthorAccountID)
			cb.timestamptz(c.At)
		})
		if err != nil {
			return nil, err
		}
	}
	type commentKey struct {
		issue int64
		id    string
	}
	if cs := kept(b.Comments, keep, func(c *JiraComment) int64 { return c.IssueID },
		func(c *JiraComment) commentKey { return commentKey{c.IssueID, c.CommentID} }); len(cs) > 0 {
		err := copyRows(ctx, d, "jira_comments", commentCols, cs, func(cb *copyBuf, c *JiraComment) {
			cb.tuple(7)
			cb.text(c.IntegrationID)
			cb.int8(c.IssueID)
			cb.text(c.CommentID)
			cb.textOrNull(c.AuthorAccountID)
			cb.textOrNull(c.Body)
			cb.timestamptz(c.Created)
			cb.timestamptz(c.Updated)
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]JiraIssue, 0, len(keep))
	for _, is := range issues {
		if keep[is.IssueID] {
			out = append(out, is)
		}
	}
	return out, nil
}

// Columns of the children's COPY, in the order copyRows' encode functions
// write them.
var (
	transitionCols  = "integration_id, issue_id, history_id, item, from_status, to_status, from_status_id, to_status_id, author_account_id, at"
	fieldChangeCols = "integration_id, issue_id, history_id, item, field, field_id, from_value, from_string, to_value, to_string, author_account_id, at"
	commentCols     = "integration_id, issue_id, comment_id, author_account_id, body, created, updated"
)

// copyRows writes rows with COPY on the transaction's connection, which
// WriteIssues takes with DB.TxOnConn (a caller's own transaction must come
// from TxOnConn too). COPY inserts in
// batches (heap_multi_insert) and skips the executor's per-row work that an
// INSERT … SELECT FROM unnest pays. The rows are encoded here into COPY's
// binary format (copyBuf): the columns are text, bigint, integer and
// timestamptz only, and pgx's generic encoding (a plan lookup per value,
// and a statement to learn the column types first) cost more than the
// encoding itself.
func copyRows[T any](ctx context.Context, d *DB, table, cols string, rows []*T, encode func(*copyBuf, *T)) error {
	if d.conn == nil {
		return apperr.New(apperr.Internal, "store: WriteIssues on PostgreSQL inside a transaction needs DB.TxOnConn")
	}
	cb := copyBufs.Get().(*copyBuf)
	defer func() {
		if cap(cb.b) <= maxPooledCopy { // a long tail's page is left to the collector
			copyBufs.Put(cb)
		}
	}()
	cb.start()
	for _, r := range rows {
		encode(cb, r)
	}
	cb.finish()
	_, err := d.withPgx(func(c *pgx.Conn) error {
		_, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(cb.b), "COPY "+table+" ("+cols+") FROM STDIN (FORMAT binary)")
		return err
	})
	return d.pgError(err, "issue children")
}

// copyBuf is a COPY … (FORMAT binary) stream being written: a header,
// tuples of length-prefixed big-endian values, a trailer.
type copyBuf struct{ b []byte }

var copyBufs = sync.Pool{New: func() any { return &copyBuf{} }}

const maxPooledCopy = 4 << 20

// pgEpochMicros is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in Unix
// microseconds: binary timestamptz values count microseconds from it.
const pgEpochMicros = 946684800 * 1_000_000

func (c *copyBuf) start() {
	c.b = append(c.b[:0], "PGCOPY\n\xff\r\n\x00"...)
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // flags
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // header extension length
}

func (c *copyBuf) finish() { c.b = binary.BigEndian.AppendUint16(c.b, 0xffff) }

// tuple starts a row of n columns.
func (c *copyBuf) tuple(n int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(n)) }

func (c *copyBuf) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

func (c *copyBuf) textOrNull(s *string) {
	if s == nil {
		c.b = binary.BigEndian.AppendUint32(c.b, 0xffffffff) // -1: NULL
		return
	}
	c.text(*s)
}

func (c *copyBuf) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

func (c *copyBuf) int4(v int) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(int32(v)))
}

func (c *copyBuf) timestamptz(t time.Time) {
	micros := t.Unix()*1_000_000 + int64(t.Nanosecond()/1000) - pgEpochMicros
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(micros))
}

// kept returns pointers to the rows whose issue is kept, the first of
// rows with the same primary key only.
func kept[T any, K comparable](rows []T, keep map[int64]bool, issueOf func(*T) int64, keyOf func(*T) K) []*T {
	out := make([]*T, 0, len(rows))
	seen := make(map[K]struct{}, len(rows))
	for i := range rows {
		if !keep[issueOf(&rows[i])] {
			continue
		}
		k := keyOf(&rows[i])
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, &rows[i])
	}
	return out
}

// newerOrEqual returns which incoming issues are at least as new as what
// is stored (or not stored at all), and which of them are stored. SQLite
// only: PostgreSQL decides it in the upsert (pgWriteIssues).
func (d *DB) newerOrEqual(ctx context.Context, integrationID string, in []JiraIssue) (keep, stored map[int64]bool, _ error) {
	keep = make(map[int64]bool, len(in))
	stored = map[int64]bool{}
	if len(in) == 0 {
		return keep, stored, nil
	}
	ids := make([]int64, len(in))
	for i, iss := range in {
		ids[i] = iss.IssueID
		keep[iss.IssueID] = true
	}
	type row struct {
		IssueID int64
		Updated time.Time
	}
	var rows []row
	if err := d.Gorm.WithContext(ctx).Table("jira_issues").Select("issue_id, updated").
		Where("integration_id = ? AND issue_id IN ?", integrationID, ids).Scan(&rows).Error; err != nil {
		return nil, nil, mapError(err, "issues")
	}
	incoming := make(map[int64]time.Time, len(in))
	for _, iss := range in {
		incoming[iss.IssueID] = normTime(iss.Updated)
	}
	for _, s := range rows {
		stored[s.IssueID] = true
		if incoming[s.IssueID].Before(normTime(s.Updated)) {
			keep[s.IssueID] = false
		}
	}
	return keep, stored, nil
}

// DeleteIssues removes issues (and their children) by id.
func (d *DB) DeleteIssues(ctx context.Context, integrationID string, ids []int64) (int, error) {
	n := 0
	for start := 0; start < len(ids); start += insertBatch {
		chunk := ids[start:min(start+insertBatch, len(ids))]
		err := d.Tx(ctx, func(tx *DB) error {
			g := tx.Gorm.WithContext(ctx)
			if tx.dialect == DialectPostgres {
				// Issues before children, in id order, as WriteIssues
				// locks them: the same order everywhere cannot deadlock.
				if err := tx.pgExec(ctx, "issues", `SELECT 1 FROM jira_issues WHERE integration_id = $1 AND issue_id = ANY($2::bigint[])
ORDER BY issue_id FOR UPDATE`, integrationID, chunk); err != nil {
					return err
				}
			}
			// Children first: SQLite enforces the cascade only with
			// foreign_keys on; deleting explicitly works either way.
			for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}, &hygieneBase{}} {
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

// CheckpointFullWanted is the checkpoint that asks for a full sync (see
// RequestFullSync). Its position is "<request time, unix ms> <token>".
const CheckpointFullWanted = "full_wanted"

// RequestFullSync asks that the integration's next sync be full and read
// every issue again, e.g. because settings now need a field earlier syncs
// did not fetch. Dropping the incremental watermark instead would not
// survive a sync running at that moment (it writes the watermark back as it
// goes); the request stays until a full sync that saw it ends, and a sync
// that ends while it is there runs again (internal/ingest). A fresh token
// per request lets that sync remove exactly the request it served.
func (d *DB) RequestFullSync(ctx context.Context, integrationID string) error {
	var token [8]byte
	_, _ = rand.Read(token[:])
	return d.SaveCheckpoint(ctx, &SyncCheckpoint{IntegrationID: integrationID, Partition: CheckpointFullWanted,
		Position: strconv.FormatInt(d.now().UnixMilli(), 10) + " " + hex.EncodeToString(token[:])})
}

// FullSyncWantedSince returns when the full-sync request position (the
// checkpoint's value) was made; ok is false for none or an unreadable one.
func FullSyncWantedSince(position string) (at time.Time, ok bool) {
	ms, _, _ := strings.Cut(position, " ")
	v, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(v).UTC(), true
}

// ClearFullSyncRequest removes the full-sync request if it is still the
// one at position: a newer request, made while the full sync ran, stays.
func (d *DB) ClearFullSyncRequest(ctx context.Context, integrationID, position string) error {
	return mapError(d.Gorm.WithContext(ctx).Where("integration_id = ? AND partition = ? AND position = ?",
		integrationID, CheckpointFullWanted, position).Delete(&SyncCheckpoint{}).Error, "checkpoint")
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

// InsertWebhookEvents records several received webhooks in one statement
// and sets their ids.
func (d *DB) InsertWebhookEvents(ctx context.Context, events []*WebhookEvent) error {
	for _, e := range events {
		e.ReceivedAt = normTime(e.ReceivedAt)
	}
	return mapError(d.Gorm.WithContext(ctx).CreateInBatches(events, insertBatch).Error, "webhook events")
}

// FinishWebhookEventsFor marks as processed, at at, the site's pending
// events about the issue received at or before receivedBy: a read of the
// issue that began after they arrived answers them. It returns how many.
func (d *DB) FinishWebhookEventsFor(ctx context.Context, clientKey string, issueID int64, receivedBy, at time.Time) (int64, error) {
	res := d.Gorm.WithContext(ctx).Model(&WebhookEvent{}).
		Where("client_key = ? AND issue_id = ? AND processed_at IS NULL AND received_at <= ?", clientKey, issueID, normTime(receivedBy)).
		Updates(map[string]any{"processed_at": normTime(at), "error": nil})
	return res.RowsAffected, mapError(res.Error, "webhook events")
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
			for _, m := range []any{&JiraTransition{}, &JiraFieldChange{}, &JiraComment{}, &hygieneBase{}, &JiraIssue{}, &JiraUser{}, &SyncCheckpoint{}} {
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
