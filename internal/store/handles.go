package store

import "database/sql"

// SQL returns the database/sql pool under gorm, for libraries that need a
// *sql.DB of their own (the River job queue on SQLite). On SQLite it is the
// one-connection pool: sharing it is what keeps a second SQLite library copy
// from opening the file, and whoever uses it must never hold its connection
// (a transaction, a sql.Conn, an unclosed Rows) while waiting on gorm.
func (d *DB) SQL() *sql.DB { return d.sqlDB }

// PostgresDSN returns the PostgreSQL connection URL the store was opened
// with, for components that need their own pgx pool (River's pgx driver),
// and "" on SQLite. It may carry a password: never log it.
func (d *DB) PostgresDSN() string { return d.dsn }
