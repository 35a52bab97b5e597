// Package store owns the database: the one constructor (PostgreSQL in
// production, SQLite embedded on one machine), the versioned migrations of
// each dialect, transactions, and the gorm models with their repository
// methods. Every method takes a context, and every error it returns is an
// *apperr.Error: NotFound for missing rows, Conflict for unique violations,
// Internal (wrapping the cause) otherwise.
//
// Times are stored in UTC with microsecond precision on both dialects
// (PostgreSQL's timestamptz resolution), and read back in UTC, so values
// round-trip identically whichever database is underneath.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// Dialect names returned by (*DB).Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Now is the clock for timestamps the store sets itself (updated_at,
	// gorm's NowFunc). Defaults to time.Now.
	Now func() time.Time
	// Logger receives database errors (never SQL parameter values) and
	// migration progress. Defaults to discarding.
	Logger *slog.Logger
	// MaxOpenConns caps the PostgreSQL pool of this process (default 20);
	// remember that replicas multiply it. SQLite always uses one connection.
	MaxOpenConns int
}

// DB is the database handle shared by the service. Gorm is exposed for
// packages that build their own queries; they must use WithContext(ctx).
type DB struct {
	Gorm *gorm.DB

	sqlDB   *sql.DB
	dialect string
	now     func() time.Time
	log     *slog.Logger
	mig     *migrator // shared with transaction handles
	dsn     string    // PostgreSQL only: for the LISTEN connection
	// conn is the connection a transaction from TxOnConn runs on, through
	// which it reaches pgx directly (COPY); nil otherwise.
	conn *sql.Conn
}

// Open connects to databaseURL without migrating it (call Migrate).
//
// postgres:// and postgresql:// URLs select PostgreSQL. sqlite: URLs
// (sqlite:relative.db, sqlite:///abs/path.db), file: URIs and plain paths
// select SQLite; the parent directory is created, and the database runs in
// WAL mode with foreign keys on, a 5 s busy timeout and a single connection,
// so writers never contend with each other inside the process. Query
// parameters of sqlite:/file: URLs are passed to the driver after the
// defaults (e.g. _pragma=cache_size(-20000)).
func Open(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	target, err := parseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	normNow := func() time.Time { return normTime(now()) }

	cfg := &gorm.Config{
		NowFunc:                normNow,
		Logger:                 newGormLogger(log),
		TranslateError:         true,
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true, // we ping with ctx below
		// Off on both: pgx already caches prepared statements per
		// connection, and gorm's cache deadlocks with SQLite's single
		// connection inside transactions (go-gorm/gorm#7350, #7465; seen
		// here as a hang in the Connect key race test).
		PrepareStmt: false,
	}

	var dialector gorm.Dialector
	var closeOnErr *sql.DB
	switch target.dialect {
	case DialectPostgres:
		dialector = postgres.New(postgres.Config{DSN: target.dsn})
	case DialectSQLite:
		if target.dir != "" {
			if err := os.MkdirAll(target.dir, 0o700); err != nil {
				return nil, apperr.Wrap(err, apperr.Internal, "cannot create database directory %s", target.dir)
			}
		}
		pool, err := openSQLite(target.dsn)
		if err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "cannot open sqlite database")
		}
		// One connection is the single writer (and keeps a :memory:
		// database alive).
		pool.SetMaxOpenConns(1)
		pool.SetMaxIdleConns(1)
		pool.SetConnMaxLifetime(0)
		pool.SetConnMaxIdleTime(0)
		closeOnErr = pool
		dialector = &sqlite.Dialector{Conn: pool}
	}
	gdb, err := gorm.Open(dialector, cfg)
	if err != nil {
		if closeOnErr != nil {
			_ = closeOnErr.Close()
		}
		return nil, apperr.Wrap(err, apperr.Unavailable, "cannot open %s database", target.dialect).WithReason("db_open")
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "cannot open %s database", target.dialect)
	}
	if target.dialect == DialectPostgres {
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		// As many idle as open: with fewer, database/sql closes every
		// connection handed back beyond the idle limit and opens another
		// moments later, a PostgreSQL backend fork each (581 in 5 s of a
		// webhook load with 5 idle of 20). Connections a burst opened close
		// after 5 idle minutes.
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		sqlDB.SetConnMaxLifetime(time.Hour)
	}
	db := &DB{Gorm: gdb, sqlDB: sqlDB, dialect: target.dialect, now: normNow, log: log, mig: &migrator{}}
	if target.dialect == DialectPostgres {
		db.dsn = target.dsn
	}
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if target.dialect == DialectSQLite {
		if err := db.checkSQLite(ctx); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	return db, nil
}

// checkSQLite verifies that the pragmas took effect: a typo in a user's
// query parameters or a read-only directory should fail at startup.
func (d *DB) checkSQLite(ctx context.Context) error {
	var fk int
	if err := d.sqlDB.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot read sqlite pragmas")
	}
	if fk != 1 {
		return apperr.New(apperr.Internal, "sqlite foreign_keys is off")
	}
	return nil
}

type target struct {
	dialect string
	dsn     string
	dir     string // SQLite: directory to create; "" for in-memory
}

// sqliteDefaults come first so a URL's own parameters can override them.
var sqliteDefaults = []string{
	"_pragma=journal_mode(WAL)",
	"_pragma=foreign_keys(1)",
	"_pragma=busy_timeout(5000)",
	// Durable across process crashes; a power loss may lose the last
	// commits but never corrupts a WAL database.
	"_pragma=synchronous(NORMAL)",
}

// parseURL decides the dialect. Errors never echo the URL, which may carry
// a password.
func parseURL(raw string) (target, error) {
	raw = strings.TrimSpace(raw)
	lower := strings.ToLower(raw)
	switch {
	case raw == "":
		return target{}, apperr.New(apperr.Invalid, "database URL is empty")
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return target{dialect: DialectPostgres, dsn: raw}, nil
	case strings.HasPrefix(lower, "sqlite:"):
		rest := raw[len("sqlite:"):]
		if strings.HasPrefix(rest, "//") { // sqlite:///abs/path, sqlite://rel/path
			rest = rest[2:]
		}
		path, query, _ := strings.Cut(rest, "?")
		return sqliteTarget(path, path, query)
	case strings.HasPrefix(lower, "file:"):
		// Keep the URI for SQLite (it understands mode=, cache= ...) but
		// learn the file path to create its directory.
		u, err := url.Parse(raw)
		if err != nil {
			return target{}, apperr.New(apperr.Invalid, "database URL is not a valid file: URI")
		}
		path := u.Opaque
		if path == "" {
			path = u.Path
		}
		base, query, _ := strings.Cut(raw, "?")
		return sqliteTarget(base, path, query)
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		if len(scheme) > 20 {
			scheme = scheme[:20]
		}
		return target{}, apperr.New(apperr.Invalid,
			"unsupported database URL scheme %q (want postgres://, postgresql://, sqlite:, file: or a path)", scheme)
	default:
		path, query, _ := strings.Cut(raw, "?")
		return sqliteTarget(path, path, query)
	}
}

func sqliteTarget(base, path, query string) (target, error) {
	if path == "" {
		return target{}, apperr.New(apperr.Invalid, "sqlite database URL has no path")
	}
	if _, err := url.ParseQuery(query); err != nil {
		return target{}, apperr.New(apperr.Invalid, "sqlite database URL has a malformed query")
	}
	params := strings.Join(sqliteDefaults, "&")
	if query != "" {
		params += "&" + query
	}
	t := target{dialect: DialectSQLite, dsn: base + "?" + params}
	if path != ":memory:" && !strings.Contains(query, "mode=memory") {
		t.dir = filepath.Dir(filepath.FromSlash(path))
	}
	return t, nil
}

// Dialect returns "postgres" or "sqlite".
func (d *DB) Dialect() string { return d.dialect }

// Ping checks that the database answers, for /readyz.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.sqlDB.PingContext(ctx); err != nil {
		return apperr.Wrap(err, apperr.Unavailable, "database is unavailable").WithReason("db_ping")
	}
	return nil
}

// Close closes the connection pool. Call it last on shutdown.
func (d *DB) Close() error {
	if err := d.sqlDB.Close(); err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot close database")
	}
	return nil
}

// Now returns the store's clock reading, normalized as stored (UTC,
// microseconds).
func (d *DB) Now() time.Time { return d.now() }

// Tx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise (also on panic). fn must use only tx: on SQLite the
// transaction holds the one connection, so using the outer DB inside fn
// waits forever. Tx on a tx handle nests with a savepoint. fn's error is
// returned unchanged.
func (d *DB) Tx(ctx context.Context, fn func(tx *DB) error) error {
	var fnErr error
	err := d.Gorm.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		child := *d
		child.Gorm = g
		fnErr = fn(&child)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil { // begin or commit failed
		return mapError(err, "transaction")
	}
	return nil
}

// TxOnConn is Tx on one connection taken from the pool for it, so that
// PostgreSQL work inside may use the connection's pgx API (COPY) with
// withPgx. Inside a transaction already, it is that transaction.
func (d *DB) TxOnConn(ctx context.Context, fn func(tx *DB) error) error {
	if d.dialect != DialectPostgres || d.conn != nil {
		return d.Tx(ctx, fn)
	}
	if _, inTx := d.Gorm.Statement.ConnPool.(*sql.Tx); inTx {
		return d.Tx(ctx, fn)
	}
	conn, err := d.sqlDB.Conn(ctx)
	if err != nil {
		return mapError(err, "connection")
	}
	defer conn.Close()
	on := *d
	on.Gorm = d.Gorm.Session(&gorm.Session{Context: ctx})
	on.Gorm.Statement.ConnPool = conn // a *sql.Conn begins transactions as a pool does
	on.conn = conn
	return on.Tx(ctx, fn)
}

// withPgx runs fn with the pgx connection under a TxOnConn transaction;
// ok is false outside one.
func (d *DB) withPgx(fn func(c *pgx.Conn) error) (ok bool, err error) {
	if d.conn == nil {
		return false, nil
	}
	return true, d.conn.Raw(func(dc any) error {
		sc, isPgx := dc.(*stdlib.Conn)
		if !isPgx {
			return fmt.Errorf("store: the PostgreSQL driver connection is %T, not pgx's", dc)
		}
		return fn(sc.Conn())
	})
}

// normTime is the one place that decides how times are stored.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// String keeps %v of a DB from printing the pool internals.
func (d *DB) String() string { return fmt.Sprintf("store.DB(%s)", d.dialect) }
