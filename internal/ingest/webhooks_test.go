package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// fakeLinks answers from a map, as the lifecycle directory answers from
// memory.
type fakeLinks struct {
	mu    sync.Mutex
	ids   map[string]string
	err   error
	calls int
}

func (f *fakeLinks) LinkedIntegration(_ context.Context, clientKey string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
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

// TestAcceptGroupCommit: webhooks arriving while a batch is being written
// are stored together by the next one, each acknowledged only once its row
// is committed; every event is stored and enqueued exactly once; a failed
// insert is every waiting caller's error (Jira retries) and stores nothing.
func TestAcceptGroupCommit(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "linked", BaseURL: "https://linked.atlassian.net", State: "installed"}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var batches [][]int64
		release := make(chan struct{})
		w := &Webhooks{DB: db, Now: time.Now, Links: &fakeLinks{ids: map[string]string{"linked": "i1"}},
			Enqueue: func(context.Context, int64) error { t.Error("Enqueue called although EnqueueMany is set"); return nil },
			EnqueueMany: func(ctx context.Context, ids []int64) error {
				for _, id := range ids {
					if _, err := db.GetWebhookEvent(ctx, id); err != nil {
						t.Errorf("event %d enqueued before it was stored: %v", id, err)
					}
				}
				mu.Lock()
				batches = append(batches, ids)
				first := len(batches) == 1
				mu.Unlock()
				if first {
					<-release // hold the first batch while others arrive
				}
				return nil
			}}
		count := func() int64 {
			t.Helper()
			var n int64
			if err := db.Gorm.Model(&store.WebhookEvent{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		const n = 40
		errs := make(chan error, n)
		accept := func(i int) {
			errs <- w.Accept(ctx, "linked", []byte(fmt.Sprintf(`{"webhookEvent":"jira:issue_updated","issue":{"id":"%d","key":"ACME-%d"}}`, 10001+i, i+1)))
		}
		go accept(0)
		for { // the first batch is being written
			mu.Lock()
			started := len(batches) == 1
			mu.Unlock()
			if started {
				break
			}
			time.Sleep(time.Millisecond)
		}
		for i := 1; i < n; i++ {
			go accept(i)
		}
		time.Sleep(50 * time.Millisecond) // let them queue behind it
		select {
		case err := <-errs:
			t.Fatalf("a webhook was acknowledged (%v) before its batch was written", err)
		default:
		}
		close(release)
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		seen := map[int64]bool{}
		for _, b := range batches {
			for _, id := range b {
				if seen[id] {
					t.Errorf("event %d enqueued twice", id)
				}
				seen[id] = true
			}
		}
		if got := count(); got != n || len(seen) != n {
			t.Fatalf("%d stored and %d enqueued, want %d and %d", got, len(seen), n, n)
		}
		if len(batches) > 3 {
			t.Errorf("%d batches for %d webhooks that arrived during one write, want them grouped (at most 3)", len(batches), n)
		}

		// The table unwritable: every waiting caller gets the error.
		storetest.Exec(t, db, "ALTER TABLE webhook_events RENAME TO webhook_events_away")
		for i := range 5 {
			go accept(n + i)
		}
		for range 5 {
			if err := <-errs; err == nil {
				t.Error("a webhook was acknowledged although nothing could be stored")
			}
		}
		storetest.Exec(t, db, "ALTER TABLE webhook_events_away RENAME TO webhook_events")
		if got := count(); got != n {
			t.Errorf("%d stored after the failures, want still %d", got, n)
		}
	})
}
