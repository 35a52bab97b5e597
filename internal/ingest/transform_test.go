package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const canary = "CANARY-7f3a"

func sampleIssue(t *testing.T) []byte {
	t.Helper()
	adf := func(s string) map[string]any {
		return map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": s}}}}}
	}
	issue := map[string]any{
		"id": "10042", "key": "ACME-42",
		"fields": map[string]any{
			"summary":           "summary " + canary,
			"description":       adf("description " + canary),
			"customfield_10100": "secret " + canary,
			"customfield_10200": "kept value",
			"issuetype":         map[string]any{"name": "Bug"},
			"project":           map[string]any{"key": "ACME", "id": "10000"},
			"status":            map[string]any{"name": "In Progress", "statusCategory": map[string]any{"key": "indeterminate"}},
			"assignee":          map[string]any{"accountId": "u1", "displayName": "Ada", "active": true, "timeZone": "Europe/Berlin"},
			"created":           "2026-01-05T09:00:00.000+0100",
			"updated":           "2026-01-06T10:30:00.000+0000",
			"duedate":           "2026-02-01",
			"labels":            []string{"x"},
			"customfield_10020": []any{map[string]any{"name": "Sprint 1"}, map[string]any{"name": "Sprint 2"}},
			"customfield_10016": 5.0,
			"comment": map[string]any{"total": 1, "comments": []any{map[string]any{"id": "1", "author": map[string]any{"accountId": "u2", "displayName": "Bob"},
				"body": adf("comment " + canary), "created": "2026-01-05T10:00:00.000+0000", "updated": "2026-01-05T10:00:00.000+0000"}}},
		},
		"changelog": map[string]any{"startAt": 0, "maxResults": 2, "total": 2, "histories": []any{
			map[string]any{"id": "100", "author": map[string]any{"accountId": "u1"}, "created": "2026-01-05T11:00:00.000+0000", "items": []any{
				map[string]any{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "1", "fromString": "To Do", "to": "3", "toString": "In Progress"},
				map[string]any{"field": "summary", "fieldtype": "jira", "fieldId": "summary", "fromString": "old " + canary, "toString": "new " + canary},
			}},
			map[string]any{"id": "101", "author": map[string]any{"accountId": "u3"}, "created": "2026-01-05T12:00:00.000+0000", "items": []any{
				map[string]any{"field": "Secret Field", "fieldtype": "custom", "fieldId": "customfield_10100", "from": canary, "fromString": canary, "to": canary, "toString": canary},
				map[string]any{"field": "description", "fieldtype": "jira", "fromString": canary, "toString": canary},
				map[string]any{"field": "labels", "fieldtype": "jira", "fieldId": "labels", "fromString": "", "toString": "x"},
			}},
		}},
	}
	b, err := json.Marshal(issue)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransformDropsExcludedFields(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	meta := DefaultFieldMeta()
	meta.ByName["description"] = "description"
	tr := &Transformer{IntegrationID: "int1", Meta: meta, Location: berlin, Now: time.Now,
		Exclude: NewExclusions([]string{"summary", "description", "comments", "customfield_10100"})}
	p, err := Parse(sampleIssue(t))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tr.Rows(p)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := json.Marshal(rows)
	if strings.Contains(string(all), canary) {
		t.Fatalf("canary survived the transform:\n%s", all)
	}
	is := rows.Issue
	if is.Summary != nil || is.Description != nil {
		t.Errorf("excluded summary/description stored: %v %v", is.Summary, is.Description)
	}
	for _, c := range rows.Comments {
		if c.Body != nil {
			t.Errorf("excluded comment body stored")
		}
	}
	if len(rows.Transitions) != 1 || *rows.Transitions[0].ToStatus != "In Progress" {
		t.Errorf("transitions = %+v", rows.Transitions)
	}
	if len(rows.FieldChanges) != 4 {
		t.Errorf("field changes = %d, want 4 (excluded ones kept without values)", len(rows.FieldChanges))
	}
	if !strings.Contains(is.Fields, "kept value") || strings.Contains(is.Fields, "customfield_10100") {
		t.Errorf("other fields = %s", is.Fields)
	}
	// Due date: midnight in the integration's zone.
	if is.DueAt == nil || !is.DueAt.Equal(time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("due_at = %v, want 2026-01-31T23:00Z (Berlin midnight)", is.DueAt)
	}
	if !is.Created.Equal(time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("created = %v", is.Created)
	}
	if is.Sprint == nil || *is.Sprint != "Sprint 2" || is.StoryPoints == nil || *is.StoryPoints != 5 {
		t.Errorf("sprint/points = %v %v", is.Sprint, is.StoryPoints)
	}
	if _, ok := rows.Users["u1"]; !ok {
		t.Errorf("users = %v", rows.Users)
	}
	for _, f := range SearchFields(meta, tr.Exclude) {
		if f == "summary" || f == "description" || f == "comment" || f == "customfield_10100" {
			t.Errorf("excluded field %s requested from Jira", f)
		}
	}
}

func TestTransformKeepsEverythingWithoutExclusions(t *testing.T) {
	tr := &Transformer{IntegrationID: "int1", Meta: DefaultFieldMeta(), Location: time.UTC, Now: time.Now}
	p, _ := Parse(sampleIssue(t))
	rows, err := tr.Rows(p)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Issue.Summary == nil || !strings.Contains(*rows.Issue.Description, canary) || rows.Comments[0].Body == nil {
		t.Errorf("values lost without exclusions: %+v", rows.Issue)
	}
}

func TestParseWebhook(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"A-1"}}`: true,
		`{"webhookEvent":"comment_created","issue":{"id":10001}}`:                  true,
		`{"issue":{"id":"1"}}`: false,
		`{"webhookEvent":`:     false,
		`[]`:                   false,
	} {
		n, err := ParseWebhook([]byte(body))
		if (err == nil) != ok {
			t.Errorf("%s: err %v", body, err)
		}
		if ok && (n.IssueID == nil || *n.IssueID != 10001 && *n.IssueID != 1) {
			t.Errorf("%s: issue id %v", body, n.IssueID)
		}
	}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"A-1"}}`))
	f.Add([]byte(`{"webhookEvent":"comment_deleted","comment":{"id":"5"},"issue":{"id":7}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseWebhook(b)
		if err == nil && n.Event == "" {
			t.Fatal("accepted without an event")
		}
	})
}
