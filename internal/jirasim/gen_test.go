package jirasim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// dump is everything a site serves about its issues, with the site's own
// URL taken out.
func dump(t *testing.T, s *jirasim.Site) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{"/rest/api/3/field", "/rest/api/3/project/search"} {
		b.WriteString(call(t, s, http.MethodGet, path, nil, s.SharedSecret, "").body)
	}
	q := url.Values{"jql": {"id >= 0 ORDER BY id"}, "fields": {"*all"}, "expand": {"changelog"}, "maxResults": {"100"}}
	for _, is := range searchAll(t, s, q, nil) {
		b.WriteString(is.ID)
		for _, path := range []string{"changelog", "comment"} {
			b.WriteString(call(t, s, http.MethodGet, "/rest/api/3/issue/"+is.ID+"/"+path, nil, s.SharedSecret, "").body)
		}
	}
	r := call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, s.SharedSecret, "")
	b.WriteString(r.body)
	return strings.ReplaceAll(b.String(), s.BaseURL, "BASE")
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	edit := func(sp *jirasim.GenSpec) { sp.LongTailShare = 0.05 }
	a, b := genSite(t, 42, 120, edit), genSite(t, 42, 120, edit)
	da, db := dump(t, a), dump(t, b)
	if da != db {
		i := 0
		for i < len(da) && i < len(db) && da[i] == db[i] {
			i++
		}
		t.Fatalf("same seed, different JSON at byte %d:\n%s\n%s", i, da[max(0, i-200):min(len(da), i+200)], db[max(0, i-200):min(len(db), i+200)])
	}
	if len(da) < 200_000 {
		t.Errorf("dump is only %d bytes", len(da))
	}
	if dc := dump(t, genSite(t, 43, 120, edit)); dc == da {
		t.Error("another seed gave the same site")
	}
	if ga, gb := a.GroundTruth(), b.GroundTruth(); !cmp.Equal(ga, gb) {
		t.Error("same seed, different ground truth")
	}
}

// A prebuilt site serves the same bytes as one generating per request.
func TestPrebuildServesTheSame(t *testing.T) {
	t.Parallel()
	edit := func(sp *jirasim.GenSpec) { sp.LongTailShare = 0.05 }
	a, b := genSite(t, 42, 120, edit), genSite(t, 42, 120, edit)
	b.Prebuild()
	if n := jirasim.StoredRecords(b); n != 120 {
		t.Fatalf("prebuilt %d of 120 issues", n) // else the comparison below compares two generating sites
	}
	if n := jirasim.StoredRecords(a); n != 0 {
		t.Fatalf("a generating site holds %d records", n)
	}
	if da, db := dump(t, a), dump(t, b); da != db {
		i := 0
		for i < len(da) && i < len(db) && da[i] == db[i] {
			i++
		}
		t.Fatalf("prebuilt differs at byte %d:\n%s\n%s", i, da[max(0, i-200):min(len(da), i+200)], db[max(0, i-200):min(len(db), i+200)])
	}
	if ga, gb := a.GroundTruth(), b.GroundTruth(); !cmp.Equal(ga, gb) {
		t.Error("prebuilt, different ground truth")
	}
}

func TestGeneratedIssues(t *testing.T) {
	t.Parallel()
	s := genSite(t, 7, 800, func(sp *jirasim.GenSpec) {
		sp.Projects, sp.Users, sp.EmailShare, sp.LongTailShare, sp.CustomFields = 4, 60, 0.5, 0.03, 10
	}, jirasim.WithTimeZone("Europe/Berlin"))
	q := url.Values{"jql": {"id >= 0 ORDER BY id"}, "fields": {"*all"}, "expand": {"changelog"}, "maxResults": {"100"}}
	issues := searchAll(t, s, q, nil)
	if len(issues) != 800 {
		t.Fatalf("%d issues", len(issues))
	}
	perProject := map[string]int{}
	var longHist, longComments int
	for i, is := range issues {
		if id := is.id(t); id != jirasim.FirstGeneratedID+int64(i) {
			t.Fatalf("issue %d has id %d", i, id)
		}
		proj := field[struct{ Key string }](t, is.Fields["project"]).Key
		perProject[proj]++
		if want := fmt.Sprintf("%s-%d", proj, perProject[proj]); is.Key != want {
			t.Fatalf("issue %s has key %s, want %s", is.ID, is.Key, want)
		}
		created, _ := time.Parse(jirasim.JiraTime, field[string](t, is.Fields["created"]))
		updated, err := time.Parse(jirasim.JiraTime, field[string](t, is.Fields["updated"]))
		if err != nil || updated.Before(created) || !updated.Before(simNow) {
			t.Fatalf("%s: created %v, updated %v (%v)", is.Key, created, updated, err)
		}
		if _, off := updated.Zone(); off != 3600 && off != 7200 {
			t.Fatalf("%s: updated %s not in Berlin time", is.Key, is.Fields["updated"])
		}
		if d := field[*string](t, is.Fields["duedate"]); d != nil {
			if _, err := time.Parse(time.DateOnly, *d); err != nil {
				t.Fatalf("duedate %q", *d)
			}
		}
		for _, f := range []string{"assignee", "reporter", "creator"} {
			if strings.Contains(string(is.Fields[f]), "emailAddress") {
				t.Fatalf("%s carries an email", f)
			}
		}
		if sp := field[[]map[string]any](t, is.Fields[jirasim.FieldSprint]); len(sp) > 0 {
			if d, _ := sp[0]["startDate"].(string); sp[0]["state"] != "future" && !strings.HasSuffix(d, "Z") {
				t.Fatalf("sprint %v", sp[0])
			}
		}
		for k := range 10 {
			if _, ok := is.Fields["customfield_"+strconv.Itoa(jirasim.CustomFieldBase+k)]; !ok {
				t.Fatalf("%s lacks custom field %d", is.Key, k)
			}
		}
		cl := is.Changelog
		cm := field[struct {
			Total    int
			Comments []struct{ Created, Updated string }
		}](t, is.Fields["comment"])
		if cl.Total > jirasim.EmbeddedChangelogMax {
			longHist++
		}
		if cm.Total > jirasim.EmbeddedCommentMax {
			longComments++
		}
		// updated is the time of the last change, and the status is where
		// the last transition went.
		last := created
		status := "To Do"
		for _, raw := range cl.Histories {
			h := field[struct {
				Created string
				Items   []struct{ FieldID, ToString string }
			}](t, raw)
			at, _ := time.Parse(jirasim.JiraTime, h.Created)
			if at.After(last) {
				last = at
			}
			for _, it := range h.Items {
				if it.FieldID == "status" {
					status = it.ToString
				}
			}
		}
		for _, c := range cm.Comments {
			at, _ := time.Parse(jirasim.JiraTime, c.Created)
			if at.After(last) {
				last = at
			}
		}
		if cl.Total == len(cl.Histories) && cm.Total == len(cm.Comments) && !last.Equal(updated) {
			t.Fatalf("%s: updated %v, last change %v", is.Key, updated, last)
		}
		if got := field[struct{ Name string }](t, is.Fields["status"]).Name; cl.Total == len(cl.Histories) && got != status {
			t.Fatalf("%s: status %s, last transition to %s", is.Key, got, status)
		}
		if res := string(is.Fields["resolutiondate"]); (status == "Done") == (res == "null") && cl.Total == len(cl.Histories) {
			t.Fatalf("%s: status %s, resolutiondate %s", is.Key, status, res)
		}
	}
	if len(perProject) != 4 || longHist == 0 || longComments == 0 {
		t.Errorf("projects %v, %d long changelogs, %d long comment lists", perProject, longHist, longComments)
	}
	gt := s.GroundTruth()
	var withEmail int
	for _, u := range gt.Users {
		if u.Email != "" {
			withEmail++
		}
	}
	if len(gt.Users) < 30 || withEmail == 0 || withEmail == len(gt.Users) {
		t.Errorf("%d users, %d with email", len(gt.Users), withEmail)
	}
}

// TestGroundTruthMatchesAPI ingests a site the way an ingester must —
// search pages, then the changelog and comments of issues whose embedded
// ones are truncated, then users and emails — and compares with
// GroundTruth.
func TestGroundTruthMatchesAPI(t *testing.T) {
	t.Parallel()
	s := genSite(t, 11, 250, func(sp *jirasim.GenSpec) { sp.LongTailShare = 0.04 })
	gt := s.GroundTruth()
	q := url.Values{"jql": {"updated >= 0 ORDER BY updated ASC, id ASC"}, "fields": {"*navigable,comment"}, "expand": {"changelog"}, "maxResults": {"100"}}
	issues := searchAll(t, s, q, nil)
	if len(issues) != len(gt.Issues) {
		t.Fatalf("%d issues, ground truth %d", len(issues), len(gt.Issues))
	}
	users := map[string]bool{}
	var got []jirasim.TruthIssue
	for _, is := range issues {
		ti := jirasim.TruthIssue{ID: is.id(t), Key: is.Key}
		ti.Status = field[struct{ Name string }](t, is.Fields["status"]).Name
		histories := is.Changelog.Histories
		if is.Changelog.Total > len(histories) {
			// The embedded changelog is the newest; read the whole one.
			histories = nil
			for start := 0; ; {
				var p struct {
					Values []json.RawMessage
					IsLast bool
				}
				getJSON(t, s, "/rest/api/3/issue/"+is.ID+"/changelog", url.Values{"startAt": {strconv.Itoa(start)}}, &p)
				histories = append(histories, p.Values...)
				start += len(p.Values)
				if p.IsLast {
					break
				}
			}
		}
		for _, raw := range histories {
			h := field[struct {
				ID      string
				Author  struct{ AccountID string }
				Created string
				Items   []struct{ FieldID, From, To, FromString, ToString string }
			}](t, raw)
			users[h.Author.AccountID] = true
			id, _ := strconv.ParseInt(h.ID, 10, 64)
			at, _ := time.Parse(jirasim.JiraTime, h.Created)
			for _, it := range h.Items {
				if it.FieldID == "status" {
					ti.Transitions = append(ti.Transitions, jirasim.TruthTransition{HistoryID: id, FromID: it.From, ToID: it.To,
						From: it.FromString, To: it.ToString, Author: h.Author.AccountID, At: at.UTC()})
				}
			}
		}
		cm := field[struct {
			Total    int
			Comments []json.RawMessage
		}](t, is.Fields["comment"])
		comments := cm.Comments
		if cm.Total > len(comments) {
			comments = nil
			for start := 0; start < cm.Total; {
				var p struct{ Comments []json.RawMessage }
				getJSON(t, s, "/rest/api/3/issue/"+is.ID+"/comment", url.Values{"startAt": {strconv.Itoa(start)}, "orderBy": {"created"}}, &p)
				comments = append(comments, p.Comments...)
				start += len(p.Comments)
			}
		}
		for _, raw := range comments {
			c := field[struct {
				ID                   string
				Author, UpdateAuthor struct{ AccountID string }
				Body                 json.RawMessage
				Created, Updated     string
			}](t, raw)
			users[c.Author.AccountID], users[c.UpdateAuthor.AccountID] = true, true
			id, _ := strconv.ParseInt(c.ID, 10, 64)
			cr, _ := time.Parse(jirasim.JiraTime, c.Created)
			up, _ := time.Parse(jirasim.JiraTime, c.Updated)
			ti.Comments = append(ti.Comments, jirasim.TruthComment{ID: id, Author: c.Author.AccountID, Body: jirasim.ADFText(c.Body), Created: cr.UTC(), Updated: up.UTC()})
		}
		for _, f := range []string{"assignee", "reporter", "creator"} {
			if u := field[*struct{ AccountID string }](t, is.Fields[f]); u != nil {
				users[u.AccountID] = true
			}
		}
		got = append(got, ti)
	}
	slices.SortFunc(got, func(a, b jirasim.TruthIssue) int { return int(a.ID - b.ID) })
	want := make([]jirasim.TruthIssue, len(gt.Issues))
	for i, w := range gt.Issues {
		want[i] = jirasim.TruthIssue{ID: w.ID, Key: w.Key, Status: w.Status, Transitions: w.Transitions, Comments: w.Comments}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("API vs ground truth (-want +got):\n%s", d)
	}

	// Users: /user/bulk in batches of 100, emails in the same batches.
	ids := make([]string, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var gotUsers []jirasim.TruthUser
	for i := 0; i < len(ids); i += 100 {
		batch := ids[i:min(i+100, len(ids))]
		var page struct {
			Values []struct {
				AccountID, AccountType, DisplayName, TimeZone string
				Active                                        bool
				EmailAddress                                  *string
			}
		}
		getJSON(t, s, "/rest/api/3/user/bulk", url.Values{"accountId": batch, "maxResults": {"100"}}, &page)
		var emails []struct{ AccountID, Email string }
		getJSON(t, s, "/rest/api/3/user/email/bulk", url.Values{"accountId": batch}, &emails)
		byID := map[string]string{}
		for _, e := range emails {
			byID[e.AccountID] = e.Email
		}
		for _, u := range page.Values {
			if u.EmailAddress != nil {
				t.Fatalf("user/bulk shows %s's email", u.AccountID)
			}
			gotUsers = append(gotUsers, jirasim.TruthUser{AccountID: u.AccountID, AccountType: u.AccountType, DisplayName: u.DisplayName,
				Email: byID[u.AccountID], Active: u.Active, TimeZone: u.TimeZone})
		}
	}
	// What a person's API token sees is checked in TestCloudAPITokenEmails.
	if d := cmp.Diff(gt.Users, gotUsers, cmpopts.IgnoreFields(jirasim.TruthUser{}, "VisibleEmail")); d != "" {
		t.Fatalf("users (-want +got):\n%s", d)
	}
}

// TestMillionIssues generates a 1,000,000-issue site, measures the heap it
// holds, and pages through the head and the tail of it.
func TestMillionIssues(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := newSite(t, nil)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	spec := jirasim.DefaultGenSpec(1_000_000)
	spec.Now = simNow
	if err := s.Generate(1, spec); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1,000,000 issues generated in %v; heap held %.1f MB (%.0f bytes/issue); %d projects, %d users",
		took.Round(time.Millisecond), float64(heap)/(1<<20), float64(heap)/1e6, spec.Projects, spec.Users)
	if heap > 200<<20 {
		t.Errorf("the simulator holds %d MB for a million issues", heap>>20)
	}

	q := url.Values{"jql": {"id > 1009900 ORDER BY id"}, "fields": {"*all"}, "expand": {"changelog"}, "maxResults": {"100"}}
	r := call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, s.SharedSecret, "")
	if r.status != 200 || !strings.Contains(r.body, `"id":"1009901"`) || strings.Contains(r.body, "nextPageToken") {
		t.Fatalf("%d %.300s", r.status, r.body)
	}
	var last struct{ Issues []rawIssue }
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"updated >= -3650d ORDER BY updated DESC, id DESC"}, "fields": {"id"}, "maxResults": {"5000"}}, &last)
	if len(last.Issues) != 5000 {
		t.Fatalf("%d ids in an id-only page", len(last.Issues))
	}
	if _, err := s.UpdateIssue(last.Issues[4999].ID, func(f map[string]any) { f["summary"] = "moved to the top" }); err != nil {
		t.Fatal(err)
	}
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"updated >= -3650d ORDER BY updated DESC, id DESC"}, "fields": {"summary"}, "maxResults": {"1"}}, &last)
	if !strings.Contains(string(last.Issues[0].Fields["summary"]), "moved to the top") {
		t.Errorf("the updated issue is not first: %s", last.Issues[0].Fields["summary"])
	}
}
