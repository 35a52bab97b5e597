package jirasim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
)

// RESTFault is how a site's REST API misbehaves.
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

type restState struct {
	fault       RESTFault
	retryAfter  time.Duration
	uninstalled bool
	maxFields   int
	maxIDs      int
	issues      []*storedIssue
	users       map[string]simUser // by accountId
	basic       map[string]string  // email -> API token
	counts      map[string]int     // by path relative to the context path
}

func (r *restState) init() {
	r.retryAfter = time.Second
	r.maxFields, r.maxIDs = SearchMaxResultsWithFields, SearchMaxResultsIDsOnly
	r.users = map[string]simUser{}
	r.basic = map[string]string{}
	r.counts = map[string]int{}
}

type simUser struct {
	accountID, displayName, email string
}

type storedIssue struct {
	id     string
	top    map[string]json.RawMessage // everything but fields
	fields map[string]json.RawMessage
}

// SetFault makes the site's REST API misbehave until set back to
// RESTFaultNone.
func (s *Site) SetFault(f RESTFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.fault = f
}

// SetRetryAfter sets the Retry-After of RESTFaultRateLimited (default 1s,
// Jira's usual burst answer); it is sent in whole seconds.
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

// Requests returns how many requests reached path (relative to the context
// path, without query: "/rest/api/3/myself"), whatever they were answered.
func (s *Site) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rest.counts[path]
}

// ResetRequests zeroes the request counters.
func (s *Site) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.rest.counts)
}

// AddUser adds a user the email API knows.
func (s *Site) AddUser(accountID, displayName, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.users[accountID] = simUser{accountID, displayName, email}
}

// AddBasicUser adds a user who can call the REST API with HTTP Basic, email
// and API token, as a person's scripts do on Jira Cloud.
func (s *Site) AddBasicUser(accountID, displayName, email, apiToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.users[accountID] = simUser{accountID, displayName, email}
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

// AddIssue appends an issue to the site's store. It must be a JSON object
// with an "id"; "key", "self" and "fields" are used when present, and any
// other member (e.g. "changelog") is returned when the search expands it.
func (s *Site) AddIssue(issue json.RawMessage) error {
	si, err := parseIssue(issue)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.issues = append(s.rest.issues, si)
	return nil
}

// SetIssues replaces the site's issues.
func (s *Site) SetIssues(issues []json.RawMessage) error {
	parsed := make([]*storedIssue, 0, len(issues))
	for _, raw := range issues {
		si, err := parseIssue(raw)
		if err != nil {
			return err
		}
		parsed = append(parsed, si)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.issues = parsed
	return nil
}

func parseIssue(raw json.RawMessage) (*storedIssue, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, errors.New("jirasim: an issue must be a JSON object")
	}
	si := &storedIssue{top: top, fields: map[string]json.RawMessage{}}
	var id any
	if err := json.Unmarshal(top["id"], &id); err != nil {
		return nil, errors.New(`jirasim: an issue needs an "id"`)
	}
	switch v := id.(type) {
	case string:
		si.id = v
	case float64:
		si.id = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if si.id == "" {
		return nil, errors.New(`jirasim: an issue needs an "id"`)
	}
	if f, ok := top["fields"]; ok {
		if err := json.Unmarshal(f, &si.fields); err != nil {
			return nil, errors.New(`jirasim: an issue's "fields" must be an object`)
		}
		delete(top, "fields")
	}
	return si, nil
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

func (s *Site) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rel, ok := s.relPath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.rest.counts[rel]++
	fault, retry, uninstalled := s.rest.fault, s.rest.retryAfter, s.rest.uninstalled
	s.mu.Unlock()
	if !strings.HasPrefix(rel, "/rest/") {
		http.NotFound(w, r)
		return
	}

	switch fault {
	case RESTFaultUnreachable:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	case RESTFaultSlow:
		select {
		case <-time.After(s.Atlassian.SlowDelay):
		case <-r.Context().Done():
			return
		}
	case RESTFaultUnauthorized:
		jiraError(w, http.StatusUnauthorized, MsgUnauthenticated)
		return
	}

	who, ok := s.authenticate(r)
	if !ok || (uninstalled && who.app) {
		w.Header().Set("WWW-Authenticate", `JWT realm="Jira"`)
		jiraError(w, http.StatusUnauthorized, MsgUnauthenticated)
		return
	}

	switch fault {
	case RESTFaultRateLimited:
		secs := int((retry + time.Second - 1) / time.Second)
		h := w.Header()
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("X-RateLimit-Limit", "100")
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", time.Now().Add(time.Duration(secs)*time.Second).UTC().Format(time.RFC3339))
		h.Set("RateLimit-Reason", "jira-burst-based")
		jiraError(w, http.StatusTooManyRequests, MsgRateLimited)
		return
	case RESTFaultServerError:
		jiraError(w, http.StatusInternalServerError, MsgServerError)
		return
	}

	type route struct {
		methods []string
		serve   func(http.ResponseWriter, *http.Request, principal)
	}
	routes := map[string]route{
		"/rest/api/3/serverInfo":      {[]string{http.MethodGet}, s.serveServerInfo},
		"/rest/api/3/myself":          {[]string{http.MethodGet}, s.serveMyself},
		"/rest/api/3/search/jql":      {[]string{http.MethodGet, http.MethodPost}, s.serveSearch},
		"/rest/api/3/user/email/bulk": {[]string{http.MethodGet}, s.serveEmailBulk},
	}
	rt, ok := routes[strings.TrimSuffix(rel, "/")]
	switch {
	case !ok:
		// Jira's words for a REST path it does not have.
		jiraError(w, http.StatusNotFound, "null for uri: "+s.Server.URL+r.URL.Path)
	case !slices.Contains(rt.methods, r.Method):
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		jiraError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	default:
		rt.serve(w, r, who)
	}
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
		var u simUser
		for _, cand := range s.rest.users {
			if cand.email == email {
				u = cand
			}
		}
		s.mu.Unlock()
		if !known || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
			return principal{}, false
		}
		return principal{user: u}, true
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

// jiraTime is how Jira writes timestamps.
const jiraTime = "2006-01-02T15:04:05.000-0700"

func (s *Site) serveServerInfo(w http.ResponseWriter, _ *http.Request, _ principal) {
	writeJSON(w, http.StatusOK, map[string]any{
		"baseUrl":        s.BaseURL,
		"displayUrl":     s.BaseURL,
		"version":        "1001.0.0-SNAPSHOT",
		"versionNumbers": []int{1001, 0, 0},
		"deploymentType": "Cloud",
		"buildNumber":    100245,
		"buildDate":      time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC).Format(jiraTime),
		"serverTime":     time.Now().Format(jiraTime),
		"scmInfo":        "4c8ad4b9a5d0f2b7e3a1c6d8e9f0a1b2c3d4e5f6",
		"serverTitle":    "Jira",
		"defaultLocale":  map[string]string{"locale": "en_US"},
	})
}

func (s *Site) serveMyself(w http.ResponseWriter, _ *http.Request, who principal) {
	u := map[string]any{"active": true, "locale": "en_US", "timeZone": s.TimeZone}
	if who.app {
		name, _ := s.App.Raw["name"].(string)
		if name == "" {
			name = s.App.Key
		}
		u["accountId"], u["accountType"], u["displayName"] = s.AppAccountID, "app", name
	} else {
		u["accountId"], u["accountType"], u["displayName"], u["emailAddress"] = who.user.accountID, "atlassian", who.user.displayName, who.user.email
	}
	u["self"] = s.BaseURL + "/rest/api/3/user?accountId=" + u["accountId"].(string)
	writeJSON(w, http.StatusOK, u)
}

func (s *Site) serveEmailBulk(w http.ResponseWriter, r *http.Request, _ principal) {
	s.mu.Lock()
	fault := s.rest.fault
	s.mu.Unlock()
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
	s.mu.Lock()
	for _, id := range ids {
		if u, ok := s.rest.users[id]; ok && !seen[id] && u.email != "" {
			seen[id] = true
			out = append(out, map[string]string{"accountId": id, "email": u.email})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

type searchParams struct {
	JQL           string   `json:"jql"`
	MaxResults    *int     `json:"maxResults"`
	Fields        []string `json:"fields"`
	Expand        string   `json:"expand"`
	NextPageToken string   `json:"nextPageToken"`
}

// serveSearch is GET and POST /rest/api/3/search/jql, Jira's enhanced
// search: token paging, no startAt and no total.
func (s *Site) serveSearch(w http.ResponseWriter, r *http.Request, _ principal) {
	s.mu.Lock()
	fault := s.rest.fault
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
	} else {
		q := r.URL.Query()
		p.JQL, p.NextPageToken = q.Get("jql"), q.Get("nextPageToken")
		p.Expand = strings.Join(q["expand"], ",")
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
	match, msg := compileJQL(p.JQL)
	if match == nil {
		jiraError(w, http.StatusBadRequest, msg)
		return
	}
	sel := selectFields(p.Fields)

	s.mu.Lock()
	limit := DefaultSearchMaxResults
	if p.MaxResults != nil && *p.MaxResults > 0 {
		limit = *p.MaxResults
	}
	if sel.idsOnly() {
		limit = min(limit, s.rest.maxIDs)
	} else {
		limit = min(limit, s.rest.maxFields)
	}
	var hits []*storedIssue
	for _, si := range s.rest.issues {
		if match(si) {
			hits = append(hits, si)
		}
	}
	s.mu.Unlock()

	offset := 0
	if p.NextPageToken != "" {
		var ok bool
		if offset, ok = decodePageToken(p.NextPageToken, p.JQL); !ok {
			jiraError(w, http.StatusBadRequest, "The provided next page token is invalid or expired.")
			return
		}
	}
	offset = min(offset, len(hits))
	end := min(offset+limit, len(hits))
	expand := splitList([]string{p.Expand})
	page := make([]map[string]any, 0, end-offset)
	for _, si := range hits[offset:end] {
		page = append(page, s.renderIssue(si, sel, expand))
	}
	resp := map[string]any{"issues": page, "isLast": end >= len(hits)}
	if end < len(hits) {
		// Left out on the last page, as Jira does (JRACLOUD-92184).
		resp["nextPageToken"] = encodePageToken(end, p.JQL)
	}
	writeJSON(w, http.StatusOK, resp)
}

// compileJQL understands the subset the simulator needs so far: no query,
// or only an ORDER BY (which keeps insertion order). Real Jira Cloud refuses
// both on /search/jql as unbounded ("Unbounded JQL queries are not allowed
// here. Please add a search restriction to your query."); the simulator is
// more lenient until it learns restrictions.
//
// It returns nil and Jira's kind of message for a query it cannot run.
func compileJQL(jql string) (match func(*storedIssue) bool, msg string) {
	q := strings.TrimSpace(jql)
	if q == "" || strings.HasPrefix(strings.ToUpper(q), "ORDER BY") {
		return func(*storedIssue) bool { return true }, ""
	}
	// A relative lower bound on updated far in the past matches everything
	// the simulator holds (validation's bounded probe).
	if m := relativeUpdated.FindStringSubmatch(q); m != nil {
		return func(*storedIssue) bool { return true }, ""
	}
	return nil, fmt.Sprintf("Error in the JQL Query: jirasim does not support %q yet (only an empty query or ORDER BY).", jql)
}

var relativeUpdated = regexp.MustCompile(`^(?i)updated\s*>=\s*-\d+d(\s+ORDER BY .*)?$`)

type fieldSel struct {
	all     bool
	include map[string]bool
	exclude map[string]bool
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// selectFields reads Jira's fields parameter (several may be given, each a
// comma list). The enhanced search's default is id only.
func selectFields(vals []string) fieldSel {
	sel := fieldSel{include: map[string]bool{}, exclude: map[string]bool{}}
	for _, f := range splitList(vals) {
		switch {
		case f == "*all" || f == "*navigable":
			sel.all = true
		case strings.HasPrefix(f, "-"):
			sel.exclude[f[1:]] = true
		default:
			sel.include[f] = true
		}
	}
	return sel
}

// idsOnly reports a request for id and/or key only, the shape Jira serves
// in its largest pages.
func (f fieldSel) idsOnly() bool {
	if f.all {
		return false
	}
	for k := range f.include {
		if k != "id" && k != "key" {
			return false
		}
	}
	return true
}

func (s *Site) renderIssue(si *storedIssue, sel fieldSel, expand []string) map[string]any {
	out := map[string]any{"id": si.id}
	if !sel.idsOnly() || sel.include["key"] {
		if k, ok := si.top["key"]; ok {
			out["key"] = k
		}
	}
	if !sel.idsOnly() {
		if v, ok := si.top["self"]; ok {
			out["self"] = v
		} else {
			out["self"] = s.BaseURL + "/rest/api/3/issue/" + si.id
		}
		fields := map[string]json.RawMessage{}
		for k, v := range si.fields {
			if (sel.all || sel.include[k]) && !sel.exclude[k] {
				fields[k] = v
			}
		}
		out["fields"] = fields
	}
	for _, e := range expand {
		if v, ok := si.top[e]; ok && e != "id" && e != "key" && e != "self" {
			out[e] = v
		}
	}
	return out
}

// Page tokens are opaque to clients; here they carry the offset and a hash
// of the query they belong to, so a token replayed with another query is
// refused as Jira refuses it.
func encodePageToken(offset int, jql string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d:%x", offset, jqlHash(jql)))
}

func decodePageToken(tok, jql string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	off, h, ok := strings.Cut(string(b), ":")
	n, err := strconv.Atoi(off)
	if !ok || err != nil || n < 0 || h != fmt.Sprintf("%x", jqlHash(jql)) {
		return 0, false
	}
	return n, true
}

func jqlHash(jql string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strings.TrimSpace(jql)))
	return h.Sum64()
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
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
