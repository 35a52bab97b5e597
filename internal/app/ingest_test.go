package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// linkedSite installs a generated site, links it to a new integration and
// validates it, which schedules the first sync. It returns the site, the
// API key and the integration id.
func (h *harness) linkedSite(spec jirasim.GenSpec, input map[string]any) (*jirasim.Site, string, string) {
	h.t.Helper()
	s := h.installed()
	remember(s.SharedSecret)
	if err := s.Generate(42, spec); err != nil {
		h.t.Fatal(err)
	}
	_, key := h.newTenant("Acme")
	if input == nil {
		input = map[string]any{}
	}
	input["name"] = "Acme Jira"
	st, it := h.api("POST", "/integrations", key, input)
	if st != 201 {
		h.t.Fatalf("create: %d %v", st, it)
	}
	if st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": h.connectKey(s)}); st != 200 {
		h.t.Fatalf("link: %d %v", st, out)
	}
	if st, out := h.api("POST", "/integrations/"+id(it)+"/validate", key, nil); st != 200 || out["validation"].(map[string]any)["ok"] != true {
		h.t.Fatalf("validate: %d %v", st, out)
	}
	return s, key, id(it)
}

// waitSync waits until the integration's newest sync run started after
// `after` has finished, and fails the test if it failed.
func (h *harness) waitSync(key, itID string, after time.Time, timeout time.Duration) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m, err := h.tryAPI("GET", "/integrations/"+itID+"/monitoring", key)
		if err != nil { // a slow machine may drop a poll; the next one counts
			time.Sleep(100 * time.Millisecond)
			continue
		}
		sync, _ := m["sync"].(map[string]any)
		started, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sync["last_started_at"]))
		if state, _ := sync["state"].(string); state != "" && state != "running" && !started.Before(after) {
			if state != "succeeded" {
				h.t.Fatalf("sync %s: %v", state, sync["last_error"])
			}
			return sync
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("no finished sync after %v", timeout)
	return nil
}

// compareWithTruth checks the database against the simulator's ground
// truth: every issue, transition, comment and user with email.
func compareWithTruth(t *testing.T, db *store.DB, itID string, s *jirasim.Site) {
	t.Helper()
	gt := s.GroundTruth()
	ctx := context.Background()
	var stored []store.JiraIssue
	if err := db.Gorm.WithContext(ctx).Where("integration_id = ?", itID).Order("issue_id").Find(&stored).Error; err != nil {
		t.Fatal(err)
	}
	byID := map[int64]store.JiraIssue{}
	for _, is := range stored {
		byID[is.IssueID] = is
	}
	if len(stored) != len(gt.Issues) {
		t.Errorf("stored %d issues, Jira shows %d", len(stored), len(gt.Issues))
	}
	var transitions, comments int64
	db.Gorm.WithContext(ctx).Model(&store.JiraTransition{}).Where("integration_id = ?", itID).Count(&transitions)
	db.Gorm.WithContext(ctx).Model(&store.JiraComment{}).Where("integration_id = ?", itID).Count(&comments)
	var wantTransitions, wantComments int
	bad := 0
	for _, ti := range gt.Issues {
		wantTransitions += len(ti.Transitions)
		wantComments += len(ti.Comments)
		is, ok := byID[ti.ID]
		if !ok {
			if bad++; bad < 5 {
				t.Errorf("issue %s (%d) missing", ti.Key, ti.ID)
			}
			continue
		}
		assignee := ""
		if is.AssigneeAccountID != nil {
			assignee = *is.AssigneeAccountID
		}
		if is.Key != ti.Key || is.Status != ti.Status || is.StatusCategory != ti.StatusCategory || !is.Updated.Equal(ti.Updated) ||
			!is.Created.Equal(ti.Created) || assignee != ti.Assignee || is.ProjectKey != ti.ProjectKey {
			if bad++; bad < 5 {
				t.Errorf("issue %s differs: stored %s/%s/%v/%s, Jira %s/%s/%v/%s", ti.Key, is.Key, is.Status, is.Updated, assignee,
					ti.Key, ti.Status, ti.Updated, ti.Assignee)
			}
		}
	}
	if int(transitions) != wantTransitions || int(comments) != wantComments {
		t.Errorf("stored %d transitions and %d comments, Jira has %d and %d", transitions, comments, wantTransitions, wantComments)
	}
	// Spot-check one issue's transitions and comments in full.
	for _, ti := range gt.Issues {
		if len(ti.Transitions) < 2 || len(ti.Comments) < 1 {
			continue
		}
		_, trs, cs, err := db.IssueByKey(ctx, itID, ti.Key)
		if err != nil {
			t.Fatal(err)
		}
		for i, tr := range ti.Transitions {
			if i >= len(trs) || deref(trs[i].ToStatus) != tr.To || !trs[i].At.Equal(tr.At) || deref(trs[i].AuthorAccountID) != tr.Author {
				t.Errorf("%s transition %d: stored %+v, Jira %+v", ti.Key, i, trs[min(i, len(trs)-1)], tr)
				break
			}
		}
		for i, c := range ti.Comments {
			if i >= len(cs) || cs[i].CommentID != strconv.FormatInt(c.ID, 10) || deref(cs[i].Body) != c.Body {
				t.Errorf("%s comment %d differs", ti.Key, i)
				break
			}
		}
		break
	}
	var users []store.JiraUser
	db.Gorm.WithContext(ctx).Where("integration_id = ?", itID).Find(&users)
	stUsers := map[string]store.JiraUser{}
	for _, u := range users {
		stUsers[u.AccountID] = u
	}
	for _, u := range gt.Users {
		su, ok := stUsers[u.AccountID]
		switch {
		case !ok:
			t.Errorf("user %s missing", u.AccountID)
		case u.Email == "" && su.Email != nil:
			t.Errorf("user %s: email %q stored, Jira shows none", u.AccountID, *su.Email)
		case u.Email != "" && (su.Email == nil || *su.Email != u.Email):
			t.Errorf("user %s: email %v, want %s", u.AccountID, su.Email, u.Email)
		case su.DisplayName != u.DisplayName || su.Active != u.Active:
			t.Errorf("user %s: %q/%v, want %q/%v", u.AccountID, su.DisplayName, su.Active, u.DisplayName, u.Active)
		}
	}
	if len(users) != len(gt.Users) {
		t.Errorf("stored %d users, want %d", len(users), len(gt.Users))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestSyncEqualsGroundTruth: a full sync of a 5,000-issue site, then
// mutations and an incremental sync, then webhooks, each time equal to
// what Jira shows.
func TestSyncEqualsGroundTruth(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		began := time.Now()
		spec := jirasim.DefaultGenSpec(5000)
		s, key, itID := h.linkedSite(spec, nil)
		sync := h.waitSync(key, itID, began, 3*time.Minute)
		t.Logf("full sync of %d issues: %v, counts %v", spec.Issues, time.Since(began), sync["counts"])
		compareWithTruth(t, db, itID, s)

		// Mutations, then an incremental sync requested through the API.
		ids := []string{"10001", "10002", "10003", "10500", "14999"}
		if _, err := s.TransitionIssue(ids[0], "Done"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddComment(ids[1], "", "a new comment"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateIssue(ids[2], func(f map[string]any) { f["summary"] = "renamed" }); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteIssue(ids[3]); err != nil {
			t.Fatal(err)
		}
		if err := s.MoveIssueOutOfView(ids[4]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIssue(s.GroundTruth().Issues[0].ProjectKey, map[string]any{"summary": "brand new"}); err != nil {
			t.Fatal(err)
		}
		began = time.Now()
		h.requestSync(key, itID, "incremental")
		sync = h.waitSync(key, itID, began, time.Minute)
		t.Logf("incremental sync: %v, counts %v", time.Since(began), sync["counts"])
		compareWithTruth(t, db, itID, s)

		// Webhooks: duplicated and out of order, they converge.
		e1, err := s.TransitionIssue("10010", "In Progress")
		if err != nil {
			t.Fatal(err)
		}
		e2, err := s.TransitionIssue("10010", "Done")
		if err != nil {
			t.Fatal(err)
		}
		e3, err := s.DeleteIssue("10011")
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []*jirasim.Event{e2, e1, e2, e3, e3, e1} {
			h.expect(s.Deliver(ctx, ev))(http.StatusNoContent)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var pending int64
			db.Gorm.Model(&store.WebhookEvent{}).Where("processed_at IS NULL").Count(&pending)
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				var evs []store.WebhookEvent
				db.Gorm.Where("processed_at IS NULL").Find(&evs)
				for _, e := range evs {
					t.Logf("event %d %s: attempts %d error %v", e.ID, e.Event, e.Attempts, deref(e.Error))
				}
				t.Fatalf("%d webhook events unprocessed", pending)
			}
			time.Sleep(50 * time.Millisecond)
		}
		compareWithTruth(t, db, itID, s)

		// The read API shows the same.
		_, page := h.api("GET", "/integrations/"+itID+"/issues?limit=3", key, nil)
		if items, _ := page["items"].([]any); len(items) != 3 || page["next_cursor"] == "" {
			t.Errorf("issues page = %v", page)
		}
		st, one := h.api("GET", "/integrations/"+itID+"/issues/"+strings.TrimSpace(keyOf(t, db, itID, 10010)), key, nil)
		if st != 200 || one["status"] != "Done" || one["transitions"] == nil {
			t.Errorf("issue 10010: %d %v", st, one["status"])
		}
		if _, users := h.api("GET", "/integrations/"+itID+"/users?limit=5", key, nil); len(users["items"].([]any)) != 5 {
			t.Errorf("users page = %v", users)
		}
	})
}

func keyOf(t *testing.T, db *store.DB, itID string, issueID int64) string {
	var is store.JiraIssue
	if err := db.Gorm.Where("integration_id = ? AND issue_id = ?", itID, issueID).Take(&is).Error; err != nil {
		t.Fatal(err)
	}
	return is.Key
}

// tryAPI is a GET of the API that reports transport errors instead of
// failing the test.
func (h *harness) tryAPI(method, path, apiKey string) (map[string]any, error) {
	resp, err := h.do(method, h.base+"/api/v1"+path, "Bearer "+apiKey, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
