package ingest

import (
	"fmt"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/store"
)

func TestSalesforceCases(t *testing.T) {
	id := func(ref string) store.SalesforceLink {
		return store.SalesforceLink{CaseRef: ref, Kind: store.SalesforceCaseID}
	}
	num := func(ref string) store.SalesforceLink {
		return store.SalesforceLink{CaseRef: ref, Kind: store.SalesforceCaseNumber}
	}
	adf := `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"see case 00004711 and 5003000000D8cuI"}]}]}`
	for _, tc := range []struct {
		name, raw string
		want      []store.SalesforceLink
	}{
		{"case number in text", `"Case #00001234"`, []store.SalesforceLink{num("00001234")}},
		{"several, repeated", `"00001234, 00001235; 00001234"`, []store.SalesforceLink{num("00001234"), num("00001235")}},
		{"too short or too long to be a case number", `"123 and 12345678901"`, nil},
		// Salesforce's own example pair: the 15-character id and its
		// 18-character form are one case.
		{"15-character id", `"5003000000D8cuI"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"18-character id", `"5003000000D8cuIAAR"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"both spellings once", `"5003000000D8cuI 5003000000D8cuIAAR"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"18-character id whose case was lost", `"5003000000D8CUIAAR"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"lower case too", `"5003000000d8cuiaar"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"mixed case disagreeing with the suffix", `"5003000000D8cUIAAR"`, nil},
		{"suffix marks a digit upper case", `"5003000000D8cuIAA5"`, nil},
		{"not a Case (an Account id)", `"0015000000Gv7qJAAR"`, nil},
		{"Lightning URL", `"https://acme.lightning.force.com/lightning/r/Case/5003000000D8cuIAAR/view"`, []store.SalesforceLink{id("5003000000D8cuIAAR")}},
		{"number field", `4711`, []store.SalesforceLink{num("4711")}},
		{"option: its value, not its id", `{"self":"https://x/rest/api/3/customFieldOption/10045","value":"00001234","id":"10045"}`, []store.SalesforceLink{num("00001234")}},
		{"multi-select", `[{"value":"00001234","id":"10045"},{"value":"00001235","id":"10046"}]`, []store.SalesforceLink{num("00001234"), num("00001235")}},
		{"labels", `["sf-00001234","customer"]`, []store.SalesforceLink{num("00001234")}},
		{"rich text", adf, []store.SalesforceLink{num("00004711"), id("5003000000D8cuIAAR")}},
		{"null", `null`, nil},
		{"absent", ``, nil},
		{"words", `"escalated by the customer"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SalesforceCases(json.RawMessage(tc.raw))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SalesforceCases(%s) (-want +got):\n%s", tc.raw, diff)
			}
		})
	}
}

func TestSalesforceCasesCapped(t *testing.T) {
	var parts []string
	for i := range 80 {
		parts = append(parts, fmt.Sprintf("%08d", i+1000))
	}
	raw, _ := json.Marshal(strings.Join(parts, " "))
	if got := SalesforceCases(raw); len(got) != maxCasesPerIssue {
		t.Errorf("%d cases kept, want %d", len(got), maxCasesPerIssue)
	}
}

func TestSalesforceLinksReadsTheField(t *testing.T) {
	summary, desc := "Case 00000042", "5003000000D8cuI"
	is := &store.JiraIssue{Summary: &summary, Description: &desc, Labels: `["00000077"]`,
		Fields: `{"customfield_10100":"00001234","customfield_10101":{"value":"00005678"}}`}
	for field, want := range map[string]string{"customfield_10100": "00001234", "customfield_10101": "00005678", "summary": "00000042",
		"description": "5003000000D8cuIAAR", "labels": "00000077"} {
		got := SalesforceLinks(field, is)
		if len(got) != 1 || got[0].CaseRef != want {
			t.Errorf("SalesforceLinks(%s) = %v, want %s", field, got, want)
		}
	}
	if got := SalesforceLinks("customfield_99999", is); got != nil {
		t.Errorf("a field the issue lacks: %v", got)
	}
	if got := SalesforceLinks("", is); got != nil {
		t.Errorf("no field: %v", got)
	}
}
