package lifecycle

import (
	"context"
	"fmt"
	"sync"
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
		dir.jitter = func() float64 { return 0.5 } // the TTL exactly
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

// TestDirectoryLinks: the directory knows which integration a site is
// linked to, reads it once per TTL, and re-reads it after any write to an
// integration (store.WatchLinks), whichever code made the write.
func TestDirectoryLinks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		spec, _ := secrets.GenerateKeySpec()
		kr, _ := secrets.ParseKeyRing(spec)
		st := &countingStore{DB: db}
		clk := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
		dir := NewDirectory(st, kr, 30*time.Second, clk.now)
		if err := db.WatchLinks(dir.InvalidateAll); err != nil {
			t.Fatal(err)
		}
		sealed, _ := kr.Seal([]byte("secret-one-secret-one-secret-one"), []byte("ck"))
		if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: "ck", BaseURL: "https://a.atlassian.net", State: StateInstalled, SharedSecret: &sealed}); err != nil {
			t.Fatal(err)
		}
		linked := func(want string) {
			t.Helper()
			for i := 0; i < 10; i++ {
				got, err := dir.LinkedIntegration(ctx, "ck")
				if err != nil || got != want {
					t.Fatalf("LinkedIntegration = %q, %v; want %q", got, err, want)
				}
			}
		}
		reads := func(want int64) {
			t.Helper()
			if got := st.gets.Load(); got != want {
				t.Errorf("installation reads = %d, want %d", got, want)
			}
		}

		linked("")
		reads(1)
		if got, err := dir.LinkedIntegration(ctx, "nobody"); err != nil || got != "" {
			t.Errorf("unknown site: %q, %v", got, err)
		}
		reads(2)

		if err := db.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "Acme"}); err != nil {
			t.Fatal(err)
		}
		it := &store.Integration{ID: "i1", TenantID: "t1", Name: "Jira", Type: "jira_connect_app", Timezone: "UTC",
			Settings: "{}", Status: "pending", StatusReason: "not_linked", Tags: []string{}, ExcludedFields: []string{}}
		if err := db.CreateIntegration(ctx, it); err != nil {
			t.Fatal(err)
		}
		// Linking, as a Connect key redemption does: in a transaction.
		ck := "ck"
		if err := db.Tx(ctx, func(tx *store.DB) error {
			it.ClientKey = &ck
			return tx.SaveIntegration(ctx, it)
		}); err != nil {
			t.Fatal(err)
		}
		linked("i1")
		reads(3)

		// Unlinking.
		it.ClientKey = nil
		if err := db.SaveIntegration(ctx, it); err != nil {
			t.Fatal(err)
		}
		linked("")
		reads(4)

		// Linked again, then the integration deleted.
		it.ClientKey = &ck
		if err := db.SaveIntegration(ctx, it); err != nil {
			t.Fatal(err)
		}
		linked("i1")
		if err := db.DeleteIntegration(ctx, "t1", "i1"); err != nil {
			t.Fatal(err)
		}
		linked("")
		reads(6)

		// The link is re-read with the installation when the TTL passes.
		clk.advance(34 * time.Second)
		linked("")
		reads(7)
	})
}

// gateStore is a DirectoryStore whose installation reads each block, after
// reading, until the test releases them, so a test can arrange what
// happens while a read is in flight.
type gateStore struct {
	mu      sync.Mutex
	in      store.Installation
	reads   int
	arrived chan chan struct{} // one per read; close it to let the read return
}

func newGateStore(sealed string) *gateStore {
	return &gateStore{arrived: make(chan chan struct{}, 100),
		in: store.Installation{ClientKey: "ck", BaseURL: "https://a.atlassian.net", State: StateInstalled, SharedSecret: &sealed}}
}

func (g *gateStore) set(sealed string) {
	g.mu.Lock()
	g.in.SharedSecret = &sealed
	g.mu.Unlock()
}

func (g *gateStore) GetInstallation(ctx context.Context, clientKey string) (*store.Installation, error) {
	g.mu.Lock()
	g.reads++
	in := g.in
	g.mu.Unlock()
	release := make(chan struct{})
	g.arrived <- release
	<-release
	return &in, nil
}

func (g *gateStore) IntegrationByClientKey(context.Context, string) (*store.Integration, error) {
	return nil, apperr.New(apperr.NotFound, "integration not found")
}

func (g *gateStore) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reads
}

func (g *gateStore) next(t *testing.T) chan struct{} {
	t.Helper()
	select {
	case r := <-g.arrived:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no read arrived")
		return nil
	}
}

func newKeyRing(t *testing.T) *secrets.KeyRing {
	t.Helper()
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.ParseKeyRing(spec)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestDirectoryLoadsOnce: concurrent misses of one key share one read, and
// a caller that gives up does not fail the others.
func TestDirectoryLoadsOnce(t *testing.T) {
	kr := newKeyRing(t)
	sealed, _ := kr.Seal([]byte("secret-one-secret-one-secret-one"), []byte("ck"))
	g := newGateStore(sealed)
	clk := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	dir := NewDirectory(g, kr, 30*time.Second, clk.now)

	impatient, cancel := context.WithCancel(context.Background())
	impatientErr := make(chan error, 1)
	go func() {
		_, err := dir.SharedSecret(impatient, "ck")
		impatientErr <- err
	}()
	release := g.next(t)

	const n = 50
	errs := make(chan error, n)
	for range n {
		go func() {
			sec, err := dir.SharedSecret(context.Background(), "ck")
			if err == nil && string(sec) != "secret-one-secret-one-secret-one" {
				err = fmt.Errorf("secret %q", sec)
			}
			errs <- err
		}()
	}
	cancel()
	if err := <-impatientErr; apperr.CodeOf(err) != apperr.Unavailable {
		t.Errorf("cancelled caller: %v, want unavailable", err)
	}
	time.Sleep(20 * time.Millisecond) // let the others reach the wait
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := g.count(); got != 1 {
		t.Errorf("%d concurrent lookups cost %d reads, want 1", n+1, got)
	}
}

// TestDirectoryInvalidateDuringLoad: a read in flight when its key is
// invalidated is neither joined by later callers nor cached, so the old
// value it may carry cannot outlive the change.
func TestDirectoryInvalidateDuringLoad(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "key", true: "all"}[all], func(t *testing.T) {
			kr := newKeyRing(t)
			old, _ := kr.Seal([]byte("secret-old-secret-old-secret-old"), []byte("ck"))
			g := newGateStore(old)
			clk := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
			dir := NewDirectory(g, kr, 30*time.Second, clk.now)

			first := make(chan string, 1)
			go func() {
				sec, _ := dir.SharedSecret(context.Background(), "ck")
				first <- string(sec)
			}()
			releaseOld := g.next(t) // the first read has the old secret

			fresh, _ := kr.Seal([]byte("secret-new-secret-new-secret-new"), []byte("ck"))
			g.set(fresh)
			if all {
				dir.InvalidateAll()
			} else {
				dir.Invalidate("ck")
			}

			second := make(chan string, 1)
			go func() {
				sec, _ := dir.SharedSecret(context.Background(), "ck")
				second <- string(sec)
			}()
			releaseNew := g.next(t) // a second read, not a wait on the first
			close(releaseNew)
			if got := <-second; got != "secret-new-secret-new-secret-new" {
				t.Errorf("after the change: %q", got)
			}
			close(releaseOld)
			if got := <-first; got != "secret-old-secret-old-secret-old" {
				t.Errorf("the read begun before the change: %q", got)
			}
			// The stale read finished last but was not cached.
			sec, err := dir.SharedSecret(context.Background(), "ck")
			if err != nil || string(sec) != "secret-new-secret-new-secret-new" {
				t.Errorf("cached: %q, %v", sec, err)
			}
			if got := g.count(); got != 2 {
				t.Errorf("reads = %d, want 2", got)
			}
		})
	}
}

// TestDirectoryTTLJitter: each entry lives its TTL ±10%, so entries filled
// together do not expire together.
func TestDirectoryTTLJitter(t *testing.T) {
	kr := newKeyRing(t)
	sealed, _ := kr.Seal([]byte("secret-one-secret-one-secret-one"), []byte("ck"))
	g := newGateStore(sealed)
	go func() {
		for r := range g.arrived {
			close(r)
		}
	}()
	t.Cleanup(func() { close(g.arrived) })
	clk := &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	ttl := 30 * time.Second

	for _, c := range []struct {
		jitter float64
		life   time.Duration
	}{{0, 27 * time.Second}, {0.5, 30 * time.Second}, {0.999999, 33 * time.Second}} {
		dir := NewDirectory(g, kr, ttl, clk.now)
		dir.jitter = func() float64 { return c.jitter }
		start := clk.t
		if _, err := dir.Lookup(context.Background(), "ck"); err != nil {
			t.Fatal(err)
		}
		before := g.count()
		clk.t = start.Add(c.life - 10*time.Millisecond)
		_, _ = dir.Lookup(context.Background(), "ck")
		if g.count() != before {
			t.Errorf("jitter %v: re-read before %v", c.jitter, c.life)
		}
		clk.t = start.Add(c.life + 10*time.Millisecond)
		_, _ = dir.Lookup(context.Background(), "ck")
		if g.count() != before+1 {
			t.Errorf("jitter %v: not re-read after %v", c.jitter, c.life)
		}
		clk.t = start
	}

	// With the default source, a thousand entries filled at one instant
	// expire spread over the whole ±10%.
	dir := NewDirectory(g, kr, ttl, clk.now)
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		life := dir.spread(ttl)
		lo, hi = min(lo, life), max(hi, life)
	}
	if lo < 27*time.Second || hi > 33*time.Second || hi-lo < 5*time.Second {
		t.Errorf("lifetimes from %v to %v, want spread over 27s..33s", lo, hi)
	}
}
