package store

import (
	"context"
	"log/slog"
	"sync"

	"gorm.io/gorm"
)

// EveryInstallation is the installation_changed payload that stands for
// every installation. WatchLinks sends it when an integration was written:
// the statement does not say which site it was linked to before (an unlink
// or a delete clears or removes that), so every cached view of a link is
// dropped. Links change by hand (link, unlink, delete, validate), rarely
// enough that re-reading each site once afterwards costs nothing. A real
// client key is never empty (the lifecycle refuses one).
const EveryInstallation = ""

const linksPlugin = "sei:integration_links"

// WatchLinks calls changed after every statement on this handle (and its
// transactions) that writes the integrations table: whichever package made
// the change (Connect key redemption, unlink, delete, a status change), a
// cache of which integration a site is linked to learns it without that
// package knowing the cache exists. On PostgreSQL the change is also
// announced to every replica on installation_changed, with the
// EveryInstallation payload, from inside the writing transaction, so it is
// delivered when the change commits and never for a rollback.
//
// changed runs before the surrounding transaction commits. Callers drop
// cached state in it and must not use the database. On SQLite a re-read
// started meanwhile waits for the single connection, so it sees the
// commit; on PostgreSQL one could read the old row, and the announcement,
// which this replica hears too, drops it again milliseconds later.
//
// Call it while wiring, before the handle serves requests. Raw SQL (Exec)
// that writes integrations is not seen; there is none.
func (d *DB) WatchLinks(changed func()) error {
	p, ok := d.Gorm.Config.Plugins[linksPlugin].(*linkWatch)
	if !ok {
		p = &linkWatch{announce: d.dialect == DialectPostgres, log: d.log}
		if err := d.Gorm.Use(p); err != nil {
			return mapError(err, "integration link watch")
		}
	}
	p.mu.Lock()
	p.subscribers = append(p.subscribers, changed)
	p.mu.Unlock()
	return nil
}

// linkWatch is the gorm plugin behind WatchLinks. gorm shares callbacks
// and plugins between a handle and every session and transaction derived
// from it, so registering once on the service's handle covers them all.
type linkWatch struct {
	announce bool
	log      *slog.Logger

	mu          sync.Mutex
	subscribers []func()
}

func (*linkWatch) Name() string { return linksPlugin }

func (w *linkWatch) Initialize(g *gorm.DB) error {
	cb := g.Callback()
	if err := cb.Create().After("gorm:create").Register(linksPlugin+":create", w.after); err != nil {
		return err
	}
	if err := cb.Update().After("gorm:update").Register(linksPlugin+":update", w.after); err != nil {
		return err
	}
	return cb.Delete().After("gorm:delete").Register(linksPlugin+":delete", w.after)
}

func (w *linkWatch) after(tx *gorm.DB) {
	if tx.Error != nil || tx.RowsAffected == 0 || tx.Statement.Table != (Integration{}).TableName() {
		return
	}
	w.mu.Lock()
	subs := w.subscribers
	w.mu.Unlock()
	for _, fn := range subs {
		fn()
	}
	if !w.announce {
		return // one process owns an SQLite database; nobody to tell
	}
	ctx := tx.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	_, err := tx.Statement.ConnPool.ExecContext(ctx, "SELECT pg_notify($1, $2)", installationChannel, EveryInstallation)
	if err == nil {
		return
	}
	if _, inTx := tx.Statement.ConnPool.(gorm.TxCommitter); inTx {
		// The failed statement has aborted the transaction anyway; saying
		// so fails the write, which is better than a link other replicas
		// would not see until their cache TTL.
		_ = tx.AddError(err)
		return
	}
	// Outside a transaction the write has committed; replicas converge by
	// their cache TTL.
	w.log.WarnContext(ctx, "integration change not announced; replicas converge by cache TTL", "error", err.Error())
}
