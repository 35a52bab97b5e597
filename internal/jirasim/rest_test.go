package jirasim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

var atlassian = sync.OnceValues(jirasim.New)

func newSite(t *testing.T, app *jirasim.App, opts ...jirasim.SiteOption) *jirasim.Site {
	t.Helper()
	atl, err := atlassian()
	if err != nil {
		t.Fatal(err)
	}
	if app == nil {
		app = &jirasim.App{Key: "io.sei.test"}
	}
	s := atl.NewSite(app, opts...)
	t.Cleanup(s.Close)
	return s
}

type reply struct {
	status int
	header http.Header
	body   string
}

// call sends a request to the site, signed as the app with secret unless
// secret is "" (then auth, if any, is the Authorization header).
func call(t *testing.T, s *jirasim.Site, method, path string, q url.Values, secret, auth string) reply {
	t.Helper()
	u, err := url.Parse(s.BaseURL + path)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		tok, err := atlassianjwt.Sign(s.App.Key, []byte(secret), method, u, s.ContextPath, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		auth = "JWT " + tok
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (r reply) want(t *testing.T, status int, substr string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, substr) {
		t.Fatalf("got %d %s, want %d with %q", r.status, r.body, status, substr)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil, jirasim.WithContextPath("jira/"))
	if s.ContextPath != "/jira" || !strings.HasSuffix(s.BaseURL, "/jira") {
		t.Fatalf("context path %q, base %q", s.ContextPath, s.BaseURL)
	}
	r := call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "", "")
	r.want(t, 401, `{"errorMessages":["`+jirasim.MsgUnauthenticated+`"],"errors":{}}`)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "another-secret", "").want(t, 401, jirasim.MsgUnauthenticated)
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, s.SharedSecret, "").want(t, 200, `"accountType":"app"`)

	// The token may also come as the jwt query parameter; its qsh covers
	// the other parameters.
	u, _ := url.Parse(s.BaseURL + "/rest/api/3/search/jql?jql=updated+%3E%3D+-1d&maxResults=1")
	tok, _ := atlassianjwt.Sign(s.App.Key, []byte(s.SharedSecret), http.MethodGet, u, s.ContextPath, time.Now())
	q := u.Query()
	q.Set("jwt", tok)
	call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, "", "").want(t, 200, `"isLast":true`)
	q.Set("maxResults", "2")
	call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, "", "").want(t, 401, jirasim.MsgUnauthenticated)

	// Outside the context path, and outside /rest/, there is nothing.
	resp, err := http.Get(s.Server.URL + "/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("outside the context path: %d", resp.StatusCode)
	}
	call(t, s, http.MethodGet, "/secure/Dashboard.jspa", nil, s.SharedSecret, "").want(t, 404, "")
	call(t, s, http.MethodGet, "/rest/api/3/nothing", nil, s.SharedSecret, "").want(t, 404, "null for uri: "+s.BaseURL+"/rest/api/3/nothing")
	call(t, s, http.MethodDelete, "/rest/api/3/myself", nil, s.SharedSecret, "").want(t, 405, "")

	if n := s.Requests("/rest/api/3/myself"); n != 4 {
		t.Errorf("counted %d calls to myself, want 4", n)
	}
	s.ResetRequests()
	if n := s.Requests("/rest/api/3/myself"); n != 0 {
		t.Errorf("counted %d calls after reset", n)
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	s.AddBasicUser("557058:ada", "Ada", "ada@example.com", "tok-1")
	basic := func(user, pw string) string {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, pw)
		return req.Header.Get("Authorization")
	}
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "", basic("ada@example.com", "tok-1")).want(t, 200, `"emailAddress":"ada@example.com"`)
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "", basic("ada@example.com", "tok-2")).want(t, 401, "")
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "", basic("bob@example.com", "tok-1")).want(t, 401, "")
}

func TestLifecycleRevokesREST(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(app.Close)
	s := newSite(t, &jirasim.App{BaseURL: app.URL, Key: "io.sei.test", Lifecycle: map[string]string{
		"installed": "/installed", "uninstalled": "/uninstalled",
	}})
	ctx := context.Background()
	send := func(f func(context.Context) (*http.Response, error)) {
		resp, err := f(ctx)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	send(s.Install)
	old := s.SharedSecret
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, old, "").want(t, 200, `"deploymentType":"Cloud"`)
	send(s.Uninstall)
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, old, "").want(t, 401, "")
	send(s.Reinstall)
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, old, "").want(t, 401, "")
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, s.SharedSecret, "").want(t, 200, "")
}

func TestSearch(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	if err := s.AddIssue(json.RawMessage(`{"id":"1","key":"A-1","fields":{"summary":"one","status":{"name":"Done"}},"changelog":{"histories":[]},"renderedFields":{"x":1}}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddIssue(json.RawMessage(`{"id":2,"key":"A-2","self":"https://elsewhere/2","fields":{"summary":"two"}}`)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`[]`, `{"key":"A-3"}`, `{"id":"3","fields":[]}`, `nope`, `{"id":"x-1"}`, `{"id":"1","key":"B-1"}`, `{"id":"9","key":"A-2"}`} {
		if err := s.AddIssue(json.RawMessage(bad)); err == nil {
			t.Errorf("AddIssue(%s) accepted", bad)
		}
	}
	get := func(q url.Values) reply {
		return call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, s.SharedSecret, "")
	}

	// Jira Cloud refuses a query without a restriction.
	get(url.Values{"jql": {""}}).want(t, 400, jirasim.MsgUnboundedJQL)
	get(url.Values{"jql": {"order by key"}}).want(t, 400, jirasim.MsgUnboundedJQL)
	s.AllowUnboundedJQL(true)
	get(url.Values{"jql": {"ORDER BY id"}}).want(t, 200, `{"issues":[{"id":"1"},{"id":"2"}],"isLast":true}`)
	s.AllowUnboundedJQL(false)

	r := get(url.Values{"jql": {"project = A order by key"}, "fields": {"*all,-status"}, "expand": {"changelog,renderedFields"}})
	r.want(t, 200, `"changelog":{"startAt":0,"maxResults":0,"total":0,"histories":[]}`)
	r.want(t, 200, `"renderedFields":{"x":1}`)
	var page struct {
		Issues []struct {
			ID, Key, Self string
			Fields        map[string]any
		}
	}
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Issues) != 2 || page.Issues[0].Fields["status"] != nil || page.Issues[0].Fields["summary"] != "one" ||
		page.Issues[0].Self != s.BaseURL+"/rest/api/3/issue/1" || page.Issues[1].Self != "https://elsewhere/2" || page.Issues[1].ID != "2" {
		t.Errorf("page = %+v", page)
	}
	if strings.Contains(get(url.Values{"jql": {"key = A-1"}, "fields": {"summary"}}).body, "changelog") {
		t.Error("changelog returned without expand")
	}

	r = get(url.Values{"jql": {"id >= 1 ORDER BY id"}, "maxResults": {"1"}, "fields": {"key"}})
	r.want(t, 200, `"issues":[{"id":"1","key":"A-1"}]`)
	var first struct{ NextPageToken string }
	_ = json.Unmarshal([]byte(r.body), &first)
	get(url.Values{"jql": {"id >= 1 ORDER BY id"}, "nextPageToken": {first.NextPageToken}}).want(t, 200, `{"issues":[{"id":"2"}],"isLast":true}`)
	get(url.Values{"jql": {"id >= 1 ORDER BY created"}, "nextPageToken": {first.NextPageToken}}).want(t, 400, "next page token")
	get(url.Values{"jql": {"project = NOPE"}}).want(t, 400, "The value 'NOPE' does not exist for the field 'project'.")
	get(url.Values{"jql": {"project = A OR id = 1"}}).want(t, 400, "Error in the JQL Query")
	get(url.Values{"jql": {"id >= 1"}, "maxResults": {"many"}}).want(t, 400, "maxResults")
	call(t, s, http.MethodGet, "/rest/api/3/search", url.Values{"jql": {"id >= 1"}}, s.SharedSecret, "").want(t, 410, "/rest/api/3/search/jql")

	s.SetFault(jirasim.RESTFaultSearchForbidden)
	get(nil).want(t, 403, jirasim.MsgSearchForbidden)
	s.SetFault(jirasim.RESTFaultNone)
	if err := s.SetIssues(nil); err != nil {
		t.Fatal(err)
	}
	get(url.Values{"jql": {"project = A"}}).want(t, 200, `{"issues":[],"isLast":true}`)
}

func TestEmailBulkAndFaults(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	s.AddUser("a", "Ada", "ada@example.com")
	s.AddUser("h", "Hidden", "")
	email := func(q url.Values) reply {
		return call(t, s, http.MethodGet, "/rest/api/3/user/email/bulk", q, s.SharedSecret, "")
	}
	email(url.Values{"accountId": {"a", "h", "x", "a"}}).want(t, 200, `[{"accountId":"a","email":"ada@example.com"}]`)
	email(nil).want(t, 400, "accountId")

	s.SetFault(jirasim.RESTFaultEmailForbidden)
	email(url.Values{"accountId": {"a"}}).want(t, 403, jirasim.MsgEmailNotApproved)
	s.SetFault(jirasim.RESTFaultEmailNotApproved)
	email(url.Values{"accountId": {"a"}}).want(t, 400, jirasim.MsgEmailNotApproved)

	s.SetFault(jirasim.RESTFaultRateLimited)
	s.SetRetryAfter(1500 * time.Millisecond)
	r := call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, s.SharedSecret, "")
	r.want(t, 429, jirasim.MsgRateLimited)
	if r.header.Get("Retry-After") != "2" || r.header.Get("RateLimit-Reason") != "jira-burst-based" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("429 headers %v", r.header)
	}
	// Credentials are checked first: a stranger is not told about limits.
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, "", "").want(t, 401, "")

	s.SetFault(jirasim.RESTFaultUnauthorized)
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, s.SharedSecret, "").want(t, 401, "")
	s.SetFault(jirasim.RESTFaultServerError)
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, s.SharedSecret, "").want(t, 500, "")

	s.SetFault(jirasim.RESTFaultUnreachable)
	if resp, err := http.Get(s.BaseURL + "/rest/api/3/serverInfo"); err == nil {
		resp.Body.Close()
		t.Errorf("unreachable site answered %d", resp.StatusCode)
	}
}
