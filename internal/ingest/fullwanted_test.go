package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// hookedSource calls onProjects when a run starts (every run lists the
// projects first) and onSearch before every search.
type hookedSource struct {
	ingest.Source
	onProjects func()
	onSearch   func(q ingest.Query) error
}

func (h *hookedSource) Projects(ctx context.Context) ([]string, error) {
	if h.onProjects != nil {
		h.onProjects()
	}
	return h.Source.Projects(ctx)
}

func (h *hookedSource) Search(ctx context.Context, q ingest.Query) ([]json.RawMessage, string, error) {
	if h.onSearch != nil {
		if err := h.onSearch(q); err != nil {
			return nil, "", err
		}
	}
	return h.Source.Search(ctx, q)
}

func fullWantedSite(t *testing.T) (*jirasim.Site, func() ingest.Source) {
	t.Helper()
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	if err := s.Generate(5, jirasim.DefaultGenSpec(150)); err != nil {
		t.Fatal(err)
	}
	s.AddBasicUser("557058:sei-bot", "SEI Bot", "sei.bot@example.com", "api-token-1")
	return s, func() ingest.Source {
		return ingest.NewCloudTokenSource(client(t, s.BaseURL, jira.Basic{Username: "sei.bot@example.com", Password: "api-token-1"}))
	}
}

func runsOf(t *testing.T, db *store.DB, itID string) []store.SyncRun {
	t.Helper()
	var runs []store.SyncRun
	if err := db.Gorm.Where("integration_id = ?", itID).Order("started_at, id").Find(&runs).Error; err != nil {
		t.Fatal(err)
	}
	return runs
}

// A full sync asked for while an incremental one runs (settings now read a
// field earlier syncs did not fetch) is run when that one ends, in the same
// call, and the request is then gone.
func TestFullSyncRequestedDuringSync(t *testing.T) {
	s, open := fullWantedSite(t)
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		it := newIntegration(t, db, "jira_cloud_api_token")
		var runs atomic.Int32
		started, gate := make(chan struct{}), make(chan struct{})
		sy := syncer(db, func() (ingest.Source, error) {
			return &hookedSource{Source: open(), onProjects: func() {
				if runs.Add(1) == 2 { // the incremental run, below
					close(started)
					<-gate
				}
			}}, nil
		})
		if err := sy.Sync(ctx, it.ID, ingest.ModeFull); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sy.Sync(ctx, it.ID, ingest.ModeIncremental) }()
		<-started
		if err := db.RequestFullSync(ctx, it.ID); err != nil {
			t.Fatal(err)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := runsOf(t, db, it.ID)
		if len(got) != 3 || got[1].Mode != ingest.ModeIncremental || got[2].Mode != ingest.ModeFull {
			t.Fatalf("runs %+v, want full, incremental, then the requested full", got)
		}
		if n := len(s.GroundTruth().Issues); got[2].Issues != n {
			t.Errorf("the requested full sync read %d issues, want all %d", got[2].Issues, n)
		}
		cps, err := db.Checkpoints(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cps[store.CheckpointFullWanted] != "" {
			t.Errorf("the request outlived the full sync that served it")
		}
		// Served: the next sync is incremental again.
		if err := sy.Sync(ctx, it.ID, ingest.ModeIncremental); err != nil {
			t.Fatal(err)
		}
		if got := runsOf(t, db, it.ID); len(got) != 4 || got[3].Mode != ingest.ModeIncremental {
			t.Errorf("after the request was served: runs %+v", got)
		}
	})
}

// A full sync interrupted before a full sync was asked for is not resumed
// for it: the partitions it finished were read before the request.
func TestFullSyncRequestRestartsAnOlderPlan(t *testing.T) {
	s, open := fullWantedSite(t)
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		it := newIntegration(t, db, "jira_cloud_api_token")
		var pages atomic.Int32
		var broken atomic.Bool
		broken.Store(true)
		sy := syncer(db, func() (ingest.Source, error) {
			return &hookedSource{Source: open(), onSearch: func(q ingest.Query) error {
				// The first sync dies after its plan and two pages.
				if strings.Contains(q.JQL, "id >") && broken.Load() && pages.Add(1) > 2 {
					return errors.New("connection lost")
				}
				return nil
			}}, nil
		})
		sy.PartitionSize, sy.Parallel = 40, 1
		if err := sy.Sync(ctx, it.ID, ingest.ModeFull); err == nil {
			t.Fatal("the interrupted sync succeeded")
		}
		if cps, _ := db.Checkpoints(ctx, it.ID); cps["full:plan"] == "" {
			t.Fatalf("no plan left by the interrupted sync: %v", cps)
		}
		time.Sleep(2 * time.Millisecond) // the request is newer than the plan, to the millisecond
		if err := db.RequestFullSync(ctx, it.ID); err != nil {
			t.Fatal(err)
		}
		broken.Store(false)
		if err := sy.Sync(ctx, it.ID, ingest.ModeIncremental); err != nil {
			t.Fatal(err)
		}
		runs := runsOf(t, db, it.ID)
		last := runs[len(runs)-1]
		if n := len(s.GroundTruth().Issues); last.Mode != ingest.ModeFull || last.Issues != n {
			t.Errorf("after the request: a %s run of %d issues, want a full one of all %d", last.Mode, last.Issues, n)
		}
	})
}
