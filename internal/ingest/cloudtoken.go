package ingest

import (
	"bytes"
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/jira"
)

// CloudTokenSource reads a Jira Cloud site as a person: an Atlassian
// account's email and API token over HTTP Basic. It searches like
// CloudSource (enhanced search, token paging, embedded changelogs), with
// two differences an API token brings:
//
//   - Status history of issues whose embedded changelog is truncated
//     comes from POST /rest/api/3/changelog/bulkfetch, which Atlassian
//     opens to API tokens but not to Connect apps: the truncated issues of
//     a page are fetched together (up to 1,000 issues a call) before the
//     page is handed on, instead of one changelog call per issue.
//   - Emails: the email API is for Connect apps only; a person sees an
//     address in user objects (/user/bulk) as each user's profile
//     visibility allows, so hidden ones stay unknown.
type CloudTokenSource struct {
	Client *jira.Client
	cloud  CloudSource

	mu    sync.Mutex
	users map[string]tokenUser // accountId -> as /user/bulk showed it
}

type tokenUser struct {
	ref   UserRef
	email string
	known bool // false: Jira does not know the account
}

// NewCloudTokenSource reads the site client calls; the client should
// authenticate with jira.Basic{Username: email, Password: API token}.
func NewCloudTokenSource(client *jira.Client) *CloudTokenSource {
	return &CloudTokenSource{Client: client, cloud: CloudSource{Client: client}, users: map[string]tokenUser{}}
}

// bulkFetchIssues is how many issues one changelog/bulkfetch call names
// (Atlassian's maximum); bulkFetchPage the histories a page asks for.
const (
	bulkFetchIssues = 1000
	bulkFetchPage   = 1000
)

// Requests implements Source.
func (s *CloudTokenSource) Requests() int { return int(s.Client.Stats().Requests) }

// Fields implements Source.
func (s *CloudTokenSource) Fields(ctx context.Context) (FieldMeta, error) { return s.cloud.Fields(ctx) }

// Projects implements Source.
func (s *CloudTokenSource) Projects(ctx context.Context) ([]string, error) {
	return s.cloud.Projects(ctx)
}

// Changelog implements Source (the per-issue changelog, for an issue the
// bulk fetch could not complete).
func (s *CloudTokenSource) Changelog(ctx context.Context, issueID string, startAt, count int) ([]History, error) {
	return s.cloud.Changelog(ctx, issueID, startAt, count)
}

// Comments implements Source.
func (s *CloudTokenSource) Comments(ctx context.Context, issueID string) ([]Comment, error) {
	return s.cloud.Comments(ctx, issueID)
}

// Search implements Source: a page of the enhanced search, with the
// changelogs Jira truncated completed from changelog/bulkfetch.
func (s *CloudTokenSource) Search(ctx context.Context, q Query) ([]json.RawMessage, string, error) {
	issues, next, err := s.cloud.Search(ctx, q)
	if err != nil || !q.Changelog {
		return issues, next, err
	}
	type head struct {
		ID        string `json:"id"`
		Changelog *struct {
			Total     int               `json:"total"`
			Histories []json.RawMessage `json:"histories"`
		} `json:"changelog"`
	}
	var truncated []string
	at := map[string]int{}
	for i, raw := range issues {
		var h head
		if json.Unmarshal(raw, &h) != nil || h.Changelog == nil || h.Changelog.Total <= len(h.Changelog.Histories) {
			continue
		}
		truncated = append(truncated, h.ID)
		at[h.ID] = i
	}
	if len(truncated) == 0 {
		return issues, next, nil
	}
	full, err := s.bulkChangelogs(ctx, truncated)
	if err != nil {
		return nil, "", err
	}
	for id, hs := range full {
		i, ok := at[id]
		if !ok {
			continue
		}
		// Only a complete list replaces the embedded one; an issue that
		// changed or vanished in between is left truncated, and the
		// syncer pages its changelog the slow way.
		var h head
		if json.Unmarshal(issues[i], &h) != nil || h.Changelog == nil || len(hs) < h.Changelog.Total {
			continue
		}
		if raw, err := replaceChangelog(issues[i], hs); err == nil {
			issues[i] = raw
		}
	}
	return issues, next, nil
}

// SearchParsed is Search with the page decoded once, straight into
// issues (the syncer's path), truncated changelogs completed the same way.
func (s *CloudTokenSource) SearchParsed(ctx context.Context, q Query) ([]*Parsed, string, error) {
	issues, next, err := s.cloud.SearchParsed(ctx, q)
	if err != nil || !q.Changelog {
		return issues, next, err
	}
	var ids []string
	byID := map[string]*Parsed{}
	for _, p := range issues {
		if p.ChangelogTruncated() {
			id := strconv.FormatInt(p.ID, 10)
			ids = append(ids, id)
			byID[id] = p
		}
	}
	if len(ids) == 0 {
		return issues, next, nil
	}
	full, err := s.bulkChangelogs(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	for id, raws := range full {
		p := byID[id]
		if p == nil || len(raws) < p.HistoriesTotal {
			continue // changed or gone meanwhile: the syncer pages it
		}
		hs := make([]History, len(raws))
		for i, raw := range raws {
			if err := json.Unmarshal(raw, &hs[i]); err != nil {
				return nil, "", apperr.Wrap(err, apperr.Internal, "unreadable changelog from Jira")
			}
		}
		p.Histories, p.HistoriesTotal = hs, len(hs)
	}
	return issues, next, nil
}

// bulkChangelogs returns every history of the issues, oldest first, by
// issue id, from POST /rest/api/3/changelog/bulkfetch.
func (s *CloudTokenSource) bulkChangelogs(ctx context.Context, ids []string) (map[string][]json.RawMessage, error) {
	out := make(map[string][]json.RawMessage, len(ids))
	for _, batch := range chunks(ids, bulkFetchIssues) {
		body := map[string]any{"issueIdsOrKeys": batch, "maxResults": bulkFetchPage}
		for {
			var page struct {
				IssueChangeLogs []struct {
					IssueID         string            `json:"issueId"`
					ChangeHistories []json.RawMessage `json:"changeHistories"`
				} `json:"issueChangeLogs"`
				NextPageToken *string `json:"nextPageToken"`
			}
			if err := s.Client.Post(ctx, "/rest/api/3/changelog/bulkfetch", nil, body, &page); err != nil {
				return nil, err
			}
			for _, l := range page.IssueChangeLogs {
				out[l.IssueID] = append(out[l.IssueID], l.ChangeHistories...)
			}
			if page.NextPageToken == nil || *page.NextPageToken == "" {
				break
			}
			body["nextPageToken"] = *page.NextPageToken
		}
	}
	return out, nil
}

// replaceChangelog puts histories in place of the issue's embedded
// changelog, saying it is complete.
func replaceChangelog(issue json.RawMessage, histories []json.RawMessage) (json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(issue, &top); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"startAt":0,"maxResults":`)
	b.WriteString(strconv.Itoa(len(histories)))
	b.WriteString(`,"total":`)
	b.WriteString(strconv.Itoa(len(histories)))
	b.WriteString(`,"histories":[`)
	for i, h := range histories {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(h)
	}
	b.WriteString(`]}`)
	top["changelog"] = b.Bytes()
	return json.Marshal(top)
}

// Users implements Source with /rest/api/3/user/bulk, remembering the
// emails it shows for Emails.
func (s *CloudTokenSource) Users(ctx context.Context, ids []string) ([]UserRef, error) {
	if err := s.lookup(ctx, ids); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UserRef, 0, len(ids))
	for _, id := range ids {
		if u := s.users[id]; u.known {
			out = append(out, u.ref)
		}
	}
	return out, nil
}

// Emails implements Source: the addresses user objects show to this
// account (profile visibility decides), looked up in bulk for accounts
// not seen yet.
func (s *CloudTokenSource) Emails(ctx context.Context, ids []string) (map[string]string, error) {
	if err := s.lookup(ctx, ids); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		if e := s.users[id].email; e != "" {
			out[id] = e
		}
	}
	return out, nil
}

// lookup fetches the accounts not seen yet from /rest/api/3/user/bulk.
func (s *CloudTokenSource) lookup(ctx context.Context, ids []string) error {
	s.mu.Lock()
	var missing []string
	for _, id := range ids {
		if _, ok := s.users[id]; !ok && id != "" {
			missing = append(missing, id)
		}
	}
	s.mu.Unlock()
	cs := chunks(missing, usersPerCall)
	return parallel(ctx, bulkConcurrency, indexes(len(cs)), func(ctx context.Context, i int) error {
		for start := 0; ; {
			q := url.Values{"accountId": cs[i], "startAt": {strconv.Itoa(start)}, "maxResults": {strconv.Itoa(usersPerCall)}}
			var page struct {
				Values []struct {
					UserRef
					EmailAddress string `json:"emailAddress"`
				} `json:"values"`
				IsLast *bool `json:"isLast"`
			}
			if err := s.Client.Get(ctx, "/rest/api/3/user/bulk", q, &page); err != nil {
				return err
			}
			s.mu.Lock()
			for _, v := range page.Values {
				s.users[v.AccountID] = tokenUser{ref: v.UserRef, email: strings.TrimSpace(v.EmailAddress), known: true}
			}
			s.mu.Unlock()
			start += len(page.Values)
			if len(page.Values) == 0 || page.IsLast == nil || *page.IsLast {
				break
			}
		}
		// Accounts Jira does not know are remembered as such, so they are
		// not asked for again.
		s.mu.Lock()
		for _, id := range cs[i] {
			if _, ok := s.users[id]; !ok {
				s.users[id] = tokenUser{ref: UserRef{AccountID: id}}
			}
		}
		s.mu.Unlock()
		return nil
	})
}
