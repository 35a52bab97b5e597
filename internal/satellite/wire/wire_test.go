package wire

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestBatchValidate(t *testing.T) {
	at := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	issue := func(id int64, key string) Issue {
		return Issue{ID: id, Key: key, ProjectKey: "ACME", Created: at, Updated: at}
	}
	due := "2024-02-30"
	cases := []struct {
		name   string
		b      Batch
		fields []string
	}{
		{"valid", Batch{BatchID: "sync-1:page-3", Issues: []Issue{issue(1, "ACME-1")},
			Transitions: []Transition{{IssueID: 1, HistoryID: "h", At: at}}, Comments: []Comment{{IssueID: 1, CommentID: "c"}},
			Users: []User{{AccountID: "JIRAUSER1"}}, DeletedIssueIDs: []int64{2}}, nil},
		{"deletions only", Batch{BatchID: "sweep", DeletedIssueIDs: []int64{2}}, nil},
		{"no batch id", Batch{}, []string{"batch_id"}},
		{"batch id with a space", Batch{BatchID: "a b"}, []string{"batch_id"}},
		{"batch id too long", Batch{BatchID: strings.Repeat("a", MaxBatchIDLen+1)}, []string{"batch_id"}},
		{"too many issues", Batch{BatchID: "b", Issues: make([]Issue, MaxIssues+1)}, []string{"issues"}},
		{"issue without id", Batch{BatchID: "b", Issues: []Issue{issue(0, "ACME-1")}}, []string{"issues[0].id"}},
		{"issue twice", Batch{BatchID: "b", Issues: []Issue{issue(1, "ACME-1"), issue(1, "ACME-1")}}, []string{"issues[1].id"}},
		{"key twice", Batch{BatchID: "b", Issues: []Issue{issue(1, "ACME-1"), issue(2, "ACME-1")}}, []string{"issues[1].key"}},
		{"no updated", Batch{BatchID: "b", Issues: []Issue{{ID: 1, Key: "A-1", ProjectKey: "A", Created: at}}}, []string{"issues[0].updated"}},
		{"bad due date", Batch{BatchID: "b", Issues: []Issue{{ID: 1, Key: "A-1", ProjectKey: "A", Created: at, Updated: at, DueDate: &due}}},
			[]string{"issues[0].due_date"}},
		{"fields not an object", Batch{BatchID: "b", Issues: []Issue{{ID: 1, Key: "A-1", ProjectKey: "A", Created: at, Updated: at,
			Fields: json.RawMessage(`[1]`)}}}, []string{"issues[0].fields"}},
		{"orphan children", Batch{BatchID: "b", Issues: []Issue{issue(1, "ACME-1")},
			Transitions: []Transition{{IssueID: 2, HistoryID: "h"}}, FieldChanges: []FieldChange{{IssueID: 1, HistoryID: "h"}},
			Comments: []Comment{{IssueID: 1}}}, []string{"comments[0].comment_id", "field_changes[0].field", "transitions[0].issue_id"}},
		{"deleted and sent", Batch{BatchID: "b", Issues: []Issue{issue(1, "ACME-1")}, DeletedIssueIDs: []int64{1}}, []string{"deleted_issue_ids[0]"}},
		{"user without id", Batch{BatchID: "b", Users: []User{{DisplayName: "x"}}}, []string{"users[0].account_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keys(c.b.Validate()); !slices.Equal(got, c.fields) {
				t.Errorf("fields %v, want %v", got, c.fields)
			}
		})
	}
}

func TestHeartbeatValidate(t *testing.T) {
	if f := (&Heartbeat{Version: "1.0", Checks: []Check{{Name: "tls", Status: "pass"}}}).Validate(); f != nil {
		t.Errorf("valid heartbeat: %v", f)
	}
	if got := keys((&Heartbeat{Checks: []Check{{Name: "tls", Status: "ok"}, {Status: "pass"}}}).Validate()); !slices.Equal(got, []string{"checks[0].status", "checks[1].name"}) {
		t.Errorf("fields %v", got)
	}
}

// TestBatchJSON pins the wire names both sides depend on.
func TestBatchJSON(t *testing.T) {
	b := Batch{BatchID: "b1", Issues: []Issue{{ID: 10001, Key: "ACME-1", ProjectKey: "ACME"}}, DeletedIssueIDs: []int64{3}}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"batch_id":"b1"`, `"id":10001`, `"project_key":"ACME"`, `"deleted_issue_ids":[3]`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("%s lacks %s", raw, want)
		}
	}
	if BatchesPath("42") != "/v1/integrations/42/satellite/batches" || HeartbeatPath("42") != "/v1/integrations/42/satellite/heartbeat" {
		t.Error("paths")
	}
}
