package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// privatePG is a PostgreSQL of this test alone, made by scripts/testpg.sh:
// restarting the shared one (TEST_DATABASE_URL) would break the tests of
// other packages that `go test ./...` runs at the same time.
type privatePG struct {
	t   *testing.T
	dir string // TESTPG_DIR
	url string
}

var testpgScript, _ = filepath.Abs(filepath.Join("..", "..", "scripts", "testpg.sh"))

// testpg runs a bash snippet with scripts/testpg.sh sourced, so the
// server is started, restarted and stopped exactly as the script does it
// (as root, as the unprivileged user it picks).
func testpg(snippet string, args ...string) (string, error) {
	// $0 must not be the script, or sourcing it would run its main.
	cmd := exec.Command("bash", append([]string{"-c", `set -e; source "$1"; shift; ` + snippet, "e2e-testpg", testpgScript}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w\n%s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	if _, err := testpg(`testpg_bindir >/dev/null`); err != nil {
		t.Skip("PostgreSQL restart test skipped: initdb/pg_ctl not found (scripts/testpg.sh bindir)")
	}
	out, err := testpg(`testpg_start >&2; printf '%s\n%s\n' "$TESTPG_DIR" "$TEST_DATABASE_URL"`)
	if err != nil {
		t.Fatalf("scripts/testpg.sh start: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("scripts/testpg.sh start printed %q", out)
	}
	pg := &privatePG{t: t, dir: lines[0], url: lines[1]}
	t.Cleanup(func() {
		if _, err := testpg(`testpg_stop "$1"`, pg.dir); err != nil {
			t.Errorf("scripts/testpg.sh stop: %v", err)
		}
	})
	return pg
}

// restart stops PostgreSQL (pg_ctl stop -m fast: every connection is
// terminated, in-flight transactions roll back), keeps it down for
// `down`, and starts it again with the options it ran with (its
// postmaster.opts, which is what `pg_ctl restart` reuses), as the script
// runs the server. A bare `pg_ctl restart` is over in ~0.3s, often
// between two of the sync's writes, so that nothing fails at all; a few
// seconds down is a restart the sync cannot miss (a minor upgrade, a
// failover).
func (pg *privatePG) restart(down time.Duration) {
	pg.t.Helper()
	_, err := testpg(`dir=$1; cd "$dir"; user=$(cat "$dir/.user"); bin=$(cat "$dir/.bindir")
		opts=$(cat "$dir/data/postmaster.opts"); opts=${opts#* }
		_testpg_as "$user" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
		sleep "$2"
		_testpg_as "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null`,
		pg.dir, seconds(down))
	if err != nil {
		pg.t.Fatalf("PostgreSQL restart: %v", err)
	}
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// TestPostgresRestartMidSync restarts PostgreSQL (3s down) while the first
// full sync runs, and requires the sync, or its retry, to finish with the
// database equal to Jira's ground truth, nothing stored twice. Beyond
// that, it checks that:
//   - the restart really hit the sync: an attempt failed (FATAL:
//     terminating connection, or connection refused), else the test would
//     prove little;
//   - the same process lived through it (no restart), /readyz said "not
//     ready" while the database was away, and it stops cleanly after;
//   - the run that succeeded resumed from the checkpoints committed before
//     the restart: it stored fewer issues than the site has.
func TestPostgresRestartMidSync(t *testing.T) {
	needBinary(t)
	storetest.RequirePostgres(t)
	const issues = 2000
	pg := startPrivatePG(t)
	r := newRig(t, pg.url, crashEnv)
	r.pair(11, jirasim.DefaultGenSpec(issues), func(s *jirasim.Site) { s.SetLatency(2 * time.Millisecond) })
	validated := time.Now()

	atRestart := waitStored(t, pg.url, r.itID, issues, 60*time.Second, func(n int64) bool { return n >= issues*2/5 })
	// Watch readiness through the restart (notReady is read after watched).
	var notReady int
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if st, _ := r.svc.readyz(); st != 200 {
				notReady++
			}
		}
	}()
	restarting := time.Now()
	pg.restart(3 * time.Second)
	t.Logf("PostgreSQL stopped %v after validation, with ≥%d of %d issues stored; back after %v",
		restarting.Sub(validated).Round(time.Millisecond), atRestart, issues, time.Since(restarting).Round(time.Millisecond))

	truth := make(chan *jirasim.GroundTruth, 1)
	go func() { truth <- r.site.GroundTruth() }()
	r.waitSucceeded(restarting, 150*time.Second, true)
	close(stopWatch)
	<-watched
	t.Logf("recovery: PostgreSQL stop → successful sync in %v; /readyz answered not-ready %d times meanwhile",
		time.Since(restarting).Round(time.Millisecond), notReady)
	if notReady == 0 {
		t.Error("/readyz never reported the database down")
	}
	if !r.svc.running() {
		t.Fatal("the service exited when PostgreSQL restarted")
	}
	r.svc.stop()

	db := openDB(t, pg.url)
	defer db.Close()
	compareWithTruth(t, db, r.itID, <-truth)
	assertFullSyncDone(t, db, r.itID)

	// The restart really hit the sync: an attempt failed (or was left
	// running and rescued); the run that succeeded resumed, not restarted.
	hit := false
	for _, j := range syncJobs(t, db) {
		t.Logf("River sync job %d: %s at attempt %d; errors: %.300s", j.ID, j.State, j.Attempt, r.svc.redact(j.Errors))
		hit = hit || !emptyErrors(j.Errors)
	}
	if !hit {
		t.Error("no sync attempt failed: the restart missed the sync, the test proves little")
	}
	resumed := false
	for _, run := range syncRuns(t, db, r.itID) {
		t.Logf("sync run %s: %s %s, %d issues, %d requests, error %.200s", run.StartedAt.Format("15:04:05.000"), run.Mode, run.State,
			run.Issues, run.Requests, r.svc.redact(deref(run.Error)))
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
