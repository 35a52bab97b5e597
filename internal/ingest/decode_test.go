package ingest

import (
	"context"
	"reflect"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

// simPage is one search page of a generated site as Jira's JSON, with the
// field list that asked for it (the model's, Sprint and Story points, and
// two of the simulator's custom fields as report settings would add).
func simPage(t testing.TB, edit func(*jirasim.Site)) (json.RawMessage, []string) {
	t.Helper()
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(100)
	spec.LongTailShare = 0.05
	if err := s.Generate(42, spec); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
	}
	s.AddBasicUser("557058:x", "X", "x@example.com", "tok")
	c, err := jira.New(s.BaseURL, jira.Basic{Username: "x@example.com", Password: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	fields := append(SearchFields(DefaultFieldMeta(), NewExclusions(nil)), "customfield_10100", "customfield_10102")
	var raw json.RawMessage
	body := map[string]any{"jql": "id >= 0 ORDER BY id", "maxResults": 100, "fields": fields, "expand": "changelog"}
	if err := c.Post(context.Background(), "/rest/api/3/search/jql", nil, body, &raw); err != nil {
		t.Fatal(err)
	}
	return raw, fields
}

// byMaps decodes a page the lenient way: each issue by Parse.
func byMaps(t testing.TB, raw json.RawMessage) []*Parsed {
	t.Helper()
	var page struct {
		Issues []json.RawMessage `json:"issues"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	out := make([]*Parsed, len(page.Issues))
	for i, r := range page.Issues {
		p, err := Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// byType decodes a page with the field list's typed decoder.
func byType(t testing.TB, raw json.RawMessage, fields []string) []*Parsed {
	t.Helper()
	dec := decoderFor(fields)
	target := dec.target()
	if err := json.Unmarshal(raw, target); err != nil {
		t.Fatal(err)
	}
	ps, _, _, err := dec.issues(target)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// The typed decoder of a page gives the same rows as decoding each issue's
// fields as a map and then field by field, with and without exclusions
// (custom fields among them).
func TestTypedPageEqualsMaps(t *testing.T) {
	raw, fields := simPage(t, nil)
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, excluded := range [][]string{nil, {"summary", "description", "comments", "assignee", "customfield_10100", "labels", "duedate"}} {
		tr := &Transformer{IntegrationID: "it", Meta: DefaultFieldMeta(), Exclude: NewExclusions(excluded), Location: berlin,
			Now: func() time.Time { return now }}
		maps, typed := byMaps(t, raw), byType(t, raw, fields)
		if len(maps) != 100 || len(typed) != len(maps) {
			t.Fatalf("%d and %d issues", len(maps), len(typed))
		}
		withCustom, truncated := 0, 0
		for i := range maps {
			a, err := tr.Rows(maps[i])
			if err != nil {
				t.Fatal(err)
			}
			b, err := tr.Rows(typed[i])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("issue %d (excluded %v):\nmaps  %+v\ntyped %+v", maps[i].ID, excluded, a.Issue, b.Issue)
			}
			if maps[i].ChangelogTruncated() != typed[i].ChangelogTruncated() || maps[i].CommentsIncomplete() != typed[i].CommentsIncomplete() {
				t.Fatalf("issue %d: truncation differs", maps[i].ID)
			}
			if a.Issue.Fields != "{}" {
				withCustom++
			}
			if maps[i].ChangelogTruncated() {
				truncated++
			}
		}
		if withCustom == 0 || (excluded == nil && truncated == 0) {
			t.Errorf("the page exercises too little: %d issues with other fields, %d truncated changelogs", withCustom, truncated)
		}
	}
}

// A value of a shape the typed page does not take (here a number for a
// summary, a word for a date) does not fail the search: the page is read
// again field by field, where it costs that field only.
func TestTypedPageFallsBackOnOddValues(t *testing.T) {
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	if err := s.Generate(42, jirasim.DefaultGenSpec(30)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateIssue("10001", func(f map[string]any) { f["summary"] = 5; f["created"] = "last tuesday" }); err != nil {
		t.Fatal(err)
	}
	s.AddBasicUser("557058:x", "X", "x@example.com", "tok")
	c, err := jira.New(s.BaseURL, jira.Basic{Username: "x@example.com", Password: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	src := NewCloudTokenSource(c)
	q := Query{JQL: "id >= 0 ORDER BY id", Fields: SearchFields(DefaultFieldMeta(), NewExclusions(nil)), Changelog: true, MaxResults: 100}
	before := s.RequestCounts()["/rest/api/3/search/jql"]
	ps, _, err := src.SearchParsed(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.RequestCounts()["/rest/api/3/search/jql"] - before; n != 2 {
		t.Errorf("%d searches, want the typed one and the lenient one", n)
	}
	tr := &Transformer{IntegrationID: "it", Meta: DefaultFieldMeta(), Exclude: NewExclusions(nil), Location: time.UTC, Now: time.Now}
	if len(ps) != 30 {
		t.Fatalf("%d issues", len(ps))
	}
	rows, err := tr.Rows(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].ID != 10001 || rows.Issue.Summary != nil || !rows.Issue.Created.IsZero() || rows.Issue.Status == "" || len(rows.Transitions) == 0 {
		t.Errorf("the odd issue read the lenient way: %+v", rows.Issue)
	}
	if rows, _ := tr.Rows(ps[1]); rows.Issue.Summary == nil || rows.Issue.Created.IsZero() {
		t.Errorf("its neighbour lost fields: %+v", rows.Issue)
	}
}

// BenchmarkSearchPageDecode compares the two ways of reading a page of 100
// generated issues into rows (go test -run X -bench SearchPageDecode
// ./internal/ingest/).
func BenchmarkSearchPageDecode(b *testing.B) {
	raw, fields := simPage(b, nil)
	tr := &Transformer{IntegrationID: "it", Meta: DefaultFieldMeta(), Exclude: NewExclusions(nil), Location: time.UTC, Now: time.Now}
	rows := func(ps []*Parsed) {
		for _, p := range ps {
			if _, err := tr.Rows(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("maps", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			rows(byMaps(b, raw))
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			rows(byType(b, raw, fields))
		}
	})
}
