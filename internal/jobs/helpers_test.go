package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/sei-io/jira-connect/internal/store"
)

// fakeSyncer runs fn for each sync (nil: succeed at once) and records the
// calls; its tracker may be shared between replicas.
type fakeSyncer struct {
	fn      func(ctx context.Context, id, mode string, call int) error
	tracker *tracker

	mu    sync.Mutex
	calls []syncCall
	ch    chan syncCall
}

type syncCall struct {
	ID, Mode string
	At       time.Time
	Err      error
}

func newFakeSyncer(fn func(ctx context.Context, id, mode string, call int) error) *fakeSyncer {
	return &fakeSyncer{fn: fn, tracker: newTracker(), ch: make(chan syncCall, 10_000)}
}

func (f *fakeSyncer) Sync(ctx context.Context, id, mode string) error {
	f.tracker.enter(id)
	defer f.tracker.leave(id)
	f.mu.Lock()
	n := 0
	for _, c := range f.calls {
		if c.ID == id {
			n++
		}
	}
	f.calls = append(f.calls, syncCall{ID: id, Mode: mode, At: time.Now()})
	f.mu.Unlock()
	var err error
	if f.fn != nil {
		err = f.fn(ctx, id, mode, n+1)
	}
	f.ch <- syncCall{ID: id, Mode: mode, At: time.Now(), Err: err}
	return err
}

func (f *fakeSyncer) Calls() []syncCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]syncCall(nil), f.calls...)
}

func (f *fakeSyncer) CallsFor(id string) []syncCall {
	var out []syncCall
	for _, c := range f.Calls() {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// tracker fails if two syncs of one integration ever overlap.
type tracker struct {
	mu        sync.Mutex
	running   map[string]int
	overlaps  []string
	maxGlobal int
	global    int
}

func newTracker() *tracker { return &tracker{running: map[string]int{}} }

func (tr *tracker) enter(id string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.running[id]++
	if tr.running[id] > 1 {
		tr.overlaps = append(tr.overlaps, id)
	}
	tr.global++
	tr.maxGlobal = max(tr.maxGlobal, tr.global)
}

func (tr *tracker) leave(id string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.running[id]--
	tr.global--
}

func (tr *tracker) Overlaps() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.overlaps...)
}

type fakeWebhooks struct {
	fn func(ctx context.Context, id int64) error
	mu sync.Mutex
	n  map[int64]int
}

func (f *fakeWebhooks) ProcessWebhook(ctx context.Context, id int64) error {
	f.mu.Lock()
	if f.n == nil {
		f.n = map[int64]int{}
	}
	f.n[id]++
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx, id)
	}
	return nil
}

func (f *fakeWebhooks) Count(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[id]
}

type fakeIntegrations struct {
	mu    sync.Mutex
	ids   []string
	calls int
}

func (f *fakeIntegrations) ConnectedIntegrationIDs(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return append([]string(nil), f.ids...), nil
}

func (f *fakeIntegrations) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// testConfig has millisecond polls and backoff, and a periodic interval
// long enough not to interfere unless a test wants it.
func testConfig(t testing.TB) Config {
	return Config{
		SyncInterval: time.Hour,
		SyncTimeout:  time.Minute,
		Workers:      4,
		PollInterval: 20 * time.Millisecond,
		RetryBase:    20 * time.Millisecond,
		Logger:       testLogger(t),
		testOnly:     true,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type deps struct {
	syncer   *fakeSyncer
	webhooks *fakeWebhooks
	ints     *fakeIntegrations
}

func newDeps() deps {
	return deps{syncer: newFakeSyncer(nil), webhooks: &fakeWebhooks{}, ints: &fakeIntegrations{}}
}

// newJobs migrates River's schema, builds Jobs and stops it at cleanup
// (before the store closes: cleanups run last-registered first).
func newJobs(t *testing.T, db *store.DB, cfg Config, d deps) *Jobs {
	t.Helper()
	ctx := context.Background()
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	j, err := New(db, cfg, d.syncer, d.webhooks, d.ints)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := j.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return j
}

func start(t *testing.T, j *Jobs) {
	t.Helper()
	if err := j.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jobsOf lists the jobs of a kind, all states.
func jobsOf(t *testing.T, j *Jobs, kind string) []*rivertype.JobRow {
	t.Helper()
	res, err := j.client.JobList(context.Background(), river.NewJobListParams().Kinds(kind).
		States(rivertype.JobStates()...).First(10_000))
	if err != nil {
		t.Fatalf("JobList: %v", err)
	}
	return res.Jobs
}

func stateOf(t *testing.T, j *Jobs, id int64) rivertype.JobState {
	t.Helper()
	res, err := j.client.JobList(context.Background(), river.NewJobListParams().IDs(id).States(rivertype.JobStates()...))
	if err != nil {
		t.Fatalf("JobList: %v", err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("job %d not found", id)
	}
	return res.Jobs[0].State
}

func recv[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	var zero T
	return zero
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("int-%03d", i)
	}
	return out
}

// dbStates reads job states through the store, for after Stop.
func dbStates(t *testing.T, db *store.DB, kind string) []rivertype.JobState {
	t.Helper()
	var states []rivertype.JobState
	if err := db.Gorm.WithContext(context.Background()).
		Raw("SELECT state FROM river_job WHERE kind = ? ORDER BY id", kind).Scan(&states).Error; err != nil {
		t.Fatalf("job states: %v", err)
	}
	return states
}
