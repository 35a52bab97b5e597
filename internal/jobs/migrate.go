package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// migrateLockID keys the PostgreSQL advisory lock that serializes River's
// migrations between replicas: rivermigrate takes no lock of its own (each
// version runs in its own transaction, so two replicas racing would both
// try to apply it). "rivermig" in ASCII, distinct from goose's key.
const migrateLockID int64 = 0x72697665726d6967

// Migrate applies River's pending schema migrations (its river_* tables)
// with the driver New will use. Run it at start-up after the store's own
// Migrate; it is idempotent, and on PostgreSQL several replicas may run it
// at once: they take turns under an advisory lock, and the later ones find
// nothing to do.
func Migrate(ctx context.Context, db *store.DB) error {
	return migrate(ctx, db, nil)
}

func migrate(ctx context.Context, db *store.DB, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		res *rivermigrate.MigrateResult
		err error
	)
	switch db.Dialect() {
	case store.DialectSQLite:
		// One process owns an SQLite database: no lock needed. Each version
		// runs in a transaction on the store's single connection.
		var m *rivermigrate.Migrator[*sql.Tx]
		m, err = rivermigrate.New(riversqlite.New(db.SQL()), &rivermigrate.Config{Logger: log})
		if err == nil {
			res, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	case store.DialectPostgres:
		res, err = migratePostgres(ctx, db.PostgresDSN(), log)
	default:
		err = fmt.Errorf("unsupported dialect %q", db.Dialect())
	}
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "River migration failed").WithReason("river_migration_failed")
	}
	for _, v := range res.Versions {
		log.InfoContext(ctx, "River migration applied", "version", v.Version, "name", v.Name, "duration", v.Duration)
	}
	return nil
}

func migratePostgres(ctx context.Context, dsn string, log *slog.Logger) (*rivermigrate.MigrateResult, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the PostgreSQL URL") // not echoing: it may hold a password
	}
	cfg.MaxConns = 2 // one holds the lock, one migrates
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// A session lock on its own connection (the migrator runs each version
	// in a transaction of its own, on the other). Waiting honours ctx: pgx
	// cancels the query when ctx ends. Should this process die, the session
	// ends and the lock with it.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockID); err != nil {
		conn.Release()
		return nil, fmt.Errorf("River migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLockID); err != nil {
			// Never hand a connection that may still hold the lock back.
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}()

	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return nil, err
	}
	return m.Migrate(ctx, rivermigrate.DirectionUp, nil)
}
