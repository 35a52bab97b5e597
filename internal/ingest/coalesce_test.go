package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// webhookSite is a simulated Cloud site reached with an API token, and a
// database where an integration is linked to it as "site-1".
type webhookSite struct {
	w  *ingest.Webhooks
	it *store.Integration
}

func newWebhookSite(t *testing.T, db *store.DB, sim *jirasim.Site) *webhookSite {
	t.Helper()
	ctx := context.Background()
	it := newIntegration(t, db, "jira_cloud_api_token")
	if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "site-1", BaseURL: sim.BaseURL, State: "installed"}); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, db, "UPDATE integrations SET client_key = ? WHERE id = ?", "site-1", it.ID)
	c := client(t, sim.BaseURL, jira.Basic{Username: "sei.bot@example.com", Password: "api-token-1"})
	w := &ingest.Webhooks{DB: db, Now: time.Now,
		Sources: func(context.Context, *store.Integration) (ingest.Source, error) {
			return ingest.NewCloudTokenSource(c), nil
		}}
	return &webhookSite{w: w, it: it}
}

// newSimSite generates a small site the SEI bot may read.
func newSimSite(t *testing.T, issues int, seed int64) *jirasim.Site {
	t.Helper()
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(issues)
	spec.LongTailShare = 0
	if err := s.Generate(seed, spec); err != nil {
		t.Fatal(err)
	}
	s.AddBasicUser("557058:sei-bot", "SEI Bot", "sei.bot@example.com", "api-token-1")
	return s
}

// TestWebhookReadAnswersOlderNotifications: processing a notification
// reads the issue from Jira once and marks the site's other pending
// notifications about that issue, received before the read began, as
// processed, so their jobs cost no Jira call; a notification received
// since (within the margin), or about another issue, keeps its own. The
// site's field list is read once, not per notification.
func TestWebhookReadAnswersOlderNotifications(t *testing.T) {
	s := newSimSite(t, 30, 5)
	gt := s.GroundTruth()
	x, y := gt.Issues[0].ID, gt.Issues[1].ID
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWebhookSite(t, db, s).w
		now := time.Now()
		event := func(issue int64, received time.Time) int64 {
			t.Helper()
			e := &store.WebhookEvent{ClientKey: "site-1", Event: "jira:issue_updated", IssueID: &issue, ReceivedAt: received}
			if err := db.InsertWebhookEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
			return e.ID
		}
		first := event(x, now.Add(-time.Minute))
		older := []int64{event(x, now.Add(-50*time.Second)), event(x, now.Add(-40*time.Second))}
		recent := event(x, now.Add(time.Second)) // received as the read begins: inside the margin
		other := event(y, now.Add(-time.Minute))

		searches := func() int { return s.RequestCounts()["/rest/api/3/search/jql"] }
		before := searches()
		if err := w.ProcessWebhook(ctx, first); err != nil {
			t.Fatal(err)
		}
		if n := searches() - before; n != 1 {
			t.Errorf("processing one notification searched %d times, want 1", n)
		}
		processed := func(id int64) bool {
			t.Helper()
			e, err := db.GetWebhookEvent(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return e.ProcessedAt != nil
		}
		for _, id := range append([]int64{first}, older...) {
			if !processed(id) {
				t.Errorf("event %d about the issue, received before the read, is still pending", id)
			}
		}
		if processed(recent) || processed(other) {
			t.Errorf("processed: recent %v, other issue %v; want both pending", processed(recent), processed(other))
		}
		// Their jobs find them answered: no Jira call.
		before = searches()
		for _, id := range older {
			if err := w.ProcessWebhook(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if n := searches() - before; n != 0 {
			t.Errorf("answered notifications searched Jira %d times", n)
		}
		fieldLists := func() int { return s.RequestCounts()["/rest/api/3/field"] }
		beforeFields := fieldLists()
		if err := w.ProcessWebhook(ctx, other); err != nil || !processed(other) {
			t.Errorf("the other issue's notification: %v, processed %v", err, processed(other))
		}
		if n := fieldLists() - beforeFields; n != 0 {
			t.Errorf("the site's field list was read %d more times, want it cached", n)
		}
	})
}

// TestWebhookLooksUpOnlyItsIssuesUsers: processing a notification writes
// the users its issue names and looks for nothing else; finding users the
// stored data references but jira_users lacks reads all the integration's
// issues and children, which is a sync's work, not every webhook's.
func TestWebhookLooksUpOnlyItsIssuesUsers(t *testing.T) {
	s := newSimSite(t, 10, 6)
	issue := s.GroundTruth().Issues[0].ID
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ws := newWebhookSite(t, db, s)
		it, w := ws.it, ws.w
		// A stored issue naming a user jira_users does not have.
		ghost := "557058:ghost"
		now := time.Now().UTC()
		if _, err := db.WriteIssues(ctx, it.ID, &store.IssueBatch{Issues: []store.JiraIssue{{IntegrationID: it.ID, IssueID: 999999, Key: "OLD-1",
			ProjectKey: "OLD", AssigneeAccountID: &ghost, Created: now, Updated: now, SyncedAt: now, Components: "[]", Labels: "[]",
			FixVersions: "[]", Fields: "{}"}}}, nil); err != nil {
			t.Fatal(err)
		}
		e := &store.WebhookEvent{ClientKey: "site-1", Event: "jira:issue_updated", IssueID: &issue, ReceivedAt: now}
		if err := db.InsertWebhookEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := w.ProcessWebhook(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		users, err := db.ListUsers(ctx, it.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) == 0 {
			t.Error("the issue's users were not written")
		}
		for _, u := range users {
			if u.AccountID == ghost {
				t.Error("a user of another stored issue was looked up and written")
			}
		}
	})
}
