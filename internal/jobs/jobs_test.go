package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for range 2 {
			if err := Migrate(ctx, db); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		var n int64
		if err := db.Gorm.WithContext(ctx).Raw("SELECT count(*) FROM river_migration").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("river_migration is empty")
		}
		// The service's own schema is untouched and still current.
		cur, latest, err := db.SchemaStatus(ctx)
		if err != nil || cur != latest {
			t.Fatalf("SchemaStatus = %d, %d, %v", cur, latest, err)
		}
	})
}

// Replicas starting together migrate River's schema once, in turn.
func TestMigrateConcurrentPostgres(t *testing.T) {
	t.Parallel()
	storetest.RequirePostgres(t)
	url := storetest.URL(t, store.DialectPostgres)
	const replicas = 4
	dbs := make([]*store.DB, replicas)
	for i := range dbs {
		dbs[i] = storetest.OpenUnmigrated(t, url, store.Options{})
	}
	if err := dbs[0].Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i, db := range dbs {
		wg.Go(func() { errs[i] = Migrate(context.Background(), db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestSyncRuns(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		ctx := context.Background()
		ok, err := j.EnqueueSync(ctx, "int-1", ModeFull)
		if err != nil || !ok {
			t.Fatalf("EnqueueSync = %v, %v", ok, err)
		}
		c := recv(t, d.syncer.ch, 10*time.Second, "the sync")
		if c.ID != "int-1" || c.Mode != ModeFull {
			t.Fatalf("synced %+v", c)
		}
		waitFor(t, 10*time.Second, "the job to complete", func() bool {
			js := jobsOf(t, j, "sync")
			return len(js) == 1 && js[0].State == rivertype.JobStateCompleted
		})
		// Finished: a new one may be enqueued.
		ok, err = j.EnqueueSync(ctx, "int-1", ModeIncremental)
		if err != nil || !ok {
			t.Fatalf("EnqueueSync after completion = %v, %v", ok, err)
		}
		if c := recv(t, d.syncer.ch, 10*time.Second, "the second sync"); c.Mode != ModeIncremental {
			t.Fatalf("synced %+v", c)
		}
	})
}

func TestEnqueueSyncValidates(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		j := newJobs(t, db, testConfig(t), newDeps())
		for _, tc := range []struct{ id, mode string }{{"", ModeFull}, {"x", "partial"}, {"x", ""}} {
			if _, err := j.EnqueueSync(context.Background(), tc.id, tc.mode); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("EnqueueSync(%q, %q) = %v, want invalid", tc.id, tc.mode, err)
			}
		}
	})
}

// One sync per integration: a duplicate is a no-op while the first waits
// and while it runs, whatever the mode; other integrations are unaffected.
func TestSyncUnique(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		release := make(chan struct{})
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if id == "int-1" && call == 1 {
				<-release
			}
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		ctx := context.Background()

		mustEnqueue := func(id, mode string, want bool) {
			t.Helper()
			ok, err := j.EnqueueSync(ctx, id, mode)
			if err != nil || ok != want {
				t.Fatalf("EnqueueSync(%s, %s) = %v, %v; want %v", id, mode, ok, err, want)
			}
		}
		// Pending (not started yet).
		mustEnqueue("int-1", ModeIncremental, true)
		mustEnqueue("int-1", ModeIncremental, false)
		mustEnqueue("int-1", ModeFull, false)
		mustEnqueue("int-2", ModeFull, true)

		start(t, j)
		waitFor(t, 10*time.Second, "int-1's sync to run", func() bool { return len(d.syncer.CallsFor("int-1")) == 1 })
		// Running.
		mustEnqueue("int-1", ModeFull, false)
		if got := len(jobsOf(t, j, "sync")); got != 2 {
			t.Fatalf("%d sync jobs, want 2", got)
		}
		close(release)
		waitFor(t, 10*time.Second, "both syncs to complete", func() bool {
			for _, job := range jobsOf(t, j, "sync") {
				if job.State != rivertype.JobStateCompleted {
					return false
				}
			}
			return true
		})
		mustEnqueue("int-1", ModeFull, true)
		waitFor(t, 10*time.Second, "the new sync", func() bool { return len(d.syncer.CallsFor("int-1")) == 2 })
		if ov := d.syncer.tracker.Overlaps(); len(ov) > 0 {
			t.Fatalf("overlapping syncs: %v", ov)
		}
	})
}

// A failing sync is retried with backoff, blocking duplicates meanwhile,
// until it succeeds.
func TestSyncRetried(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		var blockedDuplicate atomic.Bool
		var j *Jobs
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if call < 3 {
				return fmt.Errorf("jira down (call %d)", call)
			}
			return nil
		}
		cfg := testConfig(t)
		cfg.RetryBase = 100 * time.Millisecond
		j = newJobs(t, db, cfg, d)
		start(t, j)
		if _, err := j.EnqueueSync(context.Background(), "int-1", ModeFull); err != nil {
			t.Fatal(err)
		}
		// Between attempts the job is waiting to be retried: still unique.
		recv(t, d.syncer.ch, 10*time.Second, "the first attempt")
		ok, err := j.EnqueueSync(context.Background(), "int-1", ModeFull)
		if err != nil {
			t.Fatal(err)
		}
		blockedDuplicate.Store(!ok)
		waitFor(t, 20*time.Second, "three attempts", func() bool { return len(d.syncer.CallsFor("int-1")) == 3 })
		waitFor(t, 10*time.Second, "completion", func() bool {
			js := jobsOf(t, j, "sync")
			return len(js) == 1 && js[0].State == rivertype.JobStateCompleted
		})
		if !blockedDuplicate.Load() {
			t.Error("a duplicate was enqueued while the job awaited its retry")
		}
		calls := d.syncer.CallsFor("int-1")
		// Backoff 100ms then 200ms, ±10%.
		if gap := calls[1].At.Sub(calls[0].At); gap < 85*time.Millisecond {
			t.Errorf("first retry after %v, want ≥ ~100ms", gap)
		}
		if gap := calls[2].At.Sub(calls[1].At); gap < 170*time.Millisecond {
			t.Errorf("second retry after %v, want ≥ ~200ms", gap)
		}
		job := jobsOf(t, j, "sync")[0]
		if job.Attempt != 3 || len(job.Errors) != 2 {
			t.Errorf("attempt %d with %d errors, want 3 and 2", job.Attempt, len(job.Errors))
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {5, 16 * time.Second}, {7, time.Minute}, {70, time.Minute}} {
		for range 20 {
			got := backoff(time.Second, time.Minute, tc.attempt)
			if got < tc.want*9/10 || got > tc.want*11/10 {
				t.Errorf("backoff(attempt %d) = %v, want %v ±10%%", tc.attempt, got, tc.want)
			}
		}
	}
}

// Permanent errors and NotFound cancel the job instead of retrying it; a
// RetryAfter snoozes it.
func TestErrorOutcomes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			switch id {
			case "permanent":
				return Permanent(errors.New("integration misconfigured"))
			case "gone":
				return apperr.New(apperr.NotFound, "integration not found")
			case "limited":
				if call == 1 {
					return &apperr.Error{Code: apperr.RateLimited, Message: "429", RetryAfter: 50 * time.Millisecond}
				}
			}
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		for _, id := range []string{"permanent", "gone", "limited"} {
			if _, err := j.EnqueueSync(context.Background(), id, ModeFull); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]rivertype.JobState{
			"permanent": rivertype.JobStateCancelled, "gone": rivertype.JobStateCancelled, "limited": rivertype.JobStateCompleted,
		}
		waitFor(t, 10*time.Second, "final states", func() bool {
			js := jobsOf(t, j, "sync")
			for _, job := range js {
				if job.State != want[integrationOf(t, job)] {
					return false
				}
			}
			return len(js) == len(want)
		})
		if n := len(d.syncer.CallsFor("permanent")); n != 1 {
			t.Errorf("permanent failure ran %d times", n)
		}
		if n := len(d.syncer.CallsFor("limited")); n != 2 {
			t.Errorf("rate-limited sync ran %d times, want 2", n)
		}
		for _, job := range jobsOf(t, j, "sync") {
			if integrationOf(t, job) == "limited" && job.Attempt != 1 {
				t.Errorf("snooze counted as an attempt: attempt %d", job.Attempt)
			}
		}
	})
}

func integrationOf(t *testing.T, job *rivertype.JobRow) string {
	t.Helper()
	var a SyncArgs
	if err := json.Unmarshal(job.EncodedArgs, &a); err != nil {
		t.Fatalf("args %s: %v", job.EncodedArgs, err)
	}
	return a.IntegrationID
}

func TestSyncTimeout(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if call == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		cfg := testConfig(t)
		cfg.SyncTimeout = 150 * time.Millisecond
		j := newJobs(t, db, cfg, d)
		start(t, j)
		if _, err := j.EnqueueSync(context.Background(), "int-1", ModeFull); err != nil {
			t.Fatal(err)
		}
		c := recv(t, d.syncer.ch, 10*time.Second, "the timed-out run")
		if !errors.Is(c.Err, context.DeadlineExceeded) {
			t.Fatalf("first run ended with %v, want deadline exceeded", c.Err)
		}
		// and it was retried.
		recv(t, d.syncer.ch, 10*time.Second, "the retry")
	})
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		var failOnce sync.Map
		d.webhooks.fn = func(ctx context.Context, id int64) error {
			if id%3 == 0 {
				if _, loaded := failOnce.LoadOrStore(id, true); !loaded {
					return errors.New("transient")
				}
			}
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		ctx := context.Background()
		for id := int64(1); id <= 10; id++ {
			if err := j.EnqueueWebhook(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// Several at once (a batch of stored webhooks), one of them
		// already enqueued.
		if err := j.EnqueueWebhooks(ctx, []int64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}); err != nil {
			t.Fatal(err)
		}
		// A pending event enqueued again (the sweep) is not duplicated.
		if err := j.EnqueueWebhook(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if n := len(jobsOf(t, j, "webhook")); n != 20 {
			t.Fatalf("%d webhook jobs for 20 events", n)
		}
		for _, job := range jobsOf(t, j, "webhook") {
			if job.Priority != 1 || job.Queue != QueueDefault {
				t.Fatalf("webhook job priority %d queue %q", job.Priority, job.Queue)
			}
		}
		start(t, j)
		waitFor(t, 20*time.Second, "all webhooks processed", func() bool {
			for id := int64(1); id <= 20; id++ {
				want := 1
				if id%3 == 0 {
					want = 2
				}
				if d.webhooks.Count(id) < want {
					return false
				}
			}
			return true
		})
		for _, id := range []int64{1, 10} {
			if n := d.webhooks.Count(id); n != 1 {
				t.Errorf("event %d processed %d times", id, n)
			}
		}
	})
}

// EnqueueWebhookTx commits and rolls back with the caller's transaction.
func TestEnqueueInTransaction(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		ctx := context.Background()
		storetest.Exec(t, db, "CREATE TABLE jobs_test_events (id integer PRIMARY KEY)")

		err := db.Tx(ctx, func(tx *store.DB) error {
			if err := tx.Gorm.WithContext(ctx).Exec("INSERT INTO jobs_test_events (id) VALUES (1)").Error; err != nil {
				return err
			}
			if err := j.EnqueueWebhookTx(ctx, tx, 1); err != nil {
				return err
			}
			ok, err := j.EnqueueSyncTx(ctx, tx, "int-tx", ModeFull)
			if err != nil || !ok {
				return fmt.Errorf("EnqueueSyncTx = %v, %v", ok, err)
			}
			// Visible inside: a duplicate in the same transaction is skipped.
			if ok, err := j.EnqueueSyncTx(ctx, tx, "int-tx", ModeFull); err != nil || ok {
				return fmt.Errorf("second EnqueueSyncTx = %v, %v", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rollback := errors.New("rollback")
		err = db.Tx(ctx, func(tx *store.DB) error {
			if err := j.EnqueueWebhookTx(ctx, tx, 2); err != nil {
				return err
			}
			if _, err := j.EnqueueSyncTx(ctx, tx, "int-rolled-back", ModeFull); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the committed jobs", func() bool {
			return d.webhooks.Count(1) == 1 && len(d.syncer.CallsFor("int-tx")) == 1
		})
		time.Sleep(200 * time.Millisecond)
		if d.webhooks.Count(2) != 0 || len(d.syncer.CallsFor("int-rolled-back")) != 0 {
			t.Fatal("a rolled-back job ran")
		}
		if len(jobsOf(t, j, "webhook")) != 1 {
			t.Fatal("the rolled-back webhook job exists")
		}
		if _, err := j.EnqueueSyncTx(ctx, db, "x", ModeFull); err == nil {
			t.Fatal("EnqueueSyncTx accepted a non-transaction handle")
		}
	})
}

// The periodic job enqueues an incremental sync per connected integration,
// again every SyncInterval.
func TestPeriodicSync(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.ints.ids = []string{"int-a", "int-b", "int-c"}
		cfg := testConfig(t)
		cfg.SyncInterval = 400 * time.Millisecond
		j := newJobs(t, db, cfg, d)
		start(t, j)
		waitFor(t, 20*time.Second, "two rounds of periodic syncs", func() bool {
			for _, id := range d.ints.ids {
				if len(d.syncer.CallsFor(id)) < 2 {
					return false
				}
			}
			return true
		})
		for _, c := range d.syncer.Calls() {
			if c.Mode != ModeIncremental {
				t.Fatalf("periodic sync in mode %q", c.Mode)
			}
		}
	})
}

// CancelIntegration cancels a waiting sync at once and a running one
// through its context.
func TestCancelIntegration(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if id == "running" && call == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		cfg := testConfig(t)
		cfg.Workers = 1 // the running sync keeps the other one waiting
		j := newJobs(t, db, cfg, d)
		ctx := context.Background()
		if _, err := j.EnqueueSync(ctx, "running", ModeFull); err != nil {
			t.Fatal(err)
		}
		start(t, j)
		waitFor(t, 10*time.Second, "the sync to run", func() bool { return len(d.syncer.CallsFor("running")) == 1 })

		if _, err := j.EnqueueSync(ctx, "waiting", ModeFull); err != nil {
			t.Fatal(err)
		}
		if err := j.CancelIntegration(ctx, "waiting"); err != nil {
			t.Fatal(err)
		}
		if st := jobsOf(t, j, "sync"); len(st) != 2 {
			t.Fatalf("%d sync jobs", len(st))
		}

		started := time.Now()
		if err := j.CancelIntegration(ctx, "running"); err != nil {
			t.Fatal(err)
		}
		c := recv(t, d.syncer.ch, 10*time.Second, "the running sync to be cancelled")
		if !errors.Is(c.Err, context.Canceled) {
			t.Fatalf("running sync ended with %v", c.Err)
		}
		t.Logf("running sync cancelled after %v", time.Since(started))
		waitFor(t, 10*time.Second, "both jobs cancelled", func() bool {
			js := jobsOf(t, j, "sync")
			for _, job := range js {
				if job.State != rivertype.JobStateCancelled {
					return false
				}
			}
			return len(js) == 2
		})
		if n := len(d.syncer.CallsFor("waiting")); n != 0 {
			t.Fatalf("cancelled waiting sync ran %d times", n)
		}
		// Cancelled is final: the integration may be synced again.
		if ok, err := j.EnqueueSync(ctx, "running", ModeFull); err != nil || !ok {
			t.Fatalf("EnqueueSync after cancel = %v, %v", ok, err)
		}
		// Nothing to cancel is fine.
		if err := j.CancelIntegration(ctx, "unknown"); err != nil {
			t.Fatal(err)
		}
	})
}

// Stop lets a running job finish when there is time.
func TestStopGraceful(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		var finished atomic.Bool
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			select {
			case <-time.After(300 * time.Millisecond):
				finished.Store(true)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		if _, err := j.EnqueueSync(context.Background(), "int-1", ModeFull); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the sync to run", func() bool { return len(d.syncer.Calls()) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := j.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if !finished.Load() {
			t.Fatal("Stop returned before the job finished")
		}
		// (River's PostgreSQL pool is closed now: read through the store.)
		if st := dbStates(t, db, "sync"); len(st) != 1 || st[0] != rivertype.JobStateCompleted {
			t.Fatalf("job %v after graceful stop", st)
		}
		if err := j.Stop(ctx); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	})
}

// Stop cancels a job that would outlast its context, and the job is
// retried later (here: by a new Jobs, as after a restart).
func TestStopCancelsAtDeadline(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if call == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		if _, err := j.EnqueueSync(context.Background(), "int-1", ModeFull); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the sync to run", func() bool { return len(d.syncer.Calls()) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		began := time.Now()
		err := j.Stop(ctx)
		took := time.Since(began)
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if took > 2*time.Second {
			t.Fatalf("Stop took %v with a 500ms context", took)
		}
		c := recv(t, d.syncer.ch, time.Second, "the cancelled run")
		if !errors.Is(c.Err, context.Canceled) {
			t.Fatalf("job ended with %v", c.Err)
		}
		if st := dbStates(t, db, "sync"); len(st) != 1 || st[0] == rivertype.JobStateRunning || st[0] == rivertype.JobStateCompleted {
			t.Fatalf("job %v after hard stop", st)
		}
		// The next replica picks it up.
		j2 := newJobs(t, db, testConfig(t), d)
		start(t, j2)
		c = recv(t, d.syncer.ch, 10*time.Second, "the retried run")
		if c.Err != nil {
			t.Fatalf("retry ended with %v", c.Err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t, store.DialectSQLite)
	d := newDeps()
	if _, err := New(db, Config{Workers: -1}, d.syncer, d.webhooks, d.ints); err == nil {
		t.Error("negative Workers accepted")
	}
	if _, err := New(db, Config{}, nil, d.webhooks, d.ints); err == nil {
		t.Error("nil Syncer accepted")
	}
	j, err := New(db, Config{}, d.syncer, d.webhooks, d.ints)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Stop(context.Background()); err != nil { // never started
		t.Fatal(err)
	}
	if err := j.Start(context.Background()); err == nil {
		t.Error("Start after Stop accepted")
	}
}

// A job that ignores its context cannot hold Stop past its deadline.
func TestStopReturnsAtDeadline(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			time.Sleep(1500 * time.Millisecond) // deaf to ctx
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		if _, err := j.EnqueueSync(context.Background(), "int-1", ModeFull); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the sync to run", func() bool { return len(d.syncer.Calls()) == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		began := time.Now()
		err := j.Stop(ctx)
		if took := time.Since(began); took > time.Second {
			t.Fatalf("Stop took %v with a 300ms context", took)
		}
		if apperr.ReasonOf(err) != "jobs_stop" {
			t.Fatalf("Stop = %v, want a jobs_stop error", err)
		}
		// River finishes in the background; wait before the store closes.
		select {
		case <-j.client.Stopped():
		case <-time.After(10 * time.Second):
			t.Fatal("River never stopped")
		}
	})
}

// A sync requested after the running one has recorded its finish, while its
// job is still "running" in River (the worker has not returned, or River's
// completer has not flushed), is queued once the job completes instead of
// being dropped as a duplicate of a sync that reads nothing more. A request
// while the sync still runs is a duplicate at once.
func TestSyncRequestedWhileFinishing(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// sync_runs rows need their integration.
		if err := db.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateIntegration(ctx, &store.Integration{ID: "int-1", TenantID: "t1", Name: "i", Type: "jira_connect_app",
			Status: "connected", Tags: []string{}, ExcludedFields: []string{}, Settings: "{}", Timezone: "UTC"}); err != nil {
			t.Fatal(err)
		}
		finish, finished, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		d := newDeps()
		d.syncer.fn = func(ctx context.Context, id, mode string, call int) error {
			if call != 1 {
				return nil
			}
			run := &store.SyncRun{ID: "run-1", IntegrationID: id, Mode: mode, State: "running", StartedAt: time.Now()}
			if err := db.StartRun(ctx, run); err != nil {
				return err
			}
			<-finish
			now := time.Now()
			run.State, run.FinishedAt = "succeeded", &now
			if err := db.FinishRun(ctx, run); err != nil {
				return err
			}
			close(finished)
			<-release // the worker has not returned yet
			return nil
		}
		j := newJobs(t, db, testConfig(t), d)
		start(t, j)
		if ok, err := j.EnqueueSync(ctx, "int-1", ModeFull); err != nil || !ok {
			t.Fatalf("EnqueueSync = %v, %v", ok, err)
		}
		waitFor(t, 10*time.Second, "the sync to run", func() bool { return len(d.syncer.CallsFor("int-1")) == 1 })

		began := time.Now()
		if ok, err := j.EnqueueSync(ctx, "int-1", ModeIncremental); err != nil || ok {
			t.Fatalf("EnqueueSync while running = %v, %v; want a duplicate", ok, err)
		}
		if took := time.Since(began); took > time.Second {
			t.Errorf("a duplicate of a running sync took %v to answer", took)
		}

		close(finish)
		<-finished
		time.AfterFunc(300*time.Millisecond, func() { close(release) })
		ok, err := j.EnqueueSync(ctx, "int-1", ModeIncremental)
		if err != nil || !ok {
			t.Fatalf("EnqueueSync after the run finished = %v, %v; want queued", ok, err)
		}
		recv(t, d.syncer.ch, 10*time.Second, "the first sync")
		if c := recv(t, d.syncer.ch, 10*time.Second, "the requested sync"); c.Mode != ModeIncremental {
			t.Fatalf("synced %+v", c)
		}
	})
}
