package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// crashEnv is the service's environment in the crash tests.
//
// A job left "running" by a killed process comes back through River's
// rescuer, which runs on the leader replica: at once when a replica
// becomes leader, then every 30s (River's JobRescuerIntervalDefault, not
// configurable). The restarted process becomes leader when the dead one's
// lease lapses (River: elections every 5s, a 15s lease), 10-20s after the
// kill. The rescuer takes jobs running for longer than internal/jobs's
// horizon, the sync timeout plus max(a quarter of it, 10s): 18s with
// SYNC_TIMEOUT=8s, so its first pass usually takes the job; otherwise the
// next one, 30s later. A run cut by this short timeout resumes from its
// checkpoints at the next attempt. SYNC_INTERVAL=5s caps the retry delay
// of the rescued job (internal/jobs: 30s, at most SyncInterval).
var crashEnv = map[string]string{
	"SYNC_TIMEOUT":  crashSyncTimeout.String(),
	"SYNC_INTERVAL": "5s",
}

const crashSyncTimeout = 8 * time.Second

// TestKill9MidSyncThenRestart kills the service with SIGKILL in the middle
// of the first full sync, restarts it with the same environment, and
// requires the sync to finish with the database equal to Jira's ground
// truth: every issue, transition, comment and user, nothing twice.
//
// What it proves, beyond "it converges":
//   - The job really was left behind as a crashed worker leaves it: right
//     after the restart River still has it "running", so a manual
//     POST …/sync is refused as a duplicate (queued: false); recovery goes
//     through River's rescuer, whose mark ("Stuck job rescued by
//     JobRescuer") the job carries at the end.
//   - The resumed run reads only what was missing: it stores fewer issues
//     than the site has (checkpoints, not a restart from scratch).
//   - The second process shuts down cleanly on SIGTERM (exit 0).
func TestKill9MidSyncThenRestart(t *testing.T) {
	needBinary(t)
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == store.DialectPostgres {
				storetest.RequirePostgres(t)
			}
			t.Parallel()
			testKill9(t, storetest.URL(t, dialect), jirasim.DefaultGenSpec(2000))
		})
	}
}

func testKill9(t *testing.T, databaseURL string, spec jirasim.GenSpec) {
	issues := spec.Issues
	r := newRig(t, databaseURL, crashEnv)
	r.pair(7, spec, func(s *jirasim.Site) { s.SetLatency(2 * time.Millisecond) })
	validated := time.Now()

	// Kill at 60% of the issues, or, on a machine slow enough that the
	// first attempt would time out before, just ahead of its timeout
	// (its job left running for longer: River's first rescue pass takes
	// it). A later attempt would work too, only slower to rescue.
	killBy := validated.Add(crashSyncTimeout - 1500*time.Millisecond)
	atKill := waitStored(t, databaseURL, r.itID, issues, 60*time.Second, func(n int64) bool {
		return n >= int64(issues*3/5) || n >= int64(issues/10) && time.Now().After(killBy)
	})
	r.svc.kill9()
	killed := time.Now()
	t.Logf("kill -9 %v after validation, with ≥%d of %d issues stored", killed.Sub(validated).Round(time.Millisecond), atKill, issues)
	// The ground truth is computed meanwhile (seconds under -race).
	truth := make(chan *jirasim.GroundTruth, 1)
	go func() { truth <- r.site.GroundTruth() }()

	db := openDB(t, databaseURL)
	stored := counts(t, db, r.itID)["issues"]
	jobs := syncJobs(t, db)
	db.Close()
	if stored == 0 || stored >= int64(issues) {
		t.Fatalf("%d issues stored at the kill: not mid-sync", stored)
	}
	if len(jobs) != 1 || jobs[0].State != "running" {
		t.Fatalf("River's sync jobs after the kill: %+v, want one, running", jobs)
	}

	r.svc.start()
	t.Logf("restarted and ready %v after the kill", time.Since(killed).Round(time.Millisecond))
	// The dead job still holds the integration's unique sync slot.
	var q struct {
		Queued bool `json:"queued"`
	}
	r.api(http.MethodPost, "/integrations/"+r.itID+"/sync", map[string]any{"mode": "full"}, http.StatusAccepted, &q)
	if q.Queued {
		t.Error("POST …/sync queued a second sync while the crashed one is still running in River")
	}

	run := r.waitSucceeded(killed, 150*time.Second, true)
	t.Logf("recovery: kill -9 → successful sync in %v (the resumed run started %v after the kill)",
		time.Since(killed).Round(time.Millisecond), run.Started.Sub(killed).Round(time.Millisecond))
	r.svc.stop()

	db = openDB(t, databaseURL)
	defer db.Close()
	compareWithTruth(t, db, r.itID, <-truth)
	assertFullSyncDone(t, db, r.itID)

	// How it recovered: River's rescuer, then a resumed full run.
	rescued := false
	for _, j := range syncJobs(t, db) {
		if strings.Contains(j.Errors, "Stuck job rescued by JobRescuer") {
			rescued = true
			if j.State != "completed" {
				t.Errorf("the rescued sync job ended %s", j.State)
			}
			t.Logf("River sync job %d: rescued, then %s at attempt %d", j.ID, j.State, j.Attempt)
		}
	}
	if !rescued {
		t.Errorf("no sync job carries River's rescue mark: %+v", syncJobs(t, db))
	}
	resumed := false
	for _, run := range syncRuns(t, db, r.itID) {
		t.Logf("sync run %s: %s %s, %d issues, %d requests", run.StartedAt.Format("15:04:05.000"), run.Mode, run.State, run.Issues, run.Requests)
		if !resumed && run.Mode == "full" && run.State == "succeeded" {
			resumed = true
			if run.Issues >= issues {
				t.Errorf("the full run that succeeded stored %d issues: it started over instead of resuming from checkpoints", run.Issues)
			}
		}
	}
	if !resumed {
		t.Error("no full run succeeded")
	}
}

// TestKill9ResumedSyncKeepsUsersOfEarlierPages is the same crash on a site
// whose users are mostly referenced by one or two issues (20,000 users
// over 3,000 issues), where the users of the pages stored before the kill
// are not met again after it.
//
// Regression test of a fixed bug. A full sync wrote only the users
// it collected from the pages it read itself (ingest's run.users, in
// memory, written at the end by writeUsers); a run that resumes from
// checkpoints never reads the earlier pages, so the users only they
// reference are never stored, and no incremental sync reads those issues
// again (measured: 4,767 of 17,269 referenced users missing after the
// resume). Fixed: the end of every run also looks up the users that stored
// data references and jira_users lacks (store.MissingUserIDs). The same follows from any interrupted full sync: SYNC_TIMEOUT,
// a deploy (SIGTERM cancels syncs after 3s), a PostgreSQL restart. The
// default site of the test above has a few dozen users, each referenced
// all over, which hides it.
func TestKill9ResumedSyncKeepsUsersOfEarlierPages(t *testing.T) {
	needBinary(t)
	spec := jirasim.DefaultGenSpec(3000)
	spec.Users = 20000
	testKill9(t, storetest.URL(t, store.DialectSQLite), spec)
}
