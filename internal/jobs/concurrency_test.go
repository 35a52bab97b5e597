package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// Jobs write through gorm while the test writes through gorm too, in and
// out of transactions, and enqueues in and out of them: on SQLite all of it
// shares one connection with River's polling, and nothing may deadlock or
// report "database is locked". Every operation has a deadline, so a
// deadlock fails the test instead of hanging it.
func TestJobsAndGormShareTheDatabase(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		storetest.Exec(t, db, "CREATE TABLE jobs_test_writes (id integer PRIMARY KEY, src text NOT NULL, n integer NOT NULL)")
		var nextID sync.Mutex
		id := 0
		newID := func() int { nextID.Lock(); defer nextID.Unlock(); id++; return id }
		insert := func(ctx context.Context, g *store.DB, src string, n int) error {
			return g.Gorm.WithContext(ctx).Exec("INSERT INTO jobs_test_writes (id, src, n) VALUES (?, ?, ?)", newID(), src, n).Error
		}

		var errMu sync.Mutex
		var errs []error
		fail := func(where string, err error) {
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				errMu.Unlock()
			}
		}

		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			// A sync: a transaction of several writes and a read.
			err := db.Tx(ctx, func(tx *store.DB) error {
				for i := range 5 {
					if err := insert(ctx, tx, "sync:"+id, i); err != nil {
						return err
					}
				}
				var n int64
				return tx.Gorm.WithContext(ctx).Raw("SELECT count(*) FROM jobs_test_writes").Scan(&n).Error
			})
			fail("sync "+id, err)
			return err
		}
		d.webhooks.fn = func(ctx context.Context, ev int64) error {
			err := insert(ctx, db, "webhook", int(ev))
			fail("webhook", err)
			return err
		}
		cfg := testConfig(t)
		cfg.Workers = 8
		// Each poll holds SQLite's one connection ~1-2ms (10x that under
		// -race), so a few ms would starve gorm; 50ms keeps both busy.
		cfg.PollInterval = 50 * time.Millisecond
		j := newJobs(t, db, cfg, d)
		start(t, j)

		var wg sync.WaitGroup
		var evMu sync.Mutex
		ev := int64(0)
		nextEvent := func() int64 { evMu.Lock(); defer evMu.Unlock(); ev++; return ev }
		until := time.Now().Add(2 * time.Second)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; i < 200 && time.Now().Before(until); i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					switch i % 4 {
					case 0: // a plain write
						fail("test write", insert(ctx, db, "test", i))
					case 1: // the webhook handler: store the event and enqueue it in one transaction
						fail("tx enqueue", db.Tx(ctx, func(tx *store.DB) error {
							e := nextEvent()
							if err := insert(ctx, tx, "event", int(e)); err != nil {
								return err
							}
							return j.EnqueueWebhookTx(ctx, tx, e)
						}))
					case 2: // enqueue after commit
						fail("enqueue webhook", j.EnqueueWebhook(ctx, nextEvent()))
					case 3:
						_, err := j.EnqueueSync(ctx, fmt.Sprintf("int-%d-%d", w, rand.IntN(5)), ModeIncremental)
						fail("enqueue sync", err)
					}
					cancel()
				}
			})
		}
		wg.Wait()

		waitFor(t, 30*time.Second, "every job to finish", func() bool {
			for _, kind := range []string{"sync", "webhook"} {
				for _, job := range jobsOf(t, j, kind) {
					if job.State != rivertype.JobStateCompleted {
						return false
					}
				}
			}
			return true
		})
		for _, kind := range []string{"sync", "webhook"} {
			for _, job := range jobsOf(t, j, kind) {
				if len(job.Errors) > 0 {
					t.Errorf("%s job %d failed first: %s", kind, job.ID, job.Errors[0].Error)
				}
			}
		}
		if n := len(jobsOf(t, j, "webhook")); int64(n) != ev {
			t.Errorf("%d webhook jobs for %d events", n, ev)
		}
		for _, err := range errs {
			t.Error(err)
			if strings.Contains(err.Error(), "locked") || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("contention: %v", err)
			}
		}
		t.Logf("%d events, %d syncs, %d writes", ev, len(d.syncer.Calls()), id)
	})
}

// Two replicas on one PostgreSQL database: both work jobs, the periodic
// pass runs on the leader only, and one integration's syncs never overlap,
// however the replicas enqueue them.
func TestReplicasNeverOverlapPostgres(t *testing.T) {
	t.Parallel()
	storetest.RequirePostgres(t)
	url := storetest.URL(t, store.DialectPostgres)
	shared := newTracker()
	ints := &fakeIntegrations{ids: ids(15)}
	syncFn := func(ctx context.Context, id, mode string, call int) error {
		select {
		case <-time.After(time.Duration(2+rand.IntN(20)) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if rand.IntN(5) == 0 {
			return errors.New("transient")
		}
		return nil
	}
	const interval = 300 * time.Millisecond
	type replica struct {
		db *store.DB
		j  *Jobs
		s  *fakeSyncer
	}
	var rs []replica
	for i := range 2 {
		db := storetest.OpenUnmigrated(t, url, store.Options{})
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := newFakeSyncer(syncFn)
		s.tracker = shared
		cfg := testConfig(t)
		cfg.SyncInterval = interval
		cfg.Workers = 8
		cfg.ID = fmt.Sprintf("replica-%d", i)
		j := newJobs(t, db, cfg, deps{syncer: s, webhooks: &fakeWebhooks{}, ints: ints})
		rs = append(rs, replica{db, j, s})
	}
	began := time.Now()
	for _, r := range rs {
		start(t, r.j)
	}

	var wg sync.WaitGroup
	until := time.Now().Add(3 * time.Second)
	for _, r := range rs {
		for range 3 {
			wg.Go(func() {
				for time.Now().Before(until) {
					id := ints.ids[rand.IntN(len(ints.ids))]
					if _, err := r.j.EnqueueSync(context.Background(), id, ModeFull); err != nil {
						t.Error(err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(began)

	if ov := shared.Overlaps(); len(ov) > 0 {
		t.Fatalf("overlapping syncs of %v", ov)
	}
	total := 0
	for i, r := range rs {
		n := len(r.s.Calls())
		total += n
		if n == 0 {
			t.Errorf("replica %d ran no sync", i)
		}
		t.Logf("replica %d ran %d syncs", i, n)
	}
	for _, id := range ints.ids {
		if len(rs[0].s.CallsFor(id))+len(rs[1].s.CallsFor(id)) == 0 {
			t.Errorf("%s never synced", id)
		}
	}
	// Only the leader schedules: about one pass per interval (plus the one
	// at start), not one per replica.
	passes, want := ints.Calls(), int(elapsed/interval)+1
	t.Logf("%d periodic passes in %v (one scheduler: ~%d)", passes, elapsed, want)
	if passes > want+2 {
		t.Errorf("%d periodic passes in %v: more than one replica schedules", passes, elapsed)
	}
	if passes < 2 {
		t.Errorf("%d periodic passes in %v, want ~%d", passes, elapsed, want)
	}
	var leaders int64
	if err := rs[0].db.Gorm.Raw("SELECT count(*) FROM river_leader").Scan(&leaders).Error; err != nil || leaders != 1 {
		t.Errorf("river_leader has %d rows (%v)", leaders, err)
	}
}
