package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API paths of the typed calls. The per-issue ones are IssuePath's.
const (
	PathServerInfo    = "/rest/api/3/serverInfo"
	PathMyself        = "/rest/api/3/myself"
	PathSearchJQL     = "/rest/api/3/search/jql"
	PathEmailBulk     = "/rest/api/3/user/email/bulk"
	PathUserBulk      = "/rest/api/3/user/bulk"
	PathFields        = "/rest/api/3/field"
	PathProjectSearch = "/rest/api/3/project/search"
)

// Batch sizes of the bulk user calls.
const (
	// MaxUsersPerCall is how many accountIds UsersBulk puts in one call of
	// /rest/api/3/user/bulk.
	MaxUsersPerCall = 100
	// MaxEmailsPerCall is how many accountIds UserEmails puts in one call
	// of /rest/api/3/user/email/bulk. Atlassian's reference documents no
	// maximum for it; the user/bulk figure keeps the URL well within
	// what proxies accept for ordinary account IDs.
	MaxEmailsPerCall = 100
	// maxIDQueryBytes also ends a batch early when long account IDs (up
	// to 128 characters) would make the URL longer than 8 KiB proxies.
	maxIDQueryBytes = 6000
)

// Time is a timestamp as Jira writes it: "2024-05-01T09:30:00.000+0000"
// (no colon in the offset, which encoding/json's RFC 3339 refuses). It also
// reads RFC 3339 and plain dates ("2024-05-01", as in duedate), and null as
// the zero time.
type Time struct{ time.Time }

// JiraLayout is Jira's timestamp format.
const JiraLayout = "2006-01-02T15:04:05.000-0700"

var timeLayouts = []string{
	"2006-01-02T15:04:05Z0700", // Jira's; fractional seconds are accepted when parsing
	time.RFC3339Nano,
	"2006-01-02",
}

func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	if n := len(b); n == len(JiraLayout)+2 && b[0] == '"' && b[n-1] == '"' {
		if v, ok := parseJiraLayout(b[1 : n-1]); ok {
			t.Time = v
			return nil
		}
	}
	var s string
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b[1:n-1], '\\') < 0 {
		s = string(b[1 : n-1]) // the usual case, without a decoder: timestamps are most of a changelog
	} else if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("jira time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("jira time: %q is not a timestamp Jira writes", s)
}

// parseJiraLayout reads exactly JiraLayout ("2024-05-01T09:30:00.000+0200"),
// what Jira Cloud writes for every timestamp, without time.Parse's layout
// interpretation: a sync reads a dozen per issue. ok is false for anything
// else, which time.Parse then reads. The result is what time.Parse gives:
// the instant in a fixed zone of the offset (UTC for +0000 on a machine in
// UTC is the same instant either way).
func parseJiraLayout(b []byte) (time.Time, bool) {
	// 0123456789012345678901234567
	// 2024-05-01T09:30:00.000+0200
	if b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || (b[23] != '+' && b[23] != '-') {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		v := 0
		for _, c := range b[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	milli, ok7 := num(20, 23)
	oh, ok8 := num(24, 26)
	om, ok9 := num(26, 28)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 || oh > 23 || om > 59 {
		return time.Time{}, false
	}
	offset := oh*3600 + om*60
	if b[23] == '-' {
		offset = -offset
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, milli*1e6, fixedZone(offset)), true
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// zones caches the fixed zones of the offsets seen (a site has a handful),
// so parsing a timestamp allocates none.
var zones sync.Map // offset seconds -> *time.Location

func fixedZone(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	if z, ok := zones.Load(offset); ok {
		return z.(*time.Location)
	}
	z, _ := zones.LoadOrStore(offset, time.FixedZone("", offset))
	return z.(*time.Location)
}

func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.Format(JiraLayout))
}

// ServerInfo is what GET /rest/api/3/serverInfo says of a site.
type ServerInfo struct {
	BaseURL        string `json:"baseUrl"`
	Version        string `json:"version"`
	VersionNumbers []int  `json:"versionNumbers"`
	DeploymentType string `json:"deploymentType"` // "Cloud" for Jira Cloud; "Server" or "DataCenter" on premises
	BuildNumber    int    `json:"buildNumber"`
	BuildDate      Time   `json:"buildDate"`
	ServerTime     Time   `json:"serverTime"`
	ScmInfo        string `json:"scmInfo"`
	ServerTitle    string `json:"serverTitle"`
}

// ServerInfo calls GET /rest/api/3/serverInfo.
func (c *Client) ServerInfo(ctx context.Context) (*ServerInfo, error) {
	var v ServerInfo
	if err := c.Get(ctx, PathServerInfo, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// User is a Jira user as /myself and the user APIs describe one.
type User struct {
	Self         string `json:"self"`
	AccountID    string `json:"accountId"`
	AccountType  string `json:"accountType"` // "atlassian" (a person), "app" (an app's own user), "customer" (JSM)
	DisplayName  string `json:"displayName"`
	EmailAddress string `json:"emailAddress"` // empty when the user's profile hides it
	Active       bool   `json:"active"`
	TimeZone     string `json:"timeZone"`
	Locale       string `json:"locale"`
}

// Myself calls GET /rest/api/3/myself: the user the credentials act as
// (for a Connect app's JWT, the app's own user, accountType "app").
func (c *Client) Myself(ctx context.Context) (*User, error) {
	var v User
	if err := c.Get(ctx, PathMyself, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SearchRequest is one page request of Jira's enhanced JQL search.
type SearchRequest struct {
	JQL string
	// MaxResults asks for a page size; 0 leaves Jira's default (50). Jira
	// may return fewer than asked, and fewer still when many fields are
	// requested, so a caller pages by NextPageToken, never by counting.
	MaxResults int
	// Fields to return; nil means Jira's default for this endpoint, which
	// is the issue id only. "*all", "*navigable" and "-field" work as in Jira.
	Fields []string
	// Expand is e.g. []string{"changelog", "renderedFields"}.
	Expand        []string
	NextPageToken string // "" for the first page
}

// SearchPage is one page of search results. Issues are kept raw: their
// shape depends on the fields asked for, and ingestion decodes them.
type SearchPage struct {
	Issues        []json.RawMessage `json:"issues"`
	NextPageToken string            `json:"nextPageToken"`
	IsLast        bool              `json:"isLast"`
}

// SearchJQL calls GET /rest/api/3/search/jql for one page.
//
// IsLast is also set when Jira sends no nextPageToken: it leaves the token
// out on the last page (JRACLOUD-92184) and a page without a token cannot
// be followed anyway.
func (c *Client) SearchJQL(ctx context.Context, r SearchRequest) (*SearchPage, error) {
	q := url.Values{"jql": {r.JQL}}
	if r.MaxResults > 0 {
		q.Set("maxResults", strconv.Itoa(r.MaxResults))
	}
	if len(r.Fields) > 0 {
		q.Set("fields", strings.Join(r.Fields, ","))
	}
	if len(r.Expand) > 0 {
		q.Set("expand", strings.Join(r.Expand, ","))
	}
	if r.NextPageToken != "" {
		q.Set("nextPageToken", r.NextPageToken)
	}
	var p SearchPage
	if err := c.Get(ctx, PathSearchJQL, q, &p); err != nil {
		return nil, err
	}
	if p.NextPageToken == "" {
		p.IsLast = true
	}
	return &p, nil
}

// SearchJQLPost is SearchJQL sent as POST /rest/api/3/search/jql with a
// JSON body, for JQL and field lists too long for a URL. It is a read, so
// it is retried like a GET.
func (c *Client) SearchJQLPost(ctx context.Context, r SearchRequest) (*SearchPage, error) {
	body := struct {
		JQL           string   `json:"jql"`
		MaxResults    int      `json:"maxResults,omitempty"`
		Fields        []string `json:"fields,omitempty"`
		Expand        string   `json:"expand,omitempty"` // a comma-separated string in the body, unlike the GET form
		NextPageToken string   `json:"nextPageToken,omitempty"`
	}{r.JQL, max(r.MaxResults, 0), r.Fields, strings.Join(r.Expand, ","), r.NextPageToken}
	var p SearchPage
	if err := c.Post(ctx, PathSearchJQL, nil, body, &p); err != nil {
		return nil, err
	}
	if p.NextPageToken == "" {
		p.IsLast = true
	}
	return &p, nil
}

// UserEmail is one answer of the email API.
type UserEmail struct {
	AccountID string `json:"accountId"`
	Email     string `json:"email"`
}

// UserEmails calls GET /rest/api/3/user/email/bulk?accountId=…&accountId=…
// and returns the addresses of the accounts Jira knows; unknown accounts are
// left out. Jira serves it only to apps Atlassian approved for email access.
// Duplicate and empty IDs are dropped, and the rest split into calls of at
// most MaxEmailsPerCall IDs (fewer when they are long).
func (c *Client) UserEmails(ctx context.Context, accountIDs []string) ([]UserEmail, error) {
	var out []UserEmail
	for _, batch := range idBatches(accountIDs, MaxEmailsPerCall) {
		got, err := c.userEmails(ctx, batch)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (c *Client) userEmails(ctx context.Context, accountIDs []string) ([]UserEmail, error) {
	var raw json.RawMessage
	if err := c.Get(ctx, PathEmailBulk, url.Values{"accountId": accountIDs}, &raw); err != nil {
		return nil, err
	}
	// Jira answers a list; its OpenAPI document describes a single object
	// (UnrestrictedUserEmail). Both are read.
	var out []UserEmail
	switch t := bytes.TrimSpace(raw); {
	case len(t) > 0 && t[0] == '[':
		if err := json.Unmarshal(t, &out); err != nil {
			return nil, &Error{Status: http.StatusOK, Method: http.MethodGet, Path: PathEmailBulk, Err: fmt.Errorf("decoding JSON response body: %w", err)}
		}
	case len(t) > 0 && t[0] == '{':
		var one UserEmail
		if err := json.Unmarshal(t, &one); err != nil {
			return nil, &Error{Status: http.StatusOK, Method: http.MethodGet, Path: PathEmailBulk, Err: fmt.Errorf("decoding JSON response body: %w", err)}
		}
		if one.AccountID != "" {
			out = []UserEmail{one}
		}
	default:
		return nil, &Error{Status: http.StatusOK, Method: http.MethodGet, Path: PathEmailBulk, Err: errors.New("decoding JSON response body: neither a list nor an object")}
	}
	return out, nil
}

// idBatches drops empty and repeated IDs and splits the rest, in order,
// into batches of at most n whose accountId query stays under
// maxIDQueryBytes.
func idBatches(ids []string, n int) [][]string {
	var (
		out   [][]string
		cur   []string
		bytes int
		seen  = make(map[string]bool, len(ids))
	)
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		size := len("&accountId=") + len(url.QueryEscape(id))
		if len(cur) > 0 && (len(cur) == n || bytes+size > maxIDQueryBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, id)
		bytes += size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// UsersBulk calls GET /rest/api/3/user/bulk for the accounts given and
// returns the users Jira knows (unknown accounts are left out). Duplicate
// and empty IDs are dropped and the rest split into calls of at most
// MaxUsersPerCall IDs, each paged through until Jira says it is the last.
func (c *Client) UsersBulk(ctx context.Context, accountIDs []string) ([]User, error) {
	var out []User
	for _, batch := range idBatches(accountIDs, MaxUsersPerCall) {
		startAt := 0
		for {
			q := url.Values{"accountId": batch, "startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(len(batch))}}
			var p struct {
				Values []User `json:"values"`
				pageInfo
			}
			if err := c.Get(ctx, PathUserBulk, q, &p); err != nil {
				return nil, err
			}
			out = append(out, p.Values...)
			if p.last(startAt, len(p.Values)) {
				break
			}
			startAt = p.next(startAt, len(p.Values))
		}
	}
	return out, nil
}

// pageInfo is the paging part of Jira's offset-paged answers
// (PageBean…, PageOfComments). isLast is absent from some of them.
type pageInfo struct {
	StartAt    int   `json:"startAt"`
	MaxResults int   `json:"maxResults"`
	Total      int   `json:"total"`
	IsLast     *bool `json:"isLast"`
}

// last reports whether a page of n items asked for at startAt is the last:
// Jira says so, or the items reach a known total, or there were none (a
// page with nothing cannot lead anywhere, whatever it claims).
func (p pageInfo) last(startAt, n int) bool {
	switch {
	case n == 0:
		return true
	case p.IsLast != nil && *p.IsLast:
		return true
	case p.Total > 0 && p.next(startAt, n) >= p.Total:
		return true
	}
	return p.IsLast == nil && p.next(startAt, n) >= p.Total
}

// next is where the page after one of n items starts. It always moves
// forward, so a server that ignores startAt cannot keep a reader in place.
func (p pageInfo) next(startAt, n int) int { return max(startAt, p.StartAt) + n }

// FieldSchema is how a field's values are typed.
type FieldSchema struct {
	Type     string `json:"type"`             // "string", "array", "user", "option", "number", "datetime", …
	Items    string `json:"items,omitempty"`  // the element type of an array
	System   string `json:"system,omitempty"` // the system field it is, e.g. "assignee"
	Custom   string `json:"custom,omitempty"` // a custom field's type key, e.g. "com.pyxis.greenhopper.jira:gh-sprint"
	CustomID int64  `json:"customId,omitempty"`
}

// Field is one system or custom field of the site.
type Field struct {
	ID     string       `json:"id"`  // "summary", "customfield_10020"
	Key    string       `json:"key"` // the same as ID for most fields
	Name   string       `json:"name"`
	Custom bool         `json:"custom"`
	Schema *FieldSchema `json:"schema,omitempty"` // absent for a few system fields
}

// Fields calls GET /rest/api/3/field: every field, system and custom.
func (c *Client) Fields(ctx context.Context) ([]Field, error) {
	var v []Field
	if err := c.Get(ctx, PathFields, nil, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// Project is a project as the project search lists it.
type Project struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

// projectsPageSize is the project search's default page size; Jira pages
// by what it returns, not by what was asked.
const projectsPageSize = 50

// Projects pages through GET /rest/api/3/project/search and returns every
// project the credentials may browse.
func (c *Client) Projects(ctx context.Context) ([]Project, error) {
	var out []Project
	startAt := 0
	for {
		q := url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(projectsPageSize)}}
		var p struct {
			Values []Project `json:"values"`
			pageInfo
		}
		if err := c.Get(ctx, PathProjectSearch, q, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Values...)
		if p.last(startAt, len(p.Values)) {
			return out, nil
		}
		startAt = p.next(startAt, len(p.Values))
	}
}

// UserRef is a user as other resources point at one.
type UserRef struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName,omitempty"`
}

// ChangeItem is one field's change within a History.
type ChangeItem struct {
	Field      string `json:"field"`
	FieldType  string `json:"fieldtype"` // "jira" or "custom"
	FieldID    string `json:"fieldId"`
	From       string `json:"from"`
	FromString string `json:"fromString"`
	To         string `json:"to"`
	ToString   string `json:"toString"`
}

// History is one changelog entry: what one user changed at one time.
type History struct {
	ID      string       `json:"id"`
	Author  *UserRef     `json:"author,omitempty"` // nil for anonymous and some automation changes
	Created Time         `json:"created"`
	Items   []ChangeItem `json:"items"`
}

// ChangelogPage is one page of an issue's changelog, oldest first.
type ChangelogPage struct {
	Values     []History `json:"values"`
	StartAt    int       `json:"startAt"`
	MaxResults int       `json:"maxResults"`
	Total      int       `json:"total"`
	IsLast     bool      `json:"isLast"`
}

// issueRef matches issue IDs (10001) and keys (SEI-1); anything else would
// change the path it is put into.
var issueRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$`)

// IssuePath returns /rest/api/3/issue/{issueIDOrKey}/{sub}, e.g. sub
// "changelog", the path a per-issue call's *Error names.
func IssuePath(issueID, sub string) string { return "/rest/api/3/issue/" + issueID + "/" + sub }

func checkIssueRef(issueID, sub string) error {
	if issueRef.MatchString(issueID) {
		return nil
	}
	return &Error{Method: http.MethodGet, Path: IssuePath("{issueIdOrKey}", sub), Err: errors.New("issue ID or key must be letters, digits, _ and -")}
}

// IssueChangelog calls GET /rest/api/3/issue/{issueID}/changelog for one
// page of at most maxResults entries (0: Jira's default, 100) from startAt.
func (c *Client) IssueChangelog(ctx context.Context, issueID string, startAt, maxResults int) (*ChangelogPage, error) {
	if err := checkIssueRef(issueID, "changelog"); err != nil {
		return nil, err
	}
	q := url.Values{"startAt": {strconv.Itoa(max(startAt, 0))}}
	if maxResults > 0 {
		q.Set("maxResults", strconv.Itoa(maxResults))
	}
	var p struct {
		Values []History `json:"values"`
		pageInfo
	}
	if err := c.Get(ctx, IssuePath(issueID, "changelog"), q, &p); err != nil {
		return nil, err
	}
	return &ChangelogPage{
		Values: p.Values, StartAt: p.StartAt, MaxResults: p.MaxResults, Total: p.Total,
		IsLast: p.last(max(startAt, 0), len(p.Values)),
	}, nil
}

// detailPageSize is what the paging helpers ask for per page: the
// changelog's maximum; Jira may send fewer, and paging follows what came.
const detailPageSize = 100

// AllIssueChangelog pages through an issue's changelog from startAt to the
// end. On an error it returns the entries read so far with it, so a caller
// can keep them and resume from startAt + len(entries).
func (c *Client) AllIssueChangelog(ctx context.Context, issueID string, startAt int) ([]History, error) {
	var out []History
	for {
		p, err := c.IssueChangelog(ctx, issueID, startAt, detailPageSize)
		if err != nil {
			return out, err
		}
		out = append(out, p.Values...)
		if p.IsLast {
			return out, nil
		}
		startAt = pageInfo{StartAt: p.StartAt}.next(startAt, len(p.Values))
	}
}

// Comment is one issue comment. Body is Atlassian Document Format, kept raw.
type Comment struct {
	ID      string          `json:"id"`
	Author  *UserRef        `json:"author,omitempty"`
	Body    json.RawMessage `json:"body"`
	Created Time            `json:"created"`
	Updated Time            `json:"updated"`
}

// CommentPage is one page of an issue's comments, oldest first.
type CommentPage struct {
	Comments   []Comment `json:"comments"`
	StartAt    int       `json:"startAt"`
	MaxResults int       `json:"maxResults"`
	Total      int       `json:"total"`
	// IsLast is worked out from total: the comment API does not say.
	IsLast bool `json:"isLast"`
}

// IssueComments calls GET /rest/api/3/issue/{issueID}/comment for one page
// of at most maxResults comments (0: Jira's default) from startAt, ordered
// by creation so pages do not shift under a reader.
func (c *Client) IssueComments(ctx context.Context, issueID string, startAt, maxResults int) (*CommentPage, error) {
	if err := checkIssueRef(issueID, "comment"); err != nil {
		return nil, err
	}
	q := url.Values{"startAt": {strconv.Itoa(max(startAt, 0))}, "orderBy": {"created"}}
	if maxResults > 0 {
		q.Set("maxResults", strconv.Itoa(maxResults))
	}
	var p struct {
		Comments []Comment `json:"comments"`
		pageInfo
	}
	if err := c.Get(ctx, IssuePath(issueID, "comment"), q, &p); err != nil {
		return nil, err
	}
	return &CommentPage{
		Comments: p.Comments, StartAt: p.StartAt, MaxResults: p.MaxResults, Total: p.Total,
		IsLast: p.last(max(startAt, 0), len(p.Comments)),
	}, nil
}

// AllIssueComments pages through an issue's comments from startAt to the
// end; on an error it returns the comments read so far with it.
func (c *Client) AllIssueComments(ctx context.Context, issueID string, startAt int) ([]Comment, error) {
	var out []Comment
	for {
		p, err := c.IssueComments(ctx, issueID, startAt, detailPageSize)
		if err != nil {
			return out, err
		}
		out = append(out, p.Comments...)
		if p.IsLast {
			return out, nil
		}
		startAt = pageInfo{StartAt: p.StartAt}.next(startAt, len(p.Comments))
	}
}
