package ingest

import (
	"context"
	"errors"
	json "github.com/goccy/go-json"
	"net/url"
	"strconv"
	"strings"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
)

// CloudSource reads a Jira Cloud site through the REST client (signed with
// the app JWT for the Connect app; basic auth for API tokens).
type CloudSource struct {
	Client *jira.Client
}

// Batch sizes Atlassian allows: /user/bulk takes up to 100 accountIds
// per call; /user/email/bulk is documented for batches of up to 100 too.
const (
	usersPerCall  = 100
	emailsPerCall = 100
	// changelogPage and commentPage are the largest pages those
	// endpoints grant.
	changelogPage = 100
	commentPage   = 100
)

func (s *CloudSource) get(ctx context.Context, path string, q url.Values, out any) error {
	return s.Client.Get(ctx, path, q, out)
}

// Requests implements Source: HTTP attempts, retries included, as the
// client counted them.
func (s *CloudSource) Requests() int { return int(s.Client.Stats().Requests) }

// Fields implements Source.
func (s *CloudSource) Fields(ctx context.Context) (FieldMeta, error) {
	var fields []SiteField
	if err := s.get(ctx, "/rest/api/3/field", nil, &fields); err != nil {
		return FieldMeta{}, err
	}
	return MetaFromFields(fields), nil
}

// Projects implements Source.
func (s *CloudSource) Projects(ctx context.Context) ([]string, error) {
	var keys []string
	for start := 0; ; {
		var page struct {
			Values []struct {
				Key string `json:"key"`
			} `json:"values"`
			IsLast bool `json:"isLast"`
		}
		q := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {"100"}}
		if err := s.get(ctx, "/rest/api/3/project/search", q, &page); err != nil {
			return nil, err
		}
		for _, p := range page.Values {
			keys = append(keys, p.Key)
		}
		start += len(page.Values)
		if page.IsLast || len(page.Values) == 0 {
			return keys, nil
		}
	}
}

// Search implements Source with POST /rest/api/3/search/jql: field lists
// and JQL can outgrow a URL.
func (s *CloudSource) Search(ctx context.Context, q Query) ([]json.RawMessage, string, error) {
	body := map[string]any{"jql": q.JQL, "maxResults": q.MaxResults, "fields": q.Fields}
	if q.Changelog {
		body["expand"] = "changelog"
	}
	if q.PageToken != "" {
		body["nextPageToken"] = q.PageToken
	}
	var page struct {
		Issues        []json.RawMessage `json:"issues"`
		NextPageToken string            `json:"nextPageToken"`
		IsLast        *bool             `json:"isLast"`
	}
	if err := s.Client.Post(ctx, "/rest/api/3/search/jql", nil, body, &page); err != nil {
		return nil, "", err
	}
	if page.IsLast != nil && *page.IsLast {
		page.NextPageToken = ""
	}
	return page.Issues, page.NextPageToken, nil
}

// SearchParsed is Search with the page decoded once, straight into issues
// (parsedSearcher).
func (s *CloudSource) SearchParsed(ctx context.Context, q Query) ([]*Parsed, string, error) {
	body := map[string]any{"jql": q.JQL, "maxResults": q.MaxResults, "fields": q.Fields}
	if q.Changelog {
		body["expand"] = "changelog"
	}
	if q.PageToken != "" {
		body["nextPageToken"] = q.PageToken
	}
	dec := decoderFor(q.Fields)
	if dec == nil {
		return s.searchMaps(ctx, body)
	}
	target := dec.target()
	err := s.Client.Post(ctx, "/rest/api/3/search/jql", nil, body, target)
	if errors.Is(err, jira.ErrUnexpectedShape) {
		// A value of a shape the typed page does not take: read the page
		// again the lenient way, where such a value costs its field only.
		return s.searchMaps(ctx, body)
	}
	if err != nil {
		return nil, "", err
	}
	out, next, isLast, err := dec.issues(target)
	if err != nil {
		return nil, "", apperr.Wrap(err, apperr.Internal, "unreadable issue from Jira")
	}
	if isLast {
		next = ""
	}
	return out, next, nil
}

// searchMaps is SearchParsed with each issue's fields decoded as a map,
// then field by field (Parse).
func (s *CloudSource) searchMaps(ctx context.Context, body map[string]any) ([]*Parsed, string, error) {
	var page struct {
		Issues        []json.RawMessage `json:"issues"`
		NextPageToken string            `json:"nextPageToken"`
		IsLast        *bool             `json:"isLast"`
	}
	if err := s.Client.Post(ctx, "/rest/api/3/search/jql", nil, body, &page); err != nil {
		return nil, "", err
	}
	if page.IsLast != nil && *page.IsLast {
		page.NextPageToken = ""
	}
	out := make([]*Parsed, len(page.Issues))
	for i, raw := range page.Issues {
		p, err := Parse(raw)
		if err != nil {
			return nil, "", apperr.Wrap(err, apperr.Internal, "unreadable issue from Jira")
		}
		out[i] = p
	}
	return out, page.NextPageToken, nil
}

// Changelog implements Source.
func (s *CloudSource) Changelog(ctx context.Context, issueID string, startAt, count int) ([]History, error) {
	var out []History
	for count < 0 || len(out) < count {
		var page struct {
			Values     []History `json:"values"`
			StartAt    int       `json:"startAt"`
			MaxResults int       `json:"maxResults"`
			Total      int       `json:"total"`
			IsLast     bool      `json:"isLast"`
		}
		q := url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(changelogPage)}}
		if err := s.get(ctx, "/rest/api/3/issue/"+url.PathEscape(issueID)+"/changelog", q, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Values...)
		startAt += len(page.Values)
		if page.IsLast || len(page.Values) == 0 || startAt >= page.Total {
			break
		}
	}
	if count >= 0 && len(out) > count {
		out = out[:count]
	}
	return out, nil
}

// Comments implements Source.
func (s *CloudSource) Comments(ctx context.Context, issueID string) ([]Comment, error) {
	var out []Comment
	for start := 0; ; {
		var page struct {
			Comments []Comment `json:"comments"`
			Total    int       `json:"total"`
		}
		q := url.Values{"startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(commentPage)}, "orderBy": {"created"}}
		if err := s.get(ctx, "/rest/api/3/issue/"+url.PathEscape(issueID)+"/comment", q, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Comments...)
		start += len(page.Comments)
		if len(page.Comments) == 0 || start >= page.Total {
			return out, nil
		}
	}
}

// bulkConcurrency is how many calls of one bulk lookup (users, emails)
// are made at once: a site's round trip is paid per call, and 2,000 users
// are 20 calls. The client's limiter still decides what is in flight.
const bulkConcurrency = 4

// Users implements Source with /rest/api/3/user/bulk.
func (s *CloudSource) Users(ctx context.Context, ids []string) ([]UserRef, error) {
	cs := chunks(ids, usersPerCall)
	pages := make([][]UserRef, len(cs))
	err := parallel(ctx, bulkConcurrency, indexes(len(cs)), func(ctx context.Context, i int) error {
		q := url.Values{"accountId": cs[i], "maxResults": {strconv.Itoa(usersPerCall)}}
		var page struct {
			Values []UserRef `json:"values"`
		}
		if err := s.get(ctx, "/rest/api/3/user/bulk", q, &page); err != nil {
			return err
		}
		pages[i] = page.Values
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []UserRef
	for _, p := range pages {
		out = append(out, p...)
	}
	return out, nil
}

// Emails implements Source with /rest/api/3/user/email/bulk, which answers
// a list of {accountId, email}; accounts without a visible email are absent
// or carry an empty email, and both mean "none".
func (s *CloudSource) Emails(ctx context.Context, ids []string) (map[string]string, error) {
	type entry struct {
		AccountID string `json:"accountId"`
		Email     string `json:"email"`
	}
	cs := chunks(ids, emailsPerCall)
	lists := make([][]entry, len(cs))
	err := parallel(ctx, bulkConcurrency, indexes(len(cs)), func(ctx context.Context, i int) error {
		return s.get(ctx, "/rest/api/3/user/email/bulk", url.Values{"accountId": cs[i]}, &lists[i])
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ids))
	for _, list := range lists {
		for _, e := range list {
			if e.Email = strings.TrimSpace(e.Email); e.Email != "" {
				out[e.AccountID] = e.Email
			}
		}
	}
	return out, nil
}

func chunks(ids []string, n int) [][]string {
	var out [][]string
	for i := 0; i < len(ids); i += n {
		out = append(out, ids[i:min(i+n, len(ids))])
	}
	return out
}
