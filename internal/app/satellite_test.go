package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/sei-io/jira-connect/internal/satellite/wire"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// satelliteYML is the published format of satellite.yml.
type satelliteYML struct {
	Satellite struct {
		Tenant string `yaml:"tenant"`
		APIKey string `yaml:"api_key"`
		URL    string `yaml:"url"`
	} `yaml:"satellite"`
	Integrations []struct {
		ID             string `yaml:"id"`
		URL            string `yaml:"url"`
		Username       string `yaml:"username"`
		Application    string `yaml:"application"`
		APIKey         string `yaml:"api_key"`
		Authentication string `yaml:"authentication"`
		ADFSURL        string `yaml:"adfs_url"`
		ADFSClientID   string `yaml:"adfs_client_id"`
		ADFSResource   string `yaml:"adfs_resource"`
		ADFSUsername   string `yaml:"adfs_username"`
		ADFSPassword   string `yaml:"adfs_password"`
		Metadata       struct {
			Timezone        string   `yaml:"timezone"`
			SensitiveFields []string `yaml:"sensitive_fields"`
		} `yaml:"metadata"`
	} `yaml:"integrations"`
	Jira struct {
		AllowUnsafeSSL bool `yaml:"allow_unsafe_ssl"`
	} `yaml:"jira"`
}

// satelliteFile fetches and parses an integration's satellite.yml.
func (h *harness) satelliteFile(key, itID string) (satelliteYML, string) {
	h.t.Helper()
	resp, err := h.do("GET", h.base+"/api/v1/integrations/"+itID+"/satellite.yml", "Bearer "+key, nil)
	body := h.expect(resp, err)(http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		h.t.Errorf("content type %q", ct)
	}
	var f satelliteYML
	if err := yaml.Unmarshal([]byte(body), &f); err != nil {
		h.t.Fatalf("satellite.yml does not parse: %v\n%s", err, body)
	}
	return f, body
}

// TestSatelliteYAML: satellite.yml is filled in except for the secrets,
// for each authentication method, and only for satellite integrations.
func TestSatelliteYAML(t *testing.T) {
	h := start(t, storetest.Open(t, "sqlite"), "", nil)
	tenant, key := h.newTenant("Acme")
	st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme DC\nmalicious: key", "type": typeDC, "connection": "satellite",
		"url": "http://jira.acme.internal/jira", "timezone": "Europe/Berlin", "excluded_fields": []string{"summary", "description"},
		"authentication": map[string]any{"method": "basic", "username": "jdoe"}})
	if st != 201 {
		t.Fatalf("create: %d %v", st, it)
	}
	pw := it["authentication"].(map[string]any)["credentials"].(map[string]any)["password"].(map[string]any)
	if pw["set"] != false || pw["held_by"] != "satellite" {
		t.Errorf("password state %v", pw)
	}
	f, body := h.satelliteFile(key, id(it))
	if strings.Contains(body, key) || !strings.Contains(body, "satellite --config satellite.yml") {
		t.Errorf("satellite.yml:\n%s", body)
	}
	if f.Satellite.Tenant != tenant || f.Satellite.APIKey != "<YOUR_API_KEY>" || f.Satellite.URL != h.base+"/api" {
		t.Errorf("satellite: %+v", f.Satellite)
	}
	if len(f.Integrations) != 1 {
		t.Fatalf("integrations: %+v", f.Integrations)
	}
	in := f.Integrations[0]
	if in.ID != id(it) || in.URL != "http://jira.acme.internal/jira" || in.Username != "jdoe" || in.Application != "jira" ||
		in.APIKey != "<PASSWORD>" || in.Metadata.Timezone != "Europe/Berlin" ||
		!slices.Equal(in.Metadata.SensitiveFields, []string{"summary", "description"}) || f.Jira.AllowUnsafeSSL {
		t.Errorf("integration: %+v", in)
	}
	if strings.Contains(body, "\nmalicious") {
		t.Errorf("a line break in the name reached the file:\n%s", body)
	}

	// A personal access token: no username, the token's placeholder.
	if st, out := h.api("PATCH", "/integrations/"+id(it), key, map[string]any{"authentication": map[string]any{"method": "pat"},
		"tls": map[string]any{"allow_unsafe_ssl": true}}); st != 200 {
		t.Fatalf("PATCH pat: %d %v", st, out)
	}
	f, _ = h.satelliteFile(key, id(it))
	if in := f.Integrations[0]; in.Username != "" || in.APIKey != "<PERSONAL_ACCESS_TOKEN>" || !f.Jira.AllowUnsafeSSL {
		t.Errorf("pat: %+v", f)
	}
	// ADFS.
	if st, out := h.api("PATCH", "/integrations/"+id(it), key, map[string]any{"authentication": map[string]any{"method": "adfs",
		"adfs_url": "https://adfs.acme.internal/adfs/oauth2/token", "client_id": "sei-satellite", "resource": "https://jira.acme.internal",
		"username": "ACME\\jdoe"}}); st != 200 {
		t.Fatalf("PATCH adfs: %d %v", st, out)
	}
	f, _ = h.satelliteFile(key, id(it))
	if in := f.Integrations[0]; in.Authentication != "adfs" || in.ADFSURL != "https://adfs.acme.internal/adfs/oauth2/token" ||
		in.ADFSClientID != "sei-satellite" || in.ADFSResource != "https://jira.acme.internal" || in.ADFSUsername != "ACME\\jdoe" ||
		in.ADFSPassword != "<ADFS_PASSWORD>" || in.APIKey != "" || in.Username != "" {
		t.Errorf("adfs: %+v", in)
	}

	// Not for an integration the service reaches itself; not for another
	// tenant.
	const tok = "direct-pat-value-123"
	remember(tok)
	_, direct := h.api("POST", "/integrations", key, map[string]any{"name": "Direct", "type": typeDC, "url": "https://jira.acme.com",
		"authentication": map[string]any{"method": "pat", "token": tok}})
	if st, out := h.api("GET", "/integrations/"+id(direct)+"/satellite.yml", key, nil); st != 409 {
		t.Errorf("direct integration: %d %v", st, out)
	}
	_, other := h.newTenant("Other")
	if st, _ := h.api("GET", "/integrations/"+id(it)+"/satellite.yml", other, nil); st != 404 {
		t.Errorf("another tenant: %d", st)
	}
}

// push sends a satellite batch or heartbeat, gzip-compressed if asked.
func (h *harness) push(path, key string, v any, gz bool) (int, map[string]any) {
	h.t.Helper()
	raw, _ := json.Marshal(v)
	var hdr []string
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write(raw)
		_ = w.Close()
		raw, hdr = b.Bytes(), []string{"Content-Encoding", "gzip"}
	}
	resp, err := h.do("POST", h.base+"/api/v1"+path, "Bearer "+key, raw, hdr...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out
}

func sp(s string) *string { return &s }

func lenOf(v any) int { a, _ := v.([]any); return len(a) }

// satelliteBatch is two issues with their history, a comment and users.
func satelliteBatch(id string, updated time.Time) wire.Batch {
	created := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	return wire.Batch{BatchID: id,
		Issues: []wire.Issue{
			{ID: 10001, Key: "ACME-1", ProjectKey: "ACME", IssueType: "Bug", Status: "Done", StatusCategory: "done",
				Summary: sp("secret summary"), Description: sp("secret description"), Created: created, Updated: updated,
				DueDate: sp("2024-04-01"), AssigneeAccountID: sp("JIRAUSER10001"), Labels: []string{"a"},
				Fields: json.RawMessage(`{"environment":"prod","customfield_10050":"kept"}`)},
			{ID: 10002, Key: "ACME-2", ProjectKey: "ACME", Status: "To Do", StatusCategory: "new", Created: created, Updated: updated},
		},
		Transitions: []wire.Transition{{IssueID: 10001, HistoryID: "h1", Item: 0, FromStatus: sp("To Do"), ToStatus: sp("Done"),
			AuthorAccountID: sp("JIRAUSER10001"), At: created.Add(time.Hour)}},
		FieldChanges: []wire.FieldChange{{IssueID: 10001, HistoryID: "h2", Item: 0, Field: "summary", FieldID: sp("summary"),
			FromString: sp("old secret"), ToString: sp("secret summary"), At: created.Add(2 * time.Hour)}},
		Comments: []wire.Comment{{IssueID: 10001, CommentID: "c1", AuthorAccountID: sp("JIRAUSER10001"), Body: sp("a comment"),
			Created: created, Updated: created}},
		Users: []wire.User{{AccountID: "JIRAUSER10001", DisplayName: "Jane Doe", Email: sp("jdoe@acme.com"), Active: true}},
	}
}

func countRows(t *testing.T, db *store.DB, table, itID string) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm.Table(table).Where("integration_id = ?", itID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSatellitePush: the satellite's heartbeat makes Validate Connection
// pass without the service calling the site; its batches are stored with
// the integration's exclusions, idempotently.
func TestSatellitePush(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme DC", "type": typeDC, "connection": "satellite",
			"url": "https://jira.acme.internal", "timezone": "Europe/Berlin", "excluded_fields": []string{"summary", "comments"},
			"authentication": map[string]any{"method": "pat"}})
		if st != 201 {
			t.Fatalf("create: %d %v", st, it)
		}
		itID := id(it)
		base := "/integrations/" + itID

		// Before any contact: validation says what to do, and fails.
		_, out := h.api("POST", base+"/validate", key, nil)
		ok, checks := validationOf(out)
		if msg, _ := checks["satellite"]["message"].(string); ok || !strings.Contains(msg, "No satellite has reported") ||
			!strings.Contains(msg, "satellite.yml") || checks["url"]["status"] != "pass" || statusOf(out) != "failing" {
			t.Fatalf("validate before contact: %v", out)
		}
		if st, out := h.api("POST", base+"/sync", key, nil); st != 409 {
			t.Errorf("sync of a satellite integration: %d %v", st, out)
		}

		// A heartbeat with the satellite's own checks.
		hb := wire.Heartbeat{Version: "1.2.3", Hostname: "sat-01", Checks: []wire.Check{
			{Name: "credentials", Status: "pass", Message: "Jira accepted the personal access token of jdoe."}},
			Sync: &wire.SyncInfo{State: "succeeded", Mode: "full"}}
		if st, out := h.push(base+"/satellite/heartbeat", key, hb, false); st != 200 || out["received_at"] == nil {
			t.Fatalf("heartbeat: %d %v", st, out)
		}
		_, out = h.api("POST", base+"/validate", key, nil)
		ok, checks = validationOf(out)
		if !ok || statusOf(out) != "connected" || checks["satellite:credentials"]["status"] != "pass" ||
			!strings.Contains(checks["satellite"]["message"].(string), "1.2.3") {
			t.Fatalf("validate after heartbeat: %v", out)
		}

		// A batch: stored, with the exclusions applied again.
		now := time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC)
		b := satelliteBatch("sync-1:page-1", now)
		st, out = h.push(base+"/satellite/batches", key, b, true)
		written, _ := out["written"].(map[string]any)
		if st != 201 || out["duplicate"] != false || written["issues"] != 2.0 || written["users"] != 1.0 {
			t.Fatalf("batch: %d %v", st, out)
		}
		_, is := h.api("GET", base+"/issues/ACME-1", key, nil)
		if is["summary"] != nil || is["description"] != "secret description" || is["due_date"] != "2024-04-01" ||
			is["due_at"] != "2024-03-31T22:00:00Z" || lenOf(is["comments"]) != 0 || lenOf(is["transitions"]) != 1 {
			t.Errorf("stored issue: %v", is)
		}
		var fc store.JiraFieldChange
		if err := db.Gorm.Where("integration_id = ? AND history_id = ?", itID, "h2").Take(&fc).Error; err != nil || fc.FromString != nil || fc.ToString != nil {
			t.Errorf("change of an excluded field keeps its values: %+v %v", fc, err)
		}
		var fields string
		db.Gorm.Table("jira_issues").Where("integration_id = ? AND issue_id = ?", itID, 10001).Pluck("fields", &fields)
		if !strings.Contains(fields, "kept") {
			t.Errorf("fields %s", fields)
		}

		// The same batch again (a retry after a lost answer): nothing new.
		counts := func() [4]int64 {
			return [4]int64{countRows(t, db, "jira_issues", itID), countRows(t, db, "jira_transitions", itID),
				countRows(t, db, "jira_field_changes", itID), countRows(t, db, "jira_users", itID)}
		}
		before := counts()
		st, out = h.push(base+"/satellite/batches", key, b, false)
		if st != 200 || out["duplicate"] != true || out["written"].(map[string]any)["issues"] != 2.0 {
			t.Fatalf("batch again: %d %v", st, out)
		}
		if after := counts(); after != before {
			t.Errorf("rows %v after the repeat, %v before", after, before)
		}
		// The same id for other content is refused.
		other := satelliteBatch("sync-1:page-1", now.Add(time.Hour))
		if st, out := h.push(base+"/satellite/batches", key, other, false); st != 409 || !slices.Contains(fieldsOf(out), "batch_id") {
			t.Errorf("reused batch id: %d %v", st, out)
		}
		// An older version of the issues under a new id: newer wins.
		old := satelliteBatch("sync-0:page-1", now.Add(-time.Hour))
		if st, out := h.push(base+"/satellite/batches", key, old, false); st != 201 || out["written"].(map[string]any)["issues_not_newer"] != 2.0 {
			t.Errorf("older batch: %d %v", st, out)
		}
		// Deletions the satellite's sweep found.
		del := wire.Batch{BatchID: "sync-2:sweep", DeletedIssueIDs: []int64{10002}}
		if st, out := h.push(base+"/satellite/batches", key, del, false); st != 201 || out["written"].(map[string]any)["deleted"] != 1.0 {
			t.Errorf("deletion: %d %v", st, out)
		}
		if n := countRows(t, db, "jira_issues", itID); n != 1 {
			t.Errorf("%d issues after the deletion", n)
		}

		// Bad batches name the field; a child needs its issue in the batch.
		bad := wire.Batch{BatchID: "bad", Transitions: []wire.Transition{{IssueID: 999, HistoryID: "h", At: now}}}
		if st, out := h.push(base+"/satellite/batches", key, bad, false); st != 400 || !slices.Equal(fieldsOf(out), []string{"transitions[0].issue_id"}) {
			t.Errorf("orphan transition: %d %v", st, out)
		}
		if st, out := h.push(base+"/satellite/batches", key, wire.Batch{}, false); st != 400 || !slices.Equal(fieldsOf(out), []string{"batch_id"}) {
			t.Errorf("no batch id: %d %v", st, out)
		}
		// Authentication: a wrong key is 401, another tenant's key 404.
		if st, _ := h.push(base+"/satellite/batches", "sei_wrongkey_abcdefghijklmnopqrstuvwxyz", b, false); st != 401 {
			t.Errorf("wrong key: %d", st)
		}
		_, otherKey := h.newTenant("Other")
		if st, _ := h.push(base+"/satellite/heartbeat", otherKey, hb, false); st != 404 {
			t.Errorf("another tenant's key: %d", st)
		}

		_, m := h.api("GET", base+"/monitoring", key, nil)
		sat, _ := m["satellite"].(map[string]any)
		if sat == nil || sat["version"] != "1.2.3" || sat["hostname"] != "sat-01" || sat["batches"] != 3.0 || sat["silent"] != false ||
			sat["last_batch_at"] == nil {
			t.Errorf("monitoring: %v", m)
		}

		// Not for an integration the service ingests itself.
		const tok = "direct-pat-value-456"
		remember(tok)
		_, direct := h.api("POST", "/integrations", key, map[string]any{"name": "Direct", "type": typeDC, "url": "https://jira.acme.com",
			"authentication": map[string]any{"method": "pat", "token": tok}})
		if st, _ := h.push("/integrations/"+id(direct)+"/satellite/batches", key, b, false); st != 409 {
			t.Errorf("batch to a direct integration: %d", st)
		}

		// Deleting the integration takes its satellite rows with it.
		if st, _ := h.api("DELETE", base, key, nil); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if _, err := db.SatelliteContactOf(context.Background(), itID); err == nil {
			t.Error("satellite contact outlived its integration")
		}
	})
}
