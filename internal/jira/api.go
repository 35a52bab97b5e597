package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// API paths of the typed calls.
const (
	PathServerInfo = "/rest/api/3/serverInfo"
	PathMyself     = "/rest/api/3/myself"
	PathSearchJQL  = "/rest/api/3/search/jql"
	PathEmailBulk  = "/rest/api/3/user/email/bulk"
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
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
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

// UserEmail is one answer of the email API.
type UserEmail struct {
	AccountID string `json:"accountId"`
	Email     string `json:"email"`
}

// UserEmails calls GET /rest/api/3/user/email/bulk?accountId=…&accountId=…
// and returns the addresses of the accounts Jira knows; unknown accounts are
// left out. Jira serves it only to apps Atlassian approved for email access.
// The caller bounds how many IDs go in one call (the URL carries them all).
func (c *Client) UserEmails(ctx context.Context, accountIDs []string) ([]UserEmail, error) {
	if len(accountIDs) == 0 {
		return nil, nil
	}
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
