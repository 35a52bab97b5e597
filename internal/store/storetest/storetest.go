// Package storetest gives tests fresh, migrated databases of each dialect:
// SQLite in t.TempDir() always, and PostgreSQL when TEST_DATABASE_URL
// points at a server where that role may CREATE DATABASE (.ci/run and
// scripts/testpg.sh start one). Each PostgreSQL database is created for
// one test and dropped at its cleanup, so tests may run in parallel.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the admin connection

	"github.com/sei-io/jira-connect/internal/store"
)

// EnvURL names the variable holding the PostgreSQL admin URL, e.g.
// postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable.
const EnvURL = "TEST_DATABASE_URL"

// SkipMessage is logged when PostgreSQL tests do not run.
const SkipMessage = "PostgreSQL skipped: " + EnvURL + " unset"

// Dialects returns the dialects to test: sqlite, and postgres when
// TEST_DATABASE_URL is set (otherwise it logs SkipMessage).
func Dialects(t testing.TB) []string {
	t.Helper()
	if os.Getenv(EnvURL) == "" {
		t.Log(SkipMessage)
		return []string{store.DialectSQLite}
	}
	return []string{store.DialectSQLite, store.DialectPostgres}
}

// RequirePostgres skips the test with SkipMessage unless TEST_DATABASE_URL
// is set, for PostgreSQL-only tests (locking, concurrency).
func RequirePostgres(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvURL) == "" {
		t.Skip(SkipMessage)
	}
}

// ForEach runs fn in a subtest per dialect ("sqlite", "postgres"), each
// with a fresh migrated database. Without TEST_DATABASE_URL the postgres
// subtest is skipped with SkipMessage, so `go test -v` shows it.
func ForEach(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(d, func(t *testing.T) {
			if d == store.DialectPostgres {
				RequirePostgres(t)
			}
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh database of the dialect, migrated, closed at
// cleanup. Its clock is time.Now; use OpenOptions to inject one.
func Open(t testing.TB, dialect string) *store.DB {
	t.Helper()
	return OpenOptions(t, dialect, store.Options{})
}

// OpenOptions is Open with store options; a nil Logger logs to the test.
func OpenOptions(t testing.TB, dialect string, opts store.Options) *store.DB {
	t.Helper()
	db := OpenUnmigrated(t, URL(t, dialect), opts)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return db
}

// OpenUnmigrated opens databaseURL (from URL) and closes it at cleanup.
func OpenUnmigrated(t testing.TB, databaseURL string, opts store.Options) *store.DB {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, databaseURL, opts)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// URL returns the URL of a new, empty database of the dialect that lives
// until the test's cleanup. Several store.Open calls on it share it, as
// replicas share production's. For postgres it fails the test when
// TEST_DATABASE_URL is unset; check Dialects first.
func URL(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case store.DialectSQLite:
		return "sqlite:" + filepath.ToSlash(filepath.Join(t.TempDir(), "test.db"))
	case store.DialectPostgres:
		return postgresURL(t)
	}
	t.Fatalf("storetest: unknown dialect %q", dialect)
	return ""
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

func postgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		t.Fatal(SkipMessage)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s is not a URL", EnvURL) // not echoing: it may hold a password
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	label := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(label) > 40 {
		label = label[:40]
	}
	name := "jct_" + hex.EncodeToString(suffix) + "_" + label

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminExec(ctx, t, admin, `CREATE DATABASE "`+name+`"`)
	t.Cleanup(func() {
		// Registered before the test opens the database, so it runs after
		// the store is closed; FORCE ends any connection a test leaked.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adminExec(ctx, t, admin, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	})
	u.Path = "/" + name
	return u.String()
}

func adminExec(ctx context.Context, t testing.TB, admin, stmt string) {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("storetest: admin connection: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("storetest: %s: %v", strings.Fields(stmt)[0]+" "+strings.Fields(stmt)[1], err)
	}
}

// Exec runs raw SQL on db for test setup (e.g. faking goose's version
// table), failing the test on error.
func Exec(t testing.TB, db *store.DB, query string, args ...any) {
	t.Helper()
	if err := db.Gorm.WithContext(context.Background()).Exec(query, args...).Error; err != nil {
		t.Fatalf("exec %s: %v", query, err)
	}
}
