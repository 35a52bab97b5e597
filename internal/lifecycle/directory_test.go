package lifecycle

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// countingStore counts the reads that reach the database.
type countingStore struct {
	*store.DB
	gets atomic.Int64
}

func (c *countingStore) GetInstallation(ctx context.Context, clientKey string) (*store.Installation, error) {
	c.gets.Add(1)
	return c.DB.GetInstallation(ctx, clientKey)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestDirectory(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		spec, _ := secrets.GenerateKeySpec()
		kr, _ := secrets.ParseKeyRing(spec)
		st := &countingStore{DB: db}
		clk := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
		dir := NewDirectory(st, kr, 30*time.Second, clk.now)
		sealed, _ := kr.Seal([]byte("secret-one-secret-one-secret-one"), []byte("ck"))
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "ck", BaseURL: "https://a.atlassian.net", State: StateInstalled, SharedSecret: &sealed}); err != nil {
			t.Fatal(err)
		}

		for i := 0; i < 100; i++ {
			sec, err := dir.SharedSecret(ctx, "ck")
			if err != nil || string(sec) != "secret-one-secret-one-secret-one" {
				t.Fatalf("secret = %q, %v", sec, err)
			}
		}
		if n := st.gets.Load(); n != 1 {
			t.Errorf("100 lookups cost %d reads, want 1", n)
		}

		// Unknown issuers are cached briefly, so a flood costs one read.
		for i := 0; i < 100; i++ {
			if _, err := dir.SharedSecret(ctx, "nobody"); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("unknown: %v", err)
			}
		}
		if n := st.gets.Load(); n != 2 {
			t.Errorf("unknown-issuer flood cost %d reads, want 1 more", n-1)
		}
		clk.advance(3 * time.Second) // past the negative TTL, within the TTL
		_, _ = dir.SharedSecret(ctx, "nobody")
		_, _ = dir.SharedSecret(ctx, "ck")
		if n := st.gets.Load(); n != 3 {
			t.Errorf("reads = %d, want 3 (negative entry expired, positive kept)", n)
		}

		// Another replica rotates the secret behind our back.
		sealed2, _ := kr.Seal([]byte("secret-two-secret-two-secret-two"), []byte("ck"))
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "ck", BaseURL: "https://a.atlassian.net", State: StateInstalled, SharedSecret: &sealed2}); err != nil {
			t.Fatal(err)
		}
		changed, err := dir.Refresh(ctx, "ck")
		if err != nil || !changed {
			t.Errorf("Refresh = %v, %v; want changed", changed, err)
		}
		// Refresh is throttled: a second one within a second reads nothing.
		before := st.gets.Load()
		if changed, _ := dir.Refresh(ctx, "ck"); changed || st.gets.Load() != before {
			t.Errorf("throttled refresh read the database")
		}
		sec, _ := dir.SharedSecret(ctx, "ck")
		if string(sec) != "secret-two-secret-two-secret-two" {
			t.Errorf("after refresh: %q", sec)
		}

		// TTL expiry re-reads.
		clk.advance(31 * time.Second)
		before = st.gets.Load()
		_, _ = dir.SharedSecret(ctx, "ck")
		if st.gets.Load() != before+1 {
			t.Errorf("expired entry not re-read")
		}

		// Uninstalled: no secret any more.
		if err := db.MarkUninstalled(ctx, "ck", clk.now(), nil); err != nil {
			t.Fatal(err)
		}
		dir.Invalidate("ck")
		if _, err := dir.SharedSecret(ctx, "ck"); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("uninstalled secret: %v", err)
		}
	})
}
