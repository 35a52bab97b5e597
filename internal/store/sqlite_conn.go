package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"time"
)

// SQLite has no time type: the driver writes a time.Time argument as text
// in the time's own zone ("2025-03-29 16:02:03.456789+09:00"), and SQL
// compares that text. Mixed zones would then order and compare wrongly
// (purge_after < ? with a local time). Every time argument is therefore
// converted to UTC at the driver boundary, whoever builds the query, so
// stored and compared texts always share the "+00:00" suffix and sort
// chronologically.

// openSQLite returns a pool of glebarez/go-sqlite connections (the driver
// registered as "sqlite") whose time arguments are converted to UTC.
func openSQLite(dsn string) (*sql.DB, error) {
	probe, err := sql.Open("sqlite", "") // does not connect: just finds the driver
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	_ = probe.Close()
	return sql.OpenDB(utcConnector{drv: drv, dsn: dsn}), nil
}

type utcConnector struct {
	drv driver.Driver
	dsn string
}

func (c utcConnector) Driver() driver.Driver { return c.drv }

func (c utcConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods", conn)
	}
	return utcConn{inner}, nil
}

// sqliteConn is what glebarez/go-sqlite's connection implements.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
}

type utcConn struct{ sqliteConn }

var _ driver.NamedValueChecker = utcConn{}

// CheckNamedValue converts times to UTC and leaves everything else to
// database/sql's default conversion (driver.ErrSkip).
func (utcConn) CheckNamedValue(nv *driver.NamedValue) error {
	if vr, ok := nv.Value.(driver.Valuer); ok {
		if rv := reflect.ValueOf(vr); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return driver.ErrSkip
		}
		v, err := vr.Value()
		if err != nil {
			return err
		}
		nv.Value = v
	}
	switch t := nv.Value.(type) {
	case time.Time:
		nv.Value = t.UTC()
	case *time.Time:
		if t != nil {
			nv.Value = t.UTC()
		}
	}
	return driver.ErrSkip
}
