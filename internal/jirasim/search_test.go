package jirasim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// Paging by id is exact while other issues change: each page's token
// holds the last id served, so updates and inserts elsewhere neither
// repeat nor skip an issue.
func TestPagingStableUnderMutation(t *testing.T) {
	t.Parallel()
	s := genSite(t, 3, 1500, nil)
	before := map[string]bool{}
	for _, ti := range s.GroundTruth().Issues {
		before[strconv.FormatInt(ti.ID, 10)] = true
	}
	for _, tc := range []struct {
		jql    string
		fields string
	}{
		{"id >= 0 ORDER BY id ASC", "summary"},
		{"id >= 0 ORDER BY id DESC", "id"},
		{"created >= 0 ORDER BY created ASC, id ASC", "id"},
		{"project in (PLAT, MOBI, BILL) ORDER BY id", "key"},
	} {
		t.Run(tc.jql, func(t *testing.T) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mutations int
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(1, 2))
				for {
					select {
					case <-stop:
						return
					default:
					}
					id := strconv.Itoa(jirasim.FirstGeneratedID + r.IntN(1500))
					var err error
					switch r.IntN(3) {
					case 0:
						_, err = s.UpdateIssue(id, func(f map[string]any) { f["summary"] = "changed " + id })
					case 1:
						_, err = s.AddComment(id, "", "busy")
					case 2:
						_, err = s.CreateIssue("PLAT", map[string]any{"summary": "new"})
					}
					if err != nil {
						t.Error(err)
						return
					}
					mutations++
					time.Sleep(100 * time.Microsecond)
				}
			}()
			seen := map[string]int{}
			q := url.Values{"jql": {tc.jql}, "fields": {tc.fields}, "maxResults": {"73"}}
			for _, is := range searchAll(t, s, q, func(int) { time.Sleep(time.Millisecond) }) {
				seen[is.ID]++
			}
			close(stop)
			wg.Wait()
			for id, n := range seen {
				if n > 1 {
					t.Errorf("issue %s served %d times", id, n)
				}
			}
			missed := 0
			for id := range before {
				if seen[id] == 0 && (!strings.Contains(tc.jql, "project") || strings.Contains(tc.jql, "PLAT")) {
					missed++
				}
			}
			if !strings.Contains(tc.jql, "project") && missed > 0 {
				t.Errorf("%d issues never served", missed)
			}
			if mutations < 10 {
				t.Errorf("only %d mutations while paging", mutations)
			}
		})
	}
}

// Every supported ordering pages into the same sequence as sorting the
// whole matching set at once.
func TestOrderings(t *testing.T) {
	t.Parallel()
	s := genSite(t, 5, 400, func(sp *jirasim.GenSpec) { sp.Projects = 3 })
	gt := s.GroundTruth()
	// Some issues with equal updated, to exercise the id tie-breaker.
	at := simNow.Add(time.Minute)
	for _, id := range []string{"10005", "10300", "10007"} {
		if _, err := s.UpdateIssue(id, nil, jirasim.At(at)); err != nil {
			t.Fatal(err)
		}
	}
	gt = s.GroundTruth()
	cutoff := gt.Issues[200].Updated
	type row struct {
		id               int64
		key              string
		project          string
		created, updated time.Time
	}
	var all []row
	for _, ti := range gt.Issues {
		all = append(all, row{ti.ID, ti.Key, ti.ProjectKey, ti.Created, ti.Updated})
	}
	keyNum := func(k string) int { n, _ := strconv.Atoi(k[strings.LastIndexByte(k, '-')+1:]); return n }
	cmpRow := map[string]func(a, b row) int{
		"id":      func(a, b row) int { return int(a.id - b.id) },
		"created": func(a, b row) int { return a.created.Compare(b.created) },
		"updated": func(a, b row) int { return a.updated.Compare(b.updated) },
		"key": func(a, b row) int {
			if c := strings.Compare(a.project, b.project); c != 0 {
				return c
			}
			return keyNum(a.key) - keyNum(b.key)
		},
	}
	for _, tc := range []struct {
		where string
		keep  func(row) bool
		order []string // field or "-field"
	}{
		{"id >= 0", nil, []string{"id"}},
		{"id >= 0", nil, []string{"-id"}},
		{"id > 10100 AND id <= 10300", func(r row) bool { return r.id > 10100 && r.id <= 10300 }, []string{"id"}},
		{"project = MOBI", func(r row) bool { return r.project == "MOBI" }, []string{"-id"}},
		{"created >= 0", nil, []string{"created", "id"}},
		{"created >= 0", nil, []string{"-created", "-id"}},
		{fmt.Sprintf("updated >= %d", cutoff.UnixMilli()), func(r row) bool { return !r.updated.Before(cutoff) }, []string{"updated", "id"}},
		{fmt.Sprintf("updated < %d", cutoff.UnixMilli()), func(r row) bool { return r.updated.Before(cutoff) }, []string{"-updated", "-id"}},
		{"updated >= 0", nil, []string{"updated", "-id"}},
		{"updated >= 0", nil, []string{"-updated", "id"}},
		{"project in (PLAT, BILL)", func(r row) bool { return r.project != "MOBI" }, []string{"key"}},
		{"id >= 0", nil, []string{"-key"}},
		{"id >= 0", nil, []string{"updated"}}, // id appended as tie-breaker
	} {
		var terms []string
		for _, o := range tc.order {
			if f, desc := strings.CutPrefix(o, "-"); desc {
				terms = append(terms, f+" DESC")
			} else {
				terms = append(terms, o+" ASC")
			}
		}
		jql := tc.where + " ORDER BY " + strings.Join(terms, ", ")
		t.Run(jql, func(t *testing.T) {
			var want []string
			rows := slices.Clone(all)
			if tc.keep != nil {
				rows = slices.DeleteFunc(rows, func(r row) bool { return !tc.keep(r) })
			}
			order := tc.order
			if !slices.ContainsFunc(order, func(o string) bool { return strings.TrimPrefix(o, "-") == "id" || strings.TrimPrefix(o, "-") == "key" }) {
				last := "id"
				if strings.HasPrefix(order[0], "-") {
					last = "-id"
				}
				order = append(slices.Clone(order), last)
			}
			slices.SortStableFunc(rows, func(a, b row) int {
				for _, o := range order {
					f, desc := strings.CutPrefix(o, "-")
					c := cmpRow[f](a, b)
					if desc {
						c = -c
					}
					if c != 0 {
						return c
					}
				}
				return 0
			})
			for _, r := range rows {
				want = append(want, r.key)
			}
			var got []string
			for _, is := range searchAll(t, s, url.Values{"jql": {jql}, "fields": {"key"}, "maxResults": {"37"}}, nil) {
				got = append(got, is.Key)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %d issues %v…, want %d %v…", len(got), got[:min(8, len(got))], len(want), want[:min(8, len(want))])
			}
		})
	}
}

func TestSearchPageSizes(t *testing.T) {
	t.Parallel()
	s := genSite(t, 9, 6000, func(sp *jirasim.GenSpec) { sp.TransitionsPerIssue, sp.CommentsPerIssue, sp.DescriptionBytes = 1, 1, 0 })
	var p searchPage
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"id >= 0 ORDER BY id"}, "fields": {"summary"}, "maxResults": {"1000"}}, &p)
	if len(p.Issues) != jirasim.SearchMaxResultsWithFields || p.IsLast {
		t.Errorf("with fields: %d issues", len(p.Issues))
	}
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"id >= 0 ORDER BY id"}, "fields": {"id,key"}, "maxResults": {"10000"}}, &p)
	if len(p.Issues) != jirasim.SearchMaxResultsIDsOnly || p.IsLast {
		t.Errorf("ids only: %d issues", len(p.Issues))
	}
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"id >= 0 ORDER BY id"}}, &p)
	if len(p.Issues) != jirasim.DefaultSearchMaxResults {
		t.Errorf("default: %d issues", len(p.Issues))
	}
	// POST with a JSON body, expand as a string or a list.
	for _, expand := range []any{"changelog", []string{"changelog"}} {
		body, _ := json.Marshal(map[string]any{"jql": "project = PLAT ORDER BY id", "fields": []string{"summary"}, "expand": expand, "maxResults": 3})
		r := post(t, s, "/rest/api/3/search/jql", body, "")
		r.want(t, 200, `"changelog":{"startAt":0`)
		var pp searchPage
		_ = json.Unmarshal([]byte(r.body), &pp)
		if len(pp.Issues) != 3 || pp.NextPageToken == "" {
			t.Errorf("POST: %d issues, token %q", len(pp.Issues), pp.NextPageToken)
		}
		body, _ = json.Marshal(map[string]any{"jql": "project = PLAT ORDER BY id", "fields": []string{"summary"}, "nextPageToken": pp.NextPageToken, "maxResults": 3})
		post(t, s, "/rest/api/3/search/jql", body, "").want(t, 200, `"key":"PLAT-4"`)
	}
	post(t, s, "/rest/api/3/search/jql", []byte(`{"jql": 5}`), "").want(t, 400, "Invalid request payload")
	post(t, s, "/rest/api/3/search/jql", []byte(`{}`), "").want(t, 400, jirasim.MsgUnboundedJQL)
}

// post sends a JSON body signed as the app (or with auth when given).
func post(t *testing.T, s *jirasim.Site, path string, body []byte, auth string) reply {
	t.Helper()
	u, _ := url.Parse(s.BaseURL + path)
	req, _ := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth == "" {
		tok := signFor(t, s, http.MethodPost, u)
		auth = "JWT " + tok
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return reply{resp.StatusCode, resp.Header, b.String()}
}

// The embedded changelog holds the newest EmbeddedChangelogMax histories
// and the comment field the first EmbeddedCommentMax comments, each with
// its total; the issue's own endpoints page through all of them.
func TestEmbeddedLimits(t *testing.T) {
	t.Parallel()
	s := genSite(t, 21, 300, func(sp *jirasim.GenSpec) { sp.LongTailShare = 0.1 })
	gt := s.GroundTruth()
	var long jirasim.TruthIssue
	for _, ti := range gt.Issues {
		if ti.Histories > jirasim.EmbeddedChangelogMax && len(ti.Comments) > jirasim.EmbeddedCommentMax {
			long = ti
			break
		}
	}
	if long.ID == 0 {
		t.Fatal("no long-tail issue")
	}
	id := strconv.FormatInt(long.ID, 10)
	var p searchPage
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"id = " + id}, "fields": {"comment"}, "expand": {"changelog"}}, &p)
	cl := p.Issues[0].Changelog
	if cl.Total != long.Histories || len(cl.Histories) != jirasim.EmbeddedChangelogMax || cl.MaxResults != jirasim.EmbeddedChangelogMax || cl.StartAt != 0 {
		t.Fatalf("changelog: total %d, %d histories, maxResults %d (issue has %d)", cl.Total, len(cl.Histories), cl.MaxResults, long.Histories)
	}
	cm := field[struct {
		Total, MaxResults, StartAt int
		Comments                   []struct{ ID string }
	}](t, p.Issues[0].Fields["comment"])
	if cm.Total != len(long.Comments) || len(cm.Comments) != jirasim.EmbeddedCommentMax || cm.MaxResults != jirasim.EmbeddedCommentMax {
		t.Fatalf("comments: total %d, %d embedded", cm.Total, len(cm.Comments))
	}
	if cm.Comments[0].ID != strconv.FormatInt(long.Comments[0].ID, 10) {
		t.Errorf("embedded comments start at %s, want the oldest %d", cm.Comments[0].ID, long.Comments[0].ID)
	}

	// The whole changelog, oldest first; the embedded page is its tail.
	var all []json.RawMessage
	for start := 0; ; {
		var page struct {
			StartAt, MaxResults, Total int
			IsLast                     bool
			NextPage                   string
			Values                     []json.RawMessage
		}
		getJSON(t, s, "/rest/api/3/issue/"+long.Key+"/changelog", url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {"500"}}, &page)
		if page.MaxResults != jirasim.ChangelogMaxResults || page.StartAt != start || page.Total != long.Histories || (page.NextPage == "") != page.IsLast {
			t.Fatalf("changelog page %+v", page)
		}
		all = append(all, page.Values...)
		start += len(page.Values)
		if page.IsLast {
			break
		}
	}
	if len(all) != long.Histories || string(all[len(all)-1]) != string(cl.Histories[len(cl.Histories)-1]) ||
		string(all[len(all)-jirasim.EmbeddedChangelogMax]) != string(cl.Histories[0]) {
		t.Fatalf("%d histories; the embedded ones are not the newest", len(all))
	}
	// Comments newest first, paged.
	var newest struct {
		Total    int
		Comments []struct{ ID string }
	}
	getJSON(t, s, "/rest/api/3/issue/"+id+"/comment", url.Values{"orderBy": {"-created"}, "maxResults": {"5"}}, &newest)
	if newest.Total != len(long.Comments) || len(newest.Comments) != 5 || newest.Comments[0].ID != strconv.FormatInt(long.Comments[len(long.Comments)-1].ID, 10) {
		t.Errorf("newest comments %+v", newest)
	}
	call(t, s, http.MethodGet, "/rest/api/3/issue/"+id+"/comment", url.Values{"orderBy": {"author"}}, s.SharedSecret, "").want(t, 400, "orderBy")
	call(t, s, http.MethodGet, "/rest/api/3/issue/99/changelog", nil, s.SharedSecret, "").want(t, 404, jirasim.MsgIssueNotFound)
	call(t, s, http.MethodGet, "/rest/api/3/issue/"+id+"/changelog", url.Values{"startAt": {"x"}}, s.SharedSecret, "").want(t, 400, "startAt")

	// Faros reports 40 histories on the enhanced search; the limits move.
	s.SetEmbeddedLimits(40, 5)
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"id = " + id}, "fields": {"comment"}, "expand": {"changelog"}}, &p)
	if cl := p.Issues[0].Changelog; len(cl.Histories) != 40 || cl.Total != long.Histories {
		t.Errorf("with limit 40: %d of %d", len(cl.Histories), cl.Total)
	}
	// GET issue embeds the same way.
	var one rawIssue
	getJSON(t, s, "/rest/api/3/issue/"+long.Key, url.Values{"expand": {"changelog"}}, &one)
	if one.Key != long.Key || one.Changelog == nil || len(one.Changelog.Histories) != 40 || one.Fields["summary"] == nil || one.Fields["comment"] == nil {
		t.Errorf("GET issue: %s, %v", one.Key, one.Changelog)
	}
}

func TestFieldsProjectsUsers(t *testing.T) {
	t.Parallel()
	s := genSite(t, 4, 100, func(sp *jirasim.GenSpec) { sp.Projects, sp.Users, sp.CustomFields = 23, 250, 9 })
	var fields []struct {
		ID, Name  string
		Custom    bool
		Navigable bool
		Schema    map[string]any
	}
	getJSON(t, s, "/rest/api/3/field", nil, &fields)
	byID := map[string]int{}
	for i, f := range fields {
		byID[f.ID] = i
	}
	sprint, ok := byID[jirasim.FieldSprint]
	if !ok || fields[sprint].Schema["custom"] != "com.pyxis.greenhopper.jira:gh-sprint" || !fields[sprint].Custom {
		t.Errorf("sprint field %+v", fields[sprint])
	}
	if c := fields[byID["comment"]]; c.Navigable {
		t.Error("comment is navigable")
	}
	if _, ok := byID["customfield_10108"]; !ok || len(fields) < 20+9 {
		t.Errorf("%d fields", len(fields))
	}

	var keys []string
	for start := 0; ; {
		var p struct {
			Values []struct{ Key string }
			IsLast bool
			Total  int
		}
		getJSON(t, s, "/rest/api/3/project/search", url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {"10"}}, &p)
		for _, v := range p.Values {
			keys = append(keys, v.Key)
		}
		start += len(p.Values)
		if p.IsLast {
			break
		}
	}
	if len(keys) != 23 || keys[0] != "PLAT" || keys[16] != "PLAT2" {
		t.Errorf("projects %v", keys)
	}

	gt := s.GroundTruth()
	var ids []string
	for _, u := range gt.Users {
		ids = append(ids, u.AccountID)
	}
	var page struct {
		Values            []struct{ AccountID string }
		IsLast            bool
		Total, MaxResults int
	}
	getJSON(t, s, "/rest/api/3/user/bulk", url.Values{"accountId": append(ids[:3:3], "unknown")}, &page)
	if page.Total != 3 || len(page.Values) != 3 || !page.IsLast || page.Values[1].AccountID != ids[1] {
		t.Errorf("user/bulk %+v", page)
	}
	getJSON(t, s, "/rest/api/3/user/bulk", url.Values{"accountId": ids[:30]}, &page)
	if page.Total != 30 || len(page.Values) != jirasim.UserBulkDefault || page.IsLast {
		t.Errorf("user/bulk default page %+v", page)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = ids[i%len(ids)]
	}
	call(t, s, http.MethodGet, "/rest/api/3/user/bulk", url.Values{"accountId": many}, s.SharedSecret, "").want(t, 400, "cannot exceed 100")
	var emails []struct{ AccountID, Email string }
	getJSON(t, s, "/rest/api/3/user/email/bulk", url.Values{"accountId": append(slices.Clone(ids), jirasim.AppUserAutomation)}, &emails)
	withEmail := 0
	for _, u := range gt.Users {
		if u.Email != "" {
			withEmail++
		}
	}
	if len(emails) != withEmail || withEmail == 0 || withEmail == len(ids) {
		t.Errorf("%d emails for %d users with one", len(emails), withEmail)
	}
}

func TestBulkFetchChangelogs(t *testing.T) {
	t.Parallel()
	s := genSite(t, 8, 50, nil)
	s.AddBasicUser("557058:ada", "Ada", "ada@example.com", "tok-1")
	basic := "Basic " + base64Std("ada@example.com:tok-1")
	body := []byte(`{"issueIdsOrKeys":["10001","PLAT-2","10003","10004"],"maxResults":3}`)

	// A Connect app's JWT is refused: Atlassian does not open it to them.
	post(t, s, "/rest/api/3/changelog/bulkfetch", body, "").want(t, 403, jirasim.MsgConnectForbidden)

	gt := s.GroundTruth()
	want := 0
	for _, ti := range gt.Issues[:4] {
		want += ti.Histories
	}
	got, pages := 0, 0
	var lastAt string
	for tok := ""; ; pages++ {
		b := body
		if tok != "" {
			b = []byte(fmt.Sprintf(`{"issueIdsOrKeys":["10001","PLAT-2","10003","10004"],"maxResults":3,"nextPageToken":%q}`, tok))
		}
		r := post(t, s, "/rest/api/3/changelog/bulkfetch", b, basic)
		var p struct {
			IssueChangeLogs []struct {
				IssueID         string
				ChangeHistories []struct{ Created string }
			}
			NextPageToken string
		}
		if r.status != 200 || json.Unmarshal([]byte(r.body), &p) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, l := range p.IssueChangeLogs {
			for _, h := range l.ChangeHistories {
				got++
				if h.Created < lastAt && strings.HasSuffix(h.Created, "+0000") {
					t.Errorf("histories out of date order: %s after %s", h.Created, lastAt)
				}
				lastAt = h.Created
			}
		}
		if tok = p.NextPageToken; tok == "" {
			break
		}
	}
	if got != want || pages < 2 {
		t.Errorf("%d histories in %d pages, want %d", got, pages, want)
	}
	r := post(t, s, "/rest/api/3/changelog/bulkfetch", []byte(`{"issueIdsOrKeys":["10001","10002","10003","10004","10005"],"fieldIds":["status"]}`), basic)
	if r.status != 200 || strings.Contains(r.body, `"fieldId":"assignee"`) || !strings.Contains(r.body, `"fieldId":"status"`) {
		t.Errorf("filtered: %d %.300s", r.status, r.body)
	}
	post(t, s, "/rest/api/3/changelog/bulkfetch", []byte(`{"issueIdsOrKeys":[]}`), basic).want(t, 400, "issueIdsOrKeys")
}
