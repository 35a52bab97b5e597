package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

func TestParseURL(t *testing.T) {
	defaults := "?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
	tests := []struct {
		in, dialect, dsn, dir string
	}{
		{"postgres://u:p@h:5432/db?sslmode=disable", "postgres", "postgres://u:p@h:5432/db?sslmode=disable", ""},
		{"postgresql://h/db", "postgres", "postgresql://h/db", ""},
		{"POSTGRES://h/db", "postgres", "POSTGRES://h/db", ""},
		{"sqlite:data/app.db", "sqlite", "data/app.db" + defaults, "data"},
		{"sqlite:///var/lib/jc/app.db", "sqlite", "/var/lib/jc/app.db" + defaults, "/var/lib/jc"},
		{"sqlite://app.db", "sqlite", "app.db" + defaults, "."},
		{"sqlite:app.db?_pragma=cache_size(-2000)", "sqlite", "app.db" + defaults + "&_pragma=cache_size(-2000)", "."},
		{"sqlite::memory:", "sqlite", ":memory:" + defaults, ""},
		{"file:/tmp/x/app.db?cache=shared", "sqlite", "file:/tmp/x/app.db" + defaults + "&cache=shared", "/tmp/x"},
		{"file:rel/app.db", "sqlite", "file:rel/app.db" + defaults, "rel"},
		{"./data/connect.db", "sqlite", "./data/connect.db" + defaults, "data"},
		{"/abs/connect.db", "sqlite", "/abs/connect.db" + defaults, "/abs"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, dsn, dir, err := store.ParseURL(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.dialect || dsn != tt.dsn || dir != tt.dir {
				t.Errorf("got (%q, %q, %q), want (%q, %q, %q)", d, dsn, dir, tt.dialect, tt.dsn, tt.dir)
			}
		})
	}
	for _, bad := range []string{"", "  ", "mysql://root:hunter2@db/x", "sqlite:", "sqlite:x.db?%zz"} {
		_, _, _, err := store.ParseURL(bad)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
			continue
		}
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("ParseURL(%q) code = %q", bad, apperr.CodeOf(err))
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error echoes the password: %v", err)
		}
	}
}

func TestOpenSQLiteSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, "app.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect() != store.DialectSQLite {
		t.Errorf("Dialect = %q", db.Dialect())
	}
	if _, err := os.Stat(filepath.Join(dir, "app.db")); err != nil {
		t.Errorf("database file not created: %v", err)
	}
	pragma := func(name string) string {
		var v string
		if err := db.Gorm.Raw("PRAGMA " + name).Scan(&v).Error; err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	for name, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000", "synchronous": "1"} {
		if got := pragma(name); got != want {
			t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
		}
	}
	sqlDB, _ := db.Gorm.DB()
	if n := sqlDB.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("MaxOpenConnections = %d, want 1 (single writer)", n)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Error(err)
	}
	if err := db.Close(); err != nil {
		t.Error(err)
	}
	if err := db.Ping(context.Background()); apperr.CodeOf(err) != apperr.Unavailable {
		t.Errorf("Ping after Close = %v, want unavailable", err)
	}
}

func TestOpenMemory(t *testing.T) {
	db, err := store.Open(context.Background(), "sqlite::memory:", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cur, latest, err := db.SchemaStatus(context.Background()); err != nil || cur != latest {
		t.Fatalf("SchemaStatus = %d, %d, %v", cur, latest, err)
	}
}

func TestOpenPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := store.Open(ctx, "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", store.Options{})
	if apperr.CodeOf(err) != apperr.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error echoes the password: %v", err)
	}
}

func TestOpenPostgres(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		if d != store.DialectPostgres {
			continue
		}
		db := storetest.Open(t, d)
		if db.Dialect() != store.DialectPostgres {
			t.Errorf("Dialect = %q", db.Dialect())
		}
		if err := db.Ping(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

// The gorm logger reports failed statements without their parameter
// values, and stays silent for NotFound.
func TestLoggerNeverLogsParameters(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			var buf bytes.Buffer
			var mu syncWriter
			mu.w = &buf
			logger := slog.New(slog.NewTextHandler(&mu, &slog.HandlerOptions{Level: slog.LevelDebug}))
			db := storetest.OpenOptions(t, d, store.Options{Logger: logger})
			ctx := context.Background()
			if _, err := db.GetInstallation(ctx, "no-such-key-VALUE1"); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("GetInstallation: %v", err)
			}
			secret := "SECRET-VALUE-xyzzy"
			// Bypass validation to make the database reject the row.
			err := db.Gorm.WithContext(ctx).Create(&store.Installation{
				ClientKey: "ck-VALUE2", BaseURL: "https://x.atlassian.net", State: "bogus",
				SharedSecret: &secret, InstalledAt: time.Now(), UpdatedAt: time.Now(),
			}).Error
			if err == nil {
				t.Fatal("insert with a bad state succeeded; CHECK missing")
			}
			out := mu.String()
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "INSERT INTO") {
				t.Errorf("failed statement not logged at error level:\n%s", out)
			}
			for _, v := range []string{secret, "VALUE1", "VALUE2"} {
				if strings.Contains(out, v) {
					t.Errorf("log contains parameter value %q:\n%s", v, out)
				}
			}
			if strings.Count(out, "level=ERROR") != 1 {
				t.Errorf("want exactly one error (NotFound is not logged):\n%s", out)
			}
		})
	}
}
