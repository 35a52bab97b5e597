// Package agent is the Ingestion Satellite at work: for each integration
// of satellite.yml it ingests the Jira Data Center site with the service's
// own engine (ingest.Syncer over ingest.DataCenterSource, the same
// partitions, checkpoints, exclusions and time zone) into a local SQLite
// database, and pushes what the service has not acknowledged yet to the
// service in idempotent batches, with heartbeats in between.
//
// Why a local database rather than streaming pages straight to the
// service: the checkpoints then live next to the data they describe
// (a restart resumes the sync, not from scratch), the site is read at its
// own pace whether or not the service is reachable, and a push that fails
// — the service down, a wrong API key — loses nothing: the data waits
// locally until a push is acknowledged.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/satellite/config"
	"github.com/sei-io/jira-connect/internal/satellite/wire"
	"github.com/sei-io/jira-connect/internal/store"
)

// Options configure an Agent. Only Config is required.
type Options struct {
	Config *config.Config
	// DatabaseURL is the local database; default DefaultDatabaseURL.
	DatabaseURL string
	// Interval is the time between the end of one sync and the start of
	// the next (incremental) one; default 15 minutes.
	Interval time.Duration
	// SyncTimeout cancels a sync running longer; it resumes from its
	// checkpoints at the next one. Default 2 hours.
	SyncTimeout time.Duration
	// PushEvery is how often what a running sync stored so far is pushed
	// (a full sync of a large site takes long); every sync's end pushes
	// too. Default 1 minute.
	PushEvery time.Duration
	// HeartbeatEvery defaults to wire.HeartbeatEvery.
	HeartbeatEvery time.Duration
	// Backoff paces retries of a failed push.
	Backoff Backoff
	// MaxPushAttempts gives up a push after this many failed attempts
	// (the data stays due); 0 retries until the context ends.
	MaxPushAttempts int
	// BatchIssues is the most issues per batch; default 500.
	BatchIssues int
	// Version is the satellite's build, reported in heartbeats.
	Version string
	Log     *slog.Logger
	Now     func() time.Time
	Rand    func() float64 // jitter; default math/rand
	// HTTP calls the service; default a client with a 2-minute timeout.
	HTTP *http.Client
	// JiraOptions are added to every Jira client (tests: retry policy).
	JiraOptions []jira.Option
	// Tune adjusts the Syncer (tests: page and partition sizes).
	Tune func(*ingest.Syncer)
}

// DefaultDatabaseURL is the local database when none is named.
const DefaultDatabaseURL = "sqlite:./satellite-data/satellite.db"

// Backoff is exponential with jitter: attempt n waits about
// Initial·2^(n-1), at most Max, drawn from its upper half so that many
// satellites failing at once do not retry in step.
type Backoff struct {
	Initial, Max time.Duration
}

func (b Backoff) wait(attempt int, rnd func() float64) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// Agent runs the satellite.
type Agent struct {
	opts   Options
	cfg    *config.Config
	db     *store.DB
	log    *slog.Logger
	syncer *ingest.Syncer
	out    *outbox
	svc    *service
	sites  map[string]*site
	host   string

	mu    sync.Mutex
	kicks map[string]chan struct{}
	// pushMu serialises pushes of one integration (the loop and a caller
	// of Push), so a batch is never sent twice at once.
	pushMu map[string]*sync.Mutex
}

// localTenant owns the local integrations: the local database has the
// service's schema, where integrations belong to a tenant.
const localTenant = "satellite"

// New opens (creating and migrating) the local database and prepares each
// integration. Nothing is called yet: a satellite starts even when Jira
// or the service is down, and says so in its logs.
func New(ctx context.Context, o Options) (*Agent, error) {
	if o.Config == nil || len(o.Config.Integrations) == 0 {
		return nil, errors.New("agent: a configuration with integrations is required")
	}
	if o.DatabaseURL == "" {
		o.DatabaseURL = DefaultDatabaseURL
	}
	o.Interval = orDuration(o.Interval, 15*time.Minute)
	o.SyncTimeout = orDuration(o.SyncTimeout, 2*time.Hour)
	o.PushEvery = orDuration(o.PushEvery, time.Minute)
	o.HeartbeatEvery = orDuration(o.HeartbeatEvery, wire.HeartbeatEvery)
	o.Backoff.Initial = orDuration(o.Backoff.Initial, time.Second)
	o.Backoff.Max = orDuration(o.Backoff.Max, 5*time.Minute)
	if o.BatchIssues <= 0 || o.BatchIssues > wire.MaxIssues {
		o.BatchIssues = defaultBatchIssues
	}
	if o.Version == "" {
		o.Version = BuildVersion()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: defaultServiceTimeout}
	}
	ua := "sei-satellite/" + o.Version
	a := &Agent{opts: o, cfg: o.Config, log: o.Log, sites: map[string]*site{}, kicks: map[string]chan struct{}{}, pushMu: map[string]*sync.Mutex{},
		svc: &service{base: o.Config.Satellite.URL, key: o.Config.Satellite.APIKey, http: o.HTTP, userAgent: ua}}
	a.host, _ = os.Hostname()
	for _, it := range o.Config.Integrations {
		s, err := newSite(it, o.Config.Jira.AllowUnsafeSSL, ua, o.JiraOptions)
		if err != nil {
			return nil, err
		}
		a.sites[it.ID] = s
		a.kicks[it.ID] = make(chan struct{}, 1)
		a.pushMu[it.ID] = &sync.Mutex{}
	}

	db, err := store.Open(ctx, o.DatabaseURL, store.Options{Now: o.Now, Logger: o.Log})
	if err != nil {
		return nil, fmt.Errorf("opening the local database: %w", err)
	}
	a.db = db
	if err := a.prepare(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	a.out = &outbox{db: db, maxIssues: o.BatchIssues}
	a.syncer = &ingest.Syncer{DB: db, Now: o.Now, Log: o.Log, Sources: a.source}
	if o.Tune != nil {
		o.Tune(a.syncer)
	}
	return a, nil
}

// prepare migrates the local database and records each integration as
// the Syncer reads it: id, time zone and exclusions from satellite.yml.
func (a *Agent) prepare(ctx context.Context) error {
	if err := a.db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating the local database: %w", err)
	}
	if err := migrateOutbox(ctx, a.db); err != nil {
		return err
	}
	if _, err := a.db.GetTenant(ctx, localTenant); apperr.CodeOf(err) == apperr.NotFound {
		if err := a.db.CreateTenant(ctx, &store.Tenant{ID: localTenant, Name: a.cfg.Satellite.Tenant}); err != nil {
			return fmt.Errorf("preparing the local database: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("reading the local database: %w", err)
	}
	for _, it := range a.cfg.Integrations {
		settings := fmt.Sprintf(`{"connection":"satellite","url":%q}`, it.URL)
		fields := it.SensitiveFields
		if fields == nil {
			fields = []string{}
		}
		row, err := a.db.GetIntegrationByID(ctx, it.ID)
		switch {
		case apperr.CodeOf(err) == apperr.NotFound:
			err = a.db.CreateIntegration(ctx, &store.Integration{ID: it.ID, TenantID: localTenant, Name: "integration " + it.ID,
				Type: integrations.TypeDataCenter, Timezone: it.Timezone, ExcludedFields: fields, Settings: settings, Status: "connected", Tags: []string{}})
		case err != nil:
		default:
			reset := row.Settings != settings || !sameFields(row.ExcludedFields, fields) || row.Timezone != it.Timezone
			if reset {
				// Another site, other exclusions or another time zone: what
				// is stored was read differently. A full sync rewrites it
				// (and its sweep drops what the new site lacks); the
				// rewritten issues are pushed again.
				a.log.WarnContext(ctx, "the integration's url, sensitive_fields or timezone changed in satellite.yml: the next sync is a full one",
					"integration_id", it.ID)
				if err = a.db.DeleteCheckpoints(ctx, it.ID, ""); err != nil {
					break
				}
			}
			row.TenantID, row.Timezone, row.ExcludedFields, row.Settings = localTenant, it.Timezone, fields, settings
			err = a.db.SaveIntegration(ctx, row)
		}
		if err != nil {
			return fmt.Errorf("recording integration %s in the local database: %w", it.ID, err)
		}
	}
	return nil
}

func sameFields(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, f := range a {
		seen[f]++
	}
	for _, f := range b {
		seen[f]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// source is the Syncer's SourceFactory: the Data Center source of the
// integration's site, with a client of its own for this sync.
func (a *Agent) source(_ context.Context, it *store.Integration) (ingest.Source, error) {
	s := a.sites[it.ID]
	if s == nil {
		return nil, apperr.New(apperr.NotFound, "integration %s is not in satellite.yml", it.ID)
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil
}

// Close closes the local database.
func (a *Agent) Close() error { return a.db.Close() }

// DB is the local database (for tests and tools).
func (a *Agent) DB() *store.DB { return a.db }

// Run syncs, pushes and reports for every integration until ctx ends:
// a full sync first (or the interrupted one resumed), then an incremental
// one every Interval. It returns nil when ctx ends: what is not pushed
// yet is pushed after the next start.
func (a *Agent) Run(ctx context.Context) error {
	a.log.InfoContext(ctx, "satellite started", "version", a.opts.Version, "config", a.cfg, "database", redactURL(a.opts.DatabaseURL),
		"interval", a.opts.Interval.String())
	var wg sync.WaitGroup
	for _, it := range a.cfg.Integrations {
		id := it.ID
		wg.Go(func() { a.heartbeatLoop(ctx, id) })
		wg.Go(func() { a.pushLoop(ctx, id) })
		wg.Go(func() { a.syncLoop(ctx, id) })
	}
	wg.Wait()
	a.log.InfoContext(context.WithoutCancel(ctx), "satellite stopped")
	return nil
}

// RunOnce syncs each integration once and pushes everything due: for a
// scheduler (cron) instead of a long-running process. It fails when a
// sync or a push did.
func (a *Agent) RunOnce(ctx context.Context) error {
	var errs []error
	for _, it := range a.cfg.Integrations {
		_ = a.Heartbeat(ctx, it.ID)
		if err := a.Sync(ctx, it.ID); err != nil {
			errs = append(errs, fmt.Errorf("integration %s: sync: %w", it.ID, err))
		}
		if _, err := a.Push(ctx, it.ID); err != nil {
			errs = append(errs, fmt.Errorf("integration %s: push: %w", it.ID, err))
		}
		_ = a.Heartbeat(ctx, it.ID)
	}
	return errors.Join(errs...)
}

func (a *Agent) syncLoop(ctx context.Context, id string) {
	failures := 0
	for ctx.Err() == nil {
		err := a.Sync(ctx, id)
		a.kick(id)
		wait := a.opts.Interval
		if err != nil && ctx.Err() == nil {
			// A failed sync is retried sooner than the next scheduled one
			// (Jira restarting, a network blip), backing off to Interval.
			failures++
			wait = min(a.opts.Interval, Backoff{Initial: 30 * time.Second, Max: a.opts.Interval}.wait(failures, a.opts.Rand))
		} else {
			failures = 0
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// Sync runs one sync of the integration into the local database: full the
// first time (or resuming an interrupted full sync from its checkpoints),
// incremental after.
func (a *Agent) Sync(parent context.Context, id string) error {
	s := a.sites[id]
	if s == nil {
		return fmt.Errorf("integration %s is not in satellite.yml", id)
	}
	ctx, cancel := context.WithTimeout(parent, a.opts.SyncTimeout)
	defer cancel()
	err := a.syncer.Sync(ctx, id, ingest.ModeIncremental)
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil:
		a.log.WarnContext(parent, "sync ran longer than the sync timeout and was stopped; the next one resumes from its checkpoints",
			"integration_id", id, "sync_timeout", a.opts.SyncTimeout.String())
	case ctx.Err() != nil:
		a.log.InfoContext(parent, "sync interrupted; the next one resumes from its checkpoints", "integration_id", id)
	case errors.Is(err, jira.ErrCredentialsRejected):
		a.log.ErrorContext(ctx, "Jira refused the credentials: "+credentialsAdvice(s.cfg)+" What was read so far is kept; the next sync resumes from its checkpoints.",
			"integration_id", id, "error", err)
	default:
		a.log.ErrorContext(ctx, "sync failed; what was read so far is kept and the next sync resumes from its checkpoints", "integration_id", id, "error", err)
	}
	return err
}

func (a *Agent) kick(id string) {
	select {
	case a.kicks[id] <- struct{}{}:
	default:
	}
}

func (a *Agent) pushLoop(ctx context.Context, id string) {
	t := time.NewTicker(a.opts.PushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kicks[id]:
		case <-t.C:
		}
		_, _ = a.Push(ctx, id) // failures are logged; the data stays due
	}
}

// PushStats counts what one Push sent.
type PushStats struct {
	Batches, Duplicates, Issues, Deleted, Users int
}

// Push sends everything due for the integration, batch after batch, each
// retried with backoff until the service accepts it (or MaxPushAttempts,
// or ctx). A batch is acknowledged locally only once the service has
// answered 2xx, so a failure loses nothing.
func (a *Agent) Push(ctx context.Context, id string) (PushStats, error) {
	var st PushStats
	mu := a.pushMu[id]
	if mu == nil {
		return st, fmt.Errorf("integration %s is not in satellite.yml", id)
	}
	mu.Lock()
	defer mu.Unlock()
	after := int64(math.MinInt64)
	for {
		p, err := a.out.next(ctx, id, after)
		if err != nil {
			a.log.ErrorContext(ctx, "cannot read the local database to push", "integration_id", id, "error", err)
			return st, err
		}
		if p == nil {
			if st.Batches > 0 {
				a.log.InfoContext(ctx, "pushed to SEI", "integration_id", id, "batches", st.Batches, "duplicates", st.Duplicates,
					"issues", st.Issues, "deleted", st.Deleted, "users", st.Users)
			}
			return st, nil
		}
		if len(p.truncated) > 0 {
			a.log.WarnContext(ctx, "issues with more history than a batch carries are pushed with part of it", "integration_id", id,
				"issue_ids", p.truncated, "limit", wire.MaxChildren)
		}
		res, err := a.send(ctx, id, p)
		if err != nil {
			return st, err
		}
		if err := a.out.ack(ctx, id, p); err != nil {
			// Pushed but not recorded: it is pushed again next time,
			// under the same batch id, and answered as a duplicate.
			a.log.ErrorContext(ctx, "cannot record a push in the local database", "integration_id", id, "error", err)
			return st, err
		}
		after = max(after, p.last)
		st.Batches++
		if res.Duplicate {
			st.Duplicates++
		}
		st.Issues += len(p.batch.Issues)
		st.Deleted += len(p.batch.DeletedIssueIDs)
		st.Users += len(p.batch.Users)
	}
}

// send pushes one batch, retrying network errors, 5xx, 429 and also
// refusals (a 401 from a wrong key is fixed by a person, and the satellite
// should then carry on by itself) with exponential backoff and jitter.
func (a *Agent) send(ctx context.Context, id string, p *pending) (*wire.BatchResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := a.svc.pushBatch(ctx, id, &p.batch)
		if err == nil {
			if attempt > 1 {
				a.log.InfoContext(ctx, "push accepted after retries", "integration_id", id, "batch_id", p.batch.BatchID, "attempts", attempt)
			}
			a.log.DebugContext(ctx, "batch pushed", "integration_id", id, "batch_id", p.batch.BatchID, "kind", p.kind,
				"issues", len(p.batch.Issues), "duplicate", res.Duplicate)
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := a.opts.Backoff.wait(attempt, a.opts.Rand)
		msg := err.Error()
		var se *ServiceError
		if errors.As(err, &se) {
			wait = max(wait, min(se.RetryAfter, a.opts.Backoff.Max))
			msg = se.advice(a.cfg.Satellite.Tenant, id)
		}
		level := slog.LevelWarn
		if se != nil && (se.Refused() || (se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests)) {
			level = slog.LevelError // a person must act
		}
		giveUp := a.opts.MaxPushAttempts > 0 && attempt >= a.opts.MaxPushAttempts
		attrs := []any{"integration_id", id, "batch_id", p.batch.BatchID, "attempt", attempt, "error", err}
		if !giveUp {
			attrs = append(attrs, "retry_in", wait.Round(time.Millisecond).String())
		}
		a.log.Log(ctx, level, "push failed: "+msg, attrs...)
		if giveUp {
			return nil, err
		}
		if !sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context, id string) {
	t := time.NewTicker(a.opts.HeartbeatEvery)
	defer t.Stop()
	for {
		_ = a.Heartbeat(ctx, id)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Heartbeat checks the Jira connection from here and reports it to the
// service with the last sync, which Validate Connection and monitoring
// show. A failed heartbeat is logged, not retried: the next one comes.
func (a *Agent) Heartbeat(ctx context.Context, id string) error {
	s := a.sites[id]
	if s == nil {
		return fmt.Errorf("integration %s is not in satellite.yml", id)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	hb := &wire.Heartbeat{Version: a.opts.Version, Hostname: a.host, Checks: s.checks(cctx)}
	cancel()
	if run, err := a.db.LatestRun(ctx, id); err == nil {
		info := &wire.SyncInfo{State: run.State, Mode: run.Mode, StartedAt: &run.StartedAt, FinishedAt: run.FinishedAt}
		if run.Error != nil {
			info.Error = clip(*run.Error)
		}
		hb.Sync = info
	}
	err := a.svc.heartbeat(ctx, id, hb)
	var se *ServiceError
	switch {
	case err == nil:
		for _, c := range hb.Checks {
			if c.Status == "fail" {
				a.log.WarnContext(ctx, "Jira check failed: "+c.Message, "integration_id", id, "check", c.Name)
			}
		}
	case ctx.Err() != nil:
	case errors.As(err, &se):
		a.log.WarnContext(ctx, "heartbeat failed: "+se.advice(a.cfg.Satellite.Tenant, id), "integration_id", id, "error", err)
	default:
		a.log.WarnContext(ctx, "heartbeat failed", "integration_id", id, "error", err)
	}
	return err
}

// Backlog is how many stored issues the service has not acknowledged.
func (a *Agent) Backlog(ctx context.Context, id string) (int64, error) { return a.out.backlog(ctx, id) }

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// BuildVersion is the module version the binary was built from, or its
// VCS revision, or "dev".
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
