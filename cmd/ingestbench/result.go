package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// result is what one run measured.
type result struct {
	wall      time.Duration
	issues    int
	rss       int64 // this process's VmHWM
	simRSS    int64 // the child simulator's VmHWM (0 in process)
	inProcess bool
	rate      float64
	stats     jira.Stats
	simTotal  int
	simCounts map[string]int
	sim429    int
	run       *store.SyncRun
	cpu0      cpuSample
	cpu1      cpuSample
	pgLocal   bool          // postgres is cpu's PostgreSQL server, on this machine
	simCPU    time.Duration // a child simulator's CPU during the sync
}

func (r *result) print(w io.Writer) {
	secs := r.wall.Seconds()
	fmt.Fprintf(w, "wall time      %.2f s (full sync: plan, pages, sweep, users)\n", secs)
	fmt.Fprintf(w, "issues/s       %.0f\n", float64(r.issues)/secs)
	req := r.stats.Requests
	fmt.Fprintf(w, "requests       %d (%.4f per issue); the simulator counted %s\n", req, float64(req)/float64(r.issues), known(r.simTotal))
	if len(r.simCounts) > 0 {
		byPath := map[string]int{}
		for p, n := range r.simCounts {
			byPath[shortPath(p)] += n
		}
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(byPath)) {
			parts = append(parts, fmt.Sprintf("%s %d", p, byPath[p]))
		}
		fmt.Fprintf(w, "  by path      %s\n", strings.Join(parts, ", "))
	}
	if r.rate > 0 {
		bound := float64(req) / r.rate
		fmt.Fprintf(w, "rate bound     %.2f s (%d requests / %g per s); wall/bound %.3f\n", bound, req, r.rate, secs/bound)
	}
	fmt.Fprintf(w, "429s           %d received (the simulator sent %s); Retry-After waited %.1f s in total\n",
		r.stats.RateLimited, known(r.sim429), r.stats.RetryWait.Seconds())
	fmt.Fprintf(w, "client         %d retries, %d near-limit answers, %.1f s queued in the limiter (summed over callers)\n",
		r.stats.Retries, r.stats.NearLimit, r.stats.QueueWait.Seconds())
	if r.inProcess {
		fmt.Fprintf(w, "peak RSS       %.0f MB (VmHWM of this process: ingester AND the in-process simulator)\n", mb(r.rss))
	} else {
		fmt.Fprintf(w, "peak RSS       %.0f MB (VmHWM of this process: the ingester alone); simulator process %.0f MB\n", mb(r.rss), mb(r.simRSS))
	}
	self, pg := r.cpu1.self-r.cpu0.self, r.cpu1.postgres-r.cpu0.postgres
	busy, total := r.cpu1.machineBusy-r.cpu0.machineBusy, r.cpu1.machineTotal-r.cpu0.machineTotal
	other := busy - self - pg - r.simCPU
	pgText := "n/a"
	if r.pgLocal {
		pgText = fmt.Sprintf("%.1f s (%.2f cores)", pg.Seconds(), pg.Seconds()/secs)
	}
	who := "this process (ingester and simulator)"
	if !r.inProcess {
		who = fmt.Sprintf("simulator process %.1f s (%.2f cores), this process (ingester)", r.simCPU.Seconds(), r.simCPU.Seconds()/secs)
	}
	fmt.Fprintf(w, "CPU            %s %.1f s (%.2f cores), PostgreSQL server %s, anything else %.1f s; machine %.0f%% busy\n",
		who, self.Seconds(), self.Seconds()/secs, pgText, max(other, 0).Seconds(), 100*float64(busy)/float64(max(total, 1)))
	perIssue := func(d time.Duration) float64 { return 1e6 * d.Seconds() / float64(r.issues) }
	if r.inProcess {
		fmt.Fprintf(w, "CPU per issue  %.0f µs: %.0f ingester and simulator, %.0f PostgreSQL\n", perIssue(self+pg), perIssue(self), perIssue(pg))
	} else {
		fmt.Fprintf(w, "CPU per issue  %.0f µs: %.0f ingester, %.0f simulator, %.0f PostgreSQL\n", perIssue(self+pg+r.simCPU),
			perIssue(self), perIssue(r.simCPU), perIssue(pg))
	}
	if other.Seconds() > 0.1*secs {
		fmt.Fprintf(w, "  WARNING      other processes used %.1f cores during the run: the figures are disturbed\n", other.Seconds()/secs)
	}
	if r.run != nil {
		fmt.Fprintf(w, "sync run       %s: %d issues, %d transitions, %d comments, %d users, %d pages, %d requests\n",
			r.run.State, r.run.Issues, r.run.Transitions, r.run.Comments, r.run.Users, r.run.Pages, r.run.Requests)
	}
}

func known(n int) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}

// shortPath groups an API path by shape: /issue/10013/changelog becomes
// /issue/{id}/changelog.
func shortPath(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/rest/api/3"), "/")
	for i, s := range segs {
		if s != "" && strings.Trim(s, "0123456789") == "" {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// verify compares what is stored with the ground truth: the counts of
// issues, transitions, comments and users, and each issue's key, project,
// status, assignee, created and updated. It returns a report and whether
// everything matched.
func verify(ctx context.Context, db *store.DB, itID string, gt *jirasim.GroundTruth) (string, bool, error) {
	got, err := db.CountIngested(ctx, itID)
	if err != nil {
		return "", false, err
	}
	want := map[string]int64{"issues": int64(len(gt.Issues)), "users": int64(len(gt.Users))}
	for _, ti := range gt.Issues {
		want["transitions"] += int64(len(ti.Transitions))
		want["comments"] += int64(len(ti.Comments))
	}
	var sb strings.Builder
	ok := true
	sb.WriteString("ground truth  ")
	for _, k := range []string{"issues", "transitions", "comments", "users"} {
		mark := "="
		if got[k] != want[k] {
			mark, ok = "≠", false
		}
		fmt.Fprintf(&sb, " %s %d%s%d", k, got[k], mark, want[k])
	}
	sb.WriteString("\n")

	// Issue by issue, both in id order.
	issues := slices.Clone(gt.Issues)
	slices.SortFunc(issues, func(a, b jirasim.TruthIssue) int { return cmp.Compare(a.ID, b.ID) })
	bad, i := 0, 0
	after := int64(-1 << 63)
	for {
		page, err := db.ListIssues(ctx, itID, store.IssueFilter{}, after, 5000)
		if err != nil {
			return "", false, err
		}
		for _, is := range page {
			for i < len(issues) && issues[i].ID < is.IssueID {
				bad++ // missing from the store
				i++
			}
			if i >= len(issues) || issues[i].ID != is.IssueID {
				bad++ // stored but not in Jira
				continue
			}
			ti := issues[i]
			i++
			assignee := ""
			if is.AssigneeAccountID != nil {
				assignee = *is.AssigneeAccountID
			}
			if is.Key != ti.Key || is.ProjectKey != ti.ProjectKey || is.Status != ti.Status || is.StatusCategory != ti.StatusCategory ||
				assignee != ti.Assignee || !is.Created.Equal(ti.Created) || !is.Updated.Equal(ti.Updated) {
				if bad++; bad <= 3 {
					fmt.Fprintf(&sb, "  issue %s differs: stored %s/%s/%s/%v, Jira %s/%s/%s/%v\n", ti.Key, is.Key, is.Status, assignee, is.Updated,
						ti.Key, ti.Status, ti.Assignee, ti.Updated)
				}
			}
		}
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].IssueID
	}
	bad += len(issues) - i
	if bad > 0 {
		ok = false
		fmt.Fprintf(&sb, "  %d issues missing, extra or different\n", bad)
	} else {
		fmt.Fprintf(&sb, "  every issue's key, project, status, assignee, created and updated match\n")
	}
	if ok {
		sb.WriteString("verdict        OK: stored data equals the ground truth\n")
	} else {
		sb.WriteString("verdict        MISMATCH\n")
	}
	return sb.String(), ok, nil
}
