package e2e

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// openDB opens the service's database from the test process, to read what
// the service stored (the service is stopped by then).
func openDB(t *testing.T, databaseURL string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, databaseURL, store.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("open the service's database: %v", err)
	}
	return db
}

// compareWithTruth checks the database against the simulator's ground
// truth, in full: every issue's fields, every issue's transitions and
// comments (not a sample), the number of changelog histories of each issue
// (transitions and other field changes together), every user with email;
// and that no row is there twice or extra: for each table, the rows, the
// distinct primary keys and the ground truth agree in number. This is
// internal/app's compareWithTruth, which lives in a _test file there,
// made exhaustive.
func compareWithTruth(t *testing.T, db *store.DB, itID string, gt *jirasim.GroundTruth) {
	t.Helper()
	ctx := context.Background()
	g := db.Gorm.WithContext(ctx)
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 15 {
			t.Errorf(format, args...)
		}
	}

	var wantTransitions, wantComments int
	for _, ti := range gt.Issues {
		wantTransitions += len(ti.Transitions)
		wantComments += len(ti.Comments)
	}
	// Rows, distinct primary keys and distinct natural keys, per table.
	uniq := []struct {
		table, key string
		want       int
	}{
		{"jira_issues", "issue_id", len(gt.Issues)},
		{"jira_issues", "key", len(gt.Issues)},
		{"jira_transitions", "issue_id, history_id, item", wantTransitions},
		{"jira_comments", "issue_id, comment_id", wantComments},
		{"jira_comments", "comment_id", wantComments},
		{"jira_users", "account_id", len(gt.Users)},
	}
	for _, u := range uniq {
		var rows, distinct int64
		if err := g.Table(u.table).Where("integration_id = ?", itID).Count(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if err := g.Raw("SELECT COUNT(*) FROM (SELECT DISTINCT "+u.key+" FROM "+u.table+" WHERE integration_id = ?) d", itID).Scan(&distinct).Error; err != nil {
			t.Fatal(err)
		}
		if rows != distinct || int(rows) != u.want {
			fail("%s: %d rows, %d distinct (%s), Jira has %d", u.table, rows, distinct, u.key, u.want)
		}
	}
	// Rows of another integration would be a leak; there is only one.
	var others int64
	g.Table("jira_issues").Where("integration_id <> ?", itID).Count(&others)
	if others != 0 {
		fail("%d issues stored under another integration", others)
	}

	var issues []store.JiraIssue
	if err := g.Where("integration_id = ?", itID).Find(&issues).Error; err != nil {
		t.Fatal(err)
	}
	byID := map[int64]store.JiraIssue{}
	for _, is := range issues {
		byID[is.IssueID] = is
	}
	var trs []store.JiraTransition
	if err := g.Where("integration_id = ?", itID).Find(&trs).Error; err != nil {
		t.Fatal(err)
	}
	trsOf := map[int64][]store.JiraTransition{}
	for _, tr := range trs {
		trsOf[tr.IssueID] = append(trsOf[tr.IssueID], tr)
	}
	var cms []store.JiraComment
	if err := g.Where("integration_id = ?", itID).Find(&cms).Error; err != nil {
		t.Fatal(err)
	}
	cmsOf := map[int64][]store.JiraComment{}
	for _, c := range cms {
		cmsOf[c.IssueID] = append(cmsOf[c.IssueID], c)
	}
	// Histories per issue: distinct history ids over transitions and other
	// field changes.
	var hist []struct {
		IssueID int64
		N       int
	}
	if err := g.Raw(`SELECT issue_id, COUNT(*) AS n FROM (
		SELECT issue_id, history_id FROM jira_transitions WHERE integration_id = ?
		UNION SELECT issue_id, history_id FROM jira_field_changes WHERE integration_id = ?) h GROUP BY issue_id`, itID, itID).
		Scan(&hist).Error; err != nil {
		t.Fatal(err)
	}
	histOf := map[int64]int{}
	for _, h := range hist {
		histOf[h.IssueID] = h.N
	}

	for _, ti := range gt.Issues {
		is, ok := byID[ti.ID]
		if !ok {
			fail("issue %s (%d) missing", ti.Key, ti.ID)
			continue
		}
		if is.Key != ti.Key || is.Status != ti.Status || is.StatusCategory != ti.StatusCategory || !is.Updated.Equal(ti.Updated) ||
			!is.Created.Equal(ti.Created) || deref(is.AssigneeAccountID) != ti.Assignee || deref(is.ReporterAccountID) != ti.Reporter ||
			is.ProjectKey != ti.ProjectKey || is.ProjectID != ti.ProjectID || deref(is.Summary) != ti.Summary || is.IssueType != ti.IssueType ||
			!sameTime(is.Resolved, ti.Resolved) {
			fail("issue %s differs: stored %s/%s/%s/%v/%s/%q, Jira %s/%s/%s/%v/%s/%q", ti.Key,
				is.Key, is.Status, is.IssueType, is.Updated, deref(is.AssigneeAccountID), deref(is.Summary),
				ti.Key, ti.Status, ti.IssueType, ti.Updated, ti.Assignee, ti.Summary)
		}
		if histOf[ti.ID] != ti.Histories {
			fail("issue %s: %d changelog histories stored, Jira has %d", ti.Key, histOf[ti.ID], ti.Histories)
		}

		got := trsOf[ti.ID]
		slices.SortFunc(got, func(a, b store.JiraTransition) int {
			return cmp.Or(a.At.Compare(b.At), cmp.Compare(atoi(a.HistoryID), atoi(b.HistoryID)), cmp.Compare(a.Item, b.Item))
		})
		want := slices.Clone(ti.Transitions)
		slices.SortStableFunc(want, func(a, b jirasim.TruthTransition) int {
			return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.HistoryID, b.HistoryID))
		})
		if len(got) != len(want) {
			fail("issue %s: %d transitions stored, Jira has %d", ti.Key, len(got), len(want))
		} else {
			for i, tr := range want {
				s := got[i]
				if atoi(s.HistoryID) != tr.HistoryID || deref(s.ToStatus) != tr.To || deref(s.FromStatus) != tr.From ||
					deref(s.ToStatusID) != tr.ToID || deref(s.FromStatusID) != tr.FromID || !s.At.Equal(tr.At) || deref(s.AuthorAccountID) != tr.Author {
					fail("issue %s transition %d: stored %s %s→%s at %v by %s, Jira %d %s→%s at %v by %s", ti.Key, i,
						s.HistoryID, deref(s.FromStatus), deref(s.ToStatus), s.At, deref(s.AuthorAccountID),
						tr.HistoryID, tr.From, tr.To, tr.At, tr.Author)
					break
				}
			}
		}

		gotC := cmsOf[ti.ID]
		slices.SortFunc(gotC, func(a, b store.JiraComment) int { return cmp.Compare(atoi(a.CommentID), atoi(b.CommentID)) })
		wantC := slices.Clone(ti.Comments)
		slices.SortFunc(wantC, func(a, b jirasim.TruthComment) int { return cmp.Compare(a.ID, b.ID) })
		if len(gotC) != len(wantC) {
			fail("issue %s: %d comments stored, Jira has %d", ti.Key, len(gotC), len(wantC))
		} else {
			for i, c := range wantC {
				s := gotC[i]
				if atoi(s.CommentID) != c.ID || deref(s.Body) != c.Body || deref(s.AuthorAccountID) != c.Author ||
					!s.Created.Equal(c.Created) || !s.Updated.Equal(c.Updated) {
					fail("issue %s comment %d differs (stored id %s, Jira id %d)", ti.Key, i, s.CommentID, c.ID)
					break
				}
			}
		}
	}

	var users []store.JiraUser
	if err := g.Where("integration_id = ?", itID).Find(&users).Error; err != nil {
		t.Fatal(err)
	}
	stUsers := map[string]store.JiraUser{}
	for _, u := range users {
		stUsers[u.AccountID] = u
	}
	missing := 0
	for _, u := range gt.Users {
		su, ok := stUsers[u.AccountID]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				fail("user %s missing", u.AccountID)
			}
		case u.Email == "" && su.Email != nil:
			fail("user %s: an email is stored, Jira shows none", u.AccountID)
		case u.Email != "" && (su.Email == nil || *su.Email != u.Email):
			fail("user %s: email differs from Jira's", u.AccountID)
		case su.DisplayName != u.DisplayName || su.Active != u.Active:
			fail("user %s: %q/%v, want %q/%v", u.AccountID, su.DisplayName, su.Active, u.DisplayName, u.Active)
		}
	}
	if missing > 0 {
		fail("%d of Jira's %d referenced users missing", missing, len(gt.Users))
	}
	if errs > 15 {
		t.Errorf("… and %d more differences", errs-15)
	}
}

// assertFullSyncDone checks the checkpoints a finished full sync leaves:
// its plan and partition positions gone, the incremental watermark set.
func assertFullSyncDone(t *testing.T, db *store.DB, itID string) {
	t.Helper()
	cps, err := db.Checkpoints(context.Background(), itID)
	if err != nil {
		t.Fatal(err)
	}
	for name := range cps {
		if strings.HasPrefix(name, "full:") {
			t.Errorf("checkpoint %q left after the full sync finished", name)
		}
	}
	if _, ok := cps["incremental"]; !ok {
		t.Error("no incremental watermark after the full sync")
	}
}

// counts returns the rows per ingested table of the integration.
func counts(t *testing.T, db *store.DB, itID string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"jira_issues", "jira_transitions", "jira_field_changes", "jira_comments", "jira_users"} {
		var n int64
		if err := db.Gorm.Table(table).Where("integration_id = ?", itID).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(table, "jira_")] = n
	}
	return out
}

func sameTime(stored *time.Time, jira time.Time) bool {
	if stored == nil {
		return jira.IsZero()
	}
	return stored.Equal(jira)
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// riverJob is a row of River's job table, the parts these tests read.
type riverJob struct {
	ID      int64
	State   string
	Attempt int
	Args    string
	Errors  string
}

// syncJobs lists River's sync jobs (oldest first). Errors is the text of
// River's errors column, whatever the dialect stores it as.
func syncJobs(t *testing.T, db *store.DB) []riverJob {
	t.Helper()
	var rows []struct {
		ID      int64
		State   string
		Attempt int
		Args    string
		Errors  *string
	}
	q := "SELECT id, state, attempt, CAST(args AS TEXT) AS args, CAST(errors AS TEXT) AS errors FROM river_job WHERE kind = 'sync' ORDER BY id"
	if err := db.Gorm.Raw(q).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := make([]riverJob, 0, len(rows))
	for _, r := range rows {
		out = append(out, riverJob{ID: r.ID, State: r.State, Attempt: r.Attempt, Args: r.Args, Errors: deref(r.Errors)})
	}
	return out
}

// syncRuns lists the integration's recorded runs, oldest first.
func syncRuns(t *testing.T, db *store.DB, itID string) []store.SyncRun {
	t.Helper()
	var runs []store.SyncRun
	if err := db.Gorm.Where("integration_id = ?", itID).Order("started_at, id").Find(&runs).Error; err != nil {
		t.Fatal(err)
	}
	return runs
}

// waitStored polls the database (not the service, whose single SQLite
// connection the sync keeps busy) until ready(stored issues) holds, and
// returns the count then. It fails the test when all total issues are
// stored first (the fault would come too late) or within timeout nothing
// is ready.
func waitStored(t *testing.T, databaseURL, itID string, total int, timeout time.Duration, ready func(stored int64) bool) int64 {
	t.Helper()
	db := openDB(t, databaseURL)
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var got int64
		if err := db.Gorm.Table("jira_issues").Where("integration_id = ?", itID).Count(&got).Error; err != nil {
			t.Fatal(err)
		}
		switch {
		case got >= int64(total):
			t.Fatalf("all %d issues were stored before the fault could be injected: slow the site down", got)
		case ready(got):
			return got
		case time.Now().After(deadline):
			t.Fatalf("still not ready to inject the fault after %v (%d of %d issues stored)", timeout, got, total)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
