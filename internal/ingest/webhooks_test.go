package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// fakeLinks answers from a map, as the lifecycle directory answers from
// memory.
type fakeLinks struct {
	ids   map[string]string
	err   error
	calls int
}

func (f *fakeLinks) LinkedIntegration(_ context.Context, clientKey string) (string, error) {
	f.calls++
	return f.ids[clientKey], f.err
}

// TestAcceptFollowsLinks: Accept asks Links, not the database, whether a
// site is linked; an unlinked site's webhook is dropped before any write,
// a linked site's is stored and enqueued, and a failure to tell is an
// error (Jira retries) rather than a silent drop.
func TestAcceptFollowsLinks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, ck := range []string{"linked", "unlinked"} {
			if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: ck, BaseURL: "https://" + ck + ".atlassian.net", State: "installed"}); err != nil {
				t.Fatal(err)
			}
		}
		links := &fakeLinks{ids: map[string]string{"linked": "i1"}}
		var enqueued []int64
		w := &Webhooks{DB: db, Now: time.Now, Links: links, Enqueue: func(_ context.Context, id int64) error {
			enqueued = append(enqueued, id)
			return nil
		}}
		body := []byte(`{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"ACME-1"}}`)
		stored := func(ck string) int64 {
			t.Helper()
			var n int64
			if err := db.Gorm.Model(&store.WebhookEvent{}).Where("client_key = ?", ck).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}

		if err := w.Accept(ctx, "unlinked", body); err != nil {
			t.Fatalf("unlinked: %v", err)
		}
		if n := stored("unlinked"); n != 0 || len(enqueued) != 0 {
			t.Errorf("unlinked: %d stored, %d enqueued; want none", n, len(enqueued))
		}

		if err := w.Accept(ctx, "linked", body); err != nil {
			t.Fatalf("linked: %v", err)
		}
		if n := stored("linked"); n != 1 || len(enqueued) != 1 {
			t.Fatalf("linked: %d stored, %d enqueued; want 1 and 1", n, len(enqueued))
		}
		e, err := db.GetWebhookEvent(ctx, enqueued[0])
		if err != nil || e.ClientKey != "linked" || e.Event != "jira:issue_updated" || e.IssueID == nil || *e.IssueID != 10001 {
			t.Errorf("stored %+v, %v", e, err)
		}
		if links.calls != 2 {
			t.Errorf("Links asked %d times, want 2", links.calls)
		}

		// A malformed body is refused whatever the link.
		if err := w.Accept(ctx, "linked", []byte(`{"issue":{}}`)); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("malformed: %v", err)
		}

		links.err = apperr.New(apperr.Unavailable, "database is unavailable")
		if err := w.Accept(ctx, "linked", body); apperr.CodeOf(err) != apperr.Unavailable {
			t.Errorf("links failing: %v, want the failure", err)
		}
		if n := stored("linked"); n != 1 {
			t.Errorf("links failing: %d stored, want still 1", n)
		}
	})
}

// TestAcceptEnqueuesInItsTransaction: with EnqueueTx the job is scheduled
// inside the transaction that stores the event (it sees the row), and a
// failure to schedule stores nothing and is an error, so Jira retries
// rather than an event waiting for the periodic sweep.
func TestAcceptEnqueuesInItsTransaction(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "linked", BaseURL: "https://linked.atlassian.net", State: "installed"}); err != nil {
			t.Fatal(err)
		}
		var fail error
		var seen []int64
		w := &Webhooks{DB: db, Now: time.Now, Links: &fakeLinks{ids: map[string]string{"linked": "i1"}},
			Enqueue: func(context.Context, int64) error { t.Error("Enqueue called although EnqueueTx is set"); return nil },
			EnqueueTx: func(ctx context.Context, tx *store.DB, id int64) error {
				if _, err := tx.GetWebhookEvent(ctx, id); err != nil {
					t.Errorf("the event is not visible to its transaction: %v", err)
				}
				seen = append(seen, id)
				return fail
			}}
		body := []byte(`{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"ACME-1"}}`)
		count := func() int64 {
			t.Helper()
			var n int64
			if err := db.Gorm.Model(&store.WebhookEvent{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		if err := w.Accept(ctx, "linked", body); err != nil || len(seen) != 1 || count() != 1 {
			t.Fatalf("Accept = %v with %d enqueued and %d stored, want nil, 1, 1", err, len(seen), count())
		}
		fail = apperr.New(apperr.Unavailable, "queue is unavailable")
		if err := w.Accept(ctx, "linked", body); apperr.CodeOf(err) != apperr.Unavailable {
			t.Errorf("enqueue failing: %v, want the failure", err)
		}
		if n := count(); n != 1 {
			t.Errorf("enqueue failing: %d events stored, want still 1 (rolled back)", n)
		}
	})
}
