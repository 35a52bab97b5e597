package jirasim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// pageParams reads startAt and maxResults; false means a 400 was written.
func pageParams(w http.ResponseWriter, q url.Values, def, cap int) (start, size int, ok bool) {
	start, size = 0, def
	for name, dst := range map[string]*int{"startAt": &start, "maxResults": &size} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			jiraError(w, http.StatusBadRequest, "The value '"+v+"' is invalid for the parameter '"+name+"'.")
			return 0, 0, false
		}
		*dst = n
	}
	start = max(start, 0)
	if size <= 0 {
		size = def
	}
	return start, min(size, cap), true
}

// lookup finds a visible issue by the path's id or key; false means a 404
// was written.
func (st *store) lookup(w http.ResponseWriter, idOrKey string) (int32, bool) {
	slot, ok := st.slotByIDOrKey(idOrKey)
	if !ok || !st.visible(slot) {
		jiraError(w, http.StatusNotFound, MsgIssueNotFound)
		return 0, false
	}
	return slot, true
}

// serveIssue is GET /rest/api/3/issue/{issueIdOrKey}: every field unless
// fields says otherwise; expand=changelog embeds the newest histories as
// the search does.
func (s *Site) serveIssue(w http.ResponseWriter, r *http.Request, _ principal, params []string) {
	q := r.URL.Query()
	fields := q["fields"]
	if len(fields) == 0 {
		fields = []string{"*all"}
	}
	sel := selectFields(fields)
	if sel.idsOnly() {
		// GET issue always has the issue's shape, fields or not.
		sel.include[" none"] = true
	}
	s.mu.Lock()
	lim := s.rest.embedded
	s.mu.Unlock()
	c := s.genContext()
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	slot, ok := st.lookup(w, params[0])
	if !ok {
		return
	}
	writeRaw(w, http.StatusOK, st.renderIssue(c, slot, sel, splitList(q["expand"]), lim))
}

// serveChangelog is GET /rest/api/3/issue/{issueIdOrKey}/changelog: every
// history, oldest first, in pages of up to ChangelogMaxResults.
func (s *Site) serveChangelog(w http.ResponseWriter, r *http.Request, _ principal, params []string) {
	start, size, ok := pageParams(w, r.URL.Query(), ChangelogMaxResults, ChangelogMaxResults)
	if !ok {
		return
	}
	c := s.genContext()
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	slot, ok := st.lookup(w, params[0])
	if !ok {
		return
	}
	hs := st.recOf(c, slot).histories
	end := min(start+size, len(hs))
	page := hs[min(start, len(hs)):end]
	self := c.base + "/rest/api/3/issue/" + params[0] + "/changelog"
	out := map[string]any{"self": fmt.Sprintf("%s?startAt=%d&maxResults=%d", self, start, size), "maxResults": size, "startAt": start,
		"total": len(hs), "isLast": end >= len(hs), "values": raws(page)}
	if end < len(hs) {
		out["nextPage"] = fmt.Sprintf("%s?startAt=%d&maxResults=%d", self, end, size)
	}
	writeJSON(w, http.StatusOK, out)
}

// serveComments is GET /rest/api/3/issue/{issueIdOrKey}/comment, oldest
// first (orderBy=created, the default here) or newest first
// (orderBy=-created).
func (s *Site) serveComments(w http.ResponseWriter, r *http.Request, _ principal, params []string) {
	q := r.URL.Query()
	start, size, ok := pageParams(w, q, CommentMaxResults, CommentMaxResults)
	if !ok {
		return
	}
	order := q.Get("orderBy")
	switch order {
	case "", "created", "+created", "-created":
	default:
		jiraError(w, http.StatusBadRequest, "orderBy must be created, +created or -created.")
		return
	}
	c := s.genContext()
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	slot, ok := st.lookup(w, params[0])
	if !ok {
		return
	}
	cs := st.recOf(c, slot).comments
	if order == "-created" {
		cs = slices.Clone(cs)
		slices.Reverse(cs)
	}
	end := min(start+size, len(cs))
	writeJSON(w, http.StatusOK, map[string]any{"startAt": start, "maxResults": size, "total": len(cs),
		"comments": raws(cs[min(start, len(cs)):end])})
}

// serveFields is GET /rest/api/3/field: the system fields, sprint, story
// points and the generated custom fields.
func (s *Site) serveFields(w http.ResponseWriter, _ *http.Request, _ principal, _ []string) {
	st := s.rest.st
	st.mu.RLock()
	defs := slices.Clone(systemFields)
	if st.gen != nil {
		for k, id := range st.gen.customIDs {
			kind := customKinds[k%len(customKinds)]
			name := kind.name
			if n := k / len(customKinds); n > 0 {
				name += " " + strconv.Itoa(n+1)
			}
			schema := map[string]any{"customId": CustomFieldBase + k}
			for sk, sv := range kind.schema {
				schema[sk] = sv
			}
			defs = append(defs, fieldDef{id, name, true, true, schema})
		}
	}
	st.mu.RUnlock()
	out := make([]map[string]any, 0, len(defs))
	for _, d := range defs {
		f := map[string]any{"id": d.id, "key": d.id, "name": d.name, "custom": d.custom, "orderable": true,
			"navigable": d.navigable, "searchable": true, "schema": d.schema}
		if d.custom {
			num := strings.TrimPrefix(d.id, "customfield_")
			f["untranslatedName"] = d.name
			f["clauseNames"] = []string{"cf[" + num + "]", d.name}
		} else {
			f["clauseNames"] = []string{d.id}
		}
		out = append(out, f)
	}
	writeJSON(w, http.StatusOK, out)
}

// serveProjectSearch is GET /rest/api/3/project/search, paged by startAt.
func (s *Site) serveProjectSearch(w http.ResponseWriter, r *http.Request, _ principal, _ []string) {
	start, size, ok := pageParams(w, r.URL.Query(), ProjectSearchDefault, ProjectSearchMax)
	if !ok {
		return
	}
	st := s.rest.st
	st.mu.RLock()
	ps := st.projects
	end := min(start+size, len(ps))
	vals := make([]json.RawMessage, 0, max(end-start, 0))
	for _, p := range ps[min(start, len(ps)):end] {
		vals = append(vals, p.raw)
	}
	st.mu.RUnlock()
	self := s.BaseURL + "/rest/api/3/project/search"
	out := map[string]any{"self": fmt.Sprintf("%s?startAt=%d&maxResults=%d", self, start, size), "maxResults": size, "startAt": start,
		"total": len(ps), "isLast": end >= len(ps), "values": vals}
	if end < len(ps) {
		out["nextPage"] = fmt.Sprintf("%s?startAt=%d&maxResults=%d", self, end, size)
	}
	writeJSON(w, http.StatusOK, out)
}

// serveUserBulk is GET /rest/api/3/user/bulk?accountId=…: the known
// accounts among those asked for, in the order asked, paged; unknown ids
// are left out. User objects carry no emailAddress for the Connect app
// (GDPR); for a person's API token they do, unless the profile hides it.
func (s *Site) serveUserBulk(w http.ResponseWriter, r *http.Request, who principal, _ []string) {
	q := r.URL.Query()
	start, size, ok := pageParams(w, q, UserBulkDefault, UserBulkMax)
	if !ok {
		return
	}
	ids := q["accountId"]
	if len(ids) == 0 {
		jiraError(w, http.StatusBadRequest, "accountId is required.")
		return
	}
	if len(ids) > UserBulkMax {
		jiraError(w, http.StatusBadRequest, fmt.Sprintf("The number of accountIds cannot exceed %d.", UserBulkMax))
		return
	}
	st := s.rest.st
	st.mu.RLock()
	var found []json.RawMessage
	seen := map[string]bool{}
	for _, id := range ids {
		if u, ok := st.users[id]; ok && !seen[id] {
			seen[id] = true
			if !who.app && u.email != "" && !u.emailHidden {
				// A person's API token sees the address unless the
				// profile hides it.
				found = append(found, withEmail(u.raw, u.email))
				continue
			}
			found = append(found, u.raw)
		}
	}
	st.mu.RUnlock()
	end := min(start+size, len(found))
	vals := orEmpty(found[min(start, len(found)):end])
	writeJSON(w, http.StatusOK, map[string]any{"self": s.BaseURL + "/rest/api/3/user/bulk", "maxResults": size, "startAt": start,
		"total": len(found), "isLast": end >= len(found), "values": vals})
}

// serveBulkFetch is POST /rest/api/3/changelog/bulkfetch: the changelogs
// of up to 1000 issues, oldest history first, optionally only the items of
// up to 10 fields. Atlassian does not open it to Connect apps: their JWT
// gets 403 here; HTTP Basic (an API token) works.
func (s *Site) serveBulkFetch(w http.ResponseWriter, r *http.Request, who principal, _ []string) {
	if who.app {
		jiraError(w, http.StatusForbidden, MsgConnectForbidden)
		return
	}
	var req struct {
		IssueIDsOrKeys []string `json:"issueIdsOrKeys"`
		FieldIDs       []string `json:"fieldIds"`
		MaxResults     int      `json:"maxResults"`
		NextPageToken  string   `json:"nextPageToken"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		jiraError(w, http.StatusBadRequest, "Invalid request payload. Refer to the REST API documentation and try again.")
		return
	}
	switch {
	case len(req.IssueIDsOrKeys) == 0:
		jiraError(w, http.StatusBadRequest, "issueIdsOrKeys is required.")
		return
	case len(req.IssueIDsOrKeys) > BulkFetchMaxIssues:
		jiraError(w, http.StatusBadRequest, fmt.Sprintf("You can request the changelogs of up to %d issues.", BulkFetchMaxIssues))
		return
	case len(req.FieldIDs) > BulkFetchMaxFields:
		jiraError(w, http.StatusBadRequest, fmt.Sprintf("You can filter by up to %d field IDs.", BulkFetchMaxFields))
		return
	}
	size := req.MaxResults
	if size <= 0 || size > BulkFetchMaxResults {
		size = BulkFetchMaxResults
	}
	reqHash := fmt.Sprintf("%x", jqlHash(strings.Join(req.IssueIDsOrKeys, ",")+"|"+strings.Join(req.FieldIDs, ",")))
	start := 0
	if req.NextPageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.NextPageToken)
		off, h, _ := strings.Cut(string(b), ":")
		n, perr := strconv.Atoi(off)
		if err != nil || perr != nil || n < 0 || h != reqHash {
			jiraError(w, http.StatusBadRequest, MsgBadPageToken)
			return
		}
		start = n
	}
	fields := map[string]bool{}
	for _, f := range req.FieldIDs {
		fields[f] = true
	}
	type item struct {
		issue int64
		e     entry
	}
	var all []item
	c := s.genContext()
	st := s.rest.st
	st.mu.RLock()
	for _, ref := range req.IssueIDsOrKeys {
		slot, ok := st.slotByIDOrKey(ref)
		if !ok || !st.visible(slot) {
			continue
		}
		for _, h := range st.recOf(c, slot).histories {
			if len(fields) > 0 {
				if h.raw = filterItems(h.raw, fields); h.raw == nil {
					continue
				}
			}
			all = append(all, item{st.id[slot], h})
		}
	}
	st.mu.RUnlock()
	slices.SortStableFunc(all, func(a, b item) int {
		switch {
		case a.e.at != b.e.at:
			return cmpInt(a.e.at, b.e.at)
		case a.issue != b.issue:
			return cmpInt(a.issue, b.issue)
		}
		return cmpInt(a.e.id, b.e.id)
	})
	end := min(start+size, len(all))
	type issueLogs struct {
		IssueID         string            `json:"issueId"`
		ChangeHistories []json.RawMessage `json:"changeHistories"`
	}
	logs := []issueLogs{}
	for _, it := range all[min(start, len(all)):end] {
		id := strconv.FormatInt(it.issue, 10)
		if n := len(logs); n == 0 || logs[n-1].IssueID != id {
			logs = append(logs, issueLogs{IssueID: id})
		}
		logs[len(logs)-1].ChangeHistories = append(logs[len(logs)-1].ChangeHistories, it.e.raw)
	}
	out := map[string]any{"issueChangeLogs": logs}
	if end < len(all) {
		out["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end) + ":" + reqHash))
	}
	writeJSON(w, http.StatusOK, out)
}

// withEmail is a user object with its emailAddress.
func withEmail(raw json.RawMessage, email string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	m["emailAddress"] = mustJSON(email)
	return mustJSON(m)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// filterItems keeps a history's items of the given fields; nil when none
// is left.
func filterItems(raw json.RawMessage, fields map[string]bool) json.RawMessage {
	var h map[string]json.RawMessage
	var items []map[string]any
	if json.Unmarshal(raw, &h) != nil || json.Unmarshal(h["items"], &items) != nil {
		return nil
	}
	items = slices.DeleteFunc(items, func(it map[string]any) bool {
		id, _ := it["fieldId"].(string)
		return !fields[id]
	})
	if len(items) == 0 {
		return nil
	}
	h["items"] = mustJSON(items)
	var b bytes.Buffer
	b.Write(mustJSON(h))
	return b.Bytes()
}
