package agent

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

func validationOf(out map[string]any) (bool, map[string]map[string]any) {
	v, _ := out["validation"].(map[string]any)
	checks := map[string]map[string]any{}
	list, _ := v["checks"].([]any)
	for _, c := range list {
		m := c.(map[string]any)
		checks[m["name"].(string)] = m
	}
	return v["ok"] == true, checks
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, logs ...*logBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Log(l.String())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSatelliteEndToEnd: satellite.yml from the service, a full sync of a
// Data Center site by personal access token pushed to the service equals
// Jira's ground truth (exclusions applied on the satellite already);
// heartbeats make Validate Connection pass; then the running satellite
// carries Jira's changes over, deletions included.
func TestSatelliteEndToEnd(t *testing.T) {
	svc := startService(t)
	site, pat := dcSite(t, 150)
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "pat"}, nil)
	c := writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<PERSONAL_ACCESS_TOKEN>", pat)
	dbPath := filepath.Join(t.TempDir(), "satellite.db")
	sat := newSatellite(t, c, dbPath, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if err := sat.RunOnce(ctx); err != nil {
		t.Fatalf("run once: %v\n%s", err, sat.logs)
	}
	compareWithTruth(t, svc.db, itID, site)
	var described int64
	sat.DB().Gorm.Table("jira_issues").Where("description IS NOT NULL").Count(&described)
	if described != 0 {
		t.Errorf("%d descriptions stored on the satellite: sensitive_fields not applied there", described)
	}
	if n, _ := sat.Backlog(ctx, itID); n != 0 {
		t.Errorf("backlog %d after a push", n)
	}

	st, out, raw := svc.api("POST", "/integrations/"+itID+"/validate", nil)
	ok, checks := validationOf(out)
	if st != 200 || !ok {
		t.Fatalf("validate: %d %s", st, raw)
	}
	for _, name := range []string{"satellite", "satellite:site_reachable", "satellite:credentials"} {
		if checks[name]["status"] != "pass" {
			t.Errorf("check %s: %v", name, checks[name])
		}
	}
	if msg, _ := checks["satellite:credentials"]["message"].(string); !strings.Contains(msg, "SEI Bot") || !strings.Contains(msg, "Europe/Berlin") {
		t.Errorf("credentials check: %s", msg)
	}

	// The satellite as it runs: changes in Jira reach the service.
	gt := site.GroundTruth()
	if _, err := site.TransitionIssue(gt.Issues[0].Key, "Done"); err != nil {
		t.Fatal(err)
	}
	if _, err := site.AddComment(gt.Issues[1].Key, "", "a new comment"); err != nil {
		t.Fatal(err)
	}
	if _, err := site.UpdateIssue(gt.Issues[2].Key, func(f map[string]any) { f["summary"] = "renamed" }); err != nil {
		t.Fatal(err)
	}
	if _, err := site.DeleteIssue(gt.Issues[3].Key); err != nil {
		t.Fatal(err)
	}
	if err := site.MoveIssueOutOfView(gt.Issues[4].Key); err != nil {
		t.Fatal(err)
	}
	if _, err := site.CreateIssue(gt.Issues[0].ProjectKey, map[string]any{"summary": "brand new"}); err != nil {
		t.Fatal(err)
	}
	want := len(site.GroundTruth().Issues)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	sat.opts.Interval, sat.opts.PushEvery, sat.opts.HeartbeatEvery = 100*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	go func() { done <- sat.Run(runCtx) }()
	waitFor(t, 2*time.Minute, "the changes at the service", func() bool {
		if t.Failed() {
			return true
		}
		var renamed int64
		svc.db.Gorm.Table("jira_issues").Where("integration_id = ? AND summary = ?", itID, "renamed").Count(&renamed)
		return renamed == 1 && countRows(t, svc.db, "jira_issues", itID) == int64(want)
	}, sat.logs)
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	compareWithTruth(t, svc.db, itID, site)
	if run, err := sat.DB().LatestRun(ctx, itID); err != nil || run.Mode != ingest.ModeIncremental {
		t.Errorf("latest local run: %+v %v", run, err)
	}
	assertNoSecrets(t, "the satellite's log", sat.logs.String(), pat, svc.key)
	assertNoSecrets(t, "the service's log", svc.logs.String(), pat, svc.key)
}

// TestSatelliteWrongAPIKey: the service refuses a wrong API key (401); the
// satellite says so plainly, retries with backoff and keeps everything;
// with the key fixed, all of it arrives, and the sync goes on from its
// local checkpoints.
func TestSatelliteWrongAPIKey(t *testing.T) {
	svc := startService(t)
	site, _ := dcSite(t, 80)
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "basic", "username": "sei.bot"}, nil)
	wrong := svc.key[:len(svc.key)-4] + "XXXX"
	dbPath := filepath.Join(t.TempDir(), "satellite.db")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	sat := newSatellite(t, writeConfig(t, yml, "<YOUR_API_KEY>", wrong, "<PASSWORD>", "bot-password-1"), dbPath,
		func(o *Options) { o.MaxPushAttempts = 3 })
	if err := sat.Sync(ctx, itID); err != nil {
		t.Fatalf("sync: %v\n%s", err, sat.logs)
	}
	stored := countRows(t, sat.DB(), "jira_issues", itID)
	_, err := sat.Push(ctx, itID)
	var se *ServiceError
	if !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("push with a wrong key: %v", err)
	}
	logs := sat.logs.String()
	if n := strings.Count(logs, "the SEI service refused the satellite's API key (401): check satellite.api_key"); n != 3 {
		t.Errorf("%d refusals logged, want 3 (one per attempt):\n%s", n, logs)
	}
	if n := strings.Count(logs, `"retry_in"`); n != 2 {
		t.Errorf("%d retries announced, want 2", n)
	}
	if n := countRows(t, svc.db, "jira_issues", itID); n != 0 {
		t.Errorf("the service stored %d issues from a wrong key", n)
	}
	if n, _ := sat.Backlog(ctx, itID); n != stored || stored == 0 {
		t.Errorf("backlog %d, stored %d: data lost after refusals", n, stored)
	}
	assertNoSecrets(t, "the satellite's log", logs, wrong, svc.key, "bot-password-1")
	_ = sat.Close()

	// Fixed in satellite.yml, restarted on the same data.
	sat = newSatellite(t, writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<PASSWORD>", "bot-password-1"), dbPath, nil)
	st, err := sat.Push(ctx, itID)
	if err != nil || st.Issues != int(stored) {
		t.Fatalf("push with the right key: %+v %v", st, err)
	}
	if err := sat.Sync(ctx, itID); err != nil {
		t.Fatal(err)
	}
	if run, _ := sat.DB().LatestRun(ctx, itID); run == nil || run.Mode != ingest.ModeIncremental {
		t.Errorf("after the restart the sync is %+v, want incremental from the local checkpoints", run)
	}
	if _, err := sat.Push(ctx, itID); err != nil {
		t.Fatal(err)
	}
	compareWithTruth(t, svc.db, itID, site)
}

// TestSatelliteBatchTwice: a batch pushed twice is stored once (the second
// answer says duplicate), and a push whose answer was lost — not
// acknowledged locally — is sent again under the same batch id.
func TestSatelliteBatchTwice(t *testing.T) {
	svc := startService(t)
	site, pat := dcSite(t, 60)
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "pat"}, nil)
	c := writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<PERSONAL_ACCESS_TOKEN>", pat)
	dbPath := filepath.Join(t.TempDir(), "satellite.db")
	sat := newSatellite(t, c, dbPath, func(o *Options) { o.BatchIssues = 25 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sat.Sync(ctx, itID); err != nil {
		t.Fatal(err)
	}

	p, err := sat.out.next(ctx, itID, math.MinInt64)
	if err != nil || p == nil {
		t.Fatalf("next batch: %v", err)
	}
	again, _ := sat.out.next(ctx, itID, math.MinInt64)
	if again.batch.BatchID != p.batch.BatchID || len(p.batch.Issues) != 25 {
		t.Fatalf("the same local state gave batches %s and %s (%d issues)", p.batch.BatchID, again.batch.BatchID, len(p.batch.Issues))
	}
	first, err := sat.svc.pushBatch(ctx, itID, &p.batch)
	if err != nil || first.Duplicate {
		t.Fatalf("first push: %+v %v", first, err)
	}
	counts := func() [3]int64 {
		return [3]int64{countRows(t, svc.db, "jira_issues", itID), countRows(t, svc.db, "jira_transitions", itID), countRows(t, svc.db, "jira_comments", itID)}
	}
	before := counts()
	second, err := sat.svc.pushBatch(ctx, itID, &p.batch)
	if err != nil || !second.Duplicate || second.Written["issues"] != first.Written["issues"] {
		t.Fatalf("second push: %+v %v", second, err)
	}
	if after := counts(); after != before || before[0] != 25 {
		t.Errorf("rows %v after the repeat, %v before", after, before)
	}

	// The answer to the first push "was lost": nothing acknowledged, so
	// Push sends that batch again first, and the service knows it.
	st, err := sat.Push(ctx, itID)
	if err != nil || st.Duplicates != 1 || st.Issues != 60 {
		t.Fatalf("push: %+v %v", st, err)
	}
	compareWithTruth(t, svc.db, itID, site)
	if st, err := sat.Push(ctx, itID); err != nil || st.Batches != 0 {
		t.Errorf("a second push sent %+v (%v): nothing was due", st, err)
	}
}

// TestSatelliteRestartResumes: a satellite stopped in the middle of a full
// sync resumes it from its local checkpoints after a restart instead of
// starting over; a later restart syncs incrementally.
func TestSatelliteRestartResumes(t *testing.T) {
	svc := startService(t)
	site, pat := dcSite(t, 240)
	site.SetLatency(15 * time.Millisecond)
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "pat"}, nil)
	c := writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<PERSONAL_ACCESS_TOKEN>", pat)
	dbPath := filepath.Join(t.TempDir(), "satellite.db")
	oneAtATime := func(o *Options) {
		o.Tune = func(s *ingest.Syncer) { s.PageSize, s.PartitionSize, s.SweepPageSize, s.Parallel = 20, 60, 1000, 1 }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	sat := newSatellite(t, c, dbPath, oneAtATime)
	syncCtx, stop := context.WithCancel(ctx)
	go func() {
		for syncCtx.Err() == nil && countRows(t, sat.DB(), "jira_issues", itID) < 70 {
			time.Sleep(5 * time.Millisecond)
		}
		stop() // the process is killed mid-sync
	}()
	if err := sat.Sync(syncCtx, itID); err == nil {
		t.Fatal("the sync finished before it could be interrupted; slow the site down")
	}
	stop()
	stored := countRows(t, sat.DB(), "jira_issues", itID)
	if stored == 0 || stored >= 240 {
		t.Fatalf("%d issues stored when interrupted", stored)
	}
	// What was stored is pushed even though the sync did not finish.
	if st, err := sat.Push(ctx, itID); err != nil || st.Issues != int(stored) {
		t.Fatalf("push after the interruption: %+v %v", st, err)
	}
	_ = sat.Close()

	sat = newSatellite(t, c, dbPath, oneAtATime)
	if err := sat.Sync(ctx, itID); err != nil {
		t.Fatal(err)
	}
	run, err := sat.DB().LatestRun(ctx, itID)
	if err == nil {
		t.Logf("interrupted after %d of 240 issues; the resumed full sync read %d in %d requests", stored, run.Issues, run.Requests)
	}
	if err != nil || run.Mode != ingest.ModeFull || run.Issues > 240-int(stored)+20 {
		t.Errorf("resumed run %+v (%v): read %d issues, %d were stored before", run, err, run.Issues, stored)
	}
	if _, err := sat.Push(ctx, itID); err != nil {
		t.Fatal(err)
	}
	compareWithTruth(t, svc.db, itID, site)
	_ = sat.Close()

	sat = newSatellite(t, c, dbPath, oneAtATime)
	if err := sat.Sync(ctx, itID); err != nil {
		t.Fatal(err)
	}
	if run, _ := sat.DB().LatestRun(ctx, itID); run == nil || run.Mode != ingest.ModeIncremental {
		t.Errorf("after a finished full sync, a restart runs %+v", run)
	}
}

// TestSatelliteADFSOverTLS: a Data Center site with a self-signed
// certificate, signed in to through ADFS. Without allow_unsafe_ssl the
// satellite refuses the certificate and says so in its heartbeat (which
// Validate Connection shows); with it, the data arrives, and the ADFS
// token is reused across syncs.
func TestSatelliteADFSOverTLS(t *testing.T) {
	svc := startService(t)
	site, _ := dcSite(t, 50, jirasim.WithTLS())
	site.EnableADFS(jirasim.ADFSConfig{ClientID: "sei-satellite", Resource: "urn:acme:jira"})
	site.SetADFSPassword("sei.bot", "adfs-password-1")
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "adfs", "adfs_url": site.ADFSURL(), "client_id": "sei-satellite",
		"resource": "urn:acme:jira", "username": "sei.bot"}, map[string]any{"allow_unsafe_ssl": true})
	if !strings.Contains(yml, "allow_unsafe_ssl: true") || !strings.Contains(yml, "authentication: adfs") {
		t.Fatalf("satellite.yml:\n%s", yml)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	strict := writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<ADFS_PASSWORD>", "adfs-password-1", "allow_unsafe_ssl: true", "allow_unsafe_ssl: false")
	sat := newSatellite(t, strict, filepath.Join(t.TempDir(), "strict.db"), nil)
	if err := sat.Sync(ctx, itID); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("sync of a self-signed site without allow_unsafe_ssl: %v", err)
	}
	if err := sat.Heartbeat(ctx, itID); err != nil {
		t.Fatal(err)
	}
	_, out, _ := svc.api("POST", "/integrations/"+itID+"/validate", nil)
	ok, checks := validationOf(out)
	if msg, _ := checks["satellite:tls"]["message"].(string); ok || checks["satellite:tls"]["status"] != "fail" || !strings.Contains(msg, "allow_unsafe_ssl") {
		t.Errorf("validation after a refused certificate: %v", out)
	}
	if n := countRows(t, svc.db, "jira_issues", itID); n != 0 {
		t.Errorf("%d issues from a site whose certificate was refused", n)
	}
	_ = sat.Close()

	sat = newSatellite(t, writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<ADFS_PASSWORD>", "adfs-password-1"), filepath.Join(t.TempDir(), "unsafe.db"), nil)
	if err := sat.RunOnce(ctx); err != nil {
		t.Fatalf("run once: %v\n%s", err, sat.logs)
	}
	if err := sat.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	compareWithTruth(t, svc.db, itID, site)
	if n := site.ADFSTokensIssued(); n != 1 {
		t.Errorf("ADFS issued %d tokens for two runs, want 1 (cached)", n)
	}
	_, out, _ = svc.api("POST", "/integrations/"+itID+"/validate", nil)
	if ok, checks := validationOf(out); !ok || !strings.Contains(checks["satellite:tls"]["message"].(string), "verification is off") {
		t.Errorf("validation: %v", out)
	}
	assertNoSecrets(t, "the satellite's log", sat.logs.String(), svc.key, "adfs-password-1")
}

// TestSatelliteRevokedToken: a personal access token revoked in Jira
// stops the sync with a plain message naming the key to fix; the checks
// of the next heartbeat show it in Validate Connection; nothing already
// pushed is lost.
func TestSatelliteRevokedToken(t *testing.T) {
	svc := startService(t)
	site, pat := dcSite(t, 40)
	itID, yml := svc.satelliteIntegration(site, map[string]any{"method": "pat"}, nil)
	sat := newSatellite(t, writeConfig(t, yml, "<YOUR_API_KEY>", svc.key, "<PERSONAL_ACCESS_TOKEN>", pat), filepath.Join(t.TempDir(), "satellite.db"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sat.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	site.RevokePAT(pat)
	if err := sat.Sync(ctx, itID); err == nil {
		t.Fatal("a sync with a revoked token succeeded")
	}
	if logs := sat.logs.String(); !strings.Contains(logs, "Jira refused the credentials: check api_key (the personal access token) in satellite.yml") {
		t.Errorf("log:\n%s", logs)
	}
	if err := sat.Heartbeat(ctx, itID); err != nil {
		t.Fatal(err)
	}
	_, out, _ := svc.api("POST", "/integrations/"+itID+"/validate", nil)
	if ok, checks := validationOf(out); ok || checks["satellite:credentials"]["status"] != "fail" || checks["satellite:site_reachable"]["status"] != "pass" {
		t.Errorf("validation with a revoked token: %v", out)
	}
	compareWithTruth(t, svc.db, itID, site)
	assertNoSecrets(t, "the satellite's log", sat.logs.String(), pat, svc.key)
}
