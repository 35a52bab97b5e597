package hygiene

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestSettingsValidation: every custom miss is checked against the site's
// field list and its type, with one message per offending member that says
// what would be accepted.
func TestSettingsValidation(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.DialectSQLite)
	f := setup(t, db)
	for _, tc := range []struct {
		name string
		in   CustomInput
		key  string // the field that must carry a message
		msg  string // part of it
	}{
		{"unknown field", CustomInput{Name: "x", Field: "customfield_99999", Operator: OpMissing}, "field", "not in the Jira site's field list"},
		{"not a field id", CustomInput{Name: "x", Field: "bad field!", Operator: OpMissing}, "field", "not a Jira field id"},
		{"no field", CustomInput{Name: "x", Operator: OpMissing}, "field", "is required"},
		{"unknown operator", CustomInput{Name: "x", Field: "duedate", Operator: "before"}, "operator", "must be one of missing, equals"},
		{"greater than on an option", CustomInput{Name: "x", Field: "customfield_10030", Operator: OpGreaterThan, Value: raw(`3`)},
			"operator", "greater_than does not apply to Severity (customfield_10030), a string field: use missing, equals, not_equals, contains, not_contains"},
		{"contains on a number", CustomInput{Name: "x", Field: "customfield_10031", Operator: OpContains, Value: raw(`"1"`)},
			"operator", "contains does not apply to Effort (customfield_10031), a number field"},
		{"older than on a text", CustomInput{Name: "x", Field: "summary", Operator: OpOlderThanDays, Value: raw(`3`)}, "operator", "a string field"},
		{"equals on a list", CustomInput{Name: "x", Field: "labels", Operator: OpEquals, Value: raw(`"a"`)}, "operator", "use missing, contains, not_contains"},
		{"less than on a user", CustomInput{Name: "x", Field: "customfield_10080", Operator: OpLessThan, Value: raw(`"a"`)}, "operator", "a user field"},
		{"anything but missing on an unknown type", CustomInput{Name: "x", Field: "customfield_10090", Operator: OpEquals, Value: raw(`"a"`)}, "operator", "use missing"},
		{"a number that is not one", CustomInput{Name: "x", Field: "customfield_10031", Operator: OpGreaterThan, Value: raw(`"lots"`)}, "value", "must be a number"},
		{"a date that is not one", CustomInput{Name: "x", Field: "duedate", Operator: OpLessThan, Value: raw(`"31.12.2026"`)}, "value", "a date such as 2026-01-31"},
		{"an instant that is not one", CustomInput{Name: "x", Field: "customfield_10070", Operator: OpGreaterThan, Value: raw(`"tomorrow"`)}, "value", "RFC 3339"},
		{"days that are not whole", CustomInput{Name: "x", Field: "duedate", Operator: OpOlderThanDays, Value: raw(`1.5`)}, "value", "whole number of days"},
		{"negative days", CustomInput{Name: "x", Field: "duedate", Operator: OpOlderThanDays, Value: raw(`-1`)}, "value", "whole number of days"},
		{"a value for missing", CustomInput{Name: "x", Field: "duedate", Operator: OpMissing, Value: raw(`"x"`)}, "value", "absent or null"},
		{"no value", CustomInput{Name: "x", Field: "summary", Operator: OpContains}, "value", "is required for contains"},
		{"an empty text", CustomInput{Name: "x", Field: "summary", Operator: OpContains, Value: raw(`""`)}, "value", "non-empty text"},
		{"no name", CustomInput{Field: "duedate", Operator: OpMissing}, "name", "is required"},
		{"a name without letters", CustomInput{Name: "!!!", Field: "duedate", Operator: OpMissing}, "name", "a letter or a digit"},
		{"a built-in's key", CustomInput{Name: "No  assignee", Field: "duedate", Operator: OpMissing}, "name", `"no_assignee", which another category has`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: []CustomInput{{Name: "fine", Field: "duedate", Operator: OpMissing}, tc.in}})
			e := apperr.As(err)
			if e.Code != apperr.Invalid || !strings.Contains(e.Fields["custom_misses[1]."+tc.key], tc.msg) {
				t.Errorf("got %v %v, want custom_misses[1].%s to say %q", err, e.Fields, tc.key, tc.msg)
			}
		})
	}

	var eleven []CustomInput
	for i := range 11 {
		eleven = append(eleven, CustomInput{Name: fmt.Sprint("m", i), Field: "duedate", Operator: OpMissing})
	}
	two := []CustomInput{{Name: "Same name", Field: "duedate", Operator: OpMissing}, {Name: "same-name", Field: "summary", Operator: OpMissing}}
	days := 0
	for name, tc := range map[string]struct {
		in    Input
		field string
	}{
		"eleven":           {Input{CustomMisses: eleven}, "custom_misses"},
		"duplicate keys":   {Input{CustomMisses: two}, "custom_misses[1].name"},
		"idle days 0":      {Input{IdleDays: &days}, "idle_days"},
		"min length 0":     {Input{PoorDescriptionMinLength: &days}, "poor_description_min_length"},
		"response 0 hours": {Input{ResponseTimeGoalHours: &days}, "response_time_goal_hours"},
		"resolution 0":     {Input{ResolutionTimeGoalDays: &days}, "resolution_time_goal_days"},
	} {
		if _, err := f.svc.SaveSettings(ctx, "t1", "it1", tc.in); apperr.As(err).Fields[tc.field] == "" {
			t.Errorf("%s: %v, want a message for %s", name, err, tc.field)
		}
	}
	if _, err := f.svc.SaveSettings(ctx, "other", "it1", Input{}); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("another tenant: %v", err)
	}
}

// TestSettingsRoundTrip: defaults until saved; a saved custom miss shows
// its key and its field's name and type; a GET's answer can be PUT back;
// fields not fetched before schedule a full sync.
func TestSettingsRoundTrip(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		got, err := f.svc.Settings(ctx, "t1", "it1")
		if err != nil {
			t.Fatal(err)
		}
		want := &Settings{IdleDays: 30, PoorDescriptionMinLength: 20, ResponseTimeGoalHours: 24, ResolutionTimeGoalDays: 30, CustomMisses: []Custom{}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("defaults (-want +got):\n%s", diff)
		}
		idle := 14
		saved, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{IdleDays: &idle, CustomMisses: []CustomInput{
			{Name: "Sévérité manquante", Field: "customfield_10030", Operator: OpMissing},
			{Name: "Big effort", Field: "customfield_10031", Operator: OpGreaterThan, Value: raw(`"8"`)},
			{Name: "Low priority", Field: "priority", Operator: OpEquals, Value: raw(`"Low"`)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		want = &Settings{IdleDays: 14, PoorDescriptionMinLength: 20, ResponseTimeGoalHours: 24, ResolutionTimeGoalDays: 30, CustomMisses: []Custom{
			{Key: "sévérité_manquante", Name: "Sévérité manquante", Field: "customfield_10030", FieldName: "Severity", FieldType: KindString, Operator: OpMissing},
			{Key: "big_effort", Name: "Big effort", Field: "customfield_10031", FieldName: "Effort", FieldType: KindNumber, Operator: OpGreaterThan, Value: 8.0},
			{Key: "low_priority", Name: "Low priority", Field: "priority", FieldName: "Priority", FieldType: KindString, Operator: OpEquals, Value: "Low"},
		}}
		if diff := cmp.Diff(want, saved); diff != "" {
			t.Errorf("saved (-want +got):\n%s", diff)
		}
		if got, _ := f.svc.Settings(ctx, "t1", "it1"); !cmp.Equal(want, got) {
			t.Errorf("read back %+v", got)
		}
		if diff := cmp.Diff([]string{"it1:full"}, f.queue.full); diff != "" {
			t.Errorf("full syncs (-want +got):\n%s", diff)
		}
		rs, _ := db.GetReportSettings(ctx, "it1")
		if diff := cmp.Diff([]string{"customfield_10030", "customfield_10031"}, rs.SearchFields()); diff != "" {
			t.Errorf("fields ingestion must request (-want +got):\n%s", diff)
		}

		// The answer, sent back, saves the same; the kept fields keep
		// their slots and schedule nothing.
		var in Input
		in.IdleDays = &saved.IdleDays
		for _, c := range saved.CustomMisses {
			v := raw("null")
			if c.Value != nil {
				v = raw(fmt.Sprintf("%q", fmt.Sprint(c.Value)))
			}
			in.CustomMisses = append(in.CustomMisses, CustomInput{Key: c.Key, Name: c.Name, Field: c.Field, FieldName: c.FieldName,
				FieldType: c.FieldType, Operator: c.Operator, Value: v})
		}
		if again, err := f.svc.SaveSettings(ctx, "t1", "it1", in); err != nil || !cmp.Equal(want, again) {
			t.Errorf("saved again: %+v, %v", again, err)
		}
		if rs2, _ := db.GetReportSettings(ctx, "it1"); !cmp.Equal(rs.Slots, rs2.Slots) || len(f.queue.full) != 1 {
			t.Errorf("slots %v became %v; full syncs %v", rs.Slots, rs2.Slots, f.queue.full)
		}
	})
}

// TestSettingsWithoutTheSite: when Jira cannot be asked, the stored field
// list is used, and without one only the system fields validate.
func TestSettingsWithoutTheSite(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.DialectSQLite)
	f := setup(t, db)
	f.svc.Fields = &fakeFields{err: errors.New("site unreachable")}
	custom := Input{CustomMisses: []CustomInput{{Name: "No severity", Field: "customfield_10030", Operator: OpMissing}}}
	_, err := f.svc.SaveSettings(ctx, "t1", "it1", custom)
	if msg := apperr.As(err).Fields["custom_misses[0].field"]; !strings.Contains(msg, "link the Jira site first") {
		t.Errorf("custom field before any field list: %v", err)
	}
	if _, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: []CustomInput{{Name: "Late", Field: "duedate", Operator: OpOlderThanDays, Value: raw(`3`)}}}); err != nil {
		t.Errorf("a system field without the site: %v", err)
	}
	// Once fetched, the list is kept for when the site is away.
	f.svc.Fields = &fakeFields{list: siteFields}
	if _, err := f.svc.SaveSettings(ctx, "t1", "it1", custom); err != nil {
		t.Fatal(err)
	}
	f.svc.Fields = &fakeFields{err: errors.New("site unreachable")}
	if _, err := f.svc.SaveSettings(ctx, "t1", "it1", custom); err != nil {
		t.Errorf("with the stored list: %v", err)
	}
	// The site's sprint and story points fields are read from their
	// columns, found by name as ingestion finds them.
	if _, err := f.svc.SaveSettings(ctx, "t1", "it1", Input{CustomMisses: []CustomInput{
		{Name: "No estimate", Field: "customfield_10016", Operator: OpMissing},
		{Name: "Not in a sprint", Field: "customfield_10020", Operator: OpMissing}}}); err != nil {
		t.Fatal(err)
	}
	rs, _ := db.GetReportSettings(ctx, "it1")
	want := []store.HygieneSlot{{Field: "customfield_10016", Column: "story_points", Kind: KindNumber}, {Field: "customfield_10020", Column: "sprint", Kind: KindString}}
	if diff := cmp.Diff(want, rs.Slots); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{"No severity": "no_severity", "  Flaky!! tests ": "flaky_tests", "Sévérité": "sévérité",
		"Ticket—ohne—Team": "ticket_ohne_team", "a" + strings.Repeat("b", 100): "a" + strings.Repeat("b", 59), "---": ""} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
