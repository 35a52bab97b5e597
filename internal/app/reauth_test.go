package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// waitRun waits for the integration's newest sync run started after
// `after` to finish, whatever its outcome, and returns monitoring.
func (h *harness) waitRun(key, itID string, after time.Time, timeout time.Duration) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m, err := h.tryAPI("GET", "/integrations/"+itID+"/monitoring", key)
		if err == nil {
			sync, _ := m["sync"].(map[string]any)
			started, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sync["last_started_at"]))
			if state, _ := sync["state"].(string); state != "" && state != "running" && !started.Before(after) {
				return m
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("no finished sync after %v", timeout)
	return nil
}

// requestSync asks for a sync and requires it queued: a sync that has
// recorded its end no longer blocks a new one, even while River has yet to
// mark its job completed.
func (h *harness) requestSync(key, itID, mode string) {
	h.t.Helper()
	st, out := h.api("POST", "/integrations/"+itID+"/sync", key, map[string]any{"mode": mode})
	if st != 202 || out["queued"] != true {
		h.t.Fatalf("sync: %d %v, want 202 and queued", st, out)
	}
}

// waitReason waits for the integration's status reason (the sync's run is
// recorded as failed a moment before the integration is marked).
func (h *harness) waitReason(key, itID, reason string, timeout time.Duration) map[string]any {
	h.t.Helper()
	var m map[string]any
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if m, err = h.tryAPI("GET", "/integrations/"+itID+"/monitoring", key); err == nil && m["status_reason"] == reason {
			return m
		}
	}
	h.t.Fatalf("status reason not %s after %v: %v", reason, timeout, m)
	return nil
}

// matchesTruth compares what was ingested with the simulator's ground
// truth: every issue's key and version, and the totals of transitions and
// comments (internal/ingest's tests compare every field).
func matchesTruth(t *testing.T, db *store.DB, itID string, s *jirasim.Site) {
	t.Helper()
	gt := s.GroundTruth()
	var stored []store.JiraIssue
	if err := db.Gorm.Where("integration_id = ?", itID).Find(&stored).Error; err != nil {
		t.Fatal(err)
	}
	byID := map[int64]store.JiraIssue{}
	for _, is := range stored {
		byID[is.IssueID] = is
	}
	var transitions, comments int64
	bad := 0
	for _, ti := range gt.Issues {
		transitions += int64(len(ti.Transitions))
		comments += int64(len(ti.Comments))
		if is, ok := byID[ti.ID]; !ok || is.Key != ti.Key || !is.Updated.Equal(ti.Updated) || is.Status != ti.Status {
			if bad++; bad < 5 {
				t.Errorf("issue %s: stored %v %s %v %s, Jira %s %v %s", ti.Key, ok, is.Key, is.Updated, is.Status, ti.Key, ti.Updated, ti.Status)
			}
		}
	}
	got, err := db.CountIngested(context.Background(), itID)
	if err != nil {
		t.Fatal(err)
	}
	if got["issues"] != int64(len(gt.Issues)) || got["transitions"] != transitions || got["comments"] != comments || got["users"] != int64(len(gt.Users)) {
		t.Errorf("stored %v; Jira has %d issues, %d transitions, %d comments, %d users", got, len(gt.Issues), transitions, comments, len(gt.Users))
	}
}

// TestCloudTokenRevokedThenReauthenticated: a Jira Cloud site by API
// token syncs; the token is revoked; the next sync marks the integration
// failing / credentials_rejected without losing anything; re-authentication
// connects it again and the next sync continues incrementally from the
// checkpoint to Jira's state.
func TestCloudTokenRevokedThenReauthenticated(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", cloudHosts)
		s := jirasim.NewCloudSite()
		t.Cleanup(s.Close)
		spec := jirasim.DefaultGenSpec(600)
		spec.HiddenEmailShare = 0
		if err := s.Generate(7, spec); err != nil {
			t.Fatal(err)
		}
		const tok1, tok2 = "ATATT3xFfGF0-sync-token-one", "ATATT3xFfGF0-sync-token-two"
		remember(tok1, tok2)
		s.AddBasicUser("557058:sei-bot", "SEI Bot", "sei.bot@acme.com", tok1)
		_, key := h.newTenant("Acme")
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Cloud", "type": typeCloud, "url": s.BaseURL,
			"authentication": map[string]any{"email": "sei.bot@acme.com", "api_token": tok1}})
		itID := id(it)
		began := time.Now()
		if _, out := h.api("POST", "/integrations/"+itID+"/validate", key, nil); statusOf(out) != "connected" {
			t.Fatalf("validate: %v", out)
		}
		h.waitSync(key, itID, began, 2*time.Minute)
		matchesTruth(t, db, itID, s)
		stored, _ := db.CountIngested(context.Background(), itID)

		// Revoked; the site changes; a sync meets the revocation.
		s.RevokeAPIToken("sei.bot@acme.com")
		if _, err := s.TransitionIssue("10001", "Done"); err != nil {
			t.Fatal(err)
		}
		began = time.Now()
		h.requestSync(key, itID, "incremental")
		h.waitRun(key, itID, began, time.Minute)
		m := h.waitReason(key, itID, "credentials_rejected", 10*time.Second)
		sync := m["sync"].(map[string]any)
		if m["status"] != "failing" || m["status_reason"] != "credentials_rejected" || sync["state"] != "failed" ||
			!strings.Contains(fmt.Sprint(sync["last_error"]), "401") {
			t.Fatalf("after the revocation: %v", m)
		}
		if now, _ := db.CountIngested(context.Background(), itID); fmt.Sprint(now) != fmt.Sprint(stored) {
			t.Errorf("stored %v after the failed sync, %v before", now, stored)
		}
		// A failing integration is not synced on demand until repaired.
		if st, _ := h.api("POST", "/integrations/"+itID+"/sync", key, nil); st != 409 {
			t.Errorf("sync of a failing integration: %d", st)
		}

		// Re-authenticated: connected at once, and the sync it schedules
		// continues from the checkpoint.
		s.AddBasicUser("557058:sei-bot", "SEI Bot", "sei.bot@acme.com", tok2)
		began = time.Now()
		_, out := h.api("PUT", "/integrations/"+itID+"/authentication", key, map[string]any{"api_token": tok2})
		if ok, _ := validationOf(out); !ok || statusOf(out) != "connected" {
			t.Fatalf("re-authentication: %v", out)
		}
		sync = h.waitSync(key, itID, began, 2*time.Minute)
		if m, _ := h.tryAPI("GET", "/integrations/"+itID+"/monitoring", key); m["sync"].(map[string]any)["mode"] != "incremental" {
			t.Errorf("the sync after re-authentication started over: %v", m["sync"])
		}
		matchesTruth(t, db, itID, s)
	})
}

// TestDataCenterRevokedMidSyncResumes: a personal access token revoked in
// the middle of a Data Center full sync stops it and marks the integration
// failing; what was stored stays, and after re-authentication the full
// sync resumes from its plan and checkpoints to Jira's state.
func TestDataCenterRevokedMidSyncResumes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s, ca := dcSite(t)
		spec := jirasim.DefaultGenSpec(1500)
		spec.HiddenEmailShare = 0
		if err := s.Generate(9, spec); err != nil {
			t.Fatal(err)
		}
		s.AddDCUser("jdoe", "Jane Doe", "jdoe@acme.com") // generating replaced the site's users
		s.SetDCMaxResults(50)                            // many pages
		s.SetLatency(15 * time.Millisecond)              // time to revoke in the middle
		pat1 := s.IssuePAT("jdoe")
		remember(pat1)
		_, key := h.newTenant("Acme")
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme DC", "type": typeDC, "url": s.BaseURL,
			"authentication": map[string]any{"method": "pat", "token": pat1}, "tls": map[string]any{"ca_certificate": ca}})
		itID := id(it)
		began := time.Now()
		if _, out := h.api("POST", "/integrations/"+itID+"/validate", key, nil); statusOf(out) != "connected" {
			t.Fatalf("validate: %v", out)
		}
		// Revoke once some issues are stored.
		deadline := time.Now().Add(time.Minute)
		for {
			n, _ := db.CountIngested(context.Background(), itID)
			if n["issues"] > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("nothing stored within a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
		s.RevokePAT(pat1)
		h.waitRun(key, itID, began, time.Minute)
		m := h.waitReason(key, itID, "credentials_rejected", 10*time.Second)
		if m["status"] != "failing" || m["sync"].(map[string]any)["state"] != "failed" {
			t.Fatalf("after the revocation: %v", m)
		}
		partial, _ := db.CountIngested(context.Background(), itID)
		if partial["issues"] == 0 || partial["issues"] >= int64(spec.Issues) {
			t.Logf("revoked after %d of %d issues: the test did not catch the sync in the middle", partial["issues"], spec.Issues)
		}
		s.SetLatency(0)

		pat2 := s.IssuePAT("jdoe")
		remember(pat2)
		began = time.Now()
		_, out := h.api("PUT", "/integrations/"+itID+"/authentication", key, map[string]any{"token": pat2})
		if ok, _ := validationOf(out); !ok {
			t.Fatalf("re-authentication: %v", out)
		}
		sync := h.waitSync(key, itID, began, 3*time.Minute)
		t.Logf("revoked after %d of %d issues; resumed in %v: %v", partial["issues"], spec.Issues, time.Since(began), sync["counts"])
		// Resumed, not started over: the partitions already stored are not
		// read again.
		if read := sync["counts"].(map[string]any)["issues"].(float64); partial["issues"] < int64(spec.Issues) && int64(read) > int64(spec.Issues)-partial["issues"] {
			t.Errorf("the resumed sync read %v issues; %d were left", read, int64(spec.Issues)-partial["issues"])
		}
		if m, _ := h.tryAPI("GET", "/integrations/"+itID+"/monitoring", key); m["sync"].(map[string]any)["mode"] != "full" || m["status"] != "connected" {
			t.Errorf("after re-authentication: %v", m)
		}
		if n, _ := db.CountIngested(context.Background(), itID); n["issues"] < partial["issues"] {
			t.Errorf("%d issues after resuming, %d before", n["issues"], partial["issues"])
		}
		matchesTruth(t, db, itID, s)
	})
}
