package jira

import (
	"context"
	"encoding/json"
	"net/url"
)

// Jira Data Center's REST API v2: the calls that differ from Cloud's.
// Data Center pages its search by startAt, grants at most its own
// maxResults (jira.search.views.default.max, often 1000, sometimes 50 or
// 100) and says what it granted; behind OpenSearch it refuses any page
// past its result window (startAt + maxResults > 10,000 by default).
// Users are named by key and name, not accountId.

// API paths of Data Center.
const (
	PathServerInfoV2 = "/rest/api/2/serverInfo"
	PathMyselfV2     = "/rest/api/2/myself"
	PathSearchV2     = "/rest/api/2/search"
	PathFieldsV2     = "/rest/api/2/field"
	PathProjectsV2   = "/rest/api/2/project"
	PathUserV2       = "/rest/api/2/user"
)

// DCResultWindow is how deep an OpenSearch-backed Data Center lets a
// search page (index.max_result_window): startAt + maxResults beyond it
// is refused.
const DCResultWindow = 10000

// DCUser is a Data Center user: Key is stable (JIRAUSER10100, or the
// username of accounts made before Jira 8), Name is the login and may
// change. EmailAddress is shown as the site's email visibility allows.
type DCUser struct {
	Self         string `json:"self"`
	Key          string `json:"key"`
	Name         string `json:"name"`
	DisplayName  string `json:"displayName"`
	EmailAddress string `json:"emailAddress"`
	Active       bool   `json:"active"`
	TimeZone     string `json:"timeZone"`
	Locale       string `json:"locale"`
}

// MyselfV2 calls GET /rest/api/2/myself: the account the credentials act
// as, with its time zone.
func (c *Client) MyselfV2(ctx context.Context) (*DCUser, error) {
	var v DCUser
	if err := c.Get(ctx, PathMyselfV2, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ServerInfoV2 calls GET /rest/api/2/serverInfo (deploymentType
// "DataCenter" or "Server").
func (c *Client) ServerInfoV2(ctx context.Context) (*ServerInfo, error) {
	var v ServerInfo
	if err := c.Get(ctx, PathServerInfoV2, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// UserByKey calls GET /rest/api/2/user?key=…
func (c *Client) UserByKey(ctx context.Context, key string) (*DCUser, error) {
	var v DCUser
	if err := c.Get(ctx, PathUserV2, url.Values{"key": {key}}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SearchV2Request is one page of Data Center's search.
type SearchV2Request struct {
	JQL        string   `json:"jql"`
	StartAt    int      `json:"startAt"`
	MaxResults int      `json:"maxResults"` // 0 asks only for the total
	Fields     []string `json:"fields,omitempty"`
	Expand     []string `json:"expand,omitempty"`
}

// SearchV2Page is one page: MaxResults is what the server granted, Total
// how many issues match the query in all.
type SearchV2Page struct {
	StartAt    int               `json:"startAt"`
	MaxResults int               `json:"maxResults"`
	Total      int               `json:"total"`
	Issues     []json.RawMessage `json:"issues"`
}

// SearchV2 calls POST /rest/api/2/search (a read, retried like a GET).
func (c *Client) SearchV2(ctx context.Context, r SearchV2Request) (*SearchV2Page, error) {
	r.StartAt, r.MaxResults = max(r.StartAt, 0), max(r.MaxResults, 0)
	var p SearchV2Page
	if err := c.Post(ctx, PathSearchV2, nil, r, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
