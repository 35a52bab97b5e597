package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Migrations are plain SQL, one directory per dialect, versioned
// 00001_name.sql with goose annotations. Add a file to both directories for
// every schema change; never edit one that has shipped.
//
//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// VersionTable is goose's bookkeeping table.
const VersionTable = goose.DefaultTablename

// ErrSchemaNewer is wrapped by Migrate's error when the database has been
// migrated by a newer build than this one.
var ErrSchemaNewer = errors.New("database schema is newer than this build")

// migrationLockID keys the PostgreSQL advisory lock that serializes
// migrations between replicas (advisory locks are per database).
const migrationLockID = lock.DefaultLockID

type migrator struct {
	once     sync.Once
	provider *goose.Provider
	store    database.Store
	latest   int64
	err      error
}

func (d *DB) migrations() (*migrator, error) {
	m := d.mig
	m.once.Do(func() {
		sub, err := fs.Sub(migrationFiles, "migrations/"+d.dialect)
		if err != nil {
			m.err = err
			return
		}
		gd := goose.DialectSQLite3
		opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
		if d.dialect == DialectPostgres {
			gd = goose.DialectPostgres
			// Replicas starting together take turns; the ones that wait find
			// nothing left to do. pg_try_advisory_lock is polled every second
			// for up to 10 minutes, which bounds the longest migration.
			locker, err := lock.NewPostgresSessionLocker(
				lock.WithLockID(migrationLockID),
				lock.WithLockTimeout(1, 600),
				lock.WithUnlockTimeout(1, 60),
			)
			if err != nil {
				m.err = err
				return
			}
			opts = append(opts, goose.WithSessionLocker(locker))
		}
		// SQLite has no lock: it is the one-machine, one-process database.
		p, err := goose.NewProvider(gd, d.sqlDB, sub, opts...)
		if err != nil {
			m.err = err
			return
		}
		st, err := database.NewStore(gd, VersionTable)
		if err != nil {
			m.err = err
			return
		}
		srcs := p.ListSources()
		m.provider, m.store, m.latest = p, st, srcs[len(srcs)-1].Version
	})
	if m.err != nil {
		return nil, apperr.Wrap(m.err, apperr.Internal, "cannot load migrations")
	}
	return m, nil
}

// Migrate applies the pending migrations, at most one process at a time on
// PostgreSQL. It refuses (ErrSchemaNewer) when the database is at a version
// this build does not know, i.e. an older binary started against a schema
// migrated by a newer one. It is idempotent.
func (d *DB) Migrate(ctx context.Context) error {
	m, err := d.migrations()
	if err != nil {
		return err
	}
	// The version checks are plain reads outside the lock, so replicas
	// queue for the lock once each, not three times.
	if err := d.refuseNewer(ctx); err != nil {
		return err
	}
	results, err := m.provider.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	for _, r := range results {
		d.log.InfoContext(ctx, "migration applied",
			"dialect", d.dialect, "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "database migration failed").WithReason("migration_failed")
	}
	// A newer replica may have migrated past us before Up took the lock, in
	// which case Up found nothing to do.
	return d.refuseNewer(ctx)
}

func (d *DB) refuseNewer(ctx context.Context) error {
	current, latest, err := d.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	if current > latest {
		return apperr.Wrap(fmt.Errorf("%w: database is at version %d, this build knows up to %d", ErrSchemaNewer, current, latest),
			apperr.Internal, "database schema version %d is newer than this build's %d; deploy a newer build", current, latest).
			WithReason("schema_newer")
	}
	return nil
}

// SchemaStatus returns the database's schema version (0 when never
// migrated) and the newest version this build embeds, without writing
// anything, for /readyz: the schema is current when current == latest, and
// current > latest means a newer build has migrated it.
func (d *DB) SchemaStatus(ctx context.Context) (current, latest int64, err error) {
	m, err := d.migrations()
	if err != nil {
		return 0, 0, err
	}
	exists, err := d.versionTableExists(ctx, m.store)
	if err != nil {
		return 0, m.latest, apperr.Wrap(err, apperr.Internal, "cannot read database schema version")
	}
	if !exists {
		return 0, m.latest, nil
	}
	current, err = m.store.GetLatestVersion(ctx, d.sqlDB)
	if errors.Is(err, database.ErrVersionNotFound) {
		return 0, m.latest, nil
	}
	if err != nil {
		return 0, m.latest, apperr.Wrap(err, apperr.Internal, "cannot read database schema version")
	}
	return current, m.latest, nil
}

func (d *DB) versionTableExists(ctx context.Context, st database.Store) (bool, error) {
	if ext, ok := st.(database.StoreExtender); ok {
		exists, err := ext.TableExists(ctx, d.sqlDB)
		if !errors.Is(err, errors.ErrUnsupported) {
			return exists, err
		}
	}
	var n int
	err := d.sqlDB.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", VersionTable).Scan(&n)
	return n > 0, err
}
