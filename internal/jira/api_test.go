package jira_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func intParam(r *http.Request, name string, def int) int {
	if n, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil {
		return n
	}
	return def
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("557058:%04d", i)
	}
	return out
}

// userBulk serves /rest/api/3/user/bulk as Jira does, pages of at most
// pageCap users (Jira's own cap) or maxResults, whichever is smaller.
func userBulk(pageCap int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		accts := r.URL.Query()["accountId"]
		start, size := intParam(r, "startAt", 0), min(intParam(r, "maxResults", 10), pageCap)
		end := min(start+size, len(accts))
		var values []map[string]any
		for _, id := range accts[min(start, end):end] {
			values = append(values, map[string]any{"accountId": id, "displayName": "User " + id, "active": true, "accountType": "atlassian"})
		}
		writeJSON(w, map[string]any{"startAt": start, "maxResults": size, "total": len(accts), "isLast": end >= len(accts), "values": values})
	}
}

func TestUsersBulk(t *testing.T) {
	t.Parallel()
	in := ids(250)
	t.Run("250 ids in 3 calls", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, userBulk(1000))
		// Repeats and empty IDs cost nothing.
		users, err := newClient(t, srv.URL, nil).UsersBulk(context.Background(), append(append(slices.Clone(in), in[:10]...), ""))
		if err != nil {
			t.Fatal(err)
		}
		reqs := srv.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d calls, want 3", len(reqs))
		}
		for i, want := range []int{100, 100, 50} {
			q := reqs[i].Query
			if reqs[i].Path != jira.PathUserBulk || len(q["accountId"]) != want || q.Get("maxResults") != strconv.Itoa(want) || q.Get("startAt") != "0" {
				t.Errorf("call %d: %s %d ids, maxResults %s", i+1, reqs[i].Path, len(q["accountId"]), q.Get("maxResults"))
			}
		}
		if len(users) != 250 || users[0].AccountID != in[0] || users[249].AccountID != in[249] || users[7].DisplayName != "User "+in[7] {
			t.Errorf("%d users, first %+v", len(users), users[0])
		}
	})
	t.Run("pages within a batch", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, userBulk(40))
		users, err := newClient(t, srv.URL, nil).UsersBulk(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range users {
			got = append(got, u.AccountID)
		}
		if !slices.Equal(got, in) {
			t.Errorf("users %v", got)
		}
		var starts []string
		for _, r := range srv.requests() {
			starts = append(starts, r.Query.Get("startAt"))
		}
		if strings.Join(starts, ",") != "0,40,80,0,40,80,0,40" {
			t.Errorf("startAt of the calls: %v", starts)
		}
	})
	t.Run("none", func(t *testing.T) {
		srv := serve(t, userBulk(100))
		if users, err := newClient(t, srv.URL, nil).UsersBulk(context.Background(), nil); err != nil || users != nil || len(srv.requests()) != 0 {
			t.Errorf("users %v, err %v, %d calls", users, err, len(srv.requests()))
		}
	})
}

func TestUserEmailsBatches(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		var out []jira.UserEmail
		for _, id := range r.URL.Query()["accountId"] {
			if !strings.HasSuffix(id, "7") { // some accounts are unknown
				out = append(out, jira.UserEmail{AccountID: id, Email: id[7:] + "@example.com"})
			}
		}
		writeJSON(w, out)
	})
	emails, err := newClient(t, srv.URL, nil).UserEmails(context.Background(), ids(250))
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 3 || len(reqs[0].Query["accountId"]) != jira.MaxEmailsPerCall || len(reqs[2].Query["accountId"]) != 50 {
		t.Fatalf("%d calls", len(reqs))
	}
	if len(emails) != 225 || emails[0] != (jira.UserEmail{AccountID: "557058:0000", Email: "0000@example.com"}) {
		t.Errorf("%d emails, first %+v", len(emails), emails[0])
	}

	t.Run("long IDs end a batch early", func(t *testing.T) {
		long := make([]string, 100)
		for i := range long {
			long[i] = fmt.Sprintf("%03d", i) + strings.Repeat("x", 125) // 128 characters, the documented maximum
		}
		srv := serve(t, jsonAnswer(200, `[]`))
		if _, err := newClient(t, srv.URL, nil).UserEmails(context.Background(), long); err != nil {
			t.Fatal(err)
		}
		for _, r := range srv.requests() {
			if len(r.RawQuery) > 6000 {
				t.Errorf("query of %d bytes", len(r.RawQuery))
			}
		}
		if len(srv.requests()) < 2 {
			t.Errorf("%d calls for 100 long IDs", len(srv.requests()))
		}
	})
}

func TestSearchJQLPost(t *testing.T) {
	t.Parallel()
	t.Run("simulator", func(t *testing.T) {
		t.Parallel()
		s := newSite(t, jirasim.WithContextPath("/jira"))
		addIssues(t, s, 7)
		s.SetSearchLimits(3, 5)
		c := newClient(t, s.BaseURL, appAuth(s))
		req := jira.SearchRequest{JQL: "project = SEI ORDER BY key ASC", MaxResults: 50, Fields: []string{"summary", "status"}, Expand: []string{"changelog"}}
		var got []string
		for pages := 1; ; pages++ {
			p, err := c.SearchJQLPost(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, issueIDs(t, p)...)
			if p.IsLast {
				if pages != 3 {
					t.Errorf("%d pages", pages)
				}
				break
			}
			req.NextPageToken = p.NextPageToken
		}
		if strings.Join(got, ",") != "10001,10002,10003,10004,10005,10006,10007" {
			t.Errorf("issues %v", got)
		}
		if n := s.Requests(jira.PathSearchJQL); n != 3 {
			t.Errorf("%d requests", n)
		}
	})
	t.Run("body", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jsonAnswer(200, `{"issues":[{"id":"1"}],"nextPageToken":"t2","isLast":false}`))
		long := strings.Repeat("customfield_10000,", 500)
		p, err := newClient(t, srv.URL, nil).SearchJQLPost(context.Background(), jira.SearchRequest{
			JQL: "project = SEI", MaxResults: 100, Fields: strings.Split(long, ","), Expand: []string{"changelog", "names"}, NextPageToken: "t1",
		})
		if err != nil || p.NextPageToken != "t2" || p.IsLast || len(p.Issues) != 1 {
			t.Fatalf("page %+v, err %v", p, err)
		}
		r := srv.requests()[0]
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if r.Method != http.MethodPost || r.Path != jira.PathSearchJQL || r.RawQuery != "" ||
			body["jql"] != "project = SEI" || body["maxResults"] != 100.0 || body["expand"] != "changelog,names" ||
			body["nextPageToken"] != "t1" || len(body["fields"].([]any)) != 501 {
			t.Errorf("%s %s?%s %v", r.Method, r.Path, r.RawQuery, body)
		}
		// Unset parts are left out, not sent empty.
		srv = serve(t, jsonAnswer(200, `{"issues":[]}`))
		p, err = newClient(t, srv.URL, nil).SearchJQLPost(context.Background(), jira.SearchRequest{JQL: "project = SEI"})
		if err != nil || !p.IsLast || string(srv.requests()[0].Body) != `{"jql":"project = SEI"}` {
			t.Errorf("body %s, page %+v, err %v", srv.requests()[0].Body, p, err)
		}
	})
}

func TestFields(t *testing.T) {
	t.Parallel()
	srv := serve(t, jsonAnswer(200, `[
		{"id":"summary","key":"summary","name":"Summary","custom":false,"orderable":true,"schema":{"type":"string","system":"summary"}},
		{"id":"customfield_10020","key":"customfield_10020","name":"Sprint","custom":true,"schema":{"type":"array","items":"json","custom":"com.pyxis.greenhopper.jira:gh-sprint","customId":10020}},
		{"id":"issuekey","key":"issuekey","name":"Key","custom":false}
	]`))
	fields, err := newClient(t, srv.URL, nil).Fields(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []jira.Field{
		{ID: "summary", Key: "summary", Name: "Summary", Schema: &jira.FieldSchema{Type: "string", System: "summary"}},
		{ID: "customfield_10020", Key: "customfield_10020", Name: "Sprint", Custom: true, Schema: &jira.FieldSchema{Type: "array", Items: "json", Custom: "com.pyxis.greenhopper.jira:gh-sprint", CustomID: 10020}},
		{ID: "issuekey", Key: "issuekey", Name: "Key"},
	}
	if len(fields) != 3 || fields[2].Schema != nil || *fields[0].Schema != *want[0].Schema || *fields[1].Schema != *want[1].Schema || fields[1].Name != "Sprint" || !fields[1].Custom {
		t.Errorf("fields = %+v", fields)
	}
	if r := srv.requests()[0]; r.Path != jira.PathFields || r.Method != http.MethodGet {
		t.Errorf("%s %s", r.Method, r.Path)
	}
}

func TestProjects(t *testing.T) {
	t.Parallel()
	all := []jira.Project{
		{ID: "10000", Key: "SEI", Name: "Insights"}, {ID: "10001", Key: "OPS", Name: "Operations"},
		{ID: "10002", Key: "WEB", Name: "Web"}, {ID: "10003", Key: "APP", Name: "App"}, {ID: "10004", Key: "DOC", Name: "Docs"},
	}
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		start := intParam(r, "startAt", 0)
		end := min(start+2, len(all)) // Jira pages by its own size
		writeJSON(w, map[string]any{"startAt": start, "maxResults": 2, "total": len(all), "isLast": end == len(all), "values": all[start:end]})
	})
	got, err := newClient(t, srv.URL, nil).Projects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Errorf("projects = %v", got)
	}
	var starts []string
	for _, r := range srv.requests() {
		starts = append(starts, r.Path+"?"+r.Query.Get("startAt"))
	}
	if strings.Join(starts, " ") != "/rest/api/3/project/search?0 /rest/api/3/project/search?2 /rest/api/3/project/search?4" {
		t.Errorf("calls %v", starts)
	}
}

// changelog serves an issue's changelog of n entries in pages of at most 2.
func changelog(issue string, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != jira.IssuePath(issue, "changelog") {
			http.NotFound(w, r)
			return
		}
		start := intParam(r, "startAt", 0)
		end := min(start+min(2, intParam(r, "maxResults", 100)), n)
		var values []map[string]any
		for i := start; i < end; i++ {
			values = append(values, map[string]any{
				"id":      strconv.Itoa(100 + i),
				"author":  map[string]any{"accountId": "557058:ada", "displayName": "Ada"},
				"created": fmt.Sprintf("2024-05-0%dT09:30:00.000+0200", i+1),
				"items": []map[string]any{{
					"field": "status", "fieldtype": "jira", "fieldId": "status",
					"from": "1", "fromString": "To Do", "to": "3", "toString": "In Progress",
				}},
			})
		}
		writeJSON(w, map[string]any{"startAt": start, "maxResults": 2, "total": n, "isLast": end >= n, "values": values})
	}
}

func TestIssueChangelog(t *testing.T) {
	t.Parallel()
	srv := serve(t, changelog("SEI-1", 5))
	c := newClient(t, srv.URL, nil)
	p, err := c.IssueChangelog(context.Background(), "SEI-1", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Values[0]
	if len(p.Values) != 2 || p.IsLast || p.Total != 5 || h.ID != "100" || h.Author.AccountID != "557058:ada" ||
		!h.Created.Equal(time.Date(2024, 5, 1, 7, 30, 0, 0, time.UTC)) ||
		h.Items[0] != (jira.ChangeItem{Field: "status", FieldType: "jira", FieldID: "status", From: "1", FromString: "To Do", To: "3", ToString: "In Progress"}) {
		t.Errorf("page = %+v", p)
	}

	// From an offset to the end, following the pages Jira chose.
	all, err := c.AllIssueChangelog(context.Background(), "SEI-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range all {
		got = append(got, h.ID)
	}
	if strings.Join(got, ",") != "101,102,103,104" {
		t.Errorf("histories %v", got)
	}

	// An ID that would change the path is refused before any request.
	before := len(srv.requests())
	for _, bad := range []string{"", "../../myself", "SEI-1?x=1", "SEI 1", "a/b"} {
		if _, err := c.IssueChangelog(context.Background(), bad, 0, 0); err == nil {
			t.Errorf("issue %q accepted", bad)
		}
	}
	if len(srv.requests()) != before {
		t.Error("a bad issue ID reached the server")
	}
}

func TestIssueComments(t *testing.T) {
	t.Parallel()
	adf := `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Looks good"}]}]}`
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		start, n := intParam(r, "startAt", 0), 5
		end := min(start+2, n)
		var cs []json.RawMessage
		for i := start; i < end; i++ {
			cs = append(cs, json.RawMessage(fmt.Sprintf(`{"id":"%d","author":{"accountId":"557058:bob"},"body":%s,"created":"2024-05-01T09:30:00.000+0000","updated":"2024-05-02T09:30:00.000+0000"}`, 200+i, adf)))
		}
		// No isLast here: Jira's comment page does not have one.
		writeJSON(w, map[string]any{"startAt": start, "maxResults": 2, "total": n, "comments": cs})
	})
	c := newClient(t, srv.URL, nil)
	p, err := c.IssueComments(context.Background(), "10001", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	cm := p.Comments[0]
	if len(p.Comments) != 2 || p.IsLast || p.Total != 5 || cm.ID != "200" || cm.Author.AccountID != "557058:bob" || string(cm.Body) != adf ||
		!cm.Updated.Equal(time.Date(2024, 5, 2, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("page = %+v", p)
	}
	if r := srv.requests()[0]; r.Path != "/rest/api/3/issue/10001/comment" || r.Query.Get("orderBy") != "created" || r.Query.Get("maxResults") != "2" {
		t.Errorf("request %s?%s", r.Path, r.RawQuery)
	}
	all, err := c.AllIssueComments(context.Background(), "10001", 0)
	if err != nil || len(all) != 5 || all[4].ID != "204" {
		t.Errorf("%d comments, err %v", len(all), err)
	}
	last, err := c.IssueComments(context.Background(), "10001", 4, 2)
	if err != nil || !last.IsLast || len(last.Comments) != 1 {
		t.Errorf("last page %+v, err %v", last, err)
	}
}

// TestLimiterEndToEnd drives a client's Limiter through a site's answers:
// halved by NearLimit and by a 429, then recovering under load, never
// letting more requests fly than it allows.
func TestLimiterEndToEnd(t *testing.T) {
	t.Parallel()
	var (
		calls, inFlight, peak atomic.Int64
		lim                   = jira.NewLimiter(jira.LimiterConfig{Initial: 4, Max: 6, IncreaseAfter: 5})
		mu                    sync.Mutex
		overLimit             []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// The limit only falls on an answer, and none is given here
		// before this check, so a request over it is the Limiter's fault.
		if l := lim.Limit(); int(n) > l {
			mu.Lock()
			overLimit = append(overLimit, fmt.Sprintf("%d in flight, limit %d", n, l))
			mu.Unlock()
		}
		time.Sleep(time.Millisecond)
		// Leave before answering: once answered, the slot is the next
		// request's.
		inFlight.Add(-1)
		switch calls.Add(1) {
		case 1:
			w.Header().Set("X-RateLimit-NearLimit", "true")
		case 2:
			jiraErr(429, "Rate limit exceeded.", "Retry-After: 1")(w, r)
			return
		}
		w.Write([]byte(`{"accountId":"557058:app"}`))
	}))
	t.Cleanup(srv.Close)

	c := newClient(t, srv.URL, nil, jira.WithLimiter(lim))
	ctx := context.Background()

	if _, err := c.Myself(ctx); err != nil || lim.Limit() != 2 {
		t.Fatalf("after NearLimit: limit %d, err %v; want 2", lim.Limit(), err)
	}
	if _, err := c.Myself(ctx); err != nil || lim.Limit() != 1 {
		t.Fatalf("after a 429: limit %d, err %v; want 1", lim.Limit(), err)
	}
	if st := c.Stats(); st.NearLimit != 1 || st.RateLimited != 1 || st.Retries != 1 {
		t.Errorf("stats %+v", st)
	}

	// Eight workers keep the limit full; it climbs back, one slot a window.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := c.Myself(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := lim.Limit(); got != 6 {
		t.Errorf("limit after 200 successes under load = %d, want the maximum 6", got)
	}
	if lim.InFlight() != 0 || peak.Load() > 6 {
		t.Errorf("in flight %d, peak %d", lim.InFlight(), peak.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overLimit) > 0 {
		t.Errorf("requests over the limit: %v", overLimit)
	}
	if st := c.Stats(); st.QueueWait <= 0 {
		t.Errorf("no queueing recorded: %+v", st)
	}
}
