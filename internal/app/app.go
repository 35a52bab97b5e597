// Package app wires the service together: from a validated configuration
// and an open database to an http.Handler. cmd/connect calls it to serve;
// end-to-end tests call it to run the real service against the Jira
// simulator, so what is tested is what ships.
package app

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	jiraconnect "github.com/sei-io/jira-connect"
	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/descriptor"
	"github.com/sei-io/jira-connect/internal/httpapi"
	"github.com/sei-io/jira-connect/internal/hygiene"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jobs"
	"github.com/sei-io/jira-connect/internal/keys"
	"github.com/sei-io/jira-connect/internal/lifecycle"
	"github.com/sei-io/jira-connect/internal/ratelimit"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
)

// Connect key redemption: 10 attempts at once per tenant and per client
// address, then one every 6 seconds. A person mistyping a key never meets
// it; guessing 140-bit keys at 10 a minute is hopeless.
const (
	redeemEvery = 6 * time.Second
	redeemBurst = 10
)

// Leeway tolerates clock skew between Jira and us on exp.
const jwtLeeway = 30 * time.Second

// App is the wired service.
type App struct {
	Config       *config.Config
	Log          *slog.Logger
	DB           *store.DB
	Handler      http.Handler
	Metrics      *httpapi.Metrics
	Directory    *lifecycle.Directory
	Integrations *integrations.Service
	Syncer       *ingest.Syncer
	Webhooks     *ingest.Webhooks
	Jobs         *jobs.Jobs

	listening chan struct{}
	once      sync.Once
}

// Start runs the background work until ctx ends or Stop: the River jobs
// (syncs, webhooks, the periodic schedule) and the listener that drops
// cached installations changed by other replicas (PostgreSQL only).
func (a *App) Start(ctx context.Context) error {
	if err := a.Jobs.Start(ctx); err != nil {
		return err
	}
	go a.DB.ListenInstallations(ctx, a.Directory.Invalidate, func() {
		a.Directory.InvalidateAll()
		a.once.Do(func() { close(a.listening) })
	})
	if a.DB.Dialect() != store.DialectPostgres {
		a.once.Do(func() { close(a.listening) })
	}
	return nil
}

// Stop ends the background work gracefully within ctx: running jobs finish
// or, near the deadline, are cancelled and resume later from checkpoints.
func (a *App) Stop(ctx context.Context) error { return a.Jobs.Stop(ctx) }

// Listening is closed once cross-replica invalidation is in effect.
func (a *App) Listening() <-chan struct{} { return a.listening }

// Options injects what tests replace.
type Options struct {
	Now        func() time.Time // default time.Now
	HTTPClient *http.Client     // for install-key fetches; default 5s timeout
	// RedeemBurst overrides the Connect key attempts allowed at once per
	// tenant and per address (tests of races raise it).
	RedeemBurst int
}

// NewLogger builds the slog logger the configuration asks for.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenStore opens and migrates the database. Migrating at start-up is safe
// with several replicas: the migrator holds a database lock.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.RedactedDatabaseURL(), err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if err := jobs.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate River: %w", err)
	}
	return db, nil
}

// KeyRing returns ENCRYPTION_KEYS, or in development a key generated into
// the data directory, announced loudly because losing that file loses every
// stored secret.
func KeyRing(cfg *config.Config, log *slog.Logger) (*secrets.KeyRing, error) {
	spec := cfg.EncryptionKeys
	if spec == "" {
		var created bool
		var err error
		spec, created, err = secrets.LoadOrCreateDevKey(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("development encryption key: %w", err)
		}
		log.Warn("ENCRYPTION_KEYS is not set: using a development key from the data directory; set ENCRYPTION_KEYS in production",
			"file", filepath.Join(cfg.DataDir, "encryption.key"), "created", created)
	}
	kr, err := secrets.ParseKeyRing(spec)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	return kr, nil
}

// Open opens (and migrates) the configured database and wires the service
// on it; Close releases it.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) (*App, error) {
	kr, err := KeyRing(cfg, log)
	if err != nil {
		return nil, err
	}
	db, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a, err := New(cfg, log, db, kr, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

// Close closes the database; call it after Stop.
func (a *App) Close() error { return a.DB.Close() }

// New wires the service on an open, migrated database.
func New(cfg *config.Config, log *slog.Logger, db *store.DB, kr *secrets.KeyRing, opts Options) (*App, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	desc, err := descriptor.Render(jiraconnect.Descriptor, descriptor.Params{BaseURL: cfg.BaseURL.String(), Key: cfg.AppKey, Name: cfg.AppName})
	if err != nil {
		return nil, err
	}
	pages, err := template.ParseFS(jiraconnect.Templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	openapi, err := yaml.YAMLToJSON(jiraconnect.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	dir := lifecycle.NewDirectory(db, kr, cfg.CacheTTL, now)
	// The directory knows each site's linked integration; any write to an
	// integration drops that knowledge here and, by NOTIFY, on every replica.
	if err := db.WatchLinks(dir.InvalidateAll); err != nil {
		return nil, err
	}
	ints := &integrations.Service{DB: db, Now: now, Log: log, Secrets: kr, CloudHosts: cfg.JiraHosts,
		AllowLoopbackHTTP: cfg.Env != config.EnvProduction, PublicURL: cfg.BaseURL.String(),
		Validator: &integrations.Validator{Installations: dir, AppKey: cfg.AppKey, HTTP: &http.Client{Timeout: 15 * time.Second}, Now: now}}
	lc := &lifecycle.Service{Store: db, Sealer: kr, Directory: dir, AppKey: cfg.AppKey, JiraHosts: cfg.JiraHosts,
		Retention: cfg.UninstallRetention, Now: now, Log: log, Changed: ints.InstallationChanged}
	sources := Sources(ConnectSources(dir, cfg.AppKey, now), ints)
	syncer := &ingest.Syncer{DB: db, Sources: sources, Now: now, Log: log}
	webhooks := &ingest.Webhooks{DB: db, Sources: sources, Now: now, Links: dir}
	maint := &maintenance{db: db, now: now, log: log}
	bg, err := jobs.New(db, jobs.Config{SyncInterval: cfg.SyncInterval, SyncTimeout: cfg.SyncTimeout, Workers: cfg.Workers,
		PollInterval: cfg.JobsPollInterval, Logger: log}, &syncGuard{syncer: syncer, db: db, ints: ints}, webhooks, maint)
	if err != nil {
		return nil, err
	}
	maint.enqueue = bg.EnqueueWebhook
	webhooks.Enqueue, webhooks.EnqueueMany = bg.EnqueueWebhook, bg.EnqueueWebhooks
	ints.Queue = bg
	// The hygiene report and the Salesforce mapping (issue 6). Links are
	// written with the issues (store.WriteIssues) by ingestion's
	// extractor.
	hyg := &hygiene.Service{DB: db, Now: now, Log: log, Fields: hygiene.SourceFields{Sources: sources}, Queue: bg}
	if err := db.SetSalesforceExtractor(ingest.SalesforceLinks); err != nil {
		return nil, err
	}
	metrics := httpapi.NewMetrics()
	h := httpapi.New(httpapi.Deps{
		Config:     cfg,
		Descriptor: desc,
		Lifecycle:  lc,
		Directory:  dir,
		JWT:        &atlassianjwt.Verifier{BasePath: cfg.BasePath, Secrets: dir, Now: now, Leeway: jwtLeeway},
		Install: &atlassianjwt.InstallVerifier{Keys: atlassianjwt.NewInstallKeys(cfg.InstallKeysURL, client),
			Audience: cfg.BaseURL.String(), BasePath: cfg.BasePath, Now: now, Leeway: jwtLeeway},
		Pages:        pages,
		Integrations: ints,
		Keys:         &keys.Service{DB: db, Now: now, Log: log},
		RedeemLimit:  ratelimit.New(redeemEvery, cmp.Or(opts.RedeemBurst, redeemBurst), now),
		OpenAPI:      openapi,
		Webhooks:     webhooks,
		Hygiene:      hyg,
		Ready:        func(ctx context.Context) error { return Ready(ctx, db) },
		Metrics:      metrics,
		Log:          log,
	})
	return &App{Config: cfg, Log: log, DB: db, Handler: h, Metrics: metrics, Directory: dir, Integrations: ints, Syncer: syncer, Webhooks: webhooks, Jobs: bg, listening: make(chan struct{})}, nil
}

// ConnectSources opens Jira sources for Connect app integrations: the
// linked installation's site, signed with its shared secret.
func ConnectSources(dir *lifecycle.Directory, appKey string, now func() time.Time) ingest.SourceFactory {
	return func(ctx context.Context, it *store.Integration) (ingest.Source, error) {
		if it.ClientKey == nil {
			return nil, apperr.New(apperr.Conflict, "no Jira site is linked to this integration").WithReason("not_linked")
		}
		e, err := dir.Lookup(ctx, *it.ClientKey)
		if err != nil {
			return nil, err
		}
		if e.Secret == nil {
			return nil, apperr.New(apperr.Conflict, "the app is uninstalled from the linked site").WithReason("uninstalled")
		}
		c, err := jira.New(e.BaseURL, &jira.ConnectJWT{AppKey: appKey, SharedSecret: e.Secret, Now: now})
		if err != nil {
			return nil, err
		}
		return &ingest.CloudSource{Client: c}, nil
	}
}

// NewServer returns the HTTP server with the service's limits: header and
// body timeouts against slow clients, and a 64 KiB header cap (a 1 MiB
// token in a header or query string is refused before any handler runs).
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Ready reports whether the database answers and its schema is current.
func Ready(ctx context.Context, db *store.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.Ping(ctx); err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "database unreachable")
	}
	cur, latest, err := db.SchemaStatus(ctx)
	if err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "schema status unknown")
	}
	if cur != latest {
		return apperr.New(apperr.Unavailable, "schema version %d, want %d", cur, latest)
	}
	return nil
}
