package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	json "github.com/goccy/go-json"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
)

// DataCenterSource reads Jira Data Center (or Server) through API v2.
//
// Paging. Data Center's search pages by startAt, and one backed by
// OpenSearch refuses any page reaching past its result window
// (startAt + maxResults > 10,000), so an offset walk cannot read a large
// query to its end. The source never asks for such a page:
//
//   - Keyset paging (the default) for queries ordered by id, updated or
//     created, ascending — every query the Syncer makes. Each page asks
//     from the start (startAt 0) for what follows the last issue read:
//     "AND id > last", or "AND updated >= last" with the issues of that
//     very millisecond already read dropped (ties are then walked by id).
//     No page is deeper than one page, no count query is needed, and an
//     issue that changes while the query is read cannot shift the ones
//     after it out of reach, as it can under offsets.
//   - Updated windows, for any other order (or with Paging: PagingWindows):
//     the first page says how many issues match; beyond the window the
//     query is cut into ranges of updated, each counted (maxResults=0) and
//     halved until none holds more than the window, then read one after
//     the other by startAt. Across windows issues come in updated order.
//
// Either way the page token handed to the Syncer carries the position, so
// a page's checkpoint resumes exactly where it stopped.
//
// Users. Data Center names users by key and name, not accountId. Issues
// are rewritten so that every user object the Transformer reads (assignee,
// reporter, creator, comment and history authors) carries "accountId":
// its key — keys are stable, names can change. So users are stored keyed
// by their Data Center key, with the emailAddress Data Center shows.
type DataCenterSource struct {
	Client *jira.Client
	opts   DataCenterOptions

	mu    sync.Mutex
	users map[string]dcUser // key -> what an issue or /user showed

	searches, counts, probes, windows atomic.Int64
}

// DataCenterOptions tune a DataCenterSource; the zero value is right for
// a Data Center with OpenSearch's default result window.
type DataCenterOptions struct {
	// Window is the deepest a search may page: startAt + maxResults never
	// exceeds it. 0 means jira.DCResultWindow (10,000).
	Window int
	// Paging is PagingKeyset (the default) or PagingWindows (every query
	// cut into counted updated windows, as for unknown orders).
	Paging string
}

// Paging strategies of DataCenterOptions.
const (
	PagingKeyset  = "keyset"
	PagingWindows = "windows"
)

// DataCenterStats is what a DataCenterSource's searches cost.
type DataCenterStats struct {
	Searches int64 // search requests that read issues
	Counts   int64 // maxResults=0 requests counting a window
	Probes   int64 // one-issue requests finding a query's first and last updated
	Windows  int64 // windows planned
}

type dcUser struct {
	ref   UserRef
	email string
	known bool
}

// NewDataCenterSource reads the Data Center site client calls (Basic,
// personal access token or ADFS).
func NewDataCenterSource(client *jira.Client, opts DataCenterOptions) *DataCenterSource {
	if opts.Window <= 0 {
		opts.Window = jira.DCResultWindow
	}
	if opts.Paging == "" {
		opts.Paging = PagingKeyset
	}
	return &DataCenterSource{Client: client, opts: opts, users: map[string]dcUser{}}
}

// Requests implements Source.
func (s *DataCenterSource) Requests() int { return int(s.Client.Stats().Requests) }

// Stats says what the searches cost so far.
func (s *DataCenterSource) Stats() DataCenterStats {
	return DataCenterStats{Searches: s.searches.Load(), Counts: s.counts.Load(), Probes: s.probes.Load(), Windows: s.windows.Load()}
}

// Fields implements Source with /rest/api/2/field.
func (s *DataCenterSource) Fields(ctx context.Context) (FieldMeta, error) {
	var fields []SiteField
	if err := s.Client.Get(ctx, jira.PathFieldsV2, nil, &fields); err != nil {
		return FieldMeta{}, err
	}
	return MetaFromFields(fields), nil
}

// Projects implements Source with /rest/api/2/project (one list, not paged).
func (s *DataCenterSource) Projects(ctx context.Context) ([]string, error) {
	var ps []struct {
		Key string `json:"key"`
	}
	if err := s.Client.Get(ctx, jira.PathProjectsV2, nil, &ps); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(ps))
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	return keys, nil
}

// dcCursor is the position a page token carries.
type dcCursor struct {
	// Keyset: the sort key of the last issue read. Tie is set while the
	// issues sharing updated (or created) value V are walked by id.
	Started bool  `json:"s,omitempty"`
	V       int64 `json:"v,omitempty"`
	ID      int64 `json:"i,omitempty"`
	Tie     bool  `json:"t,omitempty"`
	// Windows: the windows left, the first being read from StartAt.
	Planned bool       `json:"p,omitempty"`
	Windows []dcWindow `json:"w,omitempty"`
	StartAt int        `json:"a,omitempty"`
}

// dcWindow is a range of updated, epoch ms: [From, To), To 0 for open.
type dcWindow struct {
	From int64 `json:"f"`
	To   int64 `json:"t,omitempty"`
}

func encodeCursor(c dcCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(tok string) (dcCursor, error) {
	var c dcCursor
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, apperr.New(apperr.Internal, "unreadable Data Center page token")
	}
	return c, nil
}

// Search implements Source.
func (s *DataCenterSource) Search(ctx context.Context, q Query) ([]json.RawMessage, string, error) {
	where, order, err := splitOrder(q.JQL)
	if err != nil {
		return nil, "", err
	}
	var cur dcCursor
	if q.PageToken != "" {
		if cur, err = decodeCursor(q.PageToken); err != nil {
			return nil, "", err
		}
	}
	if key := keysetField(order); key != "" && s.opts.Paging != PagingWindows {
		return s.keyset(ctx, q, where, key, cur)
	}
	return s.windowed(ctx, q, where, order, cur)
}

// keyset reads the page after cur of a query ordered by key (id, updated
// or created) ascending.
func (s *DataCenterSource) keyset(ctx context.Context, q Query, where, key string, cur dcCursor) ([]json.RawMessage, string, error) {
	fields := q.Fields
	if key != "id" && !slices.Contains(fields, key) {
		fields = append(slices.Clone(fields), key) // the cursor needs it
	}
	for {
		size := max(q.MaxResults, 1)
		if key != "id" && !cur.Tie && cur.Started {
			// "updated >= V" brings back the issue the last page ended
			// with: one more makes room for it.
			size++
		}
		size = min(size, s.opts.Window)
		var jql string
		switch {
		case key == "id":
			jql = and(where, cond(cur.Started, fmt.Sprintf("id > %d", cur.ID))) + " ORDER BY id ASC"
		case cur.Tie:
			jql = and(where, fmt.Sprintf("%s = %d AND id > %d", key, cur.V, cur.ID)) + " ORDER BY id ASC"
		default:
			jql = and(where, cond(cur.Started, fmt.Sprintf("%s >= %d", key, cur.V))) + " ORDER BY " + key + " ASC, id ASC"
		}
		page, err := s.search(ctx, jira.SearchV2Request{JQL: jql, MaxResults: size, Fields: fields, Expand: expand(q)})
		if err != nil {
			return nil, "", err
		}
		more := len(page.Issues) < page.Total
		if len(page.Issues) == 0 && more {
			return nil, "", apperr.New(apperr.Internal, "Jira Data Center granted no issues for a search that has some (maxResults 0)")
		}
		var out []json.RawMessage
		for _, raw := range page.Issues {
			id, v, err := issueSortKey(raw, key)
			if err != nil {
				return nil, "", err
			}
			// Under "updated >= V" the issues of V already read come
			// again: skip them.
			if key != "id" && !cur.Tie && cur.Started && v == cur.V && id <= cur.ID {
				continue
			}
			if key != "id" && !cur.Tie {
				cur.V = v
			}
			cur.Started, cur.ID = true, id
			if raw, err = s.rewrite(raw, q); err != nil {
				return nil, "", err
			}
			out = append(out, raw)
		}
		switch {
		case cur.Tie && !more:
			// Every issue of V is read: go on after it.
			cur = dcCursor{Started: true, V: cur.V + 1, ID: math.MinInt64}
			more = true
		case !cur.Tie && len(out) == 0 && more:
			// A whole page of V already read: walk V's issues by id.
			cur.Tie = true
			continue
		}
		if len(out) == 0 && more {
			continue
		}
		if !more {
			return out, "", nil
		}
		return out, encodeCursor(cur), nil
	}
}

// windowed reads a query window by window: ranges of updated small enough
// to page by startAt within the result window.
func (s *DataCenterSource) windowed(ctx context.Context, q Query, where, order string, cur dcCursor) ([]json.RawMessage, string, error) {
	if order == "" {
		order = "updated ASC, id ASC"
	}
	ex := expand(q)
	if !cur.Planned {
		// The first page doubles as the count: most queries fit.
		page, err := s.search(ctx, jira.SearchV2Request{JQL: where + " ORDER BY " + order, MaxResults: min(max(q.MaxResults, 1), s.opts.Window),
			Fields: q.Fields, Expand: ex})
		if err != nil {
			return nil, "", err
		}
		if page.Total <= s.opts.Window {
			out, err := s.rewriteAll(page.Issues, q)
			if err != nil || len(page.Issues) >= page.Total || len(page.Issues) == 0 {
				return out, "", err
			}
			return out, encodeCursor(dcCursor{Planned: true, Windows: []dcWindow{{From: math.MinInt64}}, StartAt: len(page.Issues)}), nil
		}
		ws, err := s.plan(ctx, where, page.Total)
		if err != nil {
			return nil, "", err
		}
		cur = dcCursor{Planned: true, Windows: ws}
	}
	for len(cur.Windows) > 0 {
		w := cur.Windows[0]
		size := min(max(q.MaxResults, 1), s.opts.Window-cur.StartAt)
		if size <= 0 {
			return nil, "", apperr.New(apperr.Internal, "a Data Center window outgrew the result window")
		}
		page, err := s.search(ctx, jira.SearchV2Request{JQL: and(where, w.jql()) + " ORDER BY " + order, StartAt: cur.StartAt,
			MaxResults: size, Fields: q.Fields, Expand: ex})
		if err != nil {
			return nil, "", err
		}
		if page.Total > s.opts.Window {
			// Issues moved into the window since it was counted: cut it
			// again and read it anew (what was read comes again).
			sub, err := s.split(ctx, where, w, page.Total)
			if err != nil {
				return nil, "", err
			}
			cur.Windows = append(sub, cur.Windows[1:]...)
			cur.StartAt = 0
			continue
		}
		out, err := s.rewriteAll(page.Issues, q)
		if err != nil {
			return nil, "", err
		}
		cur.StartAt += len(page.Issues)
		if len(page.Issues) == 0 || cur.StartAt >= page.Total {
			cur.Windows, cur.StartAt = cur.Windows[1:], 0
		}
		if len(out) == 0 {
			continue
		}
		if len(cur.Windows) == 0 {
			return out, "", nil
		}
		return out, encodeCursor(cur), nil
	}
	return nil, "", nil
}

func (w dcWindow) jql() string {
	switch {
	case w.From == math.MinInt64 && w.To == 0:
		return ""
	case w.To == 0:
		return fmt.Sprintf("updated >= %d", w.From)
	case w.From == math.MinInt64:
		return fmt.Sprintf("updated < %d", w.To)
	}
	return fmt.Sprintf("updated >= %d AND updated < %d", w.From, w.To)
}

// plan cuts a query of total issues into updated windows of at most the
// result window each: from its first updated to an open end (issues
// updated while it is read land in the last window).
func (s *DataCenterSource) plan(ctx context.Context, where string, total int) ([]dcWindow, error) {
	first, err := s.probe(ctx, where, "ASC")
	if err != nil {
		return nil, err
	}
	return s.split(ctx, where, dcWindow{From: first}, total)
}

// split cuts w, holding total issues, into windows of at most the result
// window, halving by time and counting the left half of each cut (the
// right half's count is the rest).
func (s *DataCenterSource) split(ctx context.Context, where string, w dcWindow, total int) ([]dcWindow, error) {
	if total <= s.opts.Window {
		s.windows.Add(1)
		return []dcWindow{w}, nil
	}
	if w.To == 0 {
		// An open end is closed just past the last issue for cutting;
		// the last piece is opened again.
		last, err := s.probe(ctx, and(where, w.jql()), "DESC")
		if err != nil {
			return nil, err
		}
		ws, err := s.split(ctx, where, dcWindow{From: w.From, To: last + 1}, total)
		if err != nil {
			return nil, err
		}
		ws[len(ws)-1].To = 0
		return ws, nil
	}
	if w.From == math.MinInt64 {
		first, err := s.probe(ctx, and(where, w.jql()), "ASC")
		if err != nil {
			return nil, err
		}
		w.From = first
	}
	if w.To-w.From <= 1 {
		return nil, apperr.New(apperr.Internal, "more than %d issues share one updated millisecond: Data Center cannot page them by offset", s.opts.Window)
	}
	mid := w.From + (w.To-w.From)/2
	left := dcWindow{From: w.From, To: mid}
	n, err := s.count(ctx, and(where, left.jql()))
	if err != nil {
		return nil, err
	}
	a, err := s.split(ctx, where, left, n)
	if err != nil {
		return nil, err
	}
	b, err := s.split(ctx, where, dcWindow{From: mid, To: w.To}, max(total-n, 0))
	if err != nil {
		return nil, err
	}
	return append(a, b...), nil
}

// count asks only for the total (maxResults=0).
func (s *DataCenterSource) count(ctx context.Context, where string) (int, error) {
	s.counts.Add(1)
	var p jira.SearchV2Page
	err := s.Client.Post(ctx, jira.PathSearchV2, nil, jira.SearchV2Request{JQL: where, MaxResults: 0, Fields: []string{"id"}}, &p)
	return p.Total, err
}

// probe finds the first (ASC) or last (DESC) updated of a query.
func (s *DataCenterSource) probe(ctx context.Context, where, dir string) (int64, error) {
	s.probes.Add(1)
	var p jira.SearchV2Page
	if err := s.Client.Post(ctx, jira.PathSearchV2, nil, jira.SearchV2Request{JQL: where + " ORDER BY updated " + dir + ", id " + dir,
		MaxResults: 1, Fields: []string{"updated"}}, &p); err != nil {
		return 0, err
	}
	if len(p.Issues) == 0 {
		return 0, nil
	}
	_, v, err := issueSortKey(p.Issues[0], "updated")
	return v, err
}

func (s *DataCenterSource) search(ctx context.Context, r jira.SearchV2Request) (*jira.SearchV2Page, error) {
	s.searches.Add(1)
	return s.Client.SearchV2(ctx, r)
}

func expand(q Query) []string {
	if q.Changelog {
		return []string{"changelog"}
	}
	return nil
}

func cond(ok bool, clause string) string {
	if ok {
		return clause
	}
	return ""
}

// and joins restrictions; a query's own is parenthesised, so an OR in it
// stays inside.
func and(where, clause string) string {
	where = strings.TrimSpace(where)
	switch {
	case where == "":
		return clause
	case clause == "":
		return where
	}
	return "(" + where + ") AND " + clause
}

// keysetField is the field a query can be keyset-paged by: its order
// starts with id, updated or created ascending (updated and created then
// broken by id, which the source makes explicit).
func keysetField(order string) string {
	terms := strings.Split(order, ",")
	first := strings.Fields(strings.ToLower(terms[0]))
	if len(first) == 0 || len(first) > 2 || (len(first) == 2 && first[1] != "asc") {
		return ""
	}
	f := first[0]
	switch f {
	case "updateddate":
		f = "updated"
	case "createddate":
		f = "created"
	}
	switch f {
	case "id":
		return f
	case "updated", "created":
		if len(terms) == 1 {
			return f
		}
		second := strings.Fields(strings.ToLower(terms[1]))
		if len(terms) == 2 && len(second) >= 1 && second[0] == "id" && (len(second) == 1 || second[1] == "asc") {
			return f
		}
	}
	return ""
}

// splitOrder cuts JQL into its restriction and its ORDER BY terms, outside
// quoted strings.
func splitOrder(jql string) (where, order string, err error) {
	var quote rune
	runes := []rune(jql)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		switch {
		case quote != 0:
			if r == '\\' {
				i++
			} else if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case (r == 'o' || r == 'O') && (i == 0 || !isWordRune(runes[i-1])) && hasWordAt(runes, i, "order"):
			j := i + len("order")
			for j < len(runes) && unicode.IsSpace(runes[j]) {
				j++
			}
			if j > i+len("order") && hasWordAt(runes, j, "by") {
				return strings.TrimSpace(string(runes[:i])), strings.TrimSpace(string(runes[j+2:])), nil
			}
		}
	}
	if quote != 0 {
		return "", "", apperr.New(apperr.Internal, "unterminated string in JQL")
	}
	return strings.TrimSpace(jql), "", nil
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

func hasWordAt(rs []rune, i int, w string) bool {
	if i+len(w) > len(rs) || !strings.EqualFold(string(rs[i:i+len(w)]), w) {
		return false
	}
	return i+len(w) == len(rs) || !isWordRune(rs[i+len(w)])
}

// issueSortKey reads an issue's id and, for updated or created, that
// field as epoch ms.
func issueSortKey(raw json.RawMessage, key string) (int64, int64, error) {
	var v struct {
		ID     string `json:"id"`
		Fields struct {
			Updated jira.Time `json:"updated"`
			Created jira.Time `json:"created"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, 0, apperr.Wrap(err, apperr.Internal, "unreadable issue from Jira")
	}
	id, err := strconv.ParseInt(v.ID, 10, 64)
	if err != nil {
		return 0, 0, apperr.New(apperr.Internal, "an issue from Jira has no numeric id")
	}
	switch key {
	case "updated":
		if v.Fields.Updated.IsZero() {
			return 0, 0, apperr.New(apperr.Internal, "an issue from Jira has no updated")
		}
		return id, v.Fields.Updated.UnixMilli(), nil
	case "created":
		if v.Fields.Created.IsZero() {
			return 0, 0, apperr.New(apperr.Internal, "an issue from Jira has no created")
		}
		return id, v.Fields.Created.UnixMilli(), nil
	}
	return id, id, nil
}

func (s *DataCenterSource) rewriteAll(raws []json.RawMessage, q Query) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(raws))
	for _, raw := range raws {
		r, err := s.rewrite(raw, q)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// userFields are the issue fields whose user the Transformer keeps.
var userFields = []string{"assignee", "reporter", "creator"}

// rewrite gives the user objects the Transformer reads an accountId (the
// Data Center key) and remembers each user with the email shown. An
// id-only issue is left as it is.
func (s *DataCenterSource) rewrite(raw json.RawMessage, q Query) (json.RawMessage, error) {
	if !q.Changelog && len(q.Fields) <= 1 {
		return raw, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "unreadable issue from Jira")
	}
	if f, ok := top["fields"]; ok && len(f) > 0 && f[0] == '{' {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(f, &fields); err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "unreadable issue fields from Jira")
		}
		changed := false
		for _, k := range userFields {
			if u, ok := fields[k]; ok {
				if nu, ok := s.userObject(u); ok {
					fields[k], changed = nu, true
				}
			}
		}
		if c, ok := fields["comment"]; ok && len(c) > 0 && c[0] == '{' {
			nc, err := s.rewriteList(c, "comments", "author", "updateAuthor")
			if err != nil {
				return nil, err
			}
			fields["comment"], changed = nc, true
		}
		if changed {
			top["fields"] = rawObject(fields)
		}
	}
	if c, ok := top["changelog"]; ok && len(c) > 0 && c[0] == '{' {
		nc, err := s.rewriteList(c, "histories", "author")
		if err != nil {
			return nil, err
		}
		top["changelog"] = nc
	}
	return rawObject(top), nil
}

// rewriteList rewrites the users under keys of each element of list in
// the object raw.
func (s *DataCenterSource) rewriteList(raw json.RawMessage, list string, keys ...string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "unreadable %s from Jira", list)
	}
	var elems []map[string]json.RawMessage
	if l, ok := obj[list]; ok {
		if err := json.Unmarshal(l, &elems); err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "unreadable %s from Jira", list)
		}
	}
	items := make([]json.RawMessage, len(elems))
	for i, e := range elems {
		for _, k := range keys {
			if u, ok := e[k]; ok {
				if nu, ok := s.userObject(u); ok {
					e[k] = nu
				}
			}
		}
		items[i] = rawObject(e)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	obj[list] = b.Bytes()
	return rawObject(obj), nil
}

// userObject turns a Data Center user object into one with accountId =
// key (inserted first, the rest as it was) and remembers the user.
func (s *DataCenterSource) userObject(raw json.RawMessage) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return nil, false
	}
	var u jira.DCUser
	if json.Unmarshal(raw, &u) != nil || u.Key == "" {
		return nil, false
	}
	s.remember(u)
	key, _ := json.Marshal(u.Key)
	out := make([]byte, 0, len(raw)+len(key)+16)
	out = append(out, `{"accountId":`...)
	out = append(out, key...)
	if rest := bytes.TrimSpace(raw[1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, raw[1:]...), true
}

func (s *DataCenterSource) remember(u jira.DCUser) {
	active := u.Active
	ref := UserRef{AccountID: u.Key, DisplayName: u.DisplayName, Active: &active, TimeZone: u.TimeZone}
	s.mu.Lock()
	s.users[u.Key] = dcUser{ref: ref, email: strings.TrimSpace(u.EmailAddress), known: true}
	s.mu.Unlock()
}

// rawObject writes a map of raw values as a JSON object with sorted keys,
// the values as they are (they came from Jira as JSON).
func rawObject(m map[string]json.RawMessage) json.RawMessage {
	keys := make([]string, 0, len(m))
	size := 2
	for k, v := range m {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, size+16)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		if v := m[k]; len(v) > 0 {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// Changelog implements Source. Data Center embeds the whole changelog, so
// this is only reached for an issue whose search answer lacked it: the
// issue is read with expand=changelog.
func (s *DataCenterSource) Changelog(ctx context.Context, issueID string, startAt, count int) ([]History, error) {
	var v struct {
		Changelog struct {
			Histories []History `json:"histories"`
		} `json:"changelog"`
	}
	raw, err := s.issue(ctx, issueID, url.Values{"fields": {"id"}, "expand": {"changelog"}})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, apperr.Wrap(err, apperr.Internal, "unreadable changelog from Jira")
	}
	hs := v.Changelog.Histories
	hs = hs[min(max(startAt, 0), len(hs)):]
	if count >= 0 && len(hs) > count {
		hs = hs[:count]
	}
	return hs, nil
}

// issue reads GET /rest/api/2/issue/{id} with users rewritten.
func (s *DataCenterSource) issue(ctx context.Context, issueID string, q url.Values) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := s.Client.Get(ctx, "/rest/api/2/issue/"+url.PathEscape(issueID), q, &raw); err != nil {
		return nil, err
	}
	return s.rewrite(raw, Query{Changelog: true, Fields: []string{"*"}})
}

// Comments implements Source with /rest/api/2/issue/{id}/comment.
func (s *DataCenterSource) Comments(ctx context.Context, issueID string) ([]Comment, error) {
	var out []Comment
	for start := 0; ; {
		var raw json.RawMessage
		q := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(commentPage)}}
		if err := s.Client.Get(ctx, "/rest/api/2/issue/"+url.PathEscape(issueID)+"/comment", q, &raw); err != nil {
			return nil, err
		}
		fixed, err := s.rewriteList(raw, "comments", "author", "updateAuthor")
		if err != nil {
			return nil, err
		}
		var page struct {
			Comments []Comment `json:"comments"`
			Total    int       `json:"total"`
		}
		if err := json.Unmarshal(fixed, &page); err != nil {
			return nil, apperr.Wrap(err, apperr.Internal, "unreadable comments from Jira")
		}
		out = append(out, page.Comments...)
		start += len(page.Comments)
		if len(page.Comments) == 0 || start >= page.Total {
			return out, nil
		}
	}
}

// Users implements Source: the users issues showed, others from
// /rest/api/2/user?key= (Data Center has no bulk user API), a few at once.
func (s *DataCenterSource) Users(ctx context.Context, keys []string) ([]UserRef, error) {
	if err := s.lookup(ctx, keys); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UserRef, 0, len(keys))
	for _, k := range keys {
		if u := s.users[k]; u.known {
			out = append(out, u.ref)
		}
	}
	return out, nil
}

// Emails implements Source: the emailAddress Data Center shows in user
// objects (its email visibility setting decides).
func (s *DataCenterSource) Emails(ctx context.Context, keys []string) (map[string]string, error) {
	if err := s.lookup(ctx, keys); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if e := s.users[k].email; e != "" {
			out[k] = e
		}
	}
	return out, nil
}

func (s *DataCenterSource) lookup(ctx context.Context, keys []string) error {
	s.mu.Lock()
	var missing []string
	for _, k := range keys {
		if _, ok := s.users[k]; !ok && k != "" {
			missing = append(missing, k)
		}
	}
	s.mu.Unlock()
	return parallel(ctx, bulkConcurrency, missing, func(ctx context.Context, key string) error {
		u, err := s.Client.UserByKey(ctx, key)
		switch {
		case jira.IsNotFound(err):
			s.mu.Lock()
			s.users[key] = dcUser{ref: UserRef{AccountID: key}}
			s.mu.Unlock()
			return nil
		case err != nil:
			return err
		}
		if u.Key == "" {
			u.Key = key
		}
		s.remember(*u)
		return nil
	})
}
