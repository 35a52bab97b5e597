package jirasim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
)

// RESTFault is how a site's REST API misbehaves, on every call until set
// back to RESTFaultNone. (Site.Inject adds faults with a probability or a
// count.)
type RESTFault int

const (
	RESTFaultNone RESTFault = iota
	// RESTFaultUnreachable drops every connection without an answer (a
	// test can also Close the site).
	RESTFaultUnreachable
	// RESTFaultUnauthorized answers 401 to every REST call, whatever its
	// credentials: a secret Jira no longer knows.
	RESTFaultUnauthorized
	// RESTFaultSearchForbidden answers 403 to the JQL search.
	RESTFaultSearchForbidden
	// RESTFaultEmailForbidden answers 403 to the bulk email API with the
	// message Jira gives an app without Atlassian's approval for email
	// access.
	RESTFaultEmailForbidden
	// RESTFaultEmailNotApproved is the same refusal with the status
	// Atlassian documents for it, 400 ("Returned if the calling app is not
	// approved to use this API"); an app must treat both alike.
	RESTFaultEmailNotApproved
	// RESTFaultRateLimited answers 429 with Retry-After (SetRetryAfter) and
	// the X-RateLimit-* headers of Jira's burst limiter.
	RESTFaultRateLimited
	// RESTFaultServerError answers 500.
	RESTFaultServerError
	// RESTFaultSlow answers after the Atlassian's SlowDelay, or never if
	// the client gives up first.
	RESTFaultSlow
)

// Messages the simulator answers with, as Jira words them.
const (
	MsgUnauthenticated  = "Client must be authenticated to access this resource."
	MsgSearchForbidden  = "You do not have permission to search."
	MsgEmailNotApproved = "The calling app is not approved to use this API."
	MsgRateLimited      = "Rate limit exceeded."
	MsgServerError      = "Internal server error."
	MsgIssueNotFound    = "Issue does not exist or you do not have permission to see it."
	MsgBadPageToken     = "The provided next page token is invalid or expired."
	// MsgConnectForbidden answers a Connect app's JWT on an API Atlassian
	// does not open to Connect apps (POST /rest/api/3/changelog/bulkfetch).
	MsgConnectForbidden = "This API is not available to Connect apps."
	// MsgEmailAppsOnly answers an API token on the bulk email API, which
	// only Connect apps may call.
	MsgEmailAppsOnly = "Only Connect apps can access this resource."
)

// Page sizes of the enhanced JQL search. Atlassian documents maxResults
// (GET /rest/api/3/search/jql, "Search for issues using JQL enhanced search")
// as: "The maximum number of items to return per page. To manage page size,
// API may return fewer items per page where a large number of fields or
// properties are requested. The greatest number of items returned per page
// is achieved when requesting id or key only. It returns max 5000 issues."
// with a default of 50. Jira caps silently rather than refusing, and in
// practice a page with fields stops at 100 (JRACLOUD-92183: "maxResults ...
// does not work as indicated in the documentation"; the older /search
// behaved the same way, per Atlassian's KB "Changing maxResults parameter
// for Jira Cloud REST API"). The simulator does the same, so a client that
// pages by counting instead of by nextPageToken fails here too.
const (
	DefaultSearchMaxResults    = 50
	SearchMaxResultsWithFields = 100
	SearchMaxResultsIDsOnly    = 5000
)

// Page sizes of the other paged endpoints (startAt/maxResults). Jira caps
// maxResults silently at these; the defaults are Atlassian's documented
// ones where it documents one.
const (
	// GET /rest/api/3/issue/{id}/changelog: default and cap 100.
	ChangelogMaxResults = 100
	// GET /rest/api/3/issue/{id}/comment: capped at 100 here (Atlassian
	// documents a default of 5000, which Jira Cloud does not honour).
	CommentMaxResults = 100
	// GET /rest/api/3/project/search: default 50, cap 100.
	ProjectSearchDefault = 50
	ProjectSearchMax     = 100
	// GET /rest/api/3/user/bulk: default page 10, cap 100 users a page
	// and 100 accountId parameters a call (more is a 400).
	UserBulkDefault = 10
	UserBulkMax     = 100
	// POST /rest/api/3/changelog/bulkfetch: at most 1000 issues and 10
	// field ids a call; pages of up to 1000 histories.
	BulkFetchMaxIssues  = 1000
	BulkFetchMaxFields  = 10
	BulkFetchMaxResults = 1000
)

// restState is a site's REST side. Fields above st are guarded by
// Site.mu; st has its own lock. Never hold both.
type restState struct {
	fault          RESTFault
	retryAfter     time.Duration
	uninstalled    bool
	maxFields      int
	maxIDs         int
	embedded       renderLimits
	allowUnbounded bool
	basic          map[string]string // email -> API token
	counts         map[string]int    // by path relative to the context path
	latency        time.Duration
	limiter        *bucket
	injections     []*injection
	fsrc           *rand.PCG
	frng           *rand.Rand
	clock          func() time.Time
	locName        string
	loc            *time.Location
	// dcMode, tls and dc are fixed before the site serves (datacenter.go).
	dcMode bool
	tls    bool
	dc     *dcState

	total, rateLimited, injected atomic.Int64

	st *store
}

func (r *restState) init() {
	r.retryAfter = time.Second
	r.maxFields, r.maxIDs = SearchMaxResultsWithFields, SearchMaxResultsIDsOnly
	r.embedded = renderLimits{EmbeddedChangelogMax, EmbeddedCommentMax}
	r.basic = map[string]string{}
	r.counts = map[string]int{}
	r.fsrc = rand.NewPCG(1, 2)
	r.frng = rand.New(r.fsrc)
	r.clock = time.Now
	r.st = newStore()
}

// SetFault makes the site's REST API misbehave until set back to
// RESTFaultNone.
func (s *Site) SetFault(f RESTFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.fault = f
}

// SetRetryAfter sets the Retry-After of RESTFaultRateLimited and of
// injected 429s (default 1s, Jira's usual burst answer); it is sent in
// whole seconds.
func (s *Site) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.retryAfter = d
}

// SetSearchLimits overrides the page-size caps of the JQL search: with
// fields, and with only id or key requested.
func (s *Site) SetSearchLimits(withFields, idsOnly int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.maxFields, s.rest.maxIDs = max(withFields, 1), max(idsOnly, 1)
}

// SetEmbeddedLimits overrides how many histories (EmbeddedChangelogMax)
// and comments (EmbeddedCommentMax) a search embeds per issue.
func (s *Site) SetEmbeddedLimits(histories, comments int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.embedded = renderLimits{max(histories, 0), max(comments, 0)}
}

// AllowUnboundedJQL makes the search accept a query without a
// restriction (empty, or only ORDER BY), which Jira Cloud refuses with
// MsgUnboundedJQL. For tests of other things written before the simulator
// refused them.
func (s *Site) AllowUnboundedJQL(allow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.allowUnbounded = allow
}

// SetClock replaces time.Now for what the site stamps and compares:
// mutation times, relative JQL dates, serverInfo. The rate limiter and
// latency use real time.
func (s *Site) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.clock = now
}

func (s *Site) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rest.clock()
}

// location is Site.TimeZone loaded (UTC when unknown).
func (s *Site) location() *time.Location {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rest.loc == nil || s.rest.locName != s.TimeZone {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		s.rest.loc, s.rest.locName = loc, s.TimeZone
	}
	return s.rest.loc
}

func (s *Site) genContext() genContext { return genContext{base: s.BaseURL, loc: s.location()} }

// Requests returns how many requests reached path (relative to the context
// path, without query: "/rest/api/3/myself"), whatever they were answered.
func (s *Site) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rest.counts[path]
}

// RequestCounts is a copy of the per-path request counters.
func (s *Site) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.rest.counts))
	for k, v := range s.rest.counts {
		out[k] = v
	}
	return out
}

// TotalRequests is how many requests reached the site.
func (s *Site) TotalRequests() int { return int(s.rest.total.Load()) }

// ResetRequests zeroes the request counters (not the 429 and fault
// counters).
func (s *Site) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.rest.counts)
	s.rest.total.Store(0)
}

// AddUser adds an active user; email "" is a user the email API has no
// address for.
func (s *Site) AddUser(accountID, displayName, email string) {
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.addUser(s.BaseURL, simUser{accountID: accountID, displayName: displayName, email: email, active: true})
}

// AddBasicUser adds a user who can call the REST API with HTTP Basic, email
// and API token, as a person's scripts do on Jira Cloud.
func (s *Site) AddBasicUser(accountID, displayName, email, apiToken string) {
	s.AddUser(accountID, displayName, email)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.basic[email] = apiToken
}

// Issue builds an issue as the search returns it with every field: id, key
// and fields. It panics if fields do not encode as JSON.
func Issue(id, key string, fields map[string]any) json.RawMessage {
	if fields == nil {
		fields = map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"id": id, "key": key, "fields": fields})
	if err != nil {
		panic(fmt.Sprintf("jirasim.Issue: %v", err))
	}
	return b
}

// AddIssue adds an issue to the site's store. It must be a JSON object
// with a numeric "id"; "key", "self" and "fields" are used when present
// (fields.created and fields.updated, in Jira's format, place it in time;
// without them it is created and updated now), "changelog" and
// fields.comment become its changelog and comments, and any other member
// is returned when the search expands it by name. The project comes from
// fields.project, else from the key; an unknown one is added.
func (s *Site) AddIssue(issue json.RawMessage) error {
	now := s.now()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.addRecord(s.BaseURL, issue, now)
}

// SetIssues replaces the site's issues (generated ones included) with
// these; projects and users stay.
func (s *Site) SetIssues(issues []json.RawMessage) error {
	now := s.now()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	fresh := newStore()
	fresh.projects, fresh.projSlots, fresh.users, fresh.userList = st.projects, make([][]int32, len(st.projects)), st.users, st.userList
	fresh.byName, fresh.dc = st.byName, st.dc
	for _, raw := range issues {
		if err := fresh.addRecord(s.BaseURL, raw, now); err != nil {
			return err
		}
	}
	st.data = fresh.data
	return nil
}

func (s *Site) setUninstalled(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.uninstalled = v
}

// relPath strips the context path; ok is false outside it.
func (s *Site) relPath(p string) (string, bool) {
	if s.ContextPath == "" {
		return p, true
	}
	rest, ok := strings.CutPrefix(p, s.ContextPath)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

type route struct {
	pattern []string // segments; "{}" matches one
	methods []string
	serve   func(http.ResponseWriter, *http.Request, principal, []string)
}

func (s *Site) routes() []route {
	p := func(path string) []string { return strings.Split(strings.Trim(path, "/"), "/") }
	get := []string{http.MethodGet}
	return []route{
		{p("/rest/api/3/serverInfo"), get, s.serveServerInfo},
		{p("/rest/api/3/myself"), get, s.serveMyself},
		{p("/rest/api/3/search/jql"), []string{http.MethodGet, http.MethodPost}, s.serveSearch},
		{p("/rest/api/3/user/email/bulk"), get, s.serveEmailBulk},
		{p("/rest/api/3/user/bulk"), get, s.serveUserBulk},
		{p("/rest/api/3/field"), get, s.serveFields},
		{p("/rest/api/3/project/search"), get, s.serveProjectSearch},
		{p("/rest/api/3/issue/{}"), get, s.serveIssue},
		{p("/rest/api/3/issue/{}/changelog"), get, s.serveChangelog},
		{p("/rest/api/3/issue/{}/comment"), get, s.serveComments},
		{p("/rest/api/3/changelog/bulkfetch"), []string{http.MethodPost}, s.serveBulkFetch},
		// The old search is gone from Jira Cloud.
		{p("/rest/api/3/search"), []string{http.MethodGet, http.MethodPost}, serveGone},
		{p("/rest/api/2/search"), []string{http.MethodGet, http.MethodPost}, serveGone},
	}
}

func matchRoute(rs []route, path string) (route, []string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, rt := range rs {
		if len(rt.pattern) != len(segs) {
			continue
		}
		var params []string
		ok := true
		for i, p := range rt.pattern {
			switch {
			case p == "{}" && segs[i] != "":
				params = append(params, segs[i])
			case p != segs[i]:
				ok = false
			}
		}
		if ok {
			return rt, params, true
		}
	}
	return route{}, nil, false
}

func (s *Site) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.isDC() && r.URL.Path == ADFSPath {
		s.serveADFSToken(w, r)
		return
	}
	rel, ok := s.relPath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.rest.total.Add(1)
	s.mu.Lock()
	s.rest.counts[rel]++
	fault, uninstalled, latency := s.rest.fault, s.rest.uninstalled, s.rest.latency
	s.mu.Unlock()
	if !strings.HasPrefix(rel, "/rest/") {
		http.NotFound(w, r)
		return
	}
	if latency > 0 && !sleepCtx(r.Context(), latency) {
		return
	}

	switch fault {
	case RESTFaultUnreachable:
		dropConnection(w)
		return
	case RESTFaultSlow:
		if !sleepCtx(r.Context(), s.slowDelay()) {
			return
		}
	case RESTFaultUnauthorized:
		if s.isDC() {
			w.Header().Set("X-AUSERNAME", "anonymous")
		}
		jiraError(w, http.StatusUnauthorized, MsgUnauthenticated)
		return
	}

	if s.isDC() {
		who, ok := s.authenticateDC(r)
		if !ok {
			s.refuseDC(w, r)
			return
		}
		w.Header().Set("X-AUSERNAME", who.user.name)
		s.serveAuthenticated(w, r, rel, who)
		return
	}
	who, ok := s.authenticate(r)
	if !ok || (uninstalled && who.app) {
		w.Header().Set("WWW-Authenticate", `JWT realm="Jira"`)
		jiraError(w, http.StatusUnauthorized, MsgUnauthenticated)
		return
	}
	s.serveAuthenticated(w, r, rel, who)
}

// serveAuthenticated serves a request whose credentials were accepted.
func (s *Site) serveAuthenticated(w http.ResponseWriter, r *http.Request, rel string, who principal) {
	s.mu.Lock()
	fault, retry := s.rest.fault, s.rest.retryAfter
	s.mu.Unlock()
	// Credentials are checked first: a stranger is not told about limits.
	if !s.admit(w) {
		return
	}
	switch fault {
	case RESTFaultRateLimited:
		s.tooManyRequests(w, retry)
		return
	case RESTFaultServerError:
		jiraError(w, http.StatusInternalServerError, MsgServerError)
		return
	}

	inj := s.pickInjection(r.Method, rel)
	if inj != nil {
		switch inj.Kind {
		case InjectReset:
			dropConnection(w)
			return
		case InjectServerError:
			status := inj.Status
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			jiraError(w, status, MsgServerError)
			return
		case InjectRateLimited:
			s.tooManyRequests(w, retry)
			return
		case InjectSlow:
			d := inj.Delay
			if d == 0 {
				d = s.slowDelay()
			}
			if !sleepCtx(r.Context(), d) {
				return
			}
		}
	}

	routes := s.routes()
	if s.isDC() {
		routes = s.dcRoutes()
	}
	rt, params, ok := matchRoute(routes, dcPath(rel))
	switch {
	case !ok:
		// Jira's words for a REST path it does not have.
		jiraError(w, http.StatusNotFound, "null for uri: "+s.Server.URL+r.URL.Path)
		return
	case !slices.Contains(rt.methods, r.Method):
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		jiraError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if inj == nil || (inj.Kind != InjectTruncated && inj.Kind != InjectMalformed) {
		rt.serve(w, r, who, params)
		return
	}
	buf := &bufferedWriter{h: w.Header(), status: http.StatusOK}
	rt.serve(buf, r, who, params)
	body := buf.body.Bytes()
	if inj.Kind == InjectMalformed {
		// What a proxy in the way sends: a JSON answer cut short, then its
		// own HTML page, under the original JSON content type.
		w.Header().Del("Content-Length")
		w.WriteHeader(buf.status)
		_, _ = w.Write(body[:len(body)/2])
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>")
		return
	}
	// Truncated: the full Content-Length is announced, half arrives, and
	// the connection closes.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(buf.status)
	_, _ = w.Write(body[:len(body)/2])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	panic(http.ErrAbortHandler)
}

type bufferedWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.h }
func (b *bufferedWriter) WriteHeader(status int)      { b.status = status }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // closes the connection without an answer
}

// MsgSearchRemoved is Jira Cloud's answer on the removed /rest/api/{2,3}/search.
const MsgSearchRemoved = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"

func serveGone(w http.ResponseWriter, _ *http.Request, _ principal, _ []string) {
	jiraError(w, http.StatusGone, MsgSearchRemoved)
}

// principal is who a request acts as.
type principal struct {
	app  bool    // the Connect app, by its JWT
	user simUser // a person, by HTTP Basic
}

// authenticate checks credentials as Jira Cloud does for a Connect app's
// calls (HS256, the site's shared secret, iss = app key, qsh relative to
// the site's base path, exp), or HTTP Basic with a known email and API token.
func (s *Site) authenticate(r *http.Request) (principal, bool) {
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Basic") {
		email, tok, ok := r.BasicAuth()
		if !ok {
			return principal{}, false
		}
		s.mu.Lock()
		want, known := s.rest.basic[email]
		s.mu.Unlock()
		if !known || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			return principal{}, false
		}
		var u simUser
		st := s.rest.st
		st.mu.RLock()
		for _, acc := range st.userList {
			if cand := st.users[acc]; cand.email == email {
				u = *cand
			}
		}
		st.mu.RUnlock()
		return principal{user: u}, true
	}
	if s.App == nil {
		return principal{}, false // no Connect app on this site (NewCloudSite)
	}
	tok, err := atlassianjwt.ExtractToken(r)
	if err != nil {
		return principal{}, false
	}
	s.mu.Lock()
	secret := s.SharedSecret
	s.mu.Unlock()
	v := atlassianjwt.Verifier{
		BasePath: s.ContextPath,
		Secrets:  atlassianjwt.Installation{ClientKey: s.App.Key, Secret: []byte(secret)},
	}
	if _, err := v.Verify(r.Context(), tok, r.Method, r.URL, false); err != nil {
		return principal{}, false
	}
	return principal{app: true}, true
}

func (s *Site) serveServerInfo(w http.ResponseWriter, _ *http.Request, _ principal, _ []string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"baseUrl":        s.BaseURL,
		"displayUrl":     s.BaseURL,
		"version":        "1001.0.0-SNAPSHOT",
		"versionNumbers": []int{1001, 0, 0},
		"deploymentType": "Cloud",
		"buildNumber":    100245,
		"buildDate":      time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC).Format(JiraTime),
		"serverTime":     s.now().In(s.location()).Format(JiraTime),
		"scmInfo":        "4c8ad4b9a5d0f2b7e3a1c6d8e9f0a1b2c3d4e5f6",
		"serverTitle":    "Jira",
		"defaultLocale":  map[string]string{"locale": "en_US"},
	})
}

func (s *Site) serveMyself(w http.ResponseWriter, _ *http.Request, who principal, _ []string) {
	u := map[string]any{"active": true, "locale": "en_US", "timeZone": s.TimeZone}
	if who.app {
		name, _ := s.App.Raw["name"].(string)
		if name == "" {
			name = s.App.Key
		}
		u["accountId"], u["accountType"], u["displayName"] = s.AppAccountID, "app", name
	} else {
		u["accountId"], u["accountType"], u["displayName"], u["emailAddress"] = who.user.accountID, "atlassian", who.user.displayName, who.user.email
		if who.user.timeZone != "" {
			u["timeZone"] = who.user.timeZone
		}
	}
	u["self"] = s.BaseURL + "/rest/api/3/user?accountId=" + u["accountId"].(string)
	writeJSON(w, http.StatusOK, u)
}

// serveEmailBulk is GET /rest/api/3/user/email/bulk. Atlassian documents
// it as returning an address "regardless of the user's profile visibility
// settings" to approved apps; accounts it has no address for (apps,
// unknown ids) are left out of the list, as Confluence's twin documents
// ("Any accounts which are not available will not be included").
func (s *Site) serveEmailBulk(w http.ResponseWriter, r *http.Request, who principal, _ []string) {
	s.mu.Lock()
	fault := s.rest.fault
	s.mu.Unlock()
	if !who.app {
		// "Only connect apps can make this request": a person's API
		// token sees emails in user objects, as privacy allows.
		jiraError(w, http.StatusForbidden, MsgEmailAppsOnly)
		return
	}
	switch fault {
	case RESTFaultEmailForbidden:
		jiraError(w, http.StatusForbidden, MsgEmailNotApproved)
		return
	case RESTFaultEmailNotApproved:
		jiraError(w, http.StatusBadRequest, MsgEmailNotApproved)
		return
	}
	ids := r.URL.Query()["accountId"]
	if len(ids) == 0 {
		jiraError(w, http.StatusBadRequest, "accountId is required.")
		return
	}
	out := []map[string]string{}
	seen := map[string]bool{}
	st := s.rest.st
	st.mu.RLock()
	for _, id := range ids {
		if u, ok := st.users[id]; ok && !seen[id] && u.email != "" {
			seen[id] = true
			out = append(out, map[string]string{"accountId": id, "email": u.email})
		}
	}
	st.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

type searchParams struct {
	JQL           string          `json:"jql"`
	MaxResults    *int            `json:"maxResults"`
	Fields        []string        `json:"fields"`
	Expand        json.RawMessage `json:"expand"`
	NextPageToken string          `json:"nextPageToken"`
	expand        []string
}

// serveSearch is GET and POST /rest/api/3/search/jql, Jira's enhanced
// search: token paging, no startAt and no total.
func (s *Site) serveSearch(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	s.mu.Lock()
	fault, allowUnbounded, maxIDs, maxFields, lim := s.rest.fault, s.rest.allowUnbounded, s.rest.maxIDs, s.rest.maxFields, s.rest.embedded
	s.mu.Unlock()
	if fault == RESTFaultSearchForbidden {
		jiraError(w, http.StatusForbidden, MsgSearchForbidden)
		return
	}
	var p searchParams
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
			jiraError(w, http.StatusBadRequest, "Invalid request payload. Refer to the REST API documentation and try again.")
			return
		}
		var one string
		var many []string
		switch {
		case len(p.Expand) == 0 || string(p.Expand) == "null":
		case json.Unmarshal(p.Expand, &one) == nil:
			p.expand = splitList([]string{one})
		case json.Unmarshal(p.Expand, &many) == nil:
			p.expand = splitList(many)
		}
	} else {
		q := r.URL.Query()
		p.JQL, p.NextPageToken = q.Get("jql"), q.Get("nextPageToken")
		p.expand = splitList(q["expand"])
		p.Fields = q["fields"]
		if v := q.Get("maxResults"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				jiraError(w, http.StatusBadRequest, "The value '"+v+"' is invalid for the parameter 'maxResults'.")
				return
			}
			p.MaxResults = &n
		}
	}
	parsed, err := parseJQL(p.JQL)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel := selectFields(p.Fields)
	limit := DefaultSearchMaxResults
	if p.MaxResults != nil && *p.MaxResults > 0 {
		limit = *p.MaxResults
	}
	if sel.idsOnly() {
		limit = min(limit, maxIDs)
	} else {
		limit = min(limit, maxFields)
	}
	c, now := s.genContext(), s.now()

	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	q, err := st.bind(parsed, p.JQL, c.loc, now, allowUnbounded)
	if err != nil {
		jiraError(w, http.StatusBadRequest, err.Error())
		return
	}
	var after []sortVal
	if p.NextPageToken != "" {
		var ok bool
		if after, ok = decodePageToken(p.NextPageToken, p.JQL, len(q.order)); !ok {
			jiraError(w, http.StatusBadRequest, MsgBadPageToken)
			return
		}
	}
	slots, more := st.run(q, after, limit)
	b := append(getPageBuffer(), `{"issues":[`...)
	for i, slot := range slots {
		if i > 0 {
			b = append(b, ',')
		}
		b = st.appendIssue(b, c, slot, sel, p.expand, lim)
	}
	b = append(b, ']')
	if more {
		// Left out on the last page, as Jira does (JRACLOUD-92184).
		b = append(b, `,"nextPageToken":`...)
		b = append(b, mustJSON(encodePageToken(st.sortKey(slots[len(slots)-1], q.order), p.JQL))...)
	}
	b = strconv.AppendBool(append(b, `,"isLast":`...), !more)
	b = append(b, '}')
	writeRaw(w, http.StatusOK, b)
	putPageBuffer(b)
}

// pageBuffers hold search pages while they are rendered and written (a
// page of issues with their changelogs and comments is about 2 MB): kept
// between requests, not grown from nothing by doubling for every page. A
// sync.Pool would do, but the collector empties it every other cycle,
// which at this allocation rate is every few pages.
var pageBuffers = make(chan []byte, 8)

func getPageBuffer() []byte {
	select {
	case b := <-pageBuffers:
		return b[:0]
	default:
		return make([]byte, 0, 2<<20)
	}
}

func putPageBuffer(b []byte) {
	select {
	case pageBuffers <- b:
	default:
	}
}

// jiraError writes Jira's error shape.
func jiraError(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, map[string]any{"errorMessages": msgs, "errors": map[string]string{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
