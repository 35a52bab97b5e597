package ingest

import (
	"context"
	"encoding/json"
)

// Source is what a sync reads from Jira. The Connect app (CloudSource,
// jiraclient.go), API tokens (CloudTokenSource, cloudtoken.go) and Data
// Center (DataCenterSource, datacenter.go) each provide one; tests use the
// Jira simulator behind the real client. Raw issues are in Jira Cloud's
// shape: a source for another shape rewrites them (Data Center's users
// get an accountId, their key).
type Source interface {
	// Fields is the site's field list.
	Fields(ctx context.Context) (FieldMeta, error)
	// Projects are the keys of the projects the app can browse.
	Projects(ctx context.Context) ([]string, error)
	// Search runs bounded JQL and returns one page of raw issues and the
	// token of the next page ("" on the last). The token is the source's
	// own: Jira's nextPageToken on Cloud, an encoded position (keyset or
	// window and offset) on Data Center, which pages by startAt. Given
	// back with the same Query, it continues exactly after the page, so a
	// page's checkpoint resumes without a gap.
	Search(ctx context.Context, q Query) (issues []json.RawMessage, next string, err error)
	// Changelog returns up to count of the issue's histories from startAt
	// (oldest first), paging as needed; count < 0 means to the end.
	Changelog(ctx context.Context, issueID string, startAt, count int) ([]History, error)
	// Comments returns all the issue's comments.
	Comments(ctx context.Context, issueID string) ([]Comment, error)
	// Users returns details of accounts (large batches inside).
	Users(ctx context.Context, accountIDs []string) ([]UserRef, error)
	// Emails returns accountId -> email for the accounts whose email Jira
	// shows; others are absent.
	Emails(ctx context.Context, accountIDs []string) (map[string]string, error)
	// Requests is how many HTTP requests the source has made so far.
	Requests() int
}

// Query is one search.
type Query struct {
	JQL        string
	Fields     []string
	Changelog  bool
	MaxResults int
	PageToken  string
}

// parsedSearcher is a Source that can decode a search page straight into
// issues. The syncer prefers it: decoding a page into raw issues first and
// each issue again was a third of the ingester's CPU.
type parsedSearcher interface {
	SearchParsed(ctx context.Context, q Query) (issues []*Parsed, next string, err error)
}
