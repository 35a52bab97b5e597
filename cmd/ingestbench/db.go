package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for CREATE/DROP DATABASE

	"github.com/sei-io/jira-connect/internal/store"
)

// openDatabase creates a fresh database for the run and migrates it. The
// cleanup closes it and, unless -keep, drops (or deletes) it.
func openDatabase(ctx context.Context, o *options, log *slog.Logger) (*store.DB, string, func(), error) {
	var dbURL string
	var drop func()
	switch o.db {
	case "sqlite":
		path := o.sqlitePath
		if path == "" {
			dir, err := os.MkdirTemp("", "ingestbench-")
			if err != nil {
				return nil, "", nil, err
			}
			path = filepath.Join(dir, "bench.db")
			drop = func() { _ = os.RemoveAll(dir) }
		} else {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(path + suffix)
			}
			drop = func() {
				for _, suffix := range []string{"", "-wal", "-shm"} {
					_ = os.Remove(path + suffix)
				}
			}
		}
		dbURL = "sqlite:" + filepath.ToSlash(path)
	case "postgres":
		u, err := url.Parse(o.dsn)
		if err != nil {
			return nil, "", nil, fmt.Errorf("-dsn is not a URL")
		}
		suffix := make([]byte, 6)
		_, _ = rand.Read(suffix)
		name := "ingestbench_" + hex.EncodeToString(suffix)
		if err := adminExec(ctx, o.dsn, `CREATE DATABASE "`+name+`"`); err != nil {
			return nil, "", nil, fmt.Errorf("create database: %w", err)
		}
		drop = func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := adminExec(ctx, o.dsn, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
				log.Warn("drop database", "name", name, "error", err)
			}
		}
		u.Path = "/" + name
		dbURL = u.String()
	}
	if o.keep {
		drop = func() {}
	}
	db, err := store.Open(ctx, dbURL, store.Options{Logger: log})
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		_ = db.Close()
		drop()
		return nil, "", nil, fmt.Errorf("migrate: %w", err)
	}
	return db, dbURL, func() { _ = db.Close(); drop() }, nil
}

func adminExec(ctx context.Context, dsn, stmt string) error {
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.ExecContext(ctx, stmt)
	return err
}

// redact hides a password in a database URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
