package hygiene

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// The fixed dataset. "Now" is 2026-06-15 12:00 UTC; the integration works
// in Europe/Berlin (UTC+2 in summer); thresholds are the defaults: idle 30
// days, descriptions of 20 characters, response within 24 hours,
// resolution within 30 days. Expected results are worked out by hand in
// the comments of each issue.
var now = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func sp(s string) *string { return &s }

func tp(t time.Time) *time.Time { return &t }

// siteFields is the site's field list the fake Jira answers.
var siteFields = func() []SiteField {
	var out []SiteField
	for _, f := range []struct{ id, name, typ, items string }{
		{"customfield_10030", "Severity", "option", ""},
		{"customfield_10031", "Effort", "number", ""},
		{"customfield_10040", "Team notes", "string", ""},
		{"customfield_10050", "Target date", "date", ""},
		{"customfield_10060", "Platforms", "array", "option"},
		{"customfield_10070", "Deployed at", "datetime", ""},
		{"customfield_10080", "Reviewer", "user", ""},
		{"customfield_10090", "Notes JSON", "any", ""},
		{"customfield_10020", "Sprint", "array", "json"},
		{"customfield_10016", "Story point estimate", "number", ""},
		{"summary", "Summary", "string", ""},
		{"duedate", "Due date", "date", ""},
		{"labels", "Labels", "array", "string"},
		{"priority", "Priority", "priority", ""},
	} {
		sf := SiteField{ID: f.id, Name: f.name, Custom: strings.HasPrefix(f.id, "customfield_")}
		sf.Schema.Type, sf.Schema.Items = f.typ, f.items
		out = append(out, sf)
	}
	return out
}()

type fakeFields struct {
	list []SiteField
	err  error
}

func (f *fakeFields) ListFields(context.Context, *store.Integration) ([]SiteField, error) {
	return f.list, f.err
}

type fakeQueue struct{ full []string }

func (q *fakeQueue) EnqueueSync(_ context.Context, id, mode string) (bool, error) {
	q.full = append(q.full, id+":"+mode)
	return true, nil
}

type fixture struct {
	svc   *Service
	db    *store.DB
	queue *fakeQueue
}

func setup(t *testing.T, db *store.DB, excluded ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	if excluded == nil {
		excluded = []string{}
	}
	if err := db.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateIntegration(ctx, &store.Integration{ID: "it1", TenantID: "t1", Name: "Jira", Type: "jira_connect_app", Status: "connected",
		Tags: []string{}, ExcludedFields: excluded, Settings: "{}", Timezone: "Europe/Berlin"}); err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{}
	return &fixture{svc: &Service{DB: db, Now: func() time.Time { return now }, Fields: &fakeFields{list: siteFields}, Queue: q}, db: db, queue: q}
}

func issue(id int64, key string, created, updated string) store.JiraIssue {
	c, u := at(created), at(updated)
	project, _, _ := strings.Cut(key, "-")
	return store.JiraIssue{IntegrationID: "it1", IssueID: id, Key: key, ProjectKey: project, Status: "To Do", Created: c, Updated: u, SyncedAt: u,
		Components: "[]", Labels: "[]", FixVersions: "[]", Fields: "{}"}
}

func transition(id int64, history string, t time.Time) store.JiraTransition {
	return store.JiraTransition{IntegrationID: "it1", IssueID: id, HistoryID: history, At: t}
}

// load writes the dataset through WriteIssues and the report rows it
// derives (the hook WriteIssues calls; calling it again is harmless).
func (f *fixture) load(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var b store.IssueBatch

	// SEI-1: unresolved, last updated 2026-05-05 (idle: before now − 30
	// days = 2026-05-16 12:00); no due date, no description, no
	// components; first status change 30 hours after creation (missed
	// response) and unresolved 44 days on (missed resolution). No custom
	// values: no severity, reviewer is not acc-boss (it is nobody), not on
	// Web.
	i1 := issue(101, "SEI-1", "2026-05-02T09:00:00Z", "2026-05-05T09:00:00Z")
	i1.AssigneeAccountID = sp("acc-ada")
	b.Issues = append(b.Issues, i1)
	b.Transitions = append(b.Transitions, transition(101, "h1", i1.Created.Add(30*time.Hour)), transition(101, "h2", i1.Created.Add(50*time.Hour)))

	// SEI-2: assigned to an inactive user; resolved within 2 days; status
	// changed after 2 hours. Custom: Blocker, effort 13 (> 8), notes
	// contain "urgent", on Web, target 2026-06-01 (older than 10 days:
	// before 2026-06-05), deployed 2026-05-31 21:30 UTC (before 2026-06-01
	// 00:00 Berlin = 2026-05-31 22:00 UTC), labels contain "flaky".
	i2 := issue(102, "SEI-2", "2026-05-10T08:00:00Z", "2026-06-14T08:00:00Z")
	i2.AssigneeAccountID, i2.Resolved, i2.DueDate = sp("acc-bob"), tp(at("2026-05-12T08:00:00Z")), sp("2026-05-20")
	i2.Description, i2.Components, i2.Labels = sp("A good long description of the work"), `["API"]`, `["flaky","backend"]`
	i2.Fields = `{"customfield_10030":{"value":"Blocker","id":"1"},"customfield_10031":13,"customfield_10040":"urgent: fix","customfield_10060":[{"value":"Web","id":"7"}],` +
		`"customfield_10050":"2026-06-01","customfield_10070":"2026-05-31T23:30:00.000+0200","customfield_10080":{"accountId":"acc-boss"}}`
	b.Issues = append(b.Issues, i2)
	b.Transitions = append(b.Transitions, transition(102, "h3", i2.Created.Add(2*time.Hour)))

	// SEI-3: created two hours ago (response and resolution goals not due
	// yet); no assignee; a 5-character description. Custom: reviewer
	// acc-ada, effort 0.5 (< 1), only on iOS, target 2026-06-10 (not older
	// than 10 days), deployed 2026-06-02.
	i3 := issue(103, "SEI-3", "2026-06-15T10:00:00Z", "2026-06-15T10:00:00Z")
	i3.DueDate, i3.Description, i3.Components = sp("2026-06-20"), sp("short"), `["UI"]`
	i3.Fields = `{"customfield_10030":{"value":"Minor"},"customfield_10031":0.5,"customfield_10040":"all calm","customfield_10060":[{"value":"iOS"}],` +
		`"customfield_10050":"2026-06-10","customfield_10070":"2026-06-02T08:00:00.000+0000","customfield_10080":{"accountId":"acc-ada"}}`
	b.Issues = append(b.Issues, i3)

	// SEI-4: resolved 44 days after creation (missed resolution); first
	// status change exactly at the 24-hour goal (in time); assignee not a
	// known user (not inactive); a description of exactly 20 characters
	// (not poor). Custom values on every boundary: severity as a plain
	// string, effort exactly 8, "Urgent" capitalised (contains is
	// case-sensitive), on Web and iOS, target exactly 2026-06-05, deployed
	// exactly 2026-06-01 00:00 Berlin; labels contain "flaky".
	i4 := issue(104, "SEI-4", "2026-05-01T06:00:00Z", "2026-06-14T06:00:00Z")
	i4.AssigneeAccountID, i4.Resolved, i4.DueDate = sp("acc-ghost"), tp(at("2026-06-14T06:00:00Z")), sp("2026-05-15")
	i4.Description, i4.Components, i4.Labels = sp("12345678901234567890"), `["API","UI"]`, `["flaky"]`
	i4.Fields = `{"customfield_10030":"Major","customfield_10031":8,"customfield_10040":"Urgent but capitalised","customfield_10060":[{"value":"Web"},{"value":"iOS"}],` +
		`"customfield_10050":"2026-06-05","customfield_10070":"2026-05-31T22:00:00.000+0000","customfield_10080":{"accountId":"acc-boss"}}`
	b.Issues = append(b.Issues, i4)
	b.Transitions = append(b.Transitions, transition(104, "h4", i4.Created.Add(24*time.Hour)))

	// OPS-1, another project: created 2026-06-01 (resolution not due
	// before 2026-07-01); no due date, no components. Custom: severity
	// Major; no reviewer, no platforms.
	i5 := issue(201, "OPS-1", "2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z")
	i5.AssigneeAccountID, i5.Description = sp("acc-ada"), sp("a sufficiently long description")
	i5.Fields = `{"customfield_10030":{"value":"Major"}}`
	b.Issues = append(b.Issues, i5)
	b.Transitions = append(b.Transitions, transition(201, "h5", i5.Created.Add(time.Hour)))

	// SEI-6: created 2026-04-30 23:00 Berlin, before the time frame; a
	// miss of almost everything, counted nowhere.
	b.Issues = append(b.Issues, issue(100, "SEI-6", "2026-04-30T21:00:00Z", "2026-04-30T21:00:00Z"))

	if _, err := f.db.WriteIssues(ctx, "it1", &b, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.db.UpsertUsers(ctx, []store.JiraUser{{IntegrationID: "it1", AccountID: "acc-ada", DisplayName: "Ada", Active: true},
		{IntegrationID: "it1", AccountID: "acc-bob", DisplayName: "Bob", Active: false},
		{IntegrationID: "it1", AccountID: "acc-boss", DisplayName: "Boss", Active: true}}); err != nil {
		t.Fatal(err)
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// customMisses use every operator once or more.
var customMisses = []CustomInput{
	{Name: "No severity", Field: "customfield_10030", Operator: OpMissing},
	{Name: "Blocker", Field: "customfield_10030", Operator: OpEquals, Value: raw(`"Blocker"`)},
	{Name: "Reviewer not the boss", Field: "customfield_10080", Operator: OpNotEquals, Value: raw(`"acc-boss"`)},
	{Name: "Big effort", Field: "customfield_10031", Operator: OpGreaterThan, Value: raw(`8`)},
	{Name: "Tiny effort", Field: "customfield_10031", Operator: OpLessThan, Value: raw(`1`)},
	{Name: "Urgent notes", Field: "customfield_10040", Operator: OpContains, Value: raw(`"urgent"`)},
	{Name: "Not on Web", Field: "customfield_10060", Operator: OpNotContains, Value: raw(`"Web"`)},
	{Name: "Target passed", Field: "customfield_10050", Operator: OpOlderThanDays, Value: raw(`10`)},
	{Name: "Deployed before June", Field: "customfield_10070", Operator: OpLessThan, Value: raw(`"2026-06-01"`)},
	{Name: "Flaky!", Field: "labels", Operator: OpContains, Value: raw(`"flaky"`)},
}

// result is a category as the tests compare it.
type result struct {
	Misses int64
	Keys   []string
	Status string
}

func summarize(r *Report) map[string]result {
	out := map[string]result{}
	for _, c := range r.Categories {
		out[c.Key] = result{Misses: c.Misses, Keys: c.Issues.Items, Status: c.Status}
	}
	return out
}

func ok(misses int64, keys ...string) result {
	if keys == nil {
		keys = []string{}
	}
	return result{Misses: misses, Keys: keys, Status: Evaluated}
}

// The expected report over the five issues in scope, every project.
var wantAll = map[string]result{
	"idle":                   ok(1, "SEI-1"),
	"no_assignee":            ok(1, "SEI-3"),
	"no_due_date":            ok(2, "SEI-1", "OPS-1"),
	"poor_description":       ok(2, "SEI-1", "SEI-3"),
	"no_components":          ok(2, "SEI-1", "OPS-1"),
	"inactive_assignee":      ok(1, "SEI-2"),
	"missed_response_time":   ok(1, "SEI-1"),
	"missed_resolution_time": ok(2, "SEI-1", "SEI-4"),
	"no_severity":            ok(1, "SEI-1"),
	"blocker":                ok(1, "SEI-2"),
	"reviewer_not_the_boss":  ok(3, "SEI-1", "SEI-3", "OPS-1"),
	"big_effort":             ok(1, "SEI-2"),
	"tiny_effort":            ok(1, "SEI-3"),
	"urgent_notes":           ok(1, "SEI-2"),
	"not_on_web":             ok(3, "SEI-1", "SEI-3", "OPS-1"),
	"target_passed":          ok(1, "SEI-2"),
	"deployed_before_june":   ok(1, "SEI-2"),
	"flaky":                  ok(2, "SEI-2", "SEI-4"),
}

var frame = Query{From: "2026-05-01", To: "2026-06-15"}

// TestReport: every category and operator over the fixed dataset, on both
// databases, with the first pages found each way (one windowed pass, the
// shared scan of rare categories, the per-category ordered scans).
func TestReport(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"windowed", "shared scan", "ordered scans"} {
		t.Run(name, func(t *testing.T) {
			oldWindow, oldRare := windowMax, rareMax
			t.Cleanup(func() { windowMax, rareMax = oldWindow, oldRare })
			switch name {
			case "shared scan":
				windowMax = 0
			case "ordered scans":
				windowMax, rareMax = 0, 0
			}
			storetest.ForEach(t, func(t *testing.T, db *store.DB) {
				f := setup(t, db)
				// Settings first, as in production: their fields reach the
				// stored issues with the sync they schedule.
				if _, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: customMisses}); err != nil {
					t.Fatal(err)
				}
				f.load(t)
				r, err := f.svc.Report(ctx, "t1", "it1", frame)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(wantAll, summarize(r)); diff != "" {
					t.Errorf("report (-want +got):\n%s", diff)
				}
				// 27 misses over 18 categories of equal weight 100/18 and 5
				// issues: 100 − (100/18) × 27/5 = 70.
				if r.Total != 5 || r.Score == nil || *r.Score != 70 {
					t.Errorf("total %d, score %v; want 5, 70", r.Total, deref(r.Score))
				}
				if c := r.Categories[0]; c.Key != "idle" || c.Name != "Idle" || c.Ratio != 0.2 || c.Weight != 5.56 {
					t.Errorf("first category %+v", c)
				}
				if c := r.Categories[len(r.Categories)-1]; c.Key != "flaky" || c.Name != "Flaky!" || c.Ratio != 0.4 {
					t.Errorf("last category %+v", c)
				}

				// One project.
				r, err = f.svc.Report(ctx, "t1", "it1", Query{From: frame.From, To: frame.To, Projects: "OPS"})
				if err != nil {
					t.Fatal(err)
				}
				misses := 0
				for _, c := range r.Categories {
					misses += int(c.Misses)
				}
				// OPS-1: no due date, no components, no reviewer, not on
				// Web: 4 categories at ratio 1, 100 − 4 × 100/18.
				if r.Total != 1 || misses != 4 || *r.Score != 77.78 {
					t.Errorf("OPS: total %d, misses %d, score %v", r.Total, misses, deref(r.Score))
				}

				// "to" is an inclusive day in Berlin: SEI-3 (created
				// 2026-06-15 12:00 there) is out when it ends on the 14th;
				// an RFC 3339 "from" is an instant: SEI-6 is in from 20:00 UTC.
				r, _ = f.svc.Report(ctx, "t1", "it1", Query{From: "2026-04-30T20:00:00Z", To: "2026-06-14"})
				if r.Total != 5 || summarize(r)["no_assignee"].Misses != 1 || summarize(r)["no_assignee"].Keys[0] != "SEI-6" {
					t.Errorf("frame 2026-04-30T20:00Z to 2026-06-14: total %d, no assignee %+v", r.Total, summarize(r)["no_assignee"])
				}
			})
		})
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// TestReportNotEvaluated: a category that reads an excluded field is not
// evaluated, says why, and its weight goes to the others.
func TestReportNotEvaluated(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, "description", "customfield_10031")
		if _, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: customMisses}); err != nil {
			t.Fatal(err)
		}
		f.load(t)
		r, err := f.svc.Report(ctx, "t1", "it1", frame)
		if err != nil {
			t.Fatal(err)
		}
		var weights float64
		for _, c := range r.Categories {
			switch c.Key {
			case "poor_description", "big_effort", "tiny_effort":
				if c.Status != NotEvaluated || c.Weight != 0 || c.Misses != 0 || len(c.Issues.Items) != 0 || !strings.Contains(c.Reason, "excluded") {
					t.Errorf("%s: %+v", c.Key, c)
				}
			default:
				if c.Status != Evaluated || c.Weight != 6.67 || c.Reason != "" {
					t.Errorf("%s: %+v", c.Key, c)
				}
				weights += c.Weight
			}
		}
		// 15 evaluated categories of weight 100/15 with 27 − 4 = 23
		// misses over 5 issues: 100 − (100/15) × 23/5 = 69.33.
		if *r.Score != 69.33 || len(r.Categories) != 18 {
			t.Errorf("score %v over %d categories, want 69.33 over 18", deref(r.Score), len(r.Categories))
		}

		// Given weights: the excluded one's 20 goes to the others in
		// proportion: idle 62.5, no_assignee 37.5; 100 − 62.5×0.2 − 37.5×0.2.
		r, err = f.svc.Report(ctx, "t1", "it1", Query{From: frame.From, To: frame.To, Weights: "idle:50,no_assignee:30,poor_description:20"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, c := range r.Categories {
			got[c.Key] = c.Weight
		}
		if diff := cmp.Diff(map[string]float64{"idle": 62.5, "no_assignee": 37.5, "poor_description": 0}, got); diff != "" || *r.Score != 80 {
			t.Errorf("score %v, weights (-want +got):\n%s", deref(r.Score), diff)
		}

		// Nothing with a weight can be evaluated: no score.
		r, err = f.svc.Report(ctx, "t1", "it1", Query{Weights: "poor_description:100"})
		if err != nil || r.Score != nil || len(r.Categories) != 1 {
			t.Errorf("only not-evaluated weights: %+v, %v", r, err)
		}
		if _, err := f.svc.Issues(ctx, "t1", "it1", IssuesQuery{Category: "poor_description"}); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("pages of a category not evaluated: %v", err)
		}
	})
}

// TestReportWeights: given weights must sum to 100; categories they leave
// out (or give 0) are not in the report.
func TestReportWeights(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.load(t)
		r, err := f.svc.Report(ctx, "t1", "it1", Query{From: frame.From, To: frame.To, Weights: "idle:50, no_assignee:30,poor_description:20,no_components:0"})
		if err != nil {
			t.Fatal(err)
		}
		// 100 − 50×0.2 − 30×0.2 − 20×0.4 = 76.
		if len(r.Categories) != 3 || *r.Score != 76 || r.Categories[2].Key != "poor_description" || r.Categories[2].Weight != 20 {
			t.Errorf("weighted report: %+v score %v", r.Categories, deref(r.Score))
		}
		for spec, msg := range map[string]string{
			"idle:50,no_assignee:40":   "sum to 90",
			"idle:50,nothing:50":       `"nothing" is not a category`,
			"idle:150,no_assignee:-50": "weights 0 or more",
			"idle:50,idle:50":          "twice",
			"idle":                     "key:weight pairs",
			"flaky:100":                `"flaky" is not a category`, // no custom misses saved here
		} {
			_, err := f.svc.Report(ctx, "t1", "it1", Query{Weights: spec})
			if e := apperr.As(err); e.Code != apperr.Invalid || !strings.Contains(e.Fields["weights"], msg) {
				t.Errorf("weights %q: %v (fields %v), want a message with %q", spec, err, e.Fields, msg)
			}
		}
		for q, field := range map[Query]string{
			{From: "yesterday"}:                    "from",
			{To: "2026-13-01"}:                     "to",
			{From: "2026-06-10", To: "2026-06-01"}: "to",
			{Projects: "A,,B"}:                     "projects",
			{Limit: 500}:                           "limit",
		} {
			_, err := f.svc.Report(ctx, "t1", "it1", q)
			if e := apperr.As(err); e.Code != apperr.Invalid || e.Fields[field] == "" {
				t.Errorf("%+v: %v, want a message for %s", q, err, field)
			}
		}
		if _, err := f.svc.Report(ctx, "other-tenant", "it1", Query{}); apperr.CodeOf(err) != apperr.NotFound {
			t.Errorf("another tenant's integration: %v", err)
		}
		// No issue in scope: every ratio 0, score 100.
		r, err = f.svc.Report(ctx, "t1", "it1", Query{Projects: "NONE"})
		if err != nil || r.Total != 0 || *r.Score != 100 {
			t.Errorf("empty scope: %+v, %v", r, err)
		}
	})
}

// TestReportPaging: offending keys page with cursors that keep the
// report's scope and moment, by issue id.
func TestReportPaging(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		if _, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: customMisses}); err != nil {
			t.Fatal(err)
		}
		f.load(t)
		r, err := f.svc.Report(ctx, "t1", "it1", Query{From: frame.From, To: frame.To, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		var page IssuePage
		for _, c := range r.Categories {
			if c.Key == "reviewer_not_the_boss" {
				page = c.Issues
			}
			if c.Misses == 1 && c.Issues.NextCursor != "" {
				t.Errorf("%s: a cursor after its only miss", c.Key)
			}
		}
		keys := page.Items
		// Later pages keep the report's moment even when asked later.
		f.svc.Now = func() time.Time { return now.Add(400 * 24 * time.Hour) }
		for page.NextCursor != "" {
			p, err := f.svc.Issues(ctx, "t1", "it1", IssuesQuery{Cursor: page.NextCursor, Query: Query{Limit: 1}})
			if err != nil {
				t.Fatal(err)
			}
			keys, page = append(keys, p.Items...), *p
		}
		if diff := cmp.Diff([]string{"SEI-1", "SEI-3", "OPS-1"}, keys); diff != "" {
			t.Errorf("paged keys (-want +got):\n%s", diff)
		}
		f.svc.Now = func() time.Time { return now }
		p, err := f.svc.Issues(ctx, "t1", "it1", IssuesQuery{Category: "no_due_date", Query: Query{From: frame.From, To: frame.To, Projects: "SEI"}})
		if err != nil || len(p.Items) != 1 || p.Items[0] != "SEI-1" || p.NextCursor != "" {
			t.Errorf("first page by category: %+v, %v", p, err)
		}
		for _, q := range []IssuesQuery{{}, {Category: "nope"}, {Cursor: "!!"}, {Cursor: "e30"}} {
			if _, err := f.svc.Issues(ctx, "t1", "it1", q); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%+v: %v", q, err)
			}
		}
	})
}

// TestReportSettingsAfterData: custom misses saved after issues were
// stored read their fields from the stored issues when ingestion already
// fetched them (columns, a field another setting reads); a field it never
// fetched counts as missing until the sync that fetches it writes the
// issues again.
func TestReportSettingsAfterData(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.load(t)
		in := Input{CustomMisses: []CustomInput{customMisses[1], customMisses[9]}} // Blocker (JSON), Flaky! (labels)
		if _, err := f.svc.SaveSettings(ctx, "t1", "it1", in); err != nil {
			t.Fatal(err)
		}
		r, err := f.svc.Report(ctx, "t1", "it1", frame)
		if err != nil {
			t.Fatal(err)
		}
		got := summarize(r)
		if got["flaky"].Misses != 2 || got["blocker"].Misses != 0 {
			t.Errorf("before the sync: flaky %+v, blocker %+v", got["flaky"], got["blocker"])
		}
		f.load(t) // the full sync writes the issues again
		r, _ = f.svc.Report(ctx, "t1", "it1", frame)
		if got := summarize(r); got["blocker"].Misses != 1 {
			t.Errorf("after the sync: blocker %+v", got["blocker"])
		}
	})
}
