package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// runDataCenter is -mode datacenter. A Data Center simulator (in this
// process) serves the generated site through API v2: pages granted up to
// -dc-max-results, refused past -result-window. Two measurements:
//
//  1. A full sync by the real Syncer through ingest.DataCenterSource with a
//     personal access token, into a fresh database, verified against the
//     ground truth. Its minimum is what the Syncer's plan must read:
//     fields and projects, the id sweep of every project twice (planning,
//     and deletions at the end) in the largest pages granted, and every
//     partition's issues in pages of the granted size.
//  2. The whole site read as one query in updated order — an incremental
//     sync after every issue changed — far past the result window, once
//     keyset and once through counted windows. Its minimum is
//     ceil(issues / granted page size) plus, for windows, the queries
//     that count and bound them.
func runDataCenter(ctx context.Context, o *options, spec jirasim.GenSpec, log *slog.Logger, stdout io.Writer) error {
	site := jirasim.NewDataCenterSite()
	defer site.Close()
	began := time.Now()
	if err := site.Generate(o.seed, spec); err != nil {
		return err
	}
	site.SetLatency(o.latency)
	if o.rate > 0 {
		site.SetRateLimit(o.rate, o.burst)
	}
	site.SetDCMaxResults(o.dcMaxResults)
	site.SetResultWindow(o.resultWindow)
	site.AddDCUser("ingestbench", "ingestbench", "ingestbench@example.com")
	pat := site.IssuePAT("ingestbench")
	gt := site.GroundTruth()
	perProject := map[string]int{}
	for _, ti := range gt.Issues {
		perProject[ti.ProjectKey]++
	}
	largest := 0
	for _, n := range perProject {
		largest = max(largest, n)
	}

	syncer := &ingest.Syncer{Now: time.Now, Log: log, Parallel: o.parallel, PartitionSize: o.partitionSize}
	fmt.Fprintf(stdout, "ingestbench: Data Center, %d issues in %d projects (largest %d), %d users, long tail %g, seed %d\n",
		spec.Issues, len(perProject), largest, spec.Users, spec.LongTailShare, o.seed)
	fmt.Fprintf(stdout, "  simulator in-process, ready in %v; latency %v; rate %s; pages granted up to %d; result window %d\n",
		time.Since(began).Round(time.Millisecond), o.latency, rateText(o.rate, o.burst), o.dcMaxResults, o.resultWindow)
	fmt.Fprintf(stdout, "  %s on %d cores (GOMAXPROCS %d), %s\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), o.db)

	db, _, cleanup, err := openDatabase(ctx, o, log)
	if err != nil {
		return err
	}
	defer cleanup()
	syncer.DB = db
	tenant := &store.Tenant{ID: uuid.Must(uuid.NewV7()).String(), Name: "ingestbench"}
	if err := db.CreateTenant(ctx, tenant); err != nil {
		return err
	}
	it := &store.Integration{ID: uuid.Must(uuid.NewV7()).String(), TenantID: tenant.ID, Name: "ingestbench", Type: "jira_datacenter",
		Timezone: "UTC", Tags: []string{}, ExcludedFields: []string{}, Settings: "{}", Status: "connected"}
	if err := db.CreateIntegration(ctx, it); err != nil {
		return err
	}
	newClient := func() (*jira.Client, error) { return jira.New(site.BaseURL, jira.Bearer{Token: pat}) }
	var (
		mu   sync.Mutex
		srcs []*ingest.DataCenterSource
	)
	syncer.Sources = func(context.Context, *store.Integration) (ingest.Source, error) {
		c, err := newClient()
		if err != nil {
			return nil, err
		}
		src := ingest.NewDataCenterSource(c, ingest.DataCenterOptions{Window: o.resultWindow, Paging: o.paging})
		mu.Lock()
		srcs = append(srcs, src)
		mu.Unlock()
		return src, nil
	}

	// 1. The full sync.
	site.ResetRequests()
	start := time.Now()
	if err := syncer.Sync(ctx, it.ID, ingest.ModeFull); err != nil {
		return fmt.Errorf("full sync: %w", err)
	}
	wall := time.Since(start)
	made := site.TotalRequests()
	st := srcs[len(srcs)-1].Stats()
	page := min(pageSize(syncer.PageSize, 100), o.dcMaxResults, o.resultWindow)
	sweepPage := min(pageSize(syncer.SweepPageSize, 5000), o.dcMaxResults, o.resultWindow)
	partitionSize := pageSize(syncer.PartitionSize, 5000)
	sweeps, pages := 0, 0
	for _, n := range perProject {
		sweeps += ceilDiv(n, sweepPage)
		for rest := n; rest > 0; rest -= partitionSize {
			pages += ceilDiv(min(rest, partitionSize), page)
		}
	}
	minimum := 2 + 2*sweeps + pages
	fmt.Fprintf(stdout, "full sync      %.1f s, %.0f issues/s (%s paging, pages of %d, sweeps of %d, partitions of %d)\n",
		wall.Seconds(), float64(spec.Issues)/wall.Seconds(), o.paging, page, sweepPage, partitionSize)
	fmt.Fprintf(stdout, "  requests     %d made; minimum %d (fields 1, projects 1, two sweeps of %d, %d pages of issues); %+.1f%%\n",
		made, minimum, sweeps, pages, 100*float64(made-minimum)/float64(minimum))
	fmt.Fprintf(stdout, "  searches     %d reading issues, %d counting windows, %d bounding them, %d windows; %d refused past the result window\n",
		st.Searches, st.Counts, st.Probes, st.Windows, site.WindowRefusals())
	report, ok, err := verify(ctx, db, it.ID, gt)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, report)
	if !ok {
		return errors.New("stored data differs from the ground truth")
	}

	// 2. Every issue in updated order, as one query.
	c, err := newClient()
	if err != nil {
		return err
	}
	meta, err := ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}).Fields(ctx)
	if err != nil {
		return err
	}
	fields := ingest.SearchFields(meta, ingest.NewExclusions(nil))
	fmt.Fprintf(stdout, "one query of all %d issues in updated order (an incremental sync after every issue changed), pages of %d, window %d\n",
		len(gt.Issues), page, o.resultWindow)
	want := ceilDiv(len(gt.Issues), page)
	for _, paging := range []string{ingest.PagingKeyset, ingest.PagingWindows} {
		c, err := newClient()
		if err != nil {
			return err
		}
		src := ingest.NewDataCenterSource(c, ingest.DataCenterOptions{Window: o.resultWindow, Paging: paging})
		refused := site.WindowRefusals()
		q := ingest.Query{JQL: "updated >= 0 ORDER BY updated ASC, id ASC", Fields: fields, Changelog: true, MaxResults: page}
		seen := make(map[int64]bool, len(gt.Issues))
		start := time.Now()
		for {
			issues, next, err := src.Search(ctx, q)
			if err != nil {
				return fmt.Errorf("%s read: %w", paging, err)
			}
			for _, raw := range issues {
				p, err := ingest.Parse(raw)
				if err != nil {
					return err
				}
				seen[p.ID] = true
			}
			if next == "" {
				break
			}
			q.PageToken = next
		}
		wall := time.Since(start)
		st := src.Stats()
		made := int(c.Stats().Requests)
		floor := want + int(st.Counts+st.Probes)
		missing := 0
		for _, ti := range gt.Issues {
			if !seen[ti.ID] {
				missing++
			}
		}
		fmt.Fprintf(stdout, "  %-12s %d requests: %d pages, %d counts, %d bounds, %d windows; minimum %d = %d pages + %d; %+.1f%%; %.1f s; %d refused; %d missing\n",
			paging, made, st.Searches, st.Counts, st.Probes, st.Windows, floor, want, st.Counts+st.Probes,
			100*float64(made-floor)/float64(floor), wall.Seconds(), site.WindowRefusals()-refused, missing)
		if missing > 0 || len(seen) != len(gt.Issues) {
			return fmt.Errorf("%s read %d issues, Jira shows %d", paging, len(seen), len(gt.Issues))
		}
	}
	if n := site.WindowRefusals(); n > 0 {
		return fmt.Errorf("%d searches were refused past the result window", n)
	}
	return nil
}

func pageSize(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
