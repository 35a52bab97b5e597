package integrations

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// SyncQueue schedules syncs (River jobs).
type SyncQueue interface {
	EnqueueSync(ctx context.Context, integrationID, mode string) (bool, error)
	CancelIntegration(ctx context.Context, integrationID string) error
}

// Issue is the API's view of an ingested issue.
type Issue struct {
	ID                string          `json:"id"`
	Key               string          `json:"key"`
	Project           string          `json:"project"`
	Type              string          `json:"type"`
	Status            string          `json:"status"`
	StatusCategory    string          `json:"status_category"`
	Priority          *string         `json:"priority"`
	AssigneeAccountID *string         `json:"assignee_account_id"`
	ReporterAccountID *string         `json:"reporter_account_id"`
	CreatorAccountID  *string         `json:"creator_account_id"`
	Summary           *string         `json:"summary"`
	Description       *string         `json:"description"`
	Created           time.Time       `json:"created"`
	Updated           time.Time       `json:"updated"`
	Resolved          *time.Time      `json:"resolved"`
	DueDate           *string         `json:"due_date"`
	DueAt             *time.Time      `json:"due_at"`
	Timezone          string          `json:"timezone"`
	Components        json.RawMessage `json:"components"`
	Labels            json.RawMessage `json:"labels"`
	FixVersions       json.RawMessage `json:"fix_versions"`
	Sprint            *string         `json:"sprint"`
	ParentKey         *string         `json:"parent_key"`
	StoryPoints       *float64        `json:"story_points"`
	Fields            json.RawMessage `json:"fields"`
	SalesforceCases   []string        `json:"salesforce_cases"` // issue 6: cases its salesforce_field names
	Transitions       []Transition    `json:"transitions,omitempty"`
	Comments          []IssueComment  `json:"comments,omitempty"`
}

// Transition is a status change.
type Transition struct {
	From            *string   `json:"from"`
	To              *string   `json:"to"`
	AuthorAccountID *string   `json:"author_account_id"`
	At              time.Time `json:"at"`
}

// IssueComment is a comment of an issue.
type IssueComment struct {
	ID              string    `json:"id"`
	AuthorAccountID *string   `json:"author_account_id"`
	Body            *string   `json:"body"`
	Created         time.Time `json:"created"`
	Updated         time.Time `json:"updated"`
}

// JiraUser is the API's view of a Jira user.
type JiraUser struct {
	AccountID   string  `json:"account_id"`
	DisplayName string  `json:"display_name"`
	Email       *string `json:"email"`
	Active      bool    `json:"active"`
	TimeZone    *string `json:"time_zone"`
}

func issueView(is *store.JiraIssue, tz string) Issue {
	return Issue{ID: strconv.FormatInt(is.IssueID, 10), Key: is.Key, Project: is.ProjectKey, Type: is.IssueType, Status: is.Status,
		StatusCategory: is.StatusCategory, Priority: is.Priority, AssigneeAccountID: is.AssigneeAccountID,
		ReporterAccountID: is.ReporterAccountID, CreatorAccountID: is.CreatorAccountID, Summary: is.Summary,
		Description: is.Description, Created: is.Created, Updated: is.Updated, Resolved: is.Resolved, DueDate: is.DueDate,
		DueAt: is.DueAt, Timezone: tz, Components: json.RawMessage(is.Components), Labels: json.RawMessage(is.Labels),
		FixVersions: json.RawMessage(is.FixVersions), Sprint: is.Sprint, ParentKey: is.ParentKey, StoryPoints: is.StoryPoints,
		Fields: json.RawMessage(is.Fields)}
}

// IssueQuery filters the issues listing.
type IssueQuery struct {
	Project, Status        string
	UpdatedFrom, UpdatedTo *time.Time
	Cursor                 string
	Limit                  int
}

// Issues pages through the integration's ingested issues.
func (s *Service) Issues(ctx context.Context, tenantID, id string, q IssueQuery) (*Page[Issue], error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	afterStr, err := DecodeCursor(q.Cursor)
	if err != nil {
		return nil, err
	}
	var after int64
	if afterStr != "" {
		if after, err = strconv.ParseInt(afterStr, 10, 64); err != nil {
			return nil, &apperr.Error{Code: apperr.Invalid, Message: "invalid cursor", Fields: map[string]string{"cursor": "is not a cursor from a previous page"}}
		}
	}
	rows, err := s.DB.ListIssues(ctx, it.ID, store.IssueFilter{Project: q.Project, Status: q.Status, UpdatedFrom: q.UpdatedFrom, UpdatedTo: q.UpdatedTo}, after, q.Limit+1)
	if err != nil {
		return nil, err
	}
	p := &Page[Issue]{Items: []Issue{}}
	for i := range rows {
		if i == q.Limit {
			p.NextCursor = EncodeCursor(strconv.FormatInt(rows[i-1].IssueID, 10))
			break
		}
		p.Items = append(p.Items, issueView(&rows[i], it.Timezone))
	}
	return p, s.withSalesforceCases(ctx, it.ID, p.Items)
}

// Issue returns one issue with its transitions and comments.
func (s *Service) Issue(ctx context.Context, tenantID, id, key string) (*Issue, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	is, trs, cs, err := s.DB.IssueByKey(ctx, it.ID, key)
	if err != nil {
		return nil, err
	}
	v := issueView(is, it.Timezone)
	v.Transitions, v.Comments = []Transition{}, []IssueComment{}
	for _, t := range trs {
		v.Transitions = append(v.Transitions, Transition{From: t.FromStatus, To: t.ToStatus, AuthorAccountID: t.AuthorAccountID, At: t.At})
	}
	for _, c := range cs {
		v.Comments = append(v.Comments, IssueComment{ID: c.CommentID, AuthorAccountID: c.AuthorAccountID, Body: c.Body, Created: c.Created, Updated: c.Updated})
	}
	one := []Issue{v}
	return &one[0], s.withSalesforceCases(ctx, it.ID, one)
}

// Users pages through the integration's Jira users.
func (s *Service) Users(ctx context.Context, tenantID, id, cursor string, limit int) (*Page[JiraUser], error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	after, err := DecodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	rows, err := s.DB.ListUsers(ctx, it.ID, after, limit+1)
	if err != nil {
		return nil, err
	}
	p := &Page[JiraUser]{Items: []JiraUser{}}
	for i, u := range rows {
		if i == limit {
			p.NextCursor = EncodeCursor(rows[i-1].AccountID)
			break
		}
		p.Items = append(p.Items, JiraUser{AccountID: u.AccountID, DisplayName: u.DisplayName, Email: u.Email, Active: u.Active, TimeZone: u.TimeZone})
	}
	return p, nil
}

// RequestSync schedules a sync of the tenant's connected integration.
func (s *Service) RequestSync(ctx context.Context, tenantID, id, mode string) (bool, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return false, err
	}
	if mode != "full" && mode != "incremental" {
		return false, &apperr.Error{Code: apperr.Invalid, Message: "validation failed", Fields: map[string]string{"mode": "must be full or incremental"}}
	}
	if it.Status != StatusConnected {
		return false, apperr.New(apperr.Conflict, "the integration is %s: validate the connection first", it.Status).WithReason("not_connected")
	}
	if BySatellite(it) {
		return false, apperr.New(apperr.Conflict, "a satellite ingests this integration, on its own schedule: restart the satellite to sync now").WithReason("satellite")
	}
	if s.Queue == nil {
		return false, apperr.New(apperr.Unavailable, "background jobs are not running")
	}
	return s.Queue.EnqueueSync(ctx, it.ID, mode)
}
