package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
)

// maintenance is what the periodic schedule needs: the connected
// integrations, and housekeeping.
type maintenance struct {
	db      *store.DB
	now     func() time.Time
	log     *slog.Logger
	enqueue func(ctx context.Context, eventID int64) error
}

func (m *maintenance) ConnectedIntegrationIDs(ctx context.Context) ([]string, error) {
	return m.db.ConnectedIntegrationIDs(ctx)
}

// Maintain applies the uninstall retention and re-enqueues webhook events
// whose job was lost between the event's commit and its enqueue.
func (m *maintenance) Maintain(ctx context.Context) error {
	n, err := m.db.PurgeExpired(ctx, m.now())
	if err != nil {
		return err
	}
	if n > 0 {
		m.log.InfoContext(ctx, "retention: purged ingested data of uninstalled sites", "integrations", n)
	}
	ids, err := m.db.StaleWebhookEventIDs(ctx, m.now().Add(-time.Minute), 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := m.enqueue(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
