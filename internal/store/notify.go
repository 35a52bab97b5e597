package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// installationChannel is the PostgreSQL NOTIFY channel on which every
// change to an installation is announced, so that each replica drops its
// cached copy (and its shared secret) within milliseconds rather than after
// the cache TTL. A reinstall on one replica then stops the old secret on
// all of them.
const installationChannel = "installation_changed"

// notifyInstallation announces a change to clientKey. It runs after the
// write committed; if it fails, replicas still converge by their cache TTL,
// so the failure is logged and not returned.
func (d *DB) notifyInstallation(ctx context.Context, clientKey string) {
	if d.dialect != DialectPostgres {
		return // one process owns an SQLite database; nobody to tell
	}
	if err := d.Gorm.WithContext(ctx).Exec("SELECT pg_notify(?, ?)", installationChannel, clientKey).Error; err != nil {
		d.log.WarnContext(ctx, "installation change not announced; replicas converge by cache TTL", "error", err.Error())
	}
}

// ListenInstallations calls changed with the client key of every
// installation changed by any replica, until ctx ends. Whenever the listening
// connection is (re)established, reset is called first: notifications sent
// while disconnected are lost, so caches must start over. On SQLite it
// returns at once.
func (d *DB) ListenInstallations(ctx context.Context, changed func(clientKey string), reset func()) {
	if d.dialect != DialectPostgres {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, changed, reset)
		if ctx.Err() != nil {
			return
		}
		d.log.WarnContext(ctx, "installation listener disconnected; retrying", "error", err.Error(), "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (d *DB) listenOnce(ctx context.Context, changed func(string), reset func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, d.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+installationChannel); err != nil {
		return err
	}
	reset()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		changed(n.Payload)
	}
}
