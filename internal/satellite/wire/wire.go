// Package wire owns what the Ingestion Satellite and the service say to each
// other over /api/v1: the batches of ingested records the satellite pushes,
// its heartbeats, and the service's answers. Both sides import it, so it
// depends on the standard library only (no store, no gorm) and says in one
// place what is valid.
//
// The satellite authenticates every call with "Authorization: Bearer <tenant
// API key>" (the api_key of satellite.yml) and addresses one integration
// (the id of satellite.yml) under satellite.yml's url, which ends in /api:
//
//	POST {url}/v1/integrations/{id}/satellite/batches    Batch -> BatchResult
//	POST {url}/v1/integrations/{id}/satellite/heartbeat  Heartbeat -> HeartbeatResult
//
// Bodies are JSON, optionally gzip-compressed (Content-Encoding: gzip).
// Batches are idempotent by BatchID: pushing the same batch again (a retry
// after a lost answer) changes nothing and answers Duplicate; reusing a
// BatchID for different content is a 409. Records are what the satellite's
// ingester produced after applying the integration's exclusions; the
// service applies them again, so a misconfigured satellite cannot store a
// sensitive field.
package wire

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// BatchesPath is where batches go, under satellite.yml's url (which ends
// in /api).
func BatchesPath(integrationID string) string {
	return "/v1/integrations/" + integrationID + "/satellite/batches"
}

// HeartbeatPath is where heartbeats go, under satellite.yml's url.
func HeartbeatPath(integrationID string) string {
	return "/v1/integrations/" + integrationID + "/satellite/heartbeat"
}

// Limits of one batch. A page of Jira issues is at most 100 with fields;
// a batch carries a few pages so that a push is worth its round trip, and
// its body stays well under MaxBodyBytes.
const (
	MaxIssues      = 1000
	MaxChildren    = 50_000 // transitions + field changes + comments
	MaxUsers       = 5000
	MaxDeleted     = 10_000
	MaxBodyBytes   = 32 << 20 // after decompression
	MaxBatchIDLen  = 128
	HeartbeatEvery = 5 * time.Minute // how often a satellite should report; the service calls it silent after 3 missed
)

// batchID: a UUID, a ULID, "<partition>:<page>": printable, no spaces.
var batchID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Batch is one push of ingested records. Children (transitions, field
// changes, comments) belong to issues of the same batch: an issue and its
// children are replaced together, so a child without its issue has nothing
// to attach to.
type Batch struct {
	// BatchID is chosen by the satellite, unique per integration (a UUID,
	// or a name derived from the sync and page); a retry reuses it.
	BatchID      string        `json:"batch_id"`
	Issues       []Issue       `json:"issues"`
	Transitions  []Transition  `json:"transitions,omitempty"`
	FieldChanges []FieldChange `json:"field_changes,omitempty"`
	Comments     []Comment     `json:"comments,omitempty"`
	Users        []User        `json:"users,omitempty"`
	// DeletedIssueIDs are issues the satellite's sweep no longer sees in
	// Jira (deleted, or moved out of the account's view).
	DeletedIssueIDs []int64 `json:"deleted_issue_ids,omitempty"`
}

// Issue is one Jira issue as the ingester stores it. Times are RFC 3339;
// DueDate is Jira's bare date (the service derives the instant in the
// integration's time zone).
type Issue struct {
	ID                int64           `json:"id"`
	Key               string          `json:"key"`
	ProjectKey        string          `json:"project_key"`
	ProjectID         string          `json:"project_id,omitempty"`
	IssueType         string          `json:"issue_type,omitempty"`
	Status            string          `json:"status,omitempty"`
	StatusCategory    string          `json:"status_category,omitempty"`
	Priority          *string         `json:"priority,omitempty"`
	AssigneeAccountID *string         `json:"assignee_account_id,omitempty"`
	ReporterAccountID *string         `json:"reporter_account_id,omitempty"`
	CreatorAccountID  *string         `json:"creator_account_id,omitempty"`
	Summary           *string         `json:"summary,omitempty"`
	Description       *string         `json:"description,omitempty"` // plain text
	Created           time.Time       `json:"created"`
	Updated           time.Time       `json:"updated"`
	Resolved          *time.Time      `json:"resolved,omitempty"`
	DueDate           *string         `json:"due_date,omitempty"` // yyyy-mm-dd
	Components        []string        `json:"components,omitempty"`
	Labels            []string        `json:"labels,omitempty"`
	FixVersions       []string        `json:"fix_versions,omitempty"`
	Sprint            *string         `json:"sprint,omitempty"`
	ParentKey         *string         `json:"parent_key,omitempty"`
	StoryPoints       *float64        `json:"story_points,omitempty"`
	Fields            json.RawMessage `json:"fields,omitempty"` // other fields by id: a JSON object
}

// Transition is one status change of an issue's history.
type Transition struct {
	IssueID         int64     `json:"issue_id"`
	HistoryID       string    `json:"history_id"`
	Item            int       `json:"item"` // position within the history
	FromStatus      *string   `json:"from_status,omitempty"`
	ToStatus        *string   `json:"to_status,omitempty"`
	FromStatusID    *string   `json:"from_status_id,omitempty"`
	ToStatusID      *string   `json:"to_status_id,omitempty"`
	AuthorAccountID *string   `json:"author_account_id,omitempty"`
	At              time.Time `json:"at"`
}

// FieldChange is one change of another field in an issue's history.
type FieldChange struct {
	IssueID         int64     `json:"issue_id"`
	HistoryID       string    `json:"history_id"`
	Item            int       `json:"item"`
	Field           string    `json:"field"`
	FieldID         *string   `json:"field_id,omitempty"`
	FromValue       *string   `json:"from_value,omitempty"`
	FromString      *string   `json:"from_string,omitempty"`
	ToValue         *string   `json:"to_value,omitempty"`
	ToString        *string   `json:"to_string,omitempty"`
	AuthorAccountID *string   `json:"author_account_id,omitempty"`
	At              time.Time `json:"at"`
}

// Comment is one comment of an issue.
type Comment struct {
	IssueID         int64     `json:"issue_id"`
	CommentID       string    `json:"comment_id"`
	AuthorAccountID *string   `json:"author_account_id,omitempty"`
	Body            *string   `json:"body,omitempty"` // plain text
	Created         time.Time `json:"created"`
	Updated         time.Time `json:"updated"`
}

// User is an account the records reference. On Data Center the account id
// is the user's key.
type User struct {
	AccountID   string  `json:"account_id"`
	DisplayName string  `json:"display_name"`
	Email       *string `json:"email,omitempty"`
	Active      bool    `json:"active"`
	TimeZone    *string `json:"time_zone,omitempty"`
	AccountType *string `json:"account_type,omitempty"`
}

// BatchResult is the service's answer to a batch.
type BatchResult struct {
	BatchID string `json:"batch_id"`
	// Duplicate is true when the batch had been received before: nothing
	// was written again and Written repeats the first answer.
	Duplicate  bool           `json:"duplicate"`
	ReceivedAt time.Time      `json:"received_at"`
	Written    map[string]int `json:"written"` // issues (newer than stored), transitions, field_changes, comments, users, deleted
}

// Heartbeat is the satellite's periodic report. It is its last contact,
// and what Validate Connection shows for a satellite integration: the
// satellite checks the connection to Jira from inside the network.
type Heartbeat struct {
	Version  string    `json:"version"`            // the satellite's build
	Hostname string    `json:"hostname,omitempty"` // where it runs, for the person reading monitoring
	Checks   []Check   `json:"checks,omitempty"`   // its own checks of the Jira connection
	Sync     *SyncInfo `json:"sync,omitempty"`     // its last sync
}

// Check is one check the satellite ran against Jira; Status is pass, fail
// or skipped, Message a sentence a person can act on.
type Check struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// SyncInfo is the satellite's last sync.
type SyncInfo struct {
	State      string     `json:"state"` // running, succeeded, failed
	Mode       string     `json:"mode,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// HeartbeatResult is the service's answer to a heartbeat.
type HeartbeatResult struct {
	ReceivedAt time.Time `json:"received_at"`
}

// Validate checks a batch's shape and returns one message per offending
// field (nil when valid), named the way the JSON names them
// ("issues[3].key").
func (b *Batch) Validate() map[string]string {
	f := map[string]string{}
	bad := func(field, format string, args ...any) {
		if len(f) < 20 { // enough to fix a batch, not a wall of text
			f[field] = fmt.Sprintf(format, args...)
		}
	}
	if !batchID.MatchString(b.BatchID) {
		bad("batch_id", "is required: 1 to %d characters of A-Z a-z 0-9 . _ : -", MaxBatchIDLen)
	}
	switch {
	case len(b.Issues) > MaxIssues:
		bad("issues", "has more than %d entries: split the batch", MaxIssues)
	case len(b.Transitions)+len(b.FieldChanges)+len(b.Comments) > MaxChildren:
		bad("transitions", "transitions, field changes and comments are more than %d together: split the batch", MaxChildren)
	case len(b.Users) > MaxUsers:
		bad("users", "has more than %d entries: split the batch", MaxUsers)
	case len(b.DeletedIssueIDs) > MaxDeleted:
		bad("deleted_issue_ids", "has more than %d entries: split the batch", MaxDeleted)
	}
	if len(f) > 0 {
		return f
	}
	issues := make(map[int64]bool, len(b.Issues))
	keys := make(map[string]bool, len(b.Issues))
	for i, is := range b.Issues {
		p := fmt.Sprintf("issues[%d].", i)
		switch {
		case is.ID <= 0:
			bad(p+"id", "must be Jira's positive issue id")
		case issues[is.ID]:
			bad(p+"id", "repeats issue %d: send each issue once per batch", is.ID)
		case is.Key == "" || keys[is.Key]:
			bad(p+"key", "is required and unique within the batch")
		case is.ProjectKey == "":
			bad(p+"project_key", "is required")
		case is.Created.IsZero():
			bad(p+"created", "is required (RFC 3339)")
		case is.Updated.IsZero():
			bad(p+"updated", "is required (RFC 3339)")
		case is.DueDate != nil && !validDate(*is.DueDate):
			bad(p+"due_date", "must be a date yyyy-mm-dd")
		case len(is.Fields) > 0 && !isObject(is.Fields):
			bad(p+"fields", "must be a JSON object of field id to value")
		}
		issues[is.ID], keys[is.Key] = true, true
	}
	child := func(kind string, i int, issueID int64, id, idName string) {
		p := fmt.Sprintf("%s[%d].", kind, i)
		switch {
		case !issues[issueID]:
			bad(p+"issue_id", "names issue %d, which is not in this batch: send children with their issue", issueID)
		case id == "":
			bad(p+idName, "is required")
		}
	}
	for i, t := range b.Transitions {
		child("transitions", i, t.IssueID, t.HistoryID, "history_id")
	}
	for i, c := range b.FieldChanges {
		child("field_changes", i, c.IssueID, c.HistoryID, "history_id")
		if c.Field == "" {
			bad(fmt.Sprintf("field_changes[%d].field", i), "is required")
		}
	}
	for i, c := range b.Comments {
		child("comments", i, c.IssueID, c.CommentID, "comment_id")
	}
	for i, u := range b.Users {
		if u.AccountID == "" {
			bad(fmt.Sprintf("users[%d].account_id", i), "is required")
		}
	}
	for i, id := range b.DeletedIssueIDs {
		if id <= 0 || issues[id] {
			bad(fmt.Sprintf("deleted_issue_ids[%d]", i), "must be a positive issue id not also sent in issues")
		}
	}
	if len(f) == 0 {
		return nil
	}
	return f
}

// Validate checks a heartbeat; nil when valid.
func (h *Heartbeat) Validate() map[string]string {
	f := map[string]string{}
	if len(h.Version) > 100 {
		f["version"] = "is at most 100 characters"
	}
	if len(h.Hostname) > 255 {
		f["hostname"] = "is at most 255 characters"
	}
	if len(h.Checks) > 50 {
		f["checks"] = "has more than 50 entries"
	}
	for i, c := range h.Checks {
		switch {
		case c.Name == "" || len(c.Name) > 64:
			f[fmt.Sprintf("checks[%d].name", i)] = "is required (at most 64 characters)"
		case c.Status != "pass" && c.Status != "fail" && c.Status != "skipped":
			f[fmt.Sprintf("checks[%d].status", i)] = "must be pass, fail or skipped"
		case len(c.Message) > 2000:
			f[fmt.Sprintf("checks[%d].message", i)] = "is at most 2000 characters"
		}
	}
	if h.Sync != nil && len(h.Sync.Error) > 2000 {
		f["sync.error"] = "is at most 2000 characters"
	}
	if len(f) == 0 {
		return nil
	}
	return f
}

func validDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}
