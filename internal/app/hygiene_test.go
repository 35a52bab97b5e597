package app

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// hygieneData writes a few issues of an integration as ingestion would:
// WriteIssues and, in its transaction, the report rows it derives.
func hygieneData(t *testing.T, db *store.DB, itID string) {
	t.Helper()
	ctx := context.Background()
	created := time.Now().Add(-60 * 24 * time.Hour).UTC()
	var b store.IssueBatch
	for i, f := range []string{`{"customfield_10100":"Case 00001234 and 5003000000D8cuI"}`, `{"customfield_10100":"none"}`, `{}`} {
		id := int64(10001 + i)
		desc := "long enough to be a proper description"
		b.Issues = append(b.Issues, store.JiraIssue{IntegrationID: itID, IssueID: id, Key: fmt.Sprintf("ACME-%d", i+1), ProjectKey: "ACME",
			Status: "To Do", Created: created, Updated: created, SyncedAt: created, Components: `["API"]`, Labels: "[]", FixVersions: "[]",
			Fields: f, Description: &desc})
	}
	if _, err := db.WriteIssues(ctx, itID, &b, nil); err != nil {
		t.Fatal(err)
	}
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		if !strings.HasPrefix(k, "_") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestHygieneAPI: the hygiene and Salesforce routes over HTTP: API-key
// authentication, tenant isolation, validation errors in the one error
// shape, the report's exact answer shape, paging, and Salesforce links in
// their listing and in the issue read API.
func TestHygieneAPI(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		_, other := h.newTenant("Globex")
		st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Jira", "timezone": "Europe/Berlin", "excluded_fields": []string{"description"}})
		if st != 201 {
			t.Fatalf("create: %d %v", st, it)
		}
		itID := id(it)
		base := "/integrations/" + itID
		// The site is not linked, so its field list is the one stored by
		// an earlier fetch.
		if err := db.ReplaceJiraFields(context.Background(), itID, []store.JiraField{
			{FieldID: "customfield_10100", Name: "Salesforce case", Custom: true, SchemaType: "string"},
			{FieldID: "customfield_10102", Name: "Severity", Custom: true, SchemaType: "option"},
			{FieldID: "customfield_10103", Name: "Target date", Custom: true, SchemaType: "date"},
		}); err != nil {
			t.Fatal(err)
		}
		hygieneData(t, db, itID)

		for _, r := range [][2]string{{"GET", "/hygiene"}, {"GET", "/hygiene/issues?category=idle"}, {"GET", "/hygiene/settings"},
			{"PUT", "/hygiene/settings"}, {"GET", "/salesforce/settings"}, {"PUT", "/salesforce/settings"}, {"GET", "/salesforce-links"}} {
			if st, _ := h.api(r[0], base+r[1], "", map[string]any{}); st != 401 {
				t.Errorf("%s %s without a key: %d", r[0], r[1], st)
			}
			if st, out := h.api(r[0], base+r[1], other, map[string]any{}); st != 404 {
				t.Errorf("%s %s by another tenant: %d %v", r[0], r[1], st, out)
			}
		}

		// Settings: defaults, then validated custom misses.
		st, s := h.api("GET", base+"/hygiene/settings", key, nil)
		if st != 200 || s["idle_days"] != 30.0 || len(s["custom_misses"].([]any)) != 0 {
			t.Fatalf("default settings: %d %v", st, s)
		}
		st, bad := h.api("PUT", base+"/hygiene/settings", key, map[string]any{"custom_misses": []any{
			map[string]any{"name": "Late", "field": "customfield_10102", "operator": "older_than_days", "value": 3},
			map[string]any{"name": "Ghost", "field": "customfield_99999", "operator": "missing"},
		}})
		if st != 400 || !strings.Contains(fmt.Sprint(fields(bad)["custom_misses[0].operator"]), "older_than_days does not apply to Severity") ||
			!strings.Contains(fmt.Sprint(fields(bad)["custom_misses[1].field"]), "not in the Jira site's field list") {
			t.Errorf("invalid custom misses: %d %v", st, bad)
		}
		if st, out := h.api("PUT", base+"/hygiene/settings", key, `{"idle_days": 7, "colour": "blue"}`); st != 400 || fields(out)["colour"] == nil {
			t.Errorf("unknown member: %d %v", st, out)
		}
		st, s = h.api("PUT", base+"/hygiene/settings", key, map[string]any{"idle_days": 7, "custom_misses": []any{
			map[string]any{"name": "No severity", "field": "customfield_10102", "operator": "missing"}}})
		if st != 200 || s["idle_days"] != 7.0 || s["custom_misses"].([]any)[0].(map[string]any)["key"] != "no_severity" {
			t.Fatalf("save settings: %d %v", st, s)
		}

		// The report: exactly the documented shape.
		st, rep := h.api("GET", base+"/hygiene?from=2020-01-01&limit=2", key, nil)
		if st != 200 {
			t.Fatalf("report: %d %v", st, rep)
		}
		if diff := cmp.Diff([]string{"categories", "score", "total"}, keysOf(rep)); diff != "" {
			t.Errorf("report members (-want +got):\n%s", diff)
		}
		if rep["total"] != 3.0 {
			t.Errorf("total %v", rep["total"])
		}
		var keys []string
		var cursor string
		for _, c := range rep["categories"].([]any) {
			c := c.(map[string]any)
			keys = append(keys, c["key"].(string))
			want := []string{"issues", "key", "misses", "name", "ratio", "status", "weight"}
			if c["status"] == "not_evaluated" {
				want = []string{"issues", "key", "misses", "name", "ratio", "reason", "status", "weight"}
			}
			if diff := cmp.Diff(want, keysOf(c)); diff != "" {
				t.Errorf("category %v members (-want +got):\n%s", c["key"], diff)
			}
			if diff := cmp.Diff([]string{"items", "next_cursor"}, keysOf(c["issues"].(map[string]any))); diff != "" {
				t.Errorf("issues members (-want +got):\n%s", diff)
			}
			if c["key"] == "no_due_date" {
				cursor, _ = c["issues"].(map[string]any)["next_cursor"].(string)
			}
			if c["key"] == "poor_description" && (c["status"] != "not_evaluated" || !strings.Contains(c["reason"].(string), `"description"`)) {
				t.Errorf("poor_description with description excluded: %v", c)
			}
		}
		wantKeys := []string{"idle", "no_assignee", "no_due_date", "poor_description", "no_components", "inactive_assignee", "missed_response_time",
			"missed_resolution_time", "no_severity"}
		if diff := cmp.Diff(wantKeys, keys); diff != "" {
			t.Errorf("category keys (-want +got):\n%s", diff)
		}
		if cursor == "" {
			t.Fatal("no_due_date: 3 misses, a page of 2 and no cursor")
		}
		st, page := h.api("GET", base+"/hygiene/issues?cursor="+url.QueryEscape(cursor), key, nil)
		if st != 200 || fmt.Sprint(page["items"]) != "[ACME-3]" || page["next_cursor"] != "" {
			t.Errorf("second page: %d %v", st, page)
		}
		for _, q := range []string{"weights=idle:90", "weights=bogus:100", "from=yesterday", "limit=0", "projects=,"} {
			if st, out := h.api("GET", base+"/hygiene?"+q, key, nil); st != 400 || out["error"].(map[string]any)["code"] != "invalid" {
				t.Errorf("%s: %d %v", q, st, out)
			}
		}
		if st, out := h.api("GET", base+"/hygiene?weights="+url.QueryEscape("idle:60,no_severity:40"), key, nil); st != 200 || len(out["categories"].([]any)) != 2 {
			t.Errorf("weighted: %d %v", st, out)
		}

		// Salesforce: a field of the site, then the links of issues
		// written after it was set.
		if st, out := h.api("PUT", base+"/salesforce/settings", key, map[string]any{"salesforce_field": "customfield_10103"}); st != 400 ||
			!strings.Contains(fmt.Sprint(fields(out)["salesforce_field"]), "a date field") {
			t.Errorf("a date field for Salesforce: %d %v", st, out)
		}
		if st, out := h.api("PUT", base+"/salesforce/settings", key, map[string]any{"salesforce_field": "description"}); st != 400 {
			t.Errorf("an excluded field for Salesforce: %d %v", st, out)
		}
		if st, out := h.api("PUT", base+"/salesforce/settings", key, map[string]any{"salesforce_field": "customfield_10100"}); st != 200 || out["salesforce_field"] != "customfield_10100" {
			t.Fatalf("set the Salesforce field: %d %v", st, out)
		}
		if st, out := h.api("GET", base+"/salesforce/settings", key, nil); st != 200 || out["salesforce_field"] != "customfield_10100" {
			t.Errorf("read the Salesforce field: %d %v", st, out)
		}
		hygieneData(t, db, itID) // as the next sync would
		st, links := h.api("GET", base+"/salesforce-links?limit=1", key, nil)
		if st != 200 || len(links["items"].([]any)) != 1 || links["next_cursor"] == "" {
			t.Fatalf("links: %d %v", st, links)
		}
		first := links["items"].([]any)[0].(map[string]any)
		if diff := cmp.Diff(map[string]any{"issue_id": "10001", "issue_key": "ACME-1", "case": "00001234", "kind": "case_number"}, first); diff != "" {
			t.Errorf("first link (-want +got):\n%s", diff)
		}
		st, links = h.api("GET", base+"/salesforce-links?cursor="+url.QueryEscape(links["next_cursor"].(string)), key, nil)
		if st != 200 || len(links["items"].([]any)) != 1 || links["items"].([]any)[0].(map[string]any)["case"] != "5003000000D8cuIAAR" || links["next_cursor"] != "" {
			t.Errorf("second page of links: %d %v", st, links)
		}
		if st, out := h.api("GET", base+"/salesforce-links?case=5003000000D8cuIAAR", key, nil); st != 200 || len(out["items"].([]any)) != 1 {
			t.Errorf("links of one case: %d %v", st, out)
		}
		st, is := h.api("GET", base+"/issues/ACME-1", key, nil)
		if st != 200 || fmt.Sprint(is["salesforce_cases"]) != "[00001234 5003000000D8cuIAAR]" {
			t.Errorf("issue read API: %d %v", st, is["salesforce_cases"])
		}
		st, list := h.api("GET", base+"/issues", key, nil)
		if st != 200 || fmt.Sprint(list["items"].([]any)[1].(map[string]any)["salesforce_cases"]) != "[]" {
			t.Errorf("issue listing: %d %v", st, list)
		}
		if st, out := h.api("PUT", base+"/salesforce/settings", key, map[string]any{"salesforce_field": nil}); st != 200 || out["salesforce_field"] != nil {
			t.Errorf("clear the Salesforce field: %d %v", st, out)
		}
		if st, out := h.api("GET", base+"/salesforce-links", key, nil); st != 200 || len(out["items"].([]any)) != 0 {
			t.Errorf("links after clearing the field: %d %v", st, out)
		}
	})
}

// TestHygieneAfterSync: with a linked site, settings are validated against
// the site's own field list, and a sync fills what the report reads. This
// needs WriteIssues to write the report rows and the search to request the
// report's fields (the issue 6 hooks in internal/store/ingest.go and
// internal/ingest/sync.go); until they are in, it says so and skips.
func TestHygieneAfterSync(t *testing.T) {
	h := start(t, storetest.Open(t, store.DialectSQLite), "", nil)
	began := time.Now()
	spec := jirasim.GenSpec{Projects: 2, Issues: 40, Users: 6, EmailShare: 1, TransitionsPerIssue: 2, CommentsPerIssue: 1, CustomFields: 8, DescriptionBytes: 40}
	_, key, itID := h.linkedSite(spec, nil)
	h.waitSync(key, itID, began, time.Minute)
	base := "/integrations/" + itID

	// customfield_10102 is the simulator's Severity (a select list).
	st, out := h.api("PUT", base+"/hygiene/settings", key, map[string]any{"custom_misses": []any{
		map[string]any{"name": "Severity above", "field": "customfield_10102", "operator": "greater_than", "value": 2}}})
	if st != 400 || !strings.Contains(fmt.Sprint(fields(out)), "Severity (customfield_10102), a string field") {
		t.Fatalf("checked against the site's list: %d %v", st, out)
	}
	began = time.Now()
	st, out = h.api("PUT", base+"/hygiene/settings", key, map[string]any{"custom_misses": []any{
		map[string]any{"name": "No severity", "field": "customfield_10102", "operator": "missing"}}})
	if st != 200 {
		t.Fatalf("save: %d %v", st, out)
	}
	// The new field asks for a full sync that fetches it, whatever sync
	// is waiting or running at that moment (the periodic one may be): no
	// request from the test is needed.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no full sync after saving the settings")
		}
		m, _ := h.tryAPI("GET", base+"/monitoring", key)
		sync, _ := m["sync"].(map[string]any)
		started, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(sync["last_started_at"]))
		if sync["mode"] == "full" && sync["state"] == "succeeded" && !started.Before(began) {
			break
		}
	}
	var stored int64
	if err := h.db.Gorm.Table("hygiene_issues").Where("integration_id = ?", itID).Count(&stored).Error; err != nil {
		t.Fatal(err)
	}
	if stored == 0 {
		t.Fatal("hygiene_issues is empty after a sync: WriteIssues did not write the report's rows")
	}
	st, rep := h.api("GET", base+"/hygiene", key, nil)
	if st != 200 || rep["total"] != float64(spec.Issues) {
		t.Fatalf("report after sync: %d total %v, want %d", st, rep["total"], spec.Issues)
	}
	var withSeverity int64
	if err := h.db.Gorm.Table("jira_issues").Where("integration_id = ? AND fields LIKE ?", itID, `%customfield_10102%`).Count(&withSeverity).Error; err != nil {
		t.Fatal(err)
	}
	if withSeverity == 0 {
		t.Errorf("no issue has Severity: the search did not request the report's fields (ingest.WithReportFields)")
	}
	for _, c := range rep["categories"].([]any) {
		if c := c.(map[string]any); c["key"] == "no_severity" && c["misses"] != float64(int64(spec.Issues)-withSeverity) {
			t.Errorf("no_severity misses %v, want %d", c["misses"], int64(spec.Issues)-withSeverity)
		}
	}
}
