// Package hygiene owns the Issue Hygiene report and the settings behind
// it: the built-in categories with their thresholds, an integration's
// custom hygiene misses (validated against the Jira site's field list), the
// report's scoring, and the SQL that counts misses in the database on
// PostgreSQL and SQLite alike. It also owns the integration's Salesforce
// mapping settings and the listing of issue <-> case links (the links are
// extracted by internal/ingest while issues are written).
//
// The definitions, once:
//   - In scope: the integration's issues created within [from, to) in the
//     given projects (all projects when none are given). Dates are days in
//     the integration's time zone; to is inclusive as a date.
//   - Every category is evaluated on the issues' current state, as of the
//     moment the report is asked for ("now").
//   - ratio = misses / issues in scope (0 when none are in scope).
//   - score = 100 − Σ weight × ratio over the evaluated categories, with
//     the weights of the evaluated categories scaled to sum to 100.
package hygiene

import (
	"context"
	"log/slog"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
)

// SyncQueue schedules a sync (River jobs), for settings that need fields
// earlier syncs did not fetch.
type SyncQueue interface {
	EnqueueSync(ctx context.Context, integrationID, mode string) (bool, error)
}

// Service serves the hygiene report, its settings and the Salesforce
// mapping of a tenant's integrations.
type Service struct {
	DB  *store.DB
	Now func() time.Time
	Log *slog.Logger
	// Fields fetches the site's field list to validate settings; nil uses
	// the stored list (or the system fields) only.
	Fields FieldLister
	// Queue schedules the full sync that fetches newly needed fields; nil
	// schedules nothing.
	Queue SyncQueue
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}
