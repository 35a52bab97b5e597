package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sei-io/jira-connect/internal/app"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/lifecycle"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
)

// sources opens Jira sources exactly as the service does
// (app.ConnectSources: the installation's secret from the directory, a
// jira.Client signed with the Connect JWT, with its default retries and
// limiter) and keeps the clients' counters for the report.
type sources struct {
	open ingest.SourceFactory
	mu   sync.Mutex
	cs   []*ingest.CloudSource
}

func (s *sources) factory(ctx context.Context, it *store.Integration) (ingest.Source, error) {
	src, err := s.open(ctx, it)
	if err != nil {
		return nil, err
	}
	if cs, ok := src.(*ingest.CloudSource); ok {
		s.mu.Lock()
		s.cs = append(s.cs, cs)
		s.mu.Unlock()
	}
	return src, nil
}

// stats sums what every client opened for the run counted.
func (s *sources) stats() jira.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t jira.Stats
	for _, cs := range s.cs {
		st := cs.Client.Stats()
		t.Requests += st.Requests
		t.Retries += st.Retries
		t.RateLimited += st.RateLimited
		t.ServerErrors += st.ServerErrors
		t.NetworkErrors += st.NetworkErrors
		t.NearLimit += st.NearLimit
		t.RetryWait += st.RetryWait
		t.QueueWait += st.QueueWait
	}
	return t
}

// seedRows creates what a linked site has in the database, directly
// through the store: the installation (shared secret sealed as the
// lifecycle service seals it), a tenant and a connected Connect app
// integration linked to the installation.
func seedRows(ctx context.Context, db *store.DB, sim *simulator) (*store.Integration, *sources, error) {
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		return nil, nil, err
	}
	kr, err := secrets.ParseKeyRing(spec)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := kr.Seal([]byte(sim.sharedSecret), []byte(sim.clientKey))
	if err != nil {
		return nil, nil, err
	}
	if err := db.UpsertInstallation(ctx, &store.Installation{ClientKey: sim.clientKey, BaseURL: sim.baseURL, DisplayURL: sim.baseURL,
		ProductType: "jira", SharedSecret: &sealed, State: store.StateEnabled}); err != nil {
		return nil, nil, err
	}
	tenant := &store.Tenant{ID: uuid.Must(uuid.NewV7()).String(), Name: "ingestbench"}
	if err := db.CreateTenant(ctx, tenant); err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	ck := sim.clientKey
	it := &store.Integration{ID: uuid.Must(uuid.NewV7()).String(), TenantID: tenant.ID, Name: "ingestbench", Type: "jira_connect_app",
		Timezone: "UTC", Tags: []string{}, ExcludedFields: []string{}, Settings: "{}", Status: "connected", ClientKey: &ck, LinkedAt: &now}
	if err := db.CreateIntegration(ctx, it); err != nil {
		return nil, nil, err
	}
	dir := lifecycle.NewDirectory(db, kr, time.Hour, time.Now)
	return it, &sources{open: app.ConnectSources(dir, appKey, time.Now)}, nil
}

func newSyncer(db *store.DB, src *sources, o *options, log *slog.Logger) *ingest.Syncer {
	return &ingest.Syncer{DB: db, Sources: src.factory, Now: time.Now, Log: log, Parallel: o.parallel, PartitionSize: o.partitionSize}
}
