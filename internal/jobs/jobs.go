// Package jobs owns the service's background work: River job queues kept in
// the service's own database, so that several replicas on one PostgreSQL
// share them (each job runs on one replica; periodic scheduling runs on the
// elected leader only) and the embedded SQLite runs them in-process.
//
// It declares what it needs from the ingestion engine as small interfaces
// (Syncer, WebhookProcessor, Integrations); cmd/connect wires the concrete
// types in.
//
// Jobs:
//
//   - "sync" (SyncArgs): runs Syncer.Sync for one integration. At most one
//     per integration exists in any unfinished state (available, scheduled,
//     pending, running, retryable), so a second EnqueueSync while one waits
//     or runs is a no-op, whatever its mode, and two replicas can never run
//     the same integration's sync at once. Retried with capped exponential
//     backoff; each run is cut off after Config.SyncTimeout.
//   - "webhook" (WebhookArgs): runs WebhookProcessor.ProcessWebhook for one
//     stored event, at the highest priority in its own queue (a long sync
//     never delays it), retried; one pending job per event.
//   - "sync_schedule": a River periodic job, every Config.SyncInterval, on
//     the leader replica only, that enqueues an incremental sync for every
//     connected integration (the uniqueness above makes that idempotent).
//
// On SQLite, River uses the store's own *sql.DB (one connection, shared
// with gorm) in poll-only mode: see New. Never call a non-Tx Enqueue or
// CancelIntegration inside a store transaction on SQLite: the transaction
// holds the only connection and the call waits for it forever. Use the Tx
// variants there.
package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Syncer ingests one integration's Jira data. mode is ModeFull or
// ModeIncremental. It must honour ctx: it is cancelled at the run's timeout,
// on CancelIntegration and on a hard stop.
type Syncer interface {
	Sync(ctx context.Context, integrationID string, mode string) error
}

// WebhookProcessor processes one stored webhook event.
type WebhookProcessor interface {
	ProcessWebhook(ctx context.Context, eventID int64) error
}

// Integrations lists the integrations the periodic sync covers.
type Integrations interface {
	ConnectedIntegrationIDs(ctx context.Context) ([]string, error)
}

// Sync modes.
const (
	ModeFull        = "full"
	ModeIncremental = "incremental"
)

// Queues. Syncs run for up to an hour; webhooks and the scheduler must not
// wait behind them, so they get their own workers.
const (
	QueueSync    = "sync"
	QueueDefault = river.QueueDefault
)

// Defaults of Config.
const (
	DefaultSyncInterval = 15 * time.Minute
	DefaultSyncTimeout  = time.Hour
	DefaultWorkers      = 4
	DefaultPollInterval = time.Second
	DefaultRetryBase    = 30 * time.Second
)

// Fixed limits.
const (
	webhookTimeout     = 2 * time.Minute
	scheduleTimeout    = 2 * time.Minute
	syncMaxAttempts    = 10
	webhookMaxAttempts = 15
	webhookRetryCap    = time.Hour
	maxSnoozes         = 20
	// A running job whose replica died is handed to another replica only
	// after its timeout plus a margin: earlier, a sync that ignores its
	// context a little too long could run twice. The margin is a quarter
	// of the sync timeout within these bounds (15m for the default 1h), so
	// a short SYNC_TIMEOUT also recovers a crashed sync quickly.
	rescueMarginMin = 10 * time.Second
	rescueMarginMax = 15 * time.Minute
	// pgxpool size per replica (River's own queries, plus LISTEN on one).
	pgMaxConns = 8
)

// Config configures New. The zero value is usable.
type Config struct {
	// SyncInterval is how often every connected integration gets an
	// incremental sync (default 15m). It also caps the sync retry backoff.
	SyncInterval time.Duration
	// SyncTimeout bounds one sync run (default 1h).
	SyncTimeout time.Duration
	// Workers is the number of jobs this replica runs at once in each of
	// its two queues: syncs, and webhooks with the scheduler (default 4).
	Workers int
	// Logger receives River's log and job failures (default: discard).
	Logger *slog.Logger
	// PollInterval is how often each queue looks for new jobs without a
	// wake-up (default 1s). On PostgreSQL, inserts wake the replicas at once
	// through LISTEN/NOTIFY and this is only the fallback; on SQLite (poll
	// only) it is the latency of a new job.
	PollInterval time.Duration
	// RetryBase is the first retry delay of a failed job, doubling per
	// attempt up to SyncInterval for syncs and an hour for webhooks, with
	// ±10% jitter (default 30s; tests shorten it).
	RetryBase time.Duration
	// ID names this replica in River's tables (default: River generates one).
	ID string

	// testOnly turns off River's start-up jitter (tests in this package).
	testOnly bool
}

func (c Config) withDefaults() Config {
	c.SyncInterval = cmp.Or(c.SyncInterval, DefaultSyncInterval)
	c.SyncTimeout = cmp.Or(c.SyncTimeout, DefaultSyncTimeout)
	c.Workers = cmp.Or(c.Workers, DefaultWorkers)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.SyncInterval < 0, c.SyncTimeout < 0, c.PollInterval < 0, c.RetryBase < 0:
		return apperr.New(apperr.Invalid, "jobs: durations must not be negative")
	case c.Workers < 0:
		return apperr.New(apperr.Invalid, "jobs: Workers must not be negative")
	case c.Workers > 10_000:
		return apperr.New(apperr.Invalid, "jobs: Workers must be at most 10000")
	}
	return nil
}

// client is what Jobs uses of a River client, whichever its driver's
// transaction type (pgx.Tx on PostgreSQL, *sql.Tx on SQLite).
type client interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobCancel(ctx context.Context, jobID int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	Stopped() <-chan struct{}
}

var (
	_ client = (*river.Client[pgx.Tx])(nil)
	_ client = (*river.Client[*sql.Tx])(nil)
)

// Jobs is the job system of one replica.
type Jobs struct {
	cfg     Config
	dialect string
	log     *slog.Logger
	db      *store.DB

	syncer       Syncer
	webhooks     WebhookProcessor
	integrations Integrations

	client client
	// txClient inserts within a gorm transaction (*sql.Tx): the main client
	// itself on SQLite; on PostgreSQL an insert-only client on River's
	// database/sql driver over gorm's pool, because the main client's
	// transactions are pgx.Tx, which gorm's *sql.Tx cannot become.
	txClient *river.Client[*sql.Tx]
	pool     *pgxpool.Pool // PostgreSQL only; closed by Stop

	mu      sync.Mutex
	started bool
	stopped bool
}

// New builds the job system on db, which must be migrated (store's Migrate,
// then Migrate here). It connects lazily: nothing runs until Start, but
// Enqueue* work at once (an insert-only replica need not Start).
//
// PostgreSQL: a pgx pool of its own from the store's DSN, with River's
// pgx driver, LISTEN/NOTIFY wake-ups and leader election between replicas.
//
// SQLite: River's SQLite driver over the store's own *sql.DB, the single
// connection gorm uses, never a second pool on the file (two SQLite copies,
// or two pools with their own locks, on one file in one process invite
// "database is locked" and worse). River then runs poll-only: no listener
// polling its notification table every 50ms, each queue looks for work every
// PollInterval, and River's transactions are short, so gorm gets the
// connection between them. Each poll is a short write transaction holding
// the connection ~1-2ms (measured; ten times that under -race), twice per
// PollInterval (two queues): negligible at the default 1s, a real tax on
// gorm below ~100ms.
func New(db *store.DB, cfg Config, s Syncer, w WebhookProcessor, in Integrations) (*Jobs, error) {
	if db == nil || s == nil || w == nil || in == nil {
		return nil, errors.New("jobs.New: db, Syncer, WebhookProcessor and Integrations are required")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	j := &Jobs{cfg: cfg, dialect: db.Dialect(), log: cfg.Logger, db: db, syncer: s, webhooks: w, integrations: in}

	rc := &river.Config{
		ID:     cfg.ID,
		Logger: cfg.Logger,
		Queues: map[string]river.QueueConfig{
			QueueSync:    {MaxWorkers: cfg.Workers},
			QueueDefault: {MaxWorkers: cfg.Workers},
		},
		Workers:              j.workers(),
		PeriodicJobs:         []*river.PeriodicJob{j.periodicSchedule()},
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(river.FetchCooldownDefault, cfg.PollInterval),
		RescueStuckJobsAfter: rescueAfter(cfg.SyncTimeout),
		JobTimeout:           cfg.SyncTimeout, // unused (every worker sets Timeout); River wants it <= the above
		ErrorHandler:         &errorHandler{log: cfg.Logger},
		TestOnly:             cfg.testOnly,
	}

	switch db.Dialect() {
	case store.DialectPostgres:
		pcfg, err := pgxpool.ParseConfig(db.PostgresDSN())
		if err != nil {
			return nil, apperr.New(apperr.Invalid, "jobs: cannot parse the PostgreSQL URL") // not echoing: it may hold a password
		}
		pcfg.MaxConns = pgMaxConns
		pool, err := pgxpool.NewWithConfig(context.Background(), pcfg) // connects lazily
		if err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "jobs: cannot create the PostgreSQL pool")
		}
		c, err := river.NewClient(riverpgxv5.New(pool), rc)
		if err != nil {
			pool.Close()
			return nil, apperr.Wrap(err, apperr.Internal, "jobs: cannot create the River client")
		}
		// Insert-only: no Queues, so it never fetches, elects or maintains.
		tc, err := river.NewClient(riverdatabasesql.New(db.SQL()), &river.Config{
			ID: cfg.ID, Logger: cfg.Logger, Workers: j.workers(),
		})
		if err != nil {
			pool.Close()
			return nil, apperr.Wrap(err, apperr.Internal, "jobs: cannot create the River insert client")
		}
		j.client, j.txClient, j.pool = c, tc, pool
	case store.DialectSQLite:
		rc.PollOnly = true
		c, err := river.NewClient(riversqlite.New(db.SQL()), rc)
		if err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "jobs: cannot create the River client")
		}
		j.client, j.txClient = c, c
	default:
		return nil, fmt.Errorf("jobs: unsupported dialect %q", db.Dialect())
	}
	return j, nil
}

// rescueAfter is how long a job may stay running before River rescues it:
// the sync timeout plus a quarter of it, at least rescueMarginMin and at
// most rescueMarginMax more (1h15m for the default 1h). Webhook and
// schedule jobs need no term of their own: River's rescuer leaves a job
// alone until its kind's Timeout has passed, so with a sync timeout under
// their 2m they are rescued at 2m, without margin (running one twice is
// harmless: both are idempotent).
func rescueAfter(syncTimeout time.Duration) time.Duration {
	return syncTimeout + min(max(syncTimeout/4, rescueMarginMin), rescueMarginMax)
}

// Start starts fetching and working jobs, and taking part in leader
// election (the leader enqueues the periodic sync and runs River's
// maintenance), until Stop. Cancelling ctx stops hard (running jobs'
// contexts are cancelled); prefer Stop.
func (j *Jobs) Start(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopped {
		return errors.New("jobs: Start after Stop")
	}
	if j.started {
		return nil
	}
	if err := j.client.Start(ctx); err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "jobs: cannot start River").WithReason("jobs_start")
	}
	j.started = true
	return nil
}

// Stop stops fetching, lets running jobs finish, and, when ctx is about to
// end (its last fifth, at most 5s before its deadline) or ends, cancels the
// contexts of the jobs still running and waits for them to return within
// what is left of ctx. A cancelled job counts as a failed attempt and is
// retried later, by any replica. It then closes the PostgreSQL pool. It is
// safe to call more than once, and without Start. It returns ctx's error
// when jobs were still running at the end.
func (j *Jobs) Stop(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopped {
		return nil
	}
	j.stopped = true
	if !j.started {
		j.closePool()
		return nil
	}

	// A short grace for jobs to finish, then cancel: syncs checkpoint every
	// page, so a cancelled one resumes elsewhere losing at most a page, and
	// a deploy should not wait on an hour-long sync.
	soft := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		soft, cancel = context.WithTimeout(ctx, min(time.Until(deadline)/3, 3*time.Second))
		defer cancel()
	}
	if err := j.client.Stop(soft); err == nil {
		j.closePool()
		return nil
	}
	j.log.WarnContext(ctx, "jobs still running at shutdown; cancelling them")
	if err := j.client.StopAndCancel(ctx); err != nil {
		// River goes on stopping in the background; pgxpool.Close would wait
		// for it, so the pool is closed when it is done, not here.
		if j.pool != nil {
			go func() { <-j.client.Stopped(); j.closePool() }()
		}
		return apperr.Wrap(err, apperr.Unavailable, "jobs: running jobs did not return before the shutdown deadline").WithReason("jobs_stop")
	}
	j.closePool()
	return nil
}

func (j *Jobs) closePool() {
	if j.pool != nil {
		j.pool.Close()
	}
}

// EnqueueSync asks for a sync of the integration (mode ModeFull or
// ModeIncremental). enqueued is false when one is already waiting, retrying
// or running for it, in any mode: that one stands, and nothing is queued.
func (j *Jobs) EnqueueSync(ctx context.Context, integrationID, mode string) (enqueued bool, err error) {
	args, err := syncArgs(integrationID, mode)
	if err != nil {
		return false, err
	}
	res, err := j.client.Insert(ctx, args, nil)
	// A sync that has recorded its run as finished stays "running" in
	// River until the worker returns and River's completer (which batches)
	// marks it completed. A request in that window would be dropped as a
	// duplicate of a sync that no longer reads anything, so it waits for
	// the completion, briefly, and tries again.
	deadline := time.Now().Add(finishingWait)
	for err == nil && res.UniqueSkippedAsDuplicate && time.Now().Before(deadline) && j.finishing(ctx, integrationID, res.Job) {
		select {
		case <-ctx.Done():
			return false, apperr.Wrap(ctx.Err(), apperr.Unavailable, "cannot enqueue sync")
		case <-time.After(finishingPoll):
		}
		res, err = j.client.Insert(ctx, args, nil)
	}
	if err != nil {
		return false, apperr.Wrap(err, apperr.Internal, "cannot enqueue sync")
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

const (
	// finishingWait bounds how long EnqueueSync waits for a finished sync's
	// job to be marked completed (River's completer flushes within tens of
	// milliseconds; seconds only on an overloaded machine).
	finishingWait = 3 * time.Second
	finishingPoll = 20 * time.Millisecond
	// clockMargin absorbs the difference between the clock that stamped the
	// job's attempt (River's, or the database's) and the syncer's.
	clockMargin = time.Second
)

// finishing reports whether the running job in the way has finished its
// sync: the integration's newest run started after the job's attempt began
// and is no longer running.
func (j *Jobs) finishing(ctx context.Context, integrationID string, job *rivertype.JobRow) bool {
	if job == nil || job.State != rivertype.JobStateRunning || job.AttemptedAt == nil {
		return false
	}
	run, err := j.db.LatestRun(ctx, integrationID)
	if err != nil {
		return false
	}
	return run.State != "running" /* sync_runs.state */ && !run.StartedAt.Before(job.AttemptedAt.Add(-clockMargin))
}

// EnqueueSyncTx is EnqueueSync inside the caller's store transaction (a
// handle from store.DB.Tx): the job exists if and only if the transaction
// commits.
func (j *Jobs) EnqueueSyncTx(ctx context.Context, tx *store.DB, integrationID, mode string) (enqueued bool, err error) {
	args, err := syncArgs(integrationID, mode)
	if err != nil {
		return false, err
	}
	sqlTx, err := txOf(tx)
	if err != nil {
		return false, err
	}
	res, err := j.txClient.InsertTx(ctx, sqlTx, args, nil)
	if err != nil {
		return false, apperr.Wrap(err, apperr.Internal, "cannot enqueue sync")
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

// EnqueueWebhook asks for the stored webhook event to be processed. It is
// idempotent while a job for the event is unfinished, so a sweep of
// unprocessed events may call it again safely. Called after the event's
// row commits, a crash in between loses the job (the sweep recovers it);
// EnqueueWebhookTx has no such window.
func (j *Jobs) EnqueueWebhook(ctx context.Context, eventID int64) error {
	if _, err := j.client.Insert(ctx, WebhookArgs{EventID: eventID}, nil); err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot enqueue webhook")
	}
	return nil
}

// EnqueueWebhooks is EnqueueWebhook for several events in one insert.
func (j *Jobs) EnqueueWebhooks(ctx context.Context, eventIDs []int64) error {
	params := make([]river.InsertManyParams, len(eventIDs))
	for i, id := range eventIDs {
		params[i] = river.InsertManyParams{Args: WebhookArgs{EventID: id}}
	}
	if _, err := j.client.InsertMany(ctx, params); err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot enqueue webhooks")
	}
	return nil
}

// EnqueueWebhookTx is EnqueueWebhook inside the caller's store transaction
// (a handle from store.DB.Tx), typically the one storing the event: the job
// is committed, or rolled back, with it.
func (j *Jobs) EnqueueWebhookTx(ctx context.Context, tx *store.DB, eventID int64) error {
	sqlTx, err := txOf(tx)
	if err != nil {
		return err
	}
	if _, err := j.txClient.InsertTx(ctx, sqlTx, WebhookArgs{EventID: eventID}, nil); err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot enqueue webhook")
	}
	return nil
}

// CancelIntegration cancels the integration's unfinished sync jobs, for an
// uninstall or a deletion. Waiting ones are cancelled at once; a running one
// has its context cancelled by the replica running it (at once on
// PostgreSQL, within about 2s on SQLite, whose River polls for it) and ends
// cancelled when the Syncer returns an error (if it returns nil, it simply
// completes). A sync enqueued after this call (e.g. by a periodic pass that
// listed the integration just before) is not covered: the Syncer should
// refuse an integration that is gone (Permanent, or an apperr NotFound).
func (j *Jobs) CancelIntegration(ctx context.Context, integrationID string) error {
	params := river.NewJobListParams().
		Kinds(SyncArgs{}.Kind()).
		States(unfinishedStates...).
		Where(j.argEquals("integration_id"), river.NamedArgs{"integration_id": integrationID}).
		First(1000)
	res, err := j.client.JobList(ctx, params)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot list the integration's sync jobs")
	}
	for _, job := range res.Jobs {
		if _, err := j.client.JobCancel(ctx, job.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
			return apperr.Wrap(err, apperr.Internal, "cannot cancel sync job %d", job.ID)
		}
		j.log.InfoContext(ctx, "sync job cancelled", "integration_id", integrationID, "job_id", job.ID, "state", string(job.State))
	}
	return nil
}

// argEquals is a JobList filter on a top-level string field of the args.
func (j *Jobs) argEquals(field string) string {
	if j.dialect == store.DialectSQLite {
		return "json_extract(args, '$." + field + "') = @" + field
	}
	return "args->>'" + field + "' = @" + field
}

// txOf returns the *sql.Tx under a store transaction handle.
func txOf(tx *store.DB) (*sql.Tx, error) {
	if tx != nil && tx.Gorm != nil && tx.Gorm.Statement != nil {
		if t, ok := tx.Gorm.Statement.ConnPool.(*sql.Tx); ok {
			return t, nil
		}
	}
	return nil, apperr.New(apperr.Internal, "jobs: not a store transaction handle (use the one store.DB.Tx passes)")
}

// errorHandler logs job failures once, with the job's identity.
type errorHandler struct{ log *slog.Logger }

func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.log.WarnContext(ctx, "job failed", "kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt,
		"max_attempts", job.MaxAttempts, "error", err.Error())
	return nil
}

func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.log.ErrorContext(ctx, "job panicked", "kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt,
		"panic", fmt.Sprint(panicVal), "trace", trace)
	return nil
}
