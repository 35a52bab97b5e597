package store_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestWriteIssuesNewerWins: an older version of an issue never overwrites a
// newer one (nor its children); an equal or newer one replaces the issue and
// all its children; within one batch the newest copy of an issue wins.
func TestWriteIssuesNewerWins(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db) // tenant t1, integration it1
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		version := func(status string, updated time.Time, comments ...string) *store.IssueBatch {
			b := &store.IssueBatch{Issues: []store.JiraIssue{{IntegrationID: "it1", IssueID: 10001, Key: "SEI-1", ProjectKey: "SEI",
				Status: status, Created: t0, Updated: updated, SyncedAt: t0, Components: "[]", Labels: "[]", FixVersions: "[]", Fields: "{}"}}}
			to := status
			b.Transitions = []store.JiraTransition{{IntegrationID: "it1", IssueID: 10001, HistoryID: "h-" + status, ToStatus: &to, At: updated}}
			for _, c := range comments {
				b.Comments = append(b.Comments, store.JiraComment{IntegrationID: "it1", IssueID: 10001, CommentID: c, Created: updated, Updated: updated})
			}
			return b
		}
		check := func(wantStatus string, wantTransitions, wantComments int) {
			t.Helper()
			is, tr, cs, err := db.IssueByKey(ctx, "it1", "SEI-1")
			if err != nil {
				t.Fatal(err)
			}
			if is.Status != wantStatus || len(tr) != wantTransitions || len(cs) != wantComments {
				t.Fatalf("stored %q with %d transitions and %d comments, want %q, %d, %d", is.Status, len(tr), len(cs), wantStatus, wantTransitions, wantComments)
			}
		}
		write := func(b *store.IssueBatch, want int) {
			t.Helper()
			n, err := db.WriteIssues(ctx, "it1", b, nil)
			if err != nil || n != want {
				t.Fatalf("WriteIssues = %d, %v; want %d", n, err, want)
			}
		}

		write(version("Done", t0.Add(2*time.Hour), "c1", "c2"), 1)
		check("Done", 1, 2)
		write(version("In Progress", t0.Add(time.Hour), "c3"), 0) // older: ignored
		check("Done", 1, 2)
		write(version("Reopened", t0.Add(2*time.Hour), "c4"), 1) // same instant: replaces
		check("Reopened", 1, 1)
		if _, tr, _, _ := db.IssueByKey(ctx, "it1", "SEI-1"); tr[0].HistoryID != "h-Reopened" {
			t.Errorf("transition %q kept from the replaced version", tr[0].HistoryID)
		}

		// Two copies in one batch (a page and a webhook merged): the newer wins.
		newer, older := version("Closed", t0.Add(4*time.Hour)), version("Open", t0.Add(3*time.Hour))
		older.Issues = append(older.Issues, newer.Issues...)
		write(older, 1)
		if is, _, _, _ := db.IssueByKey(ctx, "it1", "SEI-1"); is.Status != "Closed" {
			t.Errorf("status %q after a batch with two copies, want Closed", is.Status)
		}

		// Children repeated in a batch (a retried page appended twice):
		// stored once each, the first copy.
		rep := version("Done", t0.Add(5*time.Hour), "c5", "c6", "c5")
		first, second := "first", "second"
		rep.Transitions[0].ToStatusID = &first
		dup := rep.Transitions[0]
		dup.ToStatusID = &second
		rep.Transitions = append(rep.Transitions, dup)
		rep.FieldChanges = []store.JiraFieldChange{
			{IntegrationID: "it1", IssueID: 10001, HistoryID: "h-f", Item: 0, Field: "labels", ToString: &first, At: t0},
			{IntegrationID: "it1", IssueID: 10001, HistoryID: "h-f", Item: 0, Field: "labels", ToString: &second, At: t0},
			{IntegrationID: "it1", IssueID: 10001, HistoryID: "h-f", Item: 1, Field: "labels", At: t0},
		}
		write(rep, 1)
		check("Done", 1, 2)
		if _, tr, _, _ := db.IssueByKey(ctx, "it1", "SEI-1"); tr[0].ToStatusID == nil || *tr[0].ToStatusID != "first" {
			t.Errorf("the repeated transition kept %v, want the first copy", tr[0].ToStatusID)
		}
		var changes []store.JiraFieldChange
		if err := db.Gorm.Where("integration_id = ? AND issue_id = ?", "it1", 10001).Order("item").Find(&changes).Error; err != nil {
			t.Fatal(err)
		}
		if len(changes) != 2 || changes[0].ToString == nil || *changes[0].ToString != "first" {
			t.Errorf("field changes %+v, want items 0 (first copy) and 1", changes)
		}
	})
}

// Children come back exactly as written (on PostgreSQL they go through
// COPY's binary format, encoded by hand): NULLs, empty and multibyte text,
// large ids, microseconds, instants before PostgreSQL's 2000 epoch and in
// other zones.
func TestWriteIssuesChildrenRoundTrip(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db) // tenant t1, integration it1
		s := func(v string) *string { return &v }
		at := []time.Time{
			time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
			time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.FixedZone("", -7*3600)),
			time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		const id = int64(1) << 40
		b := &store.IssueBatch{Issues: []store.JiraIssue{{IntegrationID: "it1", IssueID: id, Key: "SEI-1", ProjectKey: "SEI",
			Status: "Done", Created: at[1], Updated: at[1], SyncedAt: at[1], Components: "[]", Labels: "[]", FixVersions: "[]", Fields: "{}"}}}
		b.Transitions = []store.JiraTransition{
			{IntegrationID: "it1", IssueID: id, HistoryID: "h1", Item: 0, FromStatus: s("À faire ✓"), ToStatus: s(""), FromStatusID: nil, ToStatusID: s("10001"), AuthorAccountID: nil, At: at[0]},
			{IntegrationID: "it1", IssueID: id, HistoryID: "h1", Item: 2147483647, FromStatus: nil, ToStatus: s("Done"), AuthorAccountID: s("557058:x"), At: at[1]},
		}
		b.FieldChanges = []store.JiraFieldChange{{IntegrationID: "it1", IssueID: id, HistoryID: "h2", Item: 1, Field: "labels", FieldID: s("labels"),
			FromValue: nil, FromString: s("a b"), ToValue: s(""), ToString: s("日本語"), AuthorAccountID: nil, At: at[2]}}
		b.Comments = []store.JiraComment{{IntegrationID: "it1", IssueID: id, CommentID: "c1", AuthorAccountID: nil, Body: s("line1\nline2\t\"q\""), Created: at[0], Updated: at[1]},
			{IntegrationID: "it1", IssueID: id, CommentID: "c2", AuthorAccountID: s("u"), Body: nil, Created: at[2], Updated: at[2]}}
		if _, err := db.WriteIssues(ctx, "it1", b, nil); err != nil {
			t.Fatal(err)
		}
		var tr []store.JiraTransition
		var fc []store.JiraFieldChange
		var cs []store.JiraComment
		if err := db.Gorm.Order("item").Find(&tr).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Gorm.Find(&fc).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Gorm.Order("comment_id").Find(&cs).Error; err != nil {
			t.Fatal(err)
		}
		norm := func(v time.Time) time.Time { return v.UTC() }
		for i := range b.Transitions {
			b.Transitions[i].At = norm(b.Transitions[i].At)
		}
		b.FieldChanges[0].At = norm(b.FieldChanges[0].At)
		for i := range b.Comments {
			b.Comments[i].Created, b.Comments[i].Updated = norm(b.Comments[i].Created), norm(b.Comments[i].Updated)
		}
		if diff := cmpDiff(b.Transitions, tr); diff != "" {
			t.Errorf("transitions: %s", diff)
		}
		if diff := cmpDiff(b.FieldChanges, fc); diff != "" {
			t.Errorf("field changes: %s", diff)
		}
		if diff := cmpDiff(b.Comments, cs); diff != "" {
			t.Errorf("comments: %s", diff)
		}
	})
}

func cmpDiff(want, got any) string { return cmp.Diff(want, got) }

// Inside a caller's transaction, WriteIssues needs that transaction to come
// from TxOnConn on PostgreSQL (the children are copied on its connection);
// from a plain Tx it says so instead of writing half an issue.
func TestWriteIssuesInCallersTransaction(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db) // tenant t1, integration it1
		t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		batch := func(id int64) *store.IssueBatch {
			return &store.IssueBatch{Issues: []store.JiraIssue{{IntegrationID: "it1", IssueID: id, Key: "SEI-" + strconv.FormatInt(id, 10), ProjectKey: "SEI",
				Status: "Open", Created: t0, Updated: t0, SyncedAt: t0, Components: "[]", Labels: "[]", FixVersions: "[]", Fields: "{}"}},
				Comments: []store.JiraComment{{IntegrationID: "it1", IssueID: id, CommentID: "c1", Created: t0, Updated: t0}}}
		}
		err := db.Tx(ctx, func(tx *store.DB) error { _, err := tx.WriteIssues(ctx, "it1", batch(1), nil); return err })
		if db.Dialect() == store.DialectPostgres && (apperr.CodeOf(err) != apperr.Internal || !strings.Contains(err.Error(), "TxOnConn")) {
			t.Errorf("WriteIssues in a plain transaction on PostgreSQL: %v", err)
		}
		if db.Dialect() == store.DialectSQLite && err != nil {
			t.Errorf("WriteIssues in a transaction on SQLite: %v", err)
		}
		if err := db.TxOnConn(ctx, func(tx *store.DB) error { _, err := tx.WriteIssues(ctx, "it1", batch(2), nil); return err }); err != nil {
			t.Fatal(err)
		}
		if _, _, cs, err := db.IssueByKey(ctx, "it1", "SEI-2"); err != nil || len(cs) != 1 {
			t.Errorf("written in TxOnConn: %d comments, %v", len(cs), err)
		}
	})
}
