package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// hygieneRow is what a test reads back of hygiene_issues.
type hygieneRow struct {
	IssueID           int64      `gorm:"column:issue_id"`
	Key               string     `gorm:"column:key"`
	FirstChange       *time.Time `gorm:"column:first_change"`
	HasDueDate        bool       `gorm:"column:has_due_date"`
	DescriptionLength *int       `gorm:"column:description_length"`
	HasComponents     bool       `gorm:"column:has_components"`
	S0                *string    `gorm:"column:s0"`
	N1                *float64   `gorm:"column:n1"`
	S2                *string    `gorm:"column:s2"`
	N3                *float64   `gorm:"column:n3"`
	S4                *string    `gorm:"column:s4"`
	S5                *string    `gorm:"column:s5"`
	S6                *string    `gorm:"column:s6"`
	S7                *string    `gorm:"column:s7"`
}

func newReportIntegration(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if err := db.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateIntegration(ctx, &store.Integration{ID: "it1", TenantID: "t1", Name: "i", Type: "jira_connect_app", Status: "pending",
		Tags: []string{}, ExcludedFields: []string{}, Settings: "{}", Timezone: "UTC"}); err != nil {
		t.Fatal(err)
	}
}

// writeWithReport writes a batch; WriteIssues writes its report rows in
// the same transaction.
func writeWithReport(t *testing.T, db *store.DB, b *store.IssueBatch) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.WriteIssues(ctx, "it1", b, nil); err != nil {
		t.Fatal(err)
	}
}

func hygieneRows(t *testing.T, db *store.DB) map[string]hygieneRow {
	t.Helper()
	var rows []hygieneRow
	if err := db.Gorm.Raw("SELECT * FROM hygiene_issues WHERE integration_id = ? ORDER BY issue_id", "it1").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]hygieneRow{}
	for _, r := range rows {
		if r.FirstChange != nil {
			u := r.FirstChange.UTC()
			r.FirstChange = &u
		}
		out[r.Key] = r
	}
	return out
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func reportIssue(id int64, key string, updated time.Time, fields string) store.JiraIssue {
	return store.JiraIssue{IntegrationID: "it1", IssueID: id, Key: key, ProjectKey: "SEI", Status: "To Do", Created: t0, Updated: updated,
		SyncedAt: updated, Components: "[]", Labels: "[]", FixVersions: "[]", Fields: fields}
}

// TestHygieneIssues: hygiene_issues follows the stored version of each
// issue (newer wins, deletes cascade), finds the first status change, and
// keeps in each slot its field's value in the form the report compares,
// whatever shape Jira gave it; changing the slots recomputes them.
func TestHygieneIssues(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db)
		slots := []store.HygieneSlot{
			{Field: "customfield_10030", Kind: store.SlotString},
			{Field: "customfield_10031", Kind: store.SlotNumber},
			{Field: "customfield_10050", Kind: store.SlotDate},
			{Field: "customfield_10070", Kind: store.SlotDateTime},
			{Field: "customfield_10060", Kind: store.SlotArray},
			{Field: "labels", Column: "labels", Kind: store.SlotArray},
			{Field: "status", Column: "status", Kind: store.SlotString},
			{Field: "customfield_10080", Kind: store.SlotOther},
		}
		if err := db.SaveHygieneSettings(ctx, "it1", "{}", slots); err != nil {
			t.Fatal(err)
		}

		a := reportIssue(1, "SEI-1", t0.Add(3*time.Hour), `{"customfield_10030":{"value":"Major","id":"10001"},"customfield_10031":3.5,`+
			`"customfield_10050":"2026-03-31","customfield_10070":"2026-03-01T10:00:00.000+0100","customfield_10060":[{"value":"Web"},{"value":"iOS"}],`+
			`"customfield_10080":{"any":"thing"}}`)
		a.Status, a.Labels, a.Components, a.Description, a.DueDate = "Done", `["backend"]`, `["API"]`, ptr("hello"), ptr("2026-04-01")
		b := reportIssue(2, "SEI-2", t0, `{"customfield_10030":"","customfield_10060":[],"customfield_10031":"not a number","customfield_10050":"31.03.2026",`+
			`"customfield_10070":"yesterday","customfield_10080":[]}`)
		batch := &store.IssueBatch{Issues: []store.JiraIssue{a, b}, Transitions: []store.JiraTransition{
			{IntegrationID: "it1", IssueID: 1, HistoryID: "h2", At: t0.Add(3 * time.Hour)},
			{IntegrationID: "it1", IssueID: 1, HistoryID: "h1", At: t0.Add(2 * time.Hour)},
		}}
		writeWithReport(t, db, batch)

		got := hygieneRows(t, db)
		want := map[string]hygieneRow{
			"SEI-1": {IssueID: 1, Key: "SEI-1", FirstChange: ptr(t0.Add(2 * time.Hour)), HasDueDate: true, DescriptionLength: ptr(5), HasComponents: true,
				S0: ptr("Major"), N1: ptr(3.5), S2: ptr("2026-03-31"), N3: ptr(float64(t0.Add(-time.Hour).Unix())), S4: ptr("\x1fWeb\x1fiOS\x1f"),
				S5: ptr("\x1fbackend\x1f"), S6: ptr("Done"), S7: ptr("1")},
			// Empty texts and lists are no value; malformed numbers,
			// dates and instants are none either.
			"SEI-2": {IssueID: 2, Key: "SEI-2", S6: ptr("To Do")},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("hygiene_issues (-want +got):\n%s", diff)
		}

		// An older version changes nothing; a newer one is followed.
		older := reportIssue(1, "SEI-1", t0.Add(time.Hour), "{}")
		writeWithReport(t, db, &store.IssueBatch{Issues: []store.JiraIssue{older}})
		if r := hygieneRows(t, db)["SEI-1"]; r.DescriptionLength == nil || *r.S0 != "Major" {
			t.Errorf("an older version changed the row: %+v", r)
		}
		newer := reportIssue(1, "SEI-1", t0.Add(4*time.Hour), `{"customfield_10030":{"value":"Minor"}}`)
		writeWithReport(t, db, &store.IssueBatch{Issues: []store.JiraIssue{newer}})
		if r := hygieneRows(t, db)["SEI-1"]; r.DescriptionLength != nil || r.FirstChange != nil || r.S0 == nil || *r.S0 != "Minor" {
			t.Errorf("the newer version was not followed: %+v", r)
		}

		// A slot given to another field is brought in step at once:
		// emptied for a JSON field ingestion did not fetch yet (the full
		// sync that fetches it fills it), filled for a column.
		if err := db.SaveHygieneSettings(ctx, "it1", "{}", []store.HygieneSlot{{Field: "customfield_10099", Kind: store.SlotString}}); err != nil {
			t.Fatal(err)
		}
		if r := hygieneRows(t, db)["SEI-1"]; r.S0 != nil {
			t.Errorf("slot 0 of a field not fetched yet: %q", *r.S0)
		}
		if err := db.SaveHygieneSettings(ctx, "it1", "{}", []store.HygieneSlot{{Field: "status", Column: "status", Kind: store.SlotString}}); err != nil {
			t.Fatal(err)
		}
		if r := hygieneRows(t, db)["SEI-1"]; r.S0 == nil || *r.S0 != "To Do" {
			t.Errorf("slot 0 not filled from the status column: %+v", r)
		}
		// A JSON field already fetched (here for the Salesforce mapping)
		// fills from the stored issues.
		if _, err := db.SaveSalesforceField(ctx, "it1", ptr("customfield_10030")); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveHygieneSettings(ctx, "it1", "{}", []store.HygieneSlot{{Field: "customfield_10030", Kind: store.SlotString}}); err != nil {
			t.Fatal(err)
		}
		if r := hygieneRows(t, db)["SEI-1"]; r.S0 == nil || *r.S0 != "Minor" {
			t.Errorf("slot 0 not filled from the fetched JSON field: %+v", r)
		}

		if _, err := db.DeleteIssues(ctx, "it1", []int64{1}); err != nil {
			t.Fatal(err)
		}
		if rows := hygieneRows(t, db); len(rows) != 1 {
			t.Errorf("after deleting SEI-1: %d rows", len(rows))
		}
		if err := db.RebuildHygieneIssues(ctx, "it1"); err != nil {
			t.Fatal(err)
		}
		if rows := hygieneRows(t, db); len(rows) != 1 || rows["SEI-2"].S6 != nil { // unused slots are emptied
			t.Errorf("rebuilt: %+v", rows)
		}
	})
}

// TestSalesforceLinks: links follow the stored version of an issue through
// the registered extractor, a new field drops the old links, and listings
// page in issue order.
func TestSalesforceLinks(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db)
		// The extractor: every "SF" word of the field, as a case number.
		if err := db.SetSalesforceExtractor(func(field string, is *store.JiraIssue) []store.SalesforceLink {
			var out []store.SalesforceLink
			for _, w := range strings.Fields(strings.NewReplacer(`"`, " ", "{", " ", "}", " ", ":", " ").Replace(is.Fields)) {
				if strings.HasPrefix(w, "SF") {
					out = append(out, store.SalesforceLink{CaseRef: w, Kind: store.SalesforceCaseNumber})
				}
			}
			return out
		}); err != nil {
			t.Fatal(err)
		}
		links := func() map[int64][]string {
			t.Helper()
			m, err := db.SalesforceCases(ctx, "it1", []int64{1, 2, 3})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		write := func(issues ...store.JiraIssue) { writeWithReport(t, db, &store.IssueBatch{Issues: issues}) }

		write(reportIssue(1, "SEI-1", t0, `{"cf":"SF1 SF2"}`))
		if got := links(); len(got) != 0 {
			t.Fatalf("links without a Salesforce field: %v", got)
		}
		if changed, err := db.SaveSalesforceField(ctx, "it1", ptr("cf")); err != nil || !changed {
			t.Fatal(changed, err)
		}
		write(reportIssue(1, "SEI-1", t0, `{"cf":"SF1 SF2"}`), reportIssue(2, "SEI-2", t0, `{"cf":"SF9"}`), reportIssue(3, "SEI-3", t0, `{}`))
		if diff := cmp.Diff(map[int64][]string{1: {"SF1", "SF2"}, 2: {"SF9"}}, links()); diff != "" {
			t.Fatalf("links (-want +got):\n%s", diff)
		}
		write(reportIssue(1, "SEI-1", t0.Add(-time.Hour), `{"cf":"SF7"}`)) // older: ignored
		write(reportIssue(2, "SEI-2", t0.Add(time.Hour), `{"cf":"SF3"}`))  // newer: replaces
		if diff := cmp.Diff(map[int64][]string{1: {"SF1", "SF2"}, 2: {"SF3"}}, links()); diff != "" {
			t.Errorf("links after older and newer versions (-want +got):\n%s", diff)
		}

		var seen []string
		afterIssue, afterCase := int64(-1<<63), ""
		for range 5 {
			page, err := db.ListSalesforceLinks(ctx, "it1", "", afterIssue, afterCase, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range page {
				seen = append(seen, l.IssueKey+"="+l.CaseRef)
			}
			if len(page) < 2 {
				break
			}
			afterIssue, afterCase = page[len(page)-1].IssueID, page[len(page)-1].CaseRef
		}
		if diff := cmp.Diff([]string{"SEI-1=SF1", "SEI-1=SF2", "SEI-2=SF3"}, seen); diff != "" {
			t.Errorf("paged listing (-want +got):\n%s", diff)
		}
		if one, err := db.ListSalesforceLinks(ctx, "it1", "SF2", -1<<63, "", 10); err != nil || len(one) != 1 || one[0].IssueKey != "SEI-1" {
			t.Errorf("links of case SF2: %v, %v", one, err)
		}

		if _, err := db.DeleteIssues(ctx, "it1", []int64{2}); err != nil {
			t.Fatal(err)
		}
		if got := links(); len(got) != 1 {
			t.Errorf("links of a deleted issue remain: %v", got)
		}
		if changed, err := db.SaveSalesforceField(ctx, "it1", ptr("other")); err != nil || !changed {
			t.Fatal(changed, err)
		}
		if got := links(); len(got) != 0 {
			t.Errorf("links of the old field remain: %v", got)
		}
		if changed, err := db.SaveSalesforceField(ctx, "it1", ptr("other")); err != nil || changed {
			t.Errorf("saving the same field: changed %v, %v", changed, err)
		}
		rs, err := db.GetReportSettings(ctx, "it1")
		if err != nil || rs.SalesforceField == nil || *rs.SalesforceField != "other" {
			t.Fatalf("settings: %+v, %v", rs, err)
		}
		if diff := cmp.Diff([]string{"other"}, rs.SearchFields()); diff != "" {
			t.Errorf("search fields (-want +got):\n%s", diff)
		}
	})
}

// fullHygieneRow is every column of hygiene_issues.
type fullHygieneRow struct {
	IssueID                                int64
	Key, ProjectKey                        string
	Created, Updated                       time.Time
	Resolved, FirstChange                  *time.Time
	AssigneeAccountID                      *string
	HasDueDate, HasComponents              bool
	DescriptionLength                      *int
	S0, S1, S2, S3, S4, S5, S6, S7, S8, S9 *string
	N0, N1, N2, N3, N4, N5, N6, N7, N8, N9 *float64
}

func fullHygieneRows(t *testing.T, db *store.DB) []fullHygieneRow {
	t.Helper()
	var rows []fullHygieneRow
	if err := db.Gorm.Raw("SELECT * FROM hygiene_issues WHERE integration_id = ? ORDER BY issue_id", "it1").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	utc := func(p *time.Time) {
		if p != nil {
			*p = p.UTC()
		}
	}
	for i := range rows {
		r := &rows[i]
		r.Created, r.Updated = r.Created.UTC(), r.Updated.UTC()
		utc(r.Resolved)
		utc(r.FirstChange)
	}
	return rows
}

// TestHygieneRowsAgree: the rows WriteIssues derives from its batches are
// the rows RebuildHygieneIssues derives from what is stored, for every
// column: WriteIssues computes the fixed columns in Go and the slots in
// SQL, RebuildHygieneIssues all in SQL, and the two must not drift.
func TestHygieneRowsAgree(t *testing.T) {
	ctx := context.Background()
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		newReportIntegration(t, db)
		slots := []store.HygieneSlot{
			{Field: "customfield_10030", Kind: store.SlotString},
			{Field: "customfield_10031", Kind: store.SlotNumber},
			{Field: "status", Column: "status", Kind: store.SlotString},
			{Field: "components", Column: "components", Kind: store.SlotArray},
		}
		if err := db.SaveHygieneSettings(ctx, "it1", "{}", slots); err != nil {
			t.Fatal(err)
		}
		berlin, _ := time.LoadLocation("Europe/Berlin")
		var batch store.IssueBatch
		for i := range 12 {
			id := int64(100 + i)
			is := reportIssue(id, fmt.Sprintf("SEI-%d", id), t0.Add(time.Duration(i)*time.Hour), fmt.Sprintf(`{"customfield_10030":{"value":"v%d"},"customfield_10031":%d}`, i%3, i))
			// Times in another zone and with sub-millisecond parts: both
			// sides must store the same instant.
			is.Created = t0.In(berlin).Add(time.Duration(i) * 1500 * time.Microsecond)
			switch i % 4 {
			case 0:
				is.Description, is.Components, is.DueDate = ptr("naïve café ☕ — ünïcödé"), `["API","Web"]`, ptr("2026-04-01")
				is.Resolved = ptr(t0.Add(48 * time.Hour).In(berlin))
			case 1:
				is.Description, is.Components = ptr(""), "null"
			case 2:
				is.Description, is.Components, is.AssigneeAccountID = ptr("plain"), "[]", ptr("acc-1")
			}
			batch.Issues = append(batch.Issues, is)
			for k := range i % 3 {
				batch.Transitions = append(batch.Transitions, store.JiraTransition{IntegrationID: "it1", IssueID: id,
					HistoryID: fmt.Sprintf("h%d", 5-k), At: t0.Add(time.Duration(5-k)*time.Minute + 700*time.Microsecond).In(berlin)})
			}
		}
		writeWithReport(t, db, &batch)
		// A newer version of one issue with other transitions, an older
		// one of another (ignored).
		newer := batch.Issues[1]
		newer.Updated, newer.Status, newer.Components = newer.Updated.Add(time.Hour), "Done", `["Mobile"]`
		older := batch.Issues[2]
		older.Updated, older.Status = older.Updated.Add(-time.Hour), "Stale"
		writeWithReport(t, db, &store.IssueBatch{Issues: []store.JiraIssue{newer, older}, Transitions: []store.JiraTransition{
			{IntegrationID: "it1", IssueID: newer.IssueID, HistoryID: "h9", At: t0.Add(9 * time.Minute)},
			{IntegrationID: "it1", IssueID: older.IssueID, HistoryID: "h0", At: t0.Add(-9 * time.Minute)},
		}})

		written := fullHygieneRows(t, db)
		if len(written) != 12 {
			t.Fatalf("%d rows written, want 12", len(written))
		}
		if err := db.RebuildHygieneIssues(ctx, "it1"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fullHygieneRows(t, db), written); diff != "" {
			t.Fatalf("WriteIssues' rows differ from the rebuilt ones (-rebuilt +written):\n%s", diff)
		}
	})
}
