package agent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
	"github.com/sei-io/jira-connect/internal/store"
)

// The outbox decides what to push: whatever the local database holds that
// the service has not acknowledged. Instead of a watermark in time (which
// pages written concurrently by a sync's partitions could slip under),
// every acknowledged issue is remembered with the version pushed — its
// synced_at, which the Syncer sets each time it writes the issue — so
//
//   - an issue is due when it has no acknowledgement or another version
//     (written again since), whatever order syncs and pushes run in;
//   - an issue is deleted at the service when it is acknowledged but no
//     longer stored (the sweep removed it);
//   - users are due when their content differs from the digest pushed.
//
// Acknowledgements are written only after the service answered 2xx, so a
// failed or lost push leaves everything due: nothing is lost, at worst
// something is pushed twice, which the service's idempotency by batch id
// and newer-wins upserts absorb.
//
// The tables are the satellite's own, in its local database only; they
// are created here, beside the service's schema the Syncer needs.
var outboxDDL = []string{
	`CREATE TABLE IF NOT EXISTS satellite_local_acks (
    integration_id TEXT   NOT NULL,
    issue_id       BIGINT NOT NULL,
    version        TEXT   NOT NULL,
    PRIMARY KEY (integration_id, issue_id))`,
	`CREATE TABLE IF NOT EXISTS satellite_local_user_acks (
    integration_id TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    digest         TEXT NOT NULL,
    PRIMARY KEY (integration_id, account_id))`,
}

func migrateOutbox(ctx context.Context, db *store.DB) error {
	for _, q := range outboxDDL {
		if err := db.Gorm.WithContext(ctx).Exec(q).Error; err != nil {
			return apperr.Wrap(err, apperr.Internal, "cannot create the satellite's tables")
		}
	}
	return nil
}

// Limits of a batch the outbox builds: within wire's, and small enough
// that a retry over a slow link resends little.
const (
	defaultBatchIssues = 500
	maxBatchBytes      = 8 << 20 // uncompressed JSON; wire allows 32 MiB
)

// pending is a batch with what acknowledging it records.
type pending struct {
	batch   wire.Batch
	issues  map[int64]string // issue id -> version pushed
	deleted map[int64]string // issue id -> version acknowledged before
	users   map[string]string
	kind    string // issues, deletions or users, for logs
	// truncated are issues sent with only part of their children.
	truncated []int64
	// last is the highest issue id of an issues batch.
	last int64
}

type outbox struct {
	db        *store.DB
	maxIssues int
}

// next builds the next batch due for the integration, nil when nothing
// is. Issues come first (with their children, in id order from after, so
// a pass over a large backlog does not rescan what it just pushed), then
// deletions, then users, each in a stable order, so the same local state
// always yields the same batch and the same batch id.
func (o *outbox) next(ctx context.Context, integrationID string, after int64) (*pending, error) {
	var p *pending
	err := o.db.Tx(ctx, func(tx *store.DB) error {
		// One snapshot: an issue and its children as one write left them.
		var err error
		if p, err = o.issues(ctx, tx, integrationID, after); err != nil || p != nil {
			return err
		}
		if p, err = o.deletions(ctx, tx, integrationID); err != nil || p != nil {
			return err
		}
		p, err = o.users(ctx, tx, integrationID)
		return err
	})
	if err != nil || p == nil {
		return nil, err
	}
	p.batch.BatchID = batchID(integrationID, p)
	return p, nil
}

type dueIssue struct {
	IssueID int64  `gorm:"column:issue_id"`
	Version string `gorm:"column:version"`
}

func (o *outbox) issues(ctx context.Context, tx *store.DB, integrationID string, after int64) (*pending, error) {
	var due []dueIssue
	err := tx.Gorm.WithContext(ctx).Raw(`
SELECT i.issue_id, CAST(i.synced_at AS TEXT) AS version
FROM jira_issues i
LEFT JOIN satellite_local_acks a ON a.integration_id = i.integration_id AND a.issue_id = i.issue_id
WHERE i.integration_id = ? AND i.issue_id > ? AND (a.version IS NULL OR a.version <> CAST(i.synced_at AS TEXT))
ORDER BY i.issue_id
LIMIT ?`, integrationID, after, o.maxIssues).Scan(&due).Error
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot read the issues to push")
	}
	if len(due) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(due))
	for i, d := range due {
		ids[i] = d.IssueID
	}
	g := tx.Gorm.WithContext(ctx)
	var (
		issues []store.JiraIssue
		trs    []store.JiraTransition
		fcs    []store.JiraFieldChange
		cms    []store.JiraComment
	)
	for _, q := range []struct {
		dest  any
		order string
	}{
		{&issues, "issue_id"},
		{&trs, "issue_id, history_id, item"},
		{&fcs, "issue_id, history_id, item"},
		{&cms, "issue_id, comment_id"},
	} {
		if err := g.Where("integration_id = ? AND issue_id IN ?", integrationID, ids).Order(q.order).Find(q.dest).Error; err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "cannot read the issues to push")
		}
	}
	version := make(map[int64]string, len(due))
	for _, d := range due {
		version[d.IssueID] = d.Version
	}
	kids := map[int64]*children{}
	kid := func(id int64) *children {
		if kids[id] == nil {
			kids[id] = &children{}
		}
		return kids[id]
	}
	for _, t := range trs {
		kid(t.IssueID).transitions = append(kid(t.IssueID).transitions, wireTransition(t))
	}
	for _, c := range fcs {
		kid(c.IssueID).fieldChanges = append(kid(c.IssueID).fieldChanges, wireFieldChange(c))
	}
	for _, c := range cms {
		kid(c.IssueID).comments = append(kid(c.IssueID).comments, wireComment(c))
	}

	p := &pending{kind: "issues", issues: map[int64]string{}, batch: wire.Batch{Issues: []wire.Issue{}}}
	size, nkids := 0, 0
	for _, is := range issues {
		w := wireIssue(is)
		k := kid(is.IssueID)
		n, cut := k.count(), false
		if n > wire.MaxChildren {
			// One issue with more history than a batch may carry: it
			// goes with what fits, and the logs say so. Rare enough
			// (50,000 changes to one issue) not to justify splitting an
			// issue across batches, which the protocol does not allow.
			k.truncate(wire.MaxChildren)
			n, cut = k.count(), true
		}
		b := k.bytes(w)
		if len(p.batch.Issues) > 0 && (nkids+n > wire.MaxChildren || size+b > maxBatchBytes) {
			break
		}
		p.batch.Issues = append(p.batch.Issues, w)
		p.batch.Transitions = append(p.batch.Transitions, k.transitions...)
		p.batch.FieldChanges = append(p.batch.FieldChanges, k.fieldChanges...)
		p.batch.Comments = append(p.batch.Comments, k.comments...)
		p.issues[is.IssueID] = version[is.IssueID]
		p.last = is.IssueID
		if cut {
			p.truncated = append(p.truncated, is.IssueID)
		}
		size, nkids = size+b, nkids+n
	}
	if len(p.batch.Issues) == 0 {
		// Listed as due but deleted between the two reads of this
		// transaction cannot happen; be safe anyway.
		return nil, nil
	}
	return p, nil
}

type children struct {
	transitions  []wire.Transition
	fieldChanges []wire.FieldChange
	comments     []wire.Comment
}

func (c *children) count() int { return len(c.transitions) + len(c.fieldChanges) + len(c.comments) }

// truncate keeps n children: status transitions first (what SEI's cycle
// times are made of), then comments, then other field changes.
func (c *children) truncate(n int) {
	c.transitions = c.transitions[:min(len(c.transitions), n)]
	n -= len(c.transitions)
	c.comments = c.comments[:min(len(c.comments), n)]
	n -= len(c.comments)
	c.fieldChanges = c.fieldChanges[:min(len(c.fieldChanges), n)]
}

// bytes estimates an issue's share of a batch body.
func (c *children) bytes(w wire.Issue) int {
	n := 0
	for _, v := range []any{w, c.transitions, c.fieldChanges, c.comments} {
		raw, _ := json.Marshal(v)
		n += len(raw)
	}
	return n
}

func (o *outbox) deletions(ctx context.Context, tx *store.DB, integrationID string) (*pending, error) {
	var gone []dueIssue
	err := tx.Gorm.WithContext(ctx).Raw(`
SELECT a.issue_id, a.version
FROM satellite_local_acks a
WHERE a.integration_id = ?
  AND NOT EXISTS (SELECT 1 FROM jira_issues i WHERE i.integration_id = a.integration_id AND i.issue_id = a.issue_id)
ORDER BY a.issue_id
LIMIT ?`, integrationID, wire.MaxDeleted).Scan(&gone).Error
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot read the deletions to push")
	}
	if len(gone) == 0 {
		return nil, nil
	}
	p := &pending{kind: "deletions", deleted: map[int64]string{}, batch: wire.Batch{Issues: []wire.Issue{}}}
	for _, g := range gone {
		p.batch.DeletedIssueIDs = append(p.batch.DeletedIssueIDs, g.IssueID)
		p.deleted[g.IssueID] = g.Version
	}
	return p, nil
}

func (o *outbox) users(ctx context.Context, tx *store.DB, integrationID string) (*pending, error) {
	var acks []struct {
		AccountID string `gorm:"column:account_id"`
		Digest    string `gorm:"column:digest"`
	}
	if err := tx.Gorm.WithContext(ctx).Raw(`SELECT account_id, digest FROM satellite_local_user_acks WHERE integration_id = ?`,
		integrationID).Scan(&acks).Error; err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot read the users pushed")
	}
	pushed := make(map[string]string, len(acks))
	for _, a := range acks {
		pushed[a.AccountID] = a.Digest
	}
	p := &pending{kind: "users", users: map[string]string{}, batch: wire.Batch{Issues: []wire.Issue{}}}
	for after := ""; len(p.batch.Users) < wire.MaxUsers; {
		page, err := tx.ListUsers(ctx, integrationID, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, u := range page {
			w := wire.User{AccountID: u.AccountID, DisplayName: u.DisplayName, Email: u.Email, Active: u.Active, TimeZone: u.TimeZone, AccountType: u.AccountType}
			raw, _ := json.Marshal(w)
			sum := sha256.Sum256(raw)
			d := hex.EncodeToString(sum[:16])
			if pushed[u.AccountID] == d {
				continue
			}
			if len(p.batch.Users) == wire.MaxUsers {
				break
			}
			p.batch.Users = append(p.batch.Users, w)
			p.users[u.AccountID] = d
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].AccountID
	}
	if len(p.batch.Users) == 0 {
		return nil, nil
	}
	return p, nil
}

// ack records that the service has the batch.
func (o *outbox) ack(ctx context.Context, integrationID string, p *pending) error {
	return o.db.Tx(ctx, func(tx *store.DB) error {
		g := tx.Gorm.WithContext(ctx)
		ids := sortedKeys(p.issues)
		for chunk := range slices.Chunk(ids, 400) {
			args := make([]any, 0, 3*len(chunk))
			q := "INSERT INTO satellite_local_acks (integration_id, issue_id, version) VALUES "
			for i, id := range chunk {
				if i > 0 {
					q += ", "
				}
				q += "(?, ?, ?)"
				args = append(args, integrationID, id, p.issues[id])
			}
			q += " ON CONFLICT (integration_id, issue_id) DO UPDATE SET version = excluded.version"
			if err := g.Exec(q, args...).Error; err != nil {
				return apperr.Wrap(err, apperr.Internal, "cannot record the push")
			}
		}
		for chunk := range slices.Chunk(sortedKeys(p.deleted), 400) {
			// An issue that came back meanwhile is stored again; without
			// its acknowledgement it is due again, as an issue.
			if err := g.Exec("DELETE FROM satellite_local_acks WHERE integration_id = ? AND issue_id IN ?", integrationID, chunk).Error; err != nil {
				return apperr.Wrap(err, apperr.Internal, "cannot record the push")
			}
		}
		accounts := sortedKeys(p.users)
		for chunk := range slices.Chunk(accounts, 400) {
			args := make([]any, 0, 3*len(chunk))
			q := "INSERT INTO satellite_local_user_acks (integration_id, account_id, digest) VALUES "
			for i, a := range chunk {
				if i > 0 {
					q += ", "
				}
				q += "(?, ?, ?)"
				args = append(args, integrationID, a, p.users[a])
			}
			q += " ON CONFLICT (integration_id, account_id) DO UPDATE SET digest = excluded.digest"
			if err := g.Exec(q, args...).Error; err != nil {
				return apperr.Wrap(err, apperr.Internal, "cannot record the push")
			}
		}
		return nil
	})
}

// forget drops every acknowledgement of the integration: everything
// stored is pushed again (after the local database was reset for a
// changed site, or on request).
func (o *outbox) forget(ctx context.Context, integrationID string) error {
	for _, t := range []string{"satellite_local_acks", "satellite_local_user_acks"} {
		if err := o.db.Gorm.WithContext(ctx).Exec("DELETE FROM "+t+" WHERE integration_id = ?", integrationID).Error; err != nil {
			return apperr.Wrap(err, apperr.Internal, "cannot reset the satellite's push records")
		}
	}
	return nil
}

// backlog counts what is due, for logs and heartbeats.
func (o *outbox) backlog(ctx context.Context, integrationID string) (int64, error) {
	var n int64
	err := o.db.Gorm.WithContext(ctx).Raw(`
SELECT COUNT(*) FROM jira_issues i
LEFT JOIN satellite_local_acks a ON a.integration_id = i.integration_id AND a.issue_id = i.issue_id
WHERE i.integration_id = ? AND (a.version IS NULL OR a.version <> CAST(i.synced_at AS TEXT))`, integrationID).Scan(&n).Error
	return n, err
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// batchID names a batch by its content and the local versions it
// carries: a retry of an unacknowledged batch (same local state) reuses
// the id, so the service answers it as a duplicate; new content never
// reuses one, so the service never sees an id with other content; and a
// deletion pushed again after the issue came back and went once more is
// a new batch, not a duplicate of the first deletion.
func batchID(integrationID string, p *pending) string {
	h := sha256.New()
	h.Write([]byte("sei-satellite-batch/1\x00" + integrationID + "\x00"))
	raw, _ := json.Marshal(p.batch) // BatchID is empty here
	h.Write(raw)
	for _, m := range []map[int64]string{p.issues, p.deleted} {
		for _, id := range sortedKeys(m) {
			h.Write([]byte("\x00" + strconv.FormatInt(id, 10) + "=" + m[id]))
		}
	}
	return "sat1-" + hex.EncodeToString(h.Sum(nil))[:48]
}

// Conversions from the local rows to the wire. The local rows were made
// by the same Transformer as the service's, exclusions applied.

func wireIssue(is store.JiraIssue) wire.Issue {
	w := wire.Issue{ID: is.IssueID, Key: is.Key, ProjectKey: is.ProjectKey, ProjectID: is.ProjectID, IssueType: is.IssueType,
		Status: is.Status, StatusCategory: is.StatusCategory, Priority: is.Priority, AssigneeAccountID: is.AssigneeAccountID,
		ReporterAccountID: is.ReporterAccountID, CreatorAccountID: is.CreatorAccountID, Summary: is.Summary, Description: is.Description,
		Created: is.Created.UTC(), Updated: is.Updated.UTC(), Resolved: utc(is.Resolved), DueDate: is.DueDate,
		Components: list(is.Components), Labels: list(is.Labels), FixVersions: list(is.FixVersions),
		Sprint: is.Sprint, ParentKey: is.ParentKey, StoryPoints: is.StoryPoints}
	if is.Fields != "" && is.Fields != "{}" && json.Valid([]byte(is.Fields)) {
		w.Fields = json.RawMessage(is.Fields)
	}
	return w
}

func wireTransition(t store.JiraTransition) wire.Transition {
	return wire.Transition{IssueID: t.IssueID, HistoryID: t.HistoryID, Item: t.Item, FromStatus: t.FromStatus, ToStatus: t.ToStatus,
		FromStatusID: t.FromStatusID, ToStatusID: t.ToStatusID, AuthorAccountID: t.AuthorAccountID, At: t.At.UTC()}
}

func wireFieldChange(c store.JiraFieldChange) wire.FieldChange {
	return wire.FieldChange{IssueID: c.IssueID, HistoryID: c.HistoryID, Item: c.Item, Field: c.Field, FieldID: c.FieldID,
		FromValue: c.FromValue, FromString: c.FromString, ToValue: c.ToValue, ToString: c.ToString, AuthorAccountID: c.AuthorAccountID, At: c.At.UTC()}
}

func wireComment(c store.JiraComment) wire.Comment {
	return wire.Comment{IssueID: c.IssueID, CommentID: c.CommentID, AuthorAccountID: c.AuthorAccountID, Body: c.Body,
		Created: c.Created.UTC(), Updated: c.Updated.UTC()}
}

// list reads a stored JSON list ("[]" when empty or excluded).
func list(raw string) []string {
	var out []string
	if json.Unmarshal([]byte(raw), &out) != nil || len(out) == 0 {
		return nil
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
