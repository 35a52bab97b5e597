package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestWatchLinks: every write to an integration, whichever method makes
// it and inside a transaction or not, reaches the watchers; writes to other
// tables and reads do not. On PostgreSQL another handle (a replica) hears
// it as EveryInstallation on installation_changed, only once the writing
// transaction commits, and never for one rolled back.
func TestWatchLinks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ck := "site-1"
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: ck, BaseURL: "https://a.atlassian.net", State: store.StateInstalled}); err != nil {
			t.Fatal(err)
		}
		var seen atomic.Int64
		if err := db.WatchLinks(func() { seen.Add(1) }); err != nil {
			t.Fatal(err)
		}
		// A second watcher on the same handle: both hear every change.
		var seen2 atomic.Int64
		if err := db.WatchLinks(func() { seen2.Add(1) }); err != nil {
			t.Fatal(err)
		}

		// A replica listening on its own connection (PostgreSQL only).
		heard := make(chan string, 16)
		if db.Dialect() == store.DialectPostgres {
			lctx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			ready := make(chan struct{})
			var once atomic.Bool
			go db.ListenInstallations(lctx, func(ck string) { heard <- ck }, func() {
				if once.CompareAndSwap(false, true) {
					close(ready)
				}
			})
			select {
			case <-ready:
			case <-time.After(10 * time.Second):
				t.Fatal("listener did not start")
			}
		}
		expectHeard := func(what string) {
			t.Helper()
			if db.Dialect() != store.DialectPostgres {
				return
			}
			select {
			case ck := <-heard:
				if ck != store.EveryInstallation {
					t.Errorf("%s: heard %q, want EveryInstallation", what, ck)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("%s: no notification", what)
			}
		}
		expectSilence := func(what string) {
			t.Helper()
			select {
			case ck := <-heard:
				t.Errorf("%s: heard %q, want nothing", what, ck)
			case <-time.After(200 * time.Millisecond):
			}
		}
		count := func(want int64, what string) {
			t.Helper()
			if got := seen.Load(); got != want {
				t.Errorf("%s: watcher called %d times in all, want %d", what, got, want)
			}
			if seen2.Load() != seen.Load() {
				t.Errorf("%s: second watcher called %d times, first %d", what, seen2.Load(), seen.Load())
			}
		}

		if err := db.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "Acme"}); err != nil {
			t.Fatal(err)
		}
		count(0, "tenant created")
		it := &store.Integration{ID: "i1", TenantID: "t1", Name: "Jira", Type: "jira_connect_app", Timezone: "UTC",
			Settings: "{}", Status: "pending", StatusReason: "not_linked", Tags: []string{}, ExcludedFields: []string{}}
		if err := db.CreateIntegration(ctx, it); err != nil {
			t.Fatal(err)
		}
		count(1, "integration created")
		expectHeard("create")

		// Linking happens in a transaction (Connect key redemption).
		if err := db.Tx(ctx, func(tx *store.DB) error {
			it.ClientKey = &ck
			return tx.SaveIntegration(ctx, it)
		}); err != nil {
			t.Fatal(err)
		}
		count(2, "linked in a transaction")
		expectHeard("link")

		// A rolled-back write is announced to nobody else.
		rollback := errors.New("rolled back")
		if err := db.Tx(ctx, func(tx *store.DB) error {
			it.ClientKey = nil
			if err := tx.SaveIntegration(ctx, it); err != nil {
				return err
			}
			return rollback
		}); err != rollback {
			t.Fatalf("Tx = %v", err)
		}
		expectSilence("rolled back")
		if got, err := db.IntegrationByClientKey(ctx, ck); err != nil || got.ID != "i1" {
			t.Fatalf("after rollback: %v, %v", got, err)
		}

		// Reads and other tables are not changes.
		seenBefore := seen.Load()
		if _, err := db.GetIntegration(ctx, "t1", "i1"); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateTenant(ctx, &store.Tenant{ID: "t2", Name: "Other"}); err != nil {
			t.Fatal(err)
		}
		count(seenBefore, "read and another table")

		if err := db.SetIntegrationsStatusByClientKey(ctx, ck, "failing", "app_disabled"); err != nil {
			t.Fatal(err)
		}
		count(seenBefore+1, "status by client key")
		expectHeard("status")

		// An update that matches nothing changes nothing.
		if err := db.SetIntegrationsStatusByClientKey(ctx, "nobody", "failing", "app_disabled"); err != nil {
			t.Fatal(err)
		}
		count(seenBefore+1, "update of no row")

		if err := db.DeleteIntegration(ctx, "t1", "i1"); err != nil {
			t.Fatal(err)
		}
		count(seenBefore+2, "deleted")
		expectHeard("delete")
		expectSilence("the end")
	})
}
