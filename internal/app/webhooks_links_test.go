package app

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// postWebhook sends an issue webhook of site s to the service behind h,
// signed as Jira signs it, and returns the status.
func (h *harness) postWebhook(s *jirasim.Site) int {
	h.t.Helper()
	u := h.base + "/webhooks/jira/issue"
	tok, err := s.Token(http.MethodPost, u, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.do(http.MethodPost, u, "JWT "+tok, issueEventBody)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// storedEvents counts the webhook notifications kept for a site.
func (h *harness) storedEvents(clientKey string) int64 {
	h.t.Helper()
	var n int64
	if err := h.db.Gorm.Model(&store.WebhookEvent{}).Where("client_key = ?", clientKey).Count(&n).Error; err != nil {
		h.t.Fatal(err)
	}
	return n
}

// countRequestReads counts the SELECTs on installations and integrations
// made on behalf of HTTP requests (the background jobs that process stored
// webhooks read integrations too; they are not the acknowledgement path).
func countRequestReads(t *testing.T, db *store.DB) *atomic.Int64 {
	var n atomic.Int64
	err := db.Gorm.Callback().Query().After("gorm:query").Register("test:request_reads", func(tx *gorm.DB) {
		ctx := tx.Statement.Context
		if ctx == nil || ctx.Value(http.ServerContextKey) == nil {
			return
		}
		if tx.Statement.Table == "installations" || tx.Statement.Table == "integrations" {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// settle waits (up to 5 s) until webhooks sent for a quiet window make no
// read. On PostgreSQL a replica also hears its own change notifications, a
// few milliseconds after each change, and re-reads the site once more
// then; a change can send two (an installation's and an integration's).
func settle(t *testing.T, reads *atomic.Int64, send func()) {
	t.Helper()
	const quiet = 200 * time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		before := reads.Load()
		for end := time.Now().Add(quiet); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			send()
		}
		if reads.Load() == before {
			return
		}
	}
	t.Fatal("webhooks still read the database after 5s")
}

// TestWebhooksFollowLinks: the acknowledgement of a webhook reads nothing
// from the database for a known site, linked or not; an unlinked site's
// webhook is dropped before any write; a webhook right after linking is
// kept; unlinking and deleting the integration stop keeping them at once.
func TestWebhooksFollowLinks(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		reads := countRequestReads(t, db)
		s := h.installed()
		remember(s.SharedSecret)
		ck := s.ClientKey
		burst := func(what string, n int) {
			t.Helper()
			for range n {
				if got := h.postWebhook(s); got != http.StatusNoContent {
					t.Fatalf("%s: webhook answered %d", what, got)
				}
			}
		}
		noReads := func(what string) {
			t.Helper()
			settle(t, reads, func() { burst(what, 1) })
			before := reads.Load()
			burst(what, 20)
			if got := reads.Load() - before; got != 0 {
				t.Errorf("%s: 20 webhooks of a known site made %d reads, want 0", what, got)
			}
		}

		// Not linked: acknowledged, dropped, and after the first one
		// (which fills the directory) without a query.
		burst("unlinked", 1)
		noReads("unlinked")
		if n := h.storedEvents(ck); n != 0 {
			t.Fatalf("unlinked site: %d events stored, want 0", n)
		}

		// Linked: the very next webhook is kept.
		_, key := h.newTenant("Acme")
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Jira"})
		if st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": h.connectKey(s)}); st != 200 {
			t.Fatalf("link: %d %v", st, out)
		}
		burst("just linked", 1)
		if n := h.storedEvents(ck); n != 1 {
			t.Fatalf("webhook right after linking: %d events stored, want 1", n)
		}
		// kept checks how many of a burst's webhooks were stored.
		kept := func(what string, n int, want int64) {
			t.Helper()
			before := h.storedEvents(ck)
			burst(what, n)
			if got := h.storedEvents(ck) - before; got != want {
				t.Errorf("%s: %d of %d webhooks stored, want %d", what, got, n, want)
			}
		}
		noReads("linked")
		kept("linked", 5, 5)

		// Unlinked: dropped at once.
		if st, out := h.api("DELETE", "/integrations/"+id(it)+"/connect-key", key, nil); st != 200 {
			t.Fatalf("unlink: %d %v", st, out)
		}
		kept("just unlinked", 3, 0)

		// Linked again, then the integration deleted: dropped at once.
		if st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": h.connectKey(s)}); st != 200 {
			t.Fatalf("relink: %d %v", st, out)
		}
		kept("just relinked", 1, 1)
		if st, out := h.api("DELETE", "/integrations/"+id(it), key, nil); st != 204 {
			t.Fatalf("delete: %d %v", st, out)
		}
		kept("integration deleted", 3, 0)

		// Uninstalled: the secret is gone at once; reinstalled: the new
		// one verifies at once, still without a query per webhook.
		h.expect(s.Uninstall(ctx))(http.StatusNoContent)
		if got := h.postWebhook(s); got != http.StatusUnauthorized {
			t.Errorf("webhook after uninstall: %d, want 401", got)
		}
		h.expect(s.Reinstall(ctx))(http.StatusNoContent)
		remember(s.SharedSecret)
		burst("reinstalled", 1)
		noReads("reinstalled")
	})
}

// TestReplicasFollowLinks: a link made on replica A is seen by replica B's
// webhook path within milliseconds (NOTIFY), as is an unlink, while B
// reads nothing from the database per webhook in between.
func TestReplicasFollowLinks(t *testing.T) {
	storetest.RequirePostgres(t)
	url := storetest.URL(t, store.DialectPostgres)
	spec, _ := secrets.GenerateKeySpec()
	env := map[string]string{"ENCRYPTION_KEYS": spec}
	dbA := storetest.OpenUnmigrated(t, url, store.Options{})
	if err := dbA.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a := start(t, dbA, "", env)
	dbB := storetest.OpenUnmigrated(t, url, store.Options{})
	b := start(t, dbB, "", env)
	readsB := countRequestReads(t, dbB)

	s := a.installed()
	remember(s.SharedSecret)
	ck := s.ClientKey
	// B learns the site, unlinked, and drops its webhooks.
	if got := b.postWebhook(s); got != http.StatusNoContent {
		t.Fatalf("replica B refused the installed site: %d", got)
	}
	if n := b.storedEvents(ck); n != 0 {
		t.Fatalf("unlinked site: %d events stored", n)
	}

	// until sends webhooks to B until one is kept (want true) or dropped
	// (want false), within 2 s.
	until := func(want bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			before := b.storedEvents(ck)
			if got := b.postWebhook(s); got != http.StatusNoContent {
				t.Fatalf("%s: replica B answered %d", what, got)
			}
			if kept := b.storedEvents(ck) > before; kept == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replica B still %s webhooks after 2s", what, map[bool]string{true: "drops", false: "keeps"}[want])
			}
		}
	}

	_, key := a.newTenant("Acme")
	_, it := a.api("POST", "/integrations", key, map[string]any{"name": "Acme Jira"})
	if st, out := a.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": a.connectKey(s)}); st != 200 {
		t.Fatalf("link on A: %d %v", st, out)
	}
	until(true, "linked on A")

	settle(t, readsB, func() { b.postWebhook(s) })
	before := readsB.Load()
	for range 20 {
		if got := b.postWebhook(s); got != http.StatusNoContent {
			t.Fatalf("replica B answered %d", got)
		}
	}
	if got := readsB.Load() - before; got != 0 {
		t.Errorf("replica B: 20 webhooks of a linked site made %d reads, want 0", got)
	}

	if st, out := a.api("DELETE", "/integrations/"+id(it)+"/connect-key", key, nil); st != 200 {
		t.Fatalf("unlink on A: %d %v", st, out)
	}
	until(false, "unlinked on A")
}
