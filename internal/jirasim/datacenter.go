package jirasim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Jira Data Center mode. A site made by NewDataCenterSite plays an
// on-premises Jira (API v2) with the same generated data and ground truth
// as a Cloud site, the way a connector meets it:
//
//   - GET and POST /rest/api/2/search (also under /rest/api/latest) pages
//     by startAt and maxResults. The server grants at most its own maximum
//     (jira.search.views.default.max, SetDCMaxResults, default 1000) and
//     says what it granted in maxResults; maxResults=0 answers only the
//     total. Every page carries the query's total.
//   - An OpenSearch-backed Data Center refuses a page that reaches past its
//     result window (index.max_result_window, 10,000): startAt +
//     maxResults > 10,000 answers 400 "Search limit exceeded…" (Atlassian's
//     KB "Handling JQL REST API searching exceeding max_result_window";
//     some versions answer 500 instead). WindowRefusals counts them.
//   - expand=changelog embeds the whole changelog and fields.comment every
//     comment: Data Center does not truncate them.
//   - Users are keyed as Data Center keys them: "key" (JIRAUSER10001, the
//     ground truth's "accountId" on such a site), "name" (the login) and
//     "emailAddress"; there is no accountId. Changelog items of user
//     fields carry keys in from/to. Comment and description bodies are
//     text, not ADF (the text ADFText reads from the Cloud document).
//   - /rest/api/2/myself (with timeZone), serverInfo (deploymentType
//     DataCenter), field, project (a list, not paged), user?username= or
//     ?key=, issue/{id} and issue/{id}/comment.
//   - Authentication by HTTP Basic (SetPassword) or a Bearer personal
//     access token (AddPAT, IssuePAT), or a Bearer access token from the
//     ADFS token endpoint (EnableADFS). Revocation takes effect at once.
//     A request whose credentials are not accepted is answered as Jira
//     answers an anonymous one: 401 with X-AUSERNAME: anonymous, or 404
//     with it (SetAnonymousStatus): a changed or expired session on an
//     endpoint that shows anonymous users nothing.
//   - Rate limiting (SetRateLimit) sends Data Center's headers on every
//     answer: X-RateLimit-Limit, X-RateLimit-Remaining,
//     X-RateLimit-Interval-Seconds, X-RateLimit-FillRate and Retry-After
//     (0 while tokens remain); a 429 says how long to wait in Retry-After.
//   - WithTLS serves https with a self-signed certificate.

// Defaults of a Data Center site.
const (
	// DCDefaultMaxResults is jira.search.views.default.max: the most
	// issues the search grants per page, whatever maxResults asks.
	DCDefaultMaxResults = 1000
	// DCSearchDefault is the page size when maxResults is absent.
	DCSearchDefault = 50
	// DCResultWindow is OpenSearch's index.max_result_window.
	DCResultWindow = 10000
	// DCAutomationKey is the key of the automation user on a Data Center
	// site (Cloud's AppUserAutomation).
	DCAutomationKey = "automation"
)

// Messages of a Data Center site.
const (
	MsgDCUnauthenticated = "You are not authenticated. Authentication required to perform this operation."
	MsgDCNotFound        = "Issue Does Not Exist"
)

// DCUserKey is the key of the i-th generated user on a Data Center site.
func DCUserKey(i int) string { return "JIRAUSER" + strconv.Itoa(10000+i) }

// dcState is a Data Center site's own state, guarded by Site.mu (the
// counters are atomic).
type dcState struct {
	maxResults int
	window     int
	anonStatus int
	passwords  map[string]string // username -> password
	pats       map[string]string // personal access token -> username
	adfs       *ADFSConfig
	adfsUsers  map[string]string // username -> password at ADFS
	adfsTokens map[string]adfsGrant
	nextKey    int

	refusals, adfsRequests, adfsIssued atomic.Int64
}

type adfsGrant struct {
	username string
	expires  time.Time
}

// NewDataCenterSite starts a Jira Data Center simulator (see the top of
// datacenter.go). It has no Connect app: only Basic, personal access
// tokens and ADFS tokens are accepted, once SetPassword, AddPAT or
// EnableADFS say whose.
func NewDataCenterSite(opts ...SiteOption) *Site {
	s := &Site{ClientKey: newUUID(), TimeZone: "Etc/UTC"}
	s.rest.init()
	s.rest.dcMode = true
	s.rest.st.dc = true
	s.rest.allowUnbounded = true // Data Center runs a search without restriction
	s.rest.embedded = renderLimits{1 << 30, 1 << 30}
	s.rest.dc = &dcState{maxResults: DCDefaultMaxResults, window: DCResultWindow, anonStatus: http.StatusUnauthorized,
		passwords: map[string]string{}, pats: map[string]string{}, adfsUsers: map[string]string{}, adfsTokens: map[string]adfsGrant{}, nextKey: 90000}
	for _, o := range opts {
		o(s)
	}
	s.start()
	return s
}

// NewCloudSite starts a Jira Cloud site without a Connect app: the site a
// person's scripts reach with an Atlassian account's email and API token
// (AddBasicUser). It serves what NewSite serves; a JWT is never accepted.
func NewCloudSite(opts ...SiteOption) *Site {
	s := &Site{ClientKey: newUUID(), TimeZone: "Etc/UTC", AppAccountID: randHex(12)}
	s.rest.init()
	for _, o := range opts {
		o(s)
	}
	s.start()
	return s
}

// WithTLS serves the site over https with a self-signed certificate (for
// 127.0.0.1 and example.com), as httptest.NewTLSServer does: a client
// fails to verify it unless it trusts Server.Certificate() or skips
// verification.
func WithTLS() SiteOption { return func(s *Site) { s.rest.tls = true } }

// start serves the site on its listener, over TLS if asked.
func (s *Site) start() {
	h := http.HandlerFunc(s.serveHTTP)
	if !s.rest.tls {
		s.Server = startServer(h, s.listener)
	} else {
		srv := httptest.NewUnstartedServer(h)
		// A client refusing the certificate is what TLS tests provoke.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		if s.listener != nil {
			_ = srv.Listener.Close()
			srv.Listener = s.listener
		}
		srv.StartTLS()
		s.Server = srv
	}
	s.BaseURL = s.Server.URL + s.ContextPath
}

// isDC reports a Data Center site; fixed when the site is made.
func (s *Site) isDC() bool { return s.rest.dcMode }

// slowDelay is how long slow answers take.
func (s *Site) slowDelay() time.Duration {
	if s.Atlassian == nil {
		return 3 * time.Second
	}
	return s.Atlassian.SlowDelay
}

// SetDCMaxResults sets the most issues a Data Center search grants per
// page (jira.search.views.default.max).
func (s *Site) SetDCMaxResults(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rest.dc != nil {
		s.rest.dc.maxResults = max(n, 1)
	}
}

// SetResultWindow sets the result window past which a Data Center search
// refuses to page (startAt + maxResults > n); DCResultWindow by default.
func (s *Site) SetResultWindow(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rest.dc != nil {
		s.rest.dc.window = max(n, 1)
	}
}

// WindowRefusals is how many searches a Data Center site refused for
// paging past its result window.
func (s *Site) WindowRefusals() int {
	if s.rest.dc == nil {
		return 0
	}
	return int(s.rest.dc.refusals.Load())
}

// SetAnonymousStatus sets how a Data Center site answers a request whose
// credentials it does not accept: 401 (the default, a revoked or wrong
// credential) or 404 (a changed or expired session on an endpoint that
// shows anonymous users nothing). Both carry X-AUSERNAME: anonymous.
func (s *Site) SetAnonymousStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rest.dc != nil {
		s.rest.dc.anonStatus = status
	}
}

// AddDCUser adds a person to a Data Center site and returns their key.
// Their time zone is the site's.
func (s *Site) AddDCUser(username, displayName, email string) string {
	s.mu.Lock()
	s.rest.dc.nextKey++
	key := "JIRAUSER" + strconv.Itoa(s.rest.dc.nextKey)
	tz := s.TimeZone
	s.mu.Unlock()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if k, ok := st.byName[username]; ok {
		return k
	}
	st.addUser(s.BaseURL, simUser{accountID: key, name: username, displayName: displayName, email: email, active: true, timeZone: tz})
	return key
}

// dcUserJSON is a user as Data Center embeds one: name, key, email.
func dcUserJSON(base string, u *simUser) json.RawMessage {
	m := map[string]any{
		"self": base + "/rest/api/2/user?username=" + u.name, "name": u.name, "key": u.accountID,
		"avatarUrls": map[string]string{"48x48": base + "/secure/useravatar?ownerId=" + u.accountID, "24x24": base + "/secure/useravatar?size=small&ownerId=" + u.accountID,
			"16x16": base + "/secure/useravatar?size=xsmall&ownerId=" + u.accountID, "32x32": base + "/secure/useravatar?size=medium&ownerId=" + u.accountID},
		"displayName": u.displayName, "active": u.active, "timeZone": u.timeZone,
	}
	if u.email != "" {
		m["emailAddress"] = u.email
	}
	return mustJSON(m)
}

func (s *Site) dcRoutes() []route {
	p := func(path string) []string { return strings.Split(strings.Trim(path, "/"), "/") }
	get := []string{http.MethodGet}
	return []route{
		{p("/rest/api/2/serverInfo"), get, s.serveServerInfoDC},
		{p("/rest/api/2/myself"), get, s.serveMyselfDC},
		{p("/rest/api/2/search"), []string{http.MethodGet, http.MethodPost}, s.serveSearchDC},
		{p("/rest/api/2/field"), get, s.serveFields},
		{p("/rest/api/2/project"), get, s.serveProjectsDC},
		{p("/rest/api/2/user"), get, s.serveUserDC},
		{p("/rest/api/2/issue/{}"), get, s.serveIssue},
		{p("/rest/api/2/issue/{}/comment"), get, s.serveComments},
	}
}

// dcPath maps /rest/api/latest/… to /rest/api/2/…, as Data Center does.
func dcPath(rel string) string {
	if rest, ok := strings.CutPrefix(rel, "/rest/api/latest/"); ok {
		return "/rest/api/2/" + rest
	}
	return rel
}

// writeDC writes a JSON answer whose self links say /rest/api/2, as Data
// Center's do; the content is shared with Cloud, which says /rest/api/3.
func (s *Site) writeDC(w http.ResponseWriter, status int, b []byte) {
	writeRaw(w, status, bytes.ReplaceAll(b, []byte(s.BaseURL+"/rest/api/3/"), []byte(s.BaseURL+"/rest/api/2/")))
}

func (s *Site) serveServerInfoDC(w http.ResponseWriter, _ *http.Request, _ principal, _ []string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"baseUrl": s.BaseURL, "version": "9.12.15", "versionNumbers": []int{9, 12, 15}, "deploymentType": "DataCenter",
		"buildNumber": 9120015, "buildDate": time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC).Format(JiraTime),
		"serverTime": s.now().In(s.location()).Format(JiraTime), "scmInfo": "1a2b3c4d5e6f", "serverTitle": "Jira",
	})
}

func (s *Site) serveMyselfDC(w http.ResponseWriter, _ *http.Request, who principal, _ []string) {
	u := who.user
	tz := u.timeZone
	if tz == "" {
		tz = s.TimeZone
	}
	out := map[string]any{"self": s.BaseURL + "/rest/api/2/user?username=" + u.name, "key": u.accountID, "name": u.name,
		"emailAddress": u.email, "displayName": u.displayName, "active": u.active, "deleted": false, "timeZone": tz, "locale": "en_US",
		"groups": map[string]any{"size": 1, "items": []any{}}, "applicationRoles": map[string]any{"size": 1, "items": []any{}}, "expand": "groups,applicationRoles"}
	writeJSON(w, http.StatusOK, out)
}

func (s *Site) serveProjectsDC(w http.ResponseWriter, _ *http.Request, _ principal, _ []string) {
	st := s.rest.st
	st.mu.RLock()
	vals := make([]json.RawMessage, 0, len(st.projects))
	for _, p := range st.projects {
		vals = append(vals, p.raw)
	}
	st.mu.RUnlock()
	s.writeDC(w, http.StatusOK, rawArray(vals))
}

// serveUserDC is GET /rest/api/2/user?username=X or ?key=X.
func (s *Site) serveUserDC(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	q := r.URL.Query()
	name, key := q.Get("username"), q.Get("key")
	if name == "" && key == "" {
		jiraError(w, http.StatusBadRequest, "Either the 'username' or the 'key' query parameters need to be provided")
		return
	}
	st := s.rest.st
	st.mu.RLock()
	if key == "" {
		key = st.byName[name]
	}
	u, ok := st.users[key]
	var raw json.RawMessage
	if ok {
		raw = u.raw
	}
	st.mu.RUnlock()
	if !ok {
		what := name
		if what == "" {
			what = key
		}
		jiraError(w, http.StatusNotFound, "The user named '"+what+"' does not exist")
		return
	}
	writeRaw(w, http.StatusOK, raw)
}

// serveSearchDC is GET and POST /rest/api/2/search: startAt paging, the
// server's own page size, the result window.
func (s *Site) serveSearchDC(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	s.mu.Lock()
	fault, maxRes, window, lim := s.rest.fault, s.rest.dc.maxResults, s.rest.dc.window, s.rest.embedded
	s.mu.Unlock()
	if fault == RESTFaultSearchForbidden {
		jiraError(w, http.StatusForbidden, MsgSearchForbidden)
		return
	}
	var (
		jql        string
		startAt    int
		maxResults *int
		fields     []string
		expand     []string
		fieldsSet  bool
	)
	if r.Method == http.MethodPost {
		var p struct {
			JQL        string          `json:"jql"`
			StartAt    int             `json:"startAt"`
			MaxResults *int            `json:"maxResults"`
			Fields     []string        `json:"fields"`
			Expand     json.RawMessage `json:"expand"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
			jiraError(w, http.StatusBadRequest, "Unrecognized request body: expected a JSON object with jql, startAt, maxResults, fields, expand.")
			return
		}
		jql, startAt, maxResults, fields, fieldsSet = p.JQL, p.StartAt, p.MaxResults, p.Fields, p.Fields != nil
		var one string
		var many []string
		switch {
		case len(p.Expand) == 0 || string(p.Expand) == "null":
		case json.Unmarshal(p.Expand, &many) == nil:
			expand = splitList(many)
		case json.Unmarshal(p.Expand, &one) == nil:
			expand = splitList([]string{one})
		}
	} else {
		q := r.URL.Query()
		jql, fields, expand = q.Get("jql"), q["fields"], splitList(q["expand"])
		_, fieldsSet = q["fields"]
		for name, dst := range map[string]*int{"startAt": &startAt} {
			if v := q.Get(name); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					jiraError(w, http.StatusBadRequest, "The value '"+v+"' is invalid for the parameter '"+name+"'.")
					return
				}
				*dst = n
			}
		}
		if v := q.Get("maxResults"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				jiraError(w, http.StatusBadRequest, "The value '"+v+"' is invalid for the parameter 'maxResults'.")
				return
			}
			maxResults = &n
		}
	}
	startAt = max(startAt, 0)
	granted := DCSearchDefault
	if maxResults != nil && *maxResults >= 0 {
		granted = *maxResults
	}
	granted = min(granted, maxRes)
	if startAt+granted > window {
		s.rest.dc.refusals.Add(1)
		jiraError(w, http.StatusBadRequest, fmt.Sprintf("Search limit exceeded. We couldn't complete your search because it requests %s results which exceeded the search platform limit of %s. Try narrowing your search.",
			thousands(startAt+granted), thousands(window)))
		return
	}
	parsed, err := parseJQL(jql)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel := selectFields(fields)
	if !fieldsSet {
		sel.navigable = true // Data Center's default: every navigable field
	}
	c, now := s.genContext(), s.now()
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	q, err := st.bind(parsed, jql, c.loc, now, true)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	slots, total := st.offsetPage(q, startAt, granted)
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"expand":"schema,names","startAt":%d,"maxResults":%d,"total":%d,"issues":[`, startAt, granted, total)
	for i, slot := range slots {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(st.renderIssue(c, slot, sel, expand, lim))
	}
	b.WriteString(`]}`)
	s.writeDC(w, http.StatusOK, b.Bytes())
}

// offsetPage is the query's matches from start, at most limit of them, in
// its order, and how many match in all.
func (st *store) offsetPage(q *jqlQuery, start, limit int) ([]int32, int) {
	var out []int32
	total := 0
	visit := func(slot int32) {
		if total >= start && len(out) < limit {
			out = append(out, slot)
		}
		total++
	}
	if ix, col, lo, hi, ok := st.indexFor(q); ok && q.ids == nil {
		first := func(v, id int64) int {
			pos, _ := slices.BinarySearchFunc(ix, v, func(a int32, _ int64) int { return st.cmpBy(col, a, v, id) })
			return pos
		}
		if !q.order[0].desc {
			for pos := first(lo, -1<<63); pos < len(ix) && col[ix[pos]] <= hi; pos++ {
				if q.match(st, ix[pos]) {
					visit(ix[pos])
				}
			}
		} else {
			for pos := first(hi, 1<<63-1) - 1; pos >= 0 && col[ix[pos]] >= lo; pos-- {
				if q.match(st, ix[pos]) {
					visit(ix[pos])
				}
			}
		}
		return out, total
	}
	all, _ := st.run(q, nil, st.n()+1)
	for _, slot := range all {
		visit(slot)
	}
	return out, total
}

// thousands writes n with comma separators, as Jira's message does.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
