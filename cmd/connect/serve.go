package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	jiraconnect "github.com/sei-io/jira-connect"
	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/descriptor"
	"github.com/sei-io/jira-connect/internal/httpapi"
	"github.com/sei-io/jira-connect/internal/lifecycle"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
)

// app is the wired service, shared by serve and tests.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *store.DB
	handler http.Handler
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens and migrates the database. Migrating at start-up is safe
// with several replicas: the migrator holds a database lock.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.RedactedDatabaseURL(), err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return db, nil
}

// keyRing returns ENCRYPTION_KEYS, or in development a key generated into
// the data directory, announced loudly because losing that file loses every
// stored secret.
func keyRing(cfg *config.Config, log *slog.Logger) (*secrets.KeyRing, error) {
	spec := cfg.EncryptionKeys
	if spec == "" {
		var created bool
		var err error
		spec, created, err = secrets.LoadOrCreateDevKey(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("development encryption key: %w", err)
		}
		log.Warn("ENCRYPTION_KEYS is not set: using a development key from the data directory; set ENCRYPTION_KEYS in production",
			"file", cfg.DataDir+"/encryption.key", "created", created)
	}
	kr, err := secrets.ParseKeyRing(spec)
	if err != nil {
		return nil, fmt.Errorf("ENCRYPTION_KEYS: %w", err)
	}
	return kr, nil
}

func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	kr, err := keyRing(cfg, log)
	if err != nil {
		return nil, err
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	desc, err := descriptor.Render(jiraconnect.Descriptor, descriptor.Params{BaseURL: cfg.BaseURL.String(), Key: cfg.AppKey, Name: cfg.AppName})
	if err != nil {
		db.Close()
		return nil, err
	}
	pages, err := template.ParseFS(jiraconnect.Templates, "templates/*.html")
	if err != nil {
		db.Close()
		return nil, err
	}
	dir := lifecycle.NewDirectory(db, kr, cfg.CacheTTL, time.Now)
	lc := &lifecycle.Service{Store: db, Sealer: kr, Directory: dir, AppKey: cfg.AppKey, JiraHosts: cfg.JiraHosts,
		Retention: cfg.UninstallRetention, Now: time.Now, Log: log}
	keys := atlassianjwt.NewInstallKeys(cfg.InstallKeysURL, &http.Client{Timeout: 5 * time.Second})
	h := httpapi.New(httpapi.Deps{
		Config:     cfg,
		Descriptor: desc,
		Lifecycle:  lc,
		Directory:  dir,
		JWT:        &atlassianjwt.Verifier{BasePath: cfg.BasePath, Secrets: dir, Now: time.Now, Leeway: 30 * time.Second},
		Install:    &atlassianjwt.InstallVerifier{Keys: keys, Audience: cfg.BaseURL.String(), BasePath: cfg.BasePath, Now: time.Now, Leeway: 30 * time.Second},
		Pages:      pages,
		Ready:      func(ctx context.Context) error { return ready(ctx, db) },
		Metrics:    httpapi.NewMetrics(),
		Log:        log,
	})
	return &app{cfg: cfg, log: log, db: db, handler: h}, nil
}

func ready(ctx context.Context, db *store.DB) error {
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

// serve runs the HTTP service until ctx ends, then shuts down in order:
// stop accepting, drain requests, close the database. listening, when not
// nil, receives the bound address (tests listen on :0).
func serve(ctx context.Context, getenv func(string) string, logw io.Writer, listening chan<- string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, logw)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.db.Close()

	// Listen before serving so a taken port fails at once, not in a goroutine.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String(), "database", cfg.RedactedDatabaseURL(), "env", cfg.Env)
	if listening != nil {
		listening <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func migrate(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	cur, _, err := db.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "schema at version %d\n", cur)
	return err
}

func keygen(stdout io.Writer) error {
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, spec)
	return err
}
