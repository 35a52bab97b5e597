package jirasim_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// dcSite is a generated Data Center site with a user "sei.bot" who may
// call with password "pw" and personal access token pat.
func dcSite(t *testing.T, n int, opts ...jirasim.SiteOption) (s *jirasim.Site, pat string) {
	t.Helper()
	s = jirasim.NewDataCenterSite(opts...)
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(n)
	spec.Now = simNow
	if err := s.Generate(7, spec); err != nil {
		t.Fatal(err)
	}
	s.AddDCUser("sei.bot", "SEI Bot", "sei.bot@example.com")
	s.SetPassword("sei.bot", "pw")
	return s, s.IssuePAT("sei.bot")
}

// do sends a request with an Authorization header and returns the reply.
func do(t *testing.T, h *http.Client, method, rawURL, auth string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if h == nil {
		h = http.DefaultClient
	}
	resp, err := h.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

type dcPage struct {
	StartAt, MaxResults, Total int
	Issues                     []rawIssue
}

func TestDataCenterSearch(t *testing.T) {
	t.Parallel()
	s, pat := dcSite(t, 1200)
	s.SetDCMaxResults(100)
	s.SetResultWindow(1000)
	bearer := "Bearer " + pat
	search := func(q url.Values) (reply, dcPage) {
		r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/2/search?"+q.Encode(), bearer, nil)
		var p dcPage
		if r.status == 200 {
			if err := json.Unmarshal([]byte(r.body), &p); err != nil {
				t.Fatal(err)
			}
		}
		return r, p
	}

	// The server grants its own maximum and says so; every page has the total.
	r, p := search(url.Values{"jql": {"ORDER BY id ASC"}, "maxResults": {"500"}, "fields": {"summary,assignee"}, "expand": {"changelog"}})
	if r.status != 200 || p.MaxResults != 100 || len(p.Issues) != 100 || p.Total != 1200 || r.header.Get("X-AUSERNAME") != "sei.bot" {
		t.Fatalf("%d max %d, %d issues of %d, X-AUSERNAME %q: %.300s", r.status, p.MaxResults, len(p.Issues), p.Total, r.header.Get("X-AUSERNAME"), r.body)
	}
	// Users by key and name with email; no accountId; the whole changelog.
	var withAssignee rawIssue
	for _, is := range p.Issues {
		if string(is.Fields["assignee"]) != "null" {
			withAssignee = is
			break
		}
	}
	u := field[map[string]any](t, withAssignee.Fields["assignee"])
	if _, ok := u["accountId"]; ok || !strings.HasPrefix(u["key"].(string), "JIRAUSER") || u["name"] == "" {
		t.Errorf("assignee = %v", u)
	}
	if !strings.Contains(r.body, `"emailAddress":`) || strings.Contains(r.body, "/rest/api/3/") {
		t.Errorf("a Data Center answer shows no email or links to API v3: %.500s", r.body)
	}
	for _, is := range p.Issues {
		if is.Changelog == nil || is.Changelog.Total != len(is.Changelog.Histories) {
			t.Fatalf("%s: changelog embedded partly", is.Key)
		}
	}
	// maxResults=0 counts.
	if _, p := search(url.Values{"jql": {"updated >= 0"}, "maxResults": {"0"}}); p.Total != 1200 || len(p.Issues) != 0 {
		t.Errorf("count: %d issues of %d", len(p.Issues), p.Total)
	}
	// The result window: startAt + maxResults past it is refused and counted.
	if r, _ := search(url.Values{"jql": {"ORDER BY id"}, "startAt": {"900"}, "maxResults": {"100"}}); r.status != 200 {
		t.Errorf("a page ending at the window: %d %s", r.status, r.body)
	}
	r, _ = search(url.Values{"jql": {"ORDER BY id"}, "startAt": {"901"}, "maxResults": {"100"}})
	if r.status != 400 || !strings.Contains(r.body, "Search limit exceeded") || !strings.Contains(r.body, "1,001 results") || s.WindowRefusals() != 1 {
		t.Errorf("past the window: %d %s, refusals %d", r.status, r.body, s.WindowRefusals())
	}
	// POST, and /rest/api/latest.
	r = do(t, nil, http.MethodPost, s.BaseURL+"/rest/api/latest/search", bearer,
		map[string]any{"jql": "id > 10100 ORDER BY id", "startAt": 5, "maxResults": 2, "fields": []string{"id"}})
	if r.status != 200 || !strings.Contains(r.body, `"id":"10107"`) || !strings.Contains(r.body, `"startAt":5`) {
		t.Errorf("POST latest: %d %s", r.status, r.body)
	}
}

func TestDataCenterAuth(t *testing.T) {
	t.Parallel()
	s, pat := dcSite(t, 10)
	me := s.BaseURL + "/rest/api/2/myself"
	basic := func(u, p string) string {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	r := do(t, nil, http.MethodGet, me, basic("sei.bot", "pw"), nil)
	if r.status != 200 || !strings.Contains(r.body, `"timeZone":"Etc/UTC"`) || !strings.Contains(r.body, `"name":"sei.bot"`) {
		t.Fatalf("basic: %d %s", r.status, r.body)
	}
	if r := do(t, nil, http.MethodGet, me, "Bearer "+pat, nil); r.status != 200 {
		t.Fatalf("PAT: %d %s", r.status, r.body)
	}
	for name, auth := range map[string]string{"wrong password": basic("sei.bot", "nope"), "unknown PAT": "Bearer nope", "none": ""} {
		r := do(t, nil, http.MethodGet, me, auth, nil)
		if r.status != 401 || r.header.Get("X-AUSERNAME") != "anonymous" {
			t.Errorf("%s: %d %v", name, r.status, r.header)
		}
	}
	// Revoked at once; a changed session may answer 404 as anonymous.
	s.RevokePAT(pat)
	if r := do(t, nil, http.MethodGet, me, "Bearer "+pat, nil); r.status != 401 || r.header.Get("X-AUSERNAME") != "anonymous" {
		t.Errorf("revoked PAT: %d", r.status)
	}
	s.SetAnonymousStatus(http.StatusNotFound)
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/2/search?jql=ORDER+BY+id", "Bearer "+pat, nil); r.status != 404 || r.header.Get("X-AUSERNAME") != "anonymous" {
		t.Errorf("expired session: %d %v", r.status, r.header)
	}
	// Cloud's API is not there.
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/3/search/jql?jql=id>0", basic("sei.bot", "pw"), nil); r.status != 404 {
		t.Errorf("v3 on Data Center: %d", r.status)
	}
}

func TestDataCenterADFS(t *testing.T) {
	t.Parallel()
	s, _ := dcSite(t, 10)
	s.EnableADFS(jirasim.ADFSConfig{ClientID: "sei", Resource: "https://jira.example.com", TokenTTL: 2 * time.Second})
	s.SetADFSPassword("sei.bot", "adfs-pw")
	grant := func(form url.Values) reply {
		req, _ := http.NewRequest(http.MethodPost, s.ADFSURL(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{status: resp.StatusCode, body: string(b)}
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"sei"}, "resource": {"https://jira.example.com"}, "username": {"sei.bot"}, "password": {"adfs-pw"}}
	r := grant(form)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(r.body), &tok); r.status != 200 || err != nil || tok.TokenType != "bearer" || tok.ExpiresIn != 2 {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/2/myself", "Bearer "+tok.AccessToken, nil); r.status != 200 {
		t.Fatalf("ADFS token: %d %s", r.status, r.body)
	}
	for k, v := range map[string]string{"password": "wrong", "client_id": "other", "resource": "urn:other", "grant_type": "client_credentials"} {
		f := url.Values{}
		for fk, fv := range form {
			f[fk] = fv
		}
		f.Set(k, v)
		want := map[string]string{"password": "invalid_grant", "client_id": "invalid_client", "resource": "invalid_resource", "grant_type": "unsupported_grant_type"}[k]
		if r := grant(f); r.status != 400 || !strings.Contains(r.body, `"error":"`+want+`"`) {
			t.Errorf("%s=%s: %d %s", k, v, r.status, r.body)
		}
	}
	if s.ADFSTokensIssued() != 1 || s.ADFSTokenRequests() != 5 {
		t.Errorf("issued %d of %d", s.ADFSTokensIssued(), s.ADFSTokenRequests())
	}
	s.RevokeADFSTokens()
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/2/myself", "Bearer "+tok.AccessToken, nil); r.status != 401 {
		t.Errorf("revoked ADFS token: %d", r.status)
	}
}

func TestDataCenterTLSAndRateLimit(t *testing.T) {
	t.Parallel()
	s, pat := dcSite(t, 10, jirasim.WithTLS())
	if !strings.HasPrefix(s.BaseURL, "https://") {
		t.Fatal(s.BaseURL)
	}
	_, err := http.Get(s.BaseURL + "/rest/api/2/myself")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Server.Certificate())
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s.SetRateLimit(2, 3)
	var got []reply
	for range 4 {
		got = append(got, do(t, trusting, http.MethodGet, s.BaseURL+"/rest/api/2/myself", "Bearer "+pat, nil))
	}
	h := got[0].header
	if got[0].status != 200 || h.Get("X-RateLimit-Limit") != "3" || h.Get("X-RateLimit-Remaining") != "2" ||
		h.Get("X-RateLimit-FillRate") != "2" || h.Get("X-RateLimit-Interval-Seconds") != "1" || h.Get("Retry-After") != "0" {
		t.Errorf("first answer: %d %v", got[0].status, h)
	}
	if last := got[3]; last.status != 429 || last.header.Get("Retry-After") != "1" || last.header.Get("X-RateLimit-Reset") != "" {
		t.Errorf("fourth answer: %d %v", last.status, last.header)
	}
}

// TestDataCenterGroundTruth: a Data Center site generated from the same
// seed holds the same issues, transitions and comments as a Cloud one;
// only user ids differ (keys), and they map one to one.
func TestDataCenterGroundTruth(t *testing.T) {
	t.Parallel()
	dc, pat := dcSite(t, 300)
	cloud := genSite(t, 7, 300, nil)
	a, b := cloud.GroundTruth(), dc.GroundTruth()
	toKey := map[string]string{}
	byName := map[string]jirasim.TruthUser{}
	for _, u := range b.Users {
		byName[u.DisplayName+"|"+u.Email] = u
	}
	for _, u := range a.Users {
		d, ok := byName[u.DisplayName+"|"+u.Email]
		if !ok && u.AccountType == "app" {
			d, ok = byName["Automation for Jira|"]
		}
		if !ok {
			t.Fatalf("Cloud user %s (%s) has no Data Center twin", u.AccountID, u.DisplayName)
		}
		toKey[u.AccountID] = d.AccountID
		if !strings.HasPrefix(d.AccountID, "JIRAUSER") && d.AccountID != jirasim.DCAutomationKey || d.VisibleEmail != d.Email {
			t.Errorf("Data Center user %+v", d)
		}
	}
	mapped := slices.Clone(a.Issues)
	for i := range mapped {
		is := &mapped[i]
		is.Assignee, is.Reporter = toKey[is.Assignee], toKey[is.Reporter]
		is.Transitions = slices.Clone(is.Transitions)
		for j := range is.Transitions {
			is.Transitions[j].Author = toKey[is.Transitions[j].Author]
		}
		is.Comments = slices.Clone(is.Comments)
		for j := range is.Comments {
			is.Comments[j].Author = toKey[is.Comments[j].Author]
		}
	}
	if d := cmp.Diff(mapped, b.Issues, cmpopts.IgnoreFields(jirasim.TruthComment{}, "Body")); d != "" {
		t.Fatalf("Data Center vs Cloud (-cloud +dc):\n%s", d)
	}
	// Comment bodies are text on Data Center, the text of Cloud's ADF.
	for i := range a.Issues {
		for j, c := range a.Issues[i].Comments {
			if got := b.Issues[i].Comments[j].Body; got != c.Body {
				t.Fatalf("%s comment %d: %q, Cloud %q", a.Issues[i].Key, j, got, c.Body)
			}
		}
	}
	// Mutations work on Data Center too, with keys.
	key := b.Users[0].AccountID
	if _, err := dc.UpdateIssue("10001", func(f map[string]any) { f["assignee"] = key }); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.AddComment("10001", key, "hello\nworld"); err != nil {
		t.Fatal(err)
	}
	r := do(t, nil, http.MethodGet, dc.BaseURL+"/rest/api/2/issue/10001?expand=changelog", "Bearer "+pat, nil)
	if r.status != 200 || !strings.Contains(r.body, `"body":"hello\nworld"`) || !strings.Contains(r.body, `"to":"`+key+`"`) {
		t.Errorf("mutated issue: %d %.2000s", r.status, r.body)
	}
	gt := dc.GroundTruth()
	if gt.Issues[0].Assignee != key {
		t.Errorf("assignee %q, want %q", gt.Issues[0].Assignee, key)
	}
	if r := do(t, nil, http.MethodGet, dc.BaseURL+"/rest/api/2/user?key="+key, "Bearer "+pat, nil); r.status != 200 || !strings.Contains(r.body, `"key":"`+key+`"`) {
		t.Errorf("user by key: %d %s", r.status, r.body)
	}
	if r := do(t, nil, http.MethodGet, dc.BaseURL+"/rest/api/2/user?username=nobody", "Bearer "+pat, nil); r.status != 404 {
		t.Errorf("unknown user: %d", r.status)
	}
	if r := do(t, nil, http.MethodGet, dc.BaseURL+"/rest/api/2/project", "Bearer "+pat, nil); r.status != 200 || !strings.HasPrefix(r.body, "[") {
		t.Errorf("projects: %d %s", r.status, r.body)
	}
}

// TestCloudAPITokenEmails: a person's API token sees emails in /user/bulk
// as profile visibility allows, and may not use the email API.
func TestCloudAPITokenEmails(t *testing.T) {
	t.Parallel()
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(200)
	spec.Now, spec.Users = simNow, 60
	if err := s.Generate(3, spec); err != nil {
		t.Fatal(err)
	}
	s.AddBasicUser("557058:ada", "Ada", "ada@example.com", "tok")
	auth := "Basic " + base64Std("ada@example.com:tok")
	gt := s.GroundTruth()
	var ids []string
	hidden := 0
	want := map[string]string{}
	for _, u := range gt.Users[:min(100, len(gt.Users))] {
		ids = append(ids, u.AccountID)
		want[u.AccountID] = u.VisibleEmail
		if u.Email != "" && u.VisibleEmail == "" {
			hidden++
		}
	}
	if hidden == 0 {
		t.Fatal("no hidden email among the users")
	}
	r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/3/user/bulk?"+url.Values{"accountId": ids, "maxResults": {"100"}}.Encode(), auth, nil)
	var page struct {
		Values []struct{ AccountID, EmailAddress string }
	}
	if err := json.Unmarshal([]byte(r.body), &page); r.status != 200 || err != nil || len(page.Values) != len(ids) {
		t.Fatalf("%d %v %.300s", r.status, err, r.body)
	}
	for _, v := range page.Values {
		if v.EmailAddress != want[v.AccountID] {
			t.Errorf("%s: email %q, want %q", v.AccountID, v.EmailAddress, want[v.AccountID])
		}
	}
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/3/user/email/bulk?accountId="+ids[0], auth, nil); r.status != 403 {
		t.Errorf("email API for an API token: %d", r.status)
	}
	s.RevokeAPIToken("ada@example.com")
	if r := do(t, nil, http.MethodGet, s.BaseURL+"/rest/api/3/myself", auth, nil); r.status != 401 {
		t.Errorf("revoked API token: %d", r.status)
	}
}
