package integrations

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Integration types: the Connect app, a Jira Cloud site by an Atlassian
// account's API token, and Jira Data Center (connection.go).
const (
	TypeConnectApp = "jira_connect_app"
	TypeCloudToken = "jira_cloud_api_token"
	TypeDataCenter = "jira_datacenter"
)

// Statuses and their reasons (machine codes; Reason sentences explain them).
const (
	StatusPending     = "pending"
	StatusConnected   = "connected"
	StatusFailing     = "failing"
	StatusUninstalled = "uninstalled"

	ReasonNotLinked         = "not_linked"
	ReasonLinked            = "linked_not_validated"
	ReasonAppUninstalled    = "app_uninstalled"
	ReasonAppDisabled       = "app_disabled"
	ReasonValidationFailed  = "validation_failed"
	ReasonValidated         = "validated"
	ReasonReenabled         = "app_reenabled"
	ReasonUnlinked          = "unlinked"
	ReasonCredentialsReject = "credentials_rejected"
)

// reasonText says what a reason means and what to do about it.
var reasonText = map[string]string{
	ReasonNotLinked:         "No Jira site is linked yet: install the app in Jira, generate a Connect key on its page and redeem it here.",
	ReasonLinked:            "A Jira site is linked; run Validate Connection.",
	ReasonAppUninstalled:    "The app was uninstalled from the Jira site; reinstall it and link it again with a new Connect key.",
	ReasonAppDisabled:       "The app is disabled on the Jira site; a Jira administrator can enable it in Manage apps.",
	ReasonValidationFailed:  "The last validation failed; see its checks.",
	ReasonValidated:         "All checks passed.",
	ReasonReenabled:         "The app was enabled again; run Validate Connection.",
	ReasonUnlinked:          "The Jira site was unlinked; generate a new Connect key to link one.",
	ReasonCredentialsReject: "Jira rejected the credentials; re-authenticate the integration.",
}

// Integration is the API's view of an integration.
type Integration struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	Tags           []string  `json:"tags"`
	Type           string    `json:"type"`
	Timezone       string    `json:"timezone"`
	ExcludedFields []string  `json:"excluded_fields"`
	Status         string    `json:"status"`
	StatusReason   string    `json:"status_reason"`
	StatusMessage  string    `json:"status_message"`
	Site           *Site     `json:"site"`
	Connection     string    `json:"connection,omitempty"` // API-token and Data Center types (connection.go)
	URL            string    `json:"url,omitempty"`
	Authentication *AuthView `json:"authentication,omitempty"`
	TLS            *TLSView  `json:"tls,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Site is the linked Jira installation, if any.
type Site struct {
	ClientKey string     `json:"client_key"`
	LinkedAt  *time.Time `json:"linked_at"`
}

func view(in *store.Integration) *Integration {
	v := &Integration{ID: in.ID, Name: in.Name, Description: in.Description, Tags: nonNil(in.Tags), Type: in.Type,
		Timezone: in.Timezone, ExcludedFields: nonNil(in.ExcludedFields), Status: in.Status, StatusReason: in.StatusReason,
		StatusMessage: reasonText[in.StatusReason], CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
	if in.ClientKey != nil {
		v.Site = &Site{ClientKey: *in.ClientKey, LinkedAt: in.LinkedAt}
	}
	connectionView(v, in)
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Input carries the writable fields. Nil pointers are "not given": on
// create they take defaults, on PATCH they keep the stored value.
type Input struct {
	Name           *string   `json:"name"`
	Description    *string   `json:"description"`
	Tags           *[]string `json:"tags"`
	Type           *string   `json:"type"`
	Timezone       *string   `json:"timezone"`
	ExcludedFields *[]string `json:"excluded_fields"`
	// API-token and Data Center types only (connection.go).
	Connection     *string    `json:"connection"`
	URL            *string    `json:"url"`
	Authentication *AuthInput `json:"authentication"`
	TLS            *TLSInput  `json:"tls"`
}

// Limits of the settings form.
const (
	maxName        = 100
	maxDescription = 2000
	maxTags        = 20
	maxTag         = 64
	maxExcluded    = 200
)

// Sensitive-field names that are not Jira field ids: "comments" stands for
// the comment bodies, which Jira does not model as a field.
var excludedAliases = map[string]bool{"summary": true, "description": true, "comments": true}

// A Jira field id: a system field ("environment", "timetracking",
// "issuetype") or a custom field ("customfield_10010").
var fieldID = regexp.MustCompile(`^(customfield_[0-9]{1,10}|[a-z][a-zA-Z0-9_]{0,63})$`)

func (in *Input) apply(it *store.Integration, creating bool, f map[string]string) {
	if in.Name != nil {
		it.Name = strings.TrimSpace(*in.Name)
	}
	if it.Name == "" || utf8.RuneCountInString(it.Name) > maxName {
		f["name"] = "is required (at most 100 characters)"
	}
	if in.Description != nil {
		it.Description = *in.Description
		if utf8.RuneCountInString(it.Description) > maxDescription {
			f["description"] = "is at most 2000 characters"
		}
	}
	if in.Tags != nil {
		tags, msg := cleanList(*in.Tags, maxTags, func(s string) bool { return s != "" && utf8.RuneCountInString(s) <= maxTag })
		it.Tags = tags
		if msg != "" {
			f["tags"] = msg + " (at most 20 tags of 1 to 64 characters)"
		}
	}
	if in.Type != nil {
		if !creating && *in.Type != it.Type {
			f["type"] = "cannot change; create another integration"
		}
		it.Type = *in.Type
	}
	switch it.Type {
	case TypeConnectApp, TypeCloudToken, TypeDataCenter:
	default:
		f["type"] = "must be jira_connect_app, jira_cloud_api_token or jira_datacenter"
	}
	if in.Timezone != nil {
		it.Timezone = *in.Timezone
	}
	if it.Timezone == "" {
		it.Timezone = "UTC"
	}
	if !validTimezone(it.Timezone) {
		f["timezone"] = "is not an IANA time zone name such as Europe/Berlin"
	}
	if in.ExcludedFields != nil {
		fields, msg := cleanList(*in.ExcludedFields, maxExcluded, func(s string) bool { return excludedAliases[s] || fieldID.MatchString(s) })
		it.ExcludedFields = fields
		if msg != "" {
			f["excluded_fields"] = msg + ": use summary, description, comments or Jira field ids such as customfield_10010"
		}
	}
}

// applyAll validates every field of in into it, the connection included,
// and reports all bad fields at once.
func (s *Service) applyAll(in *Input, it *store.Integration, creating bool) error {
	f := map[string]string{}
	in.apply(it, creating, f)
	ch := s.applyConnection(in, it, creating, f)
	if len(f) > 0 {
		return apperr.Validation(f)
	}
	return s.commitConnection(it, ch)
}

// validTimezone accepts IANA names; "Local" depends on the server and is
// refused, as are names with a path in them.
func validTimezone(name string) bool {
	if name == "Local" || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// cleanList trims and deduplicates, reporting the first bad entry.
func cleanList(in []string, max int, ok func(string) bool) ([]string, string) {
	if len(in) > max {
		return nil, "has too many entries"
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		if !ok(s) {
			return nil, "contains an invalid entry " + quote(s)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, ""
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return `"` + s + `"`
}

// Create validates and stores a new integration, pending until linked.
func (s *Service) Create(ctx context.Context, tenantID string, in Input) (*Integration, error) {
	it := &store.Integration{ID: NewID(), TenantID: tenantID, Settings: "{}", Status: StatusPending, StatusReason: ReasonNotLinked,
		Tags: []string{}, ExcludedFields: []string{}}
	if in.Type == nil {
		t := TypeConnectApp
		in.Type = &t
	}
	if err := s.applyAll(&in, it, true); err != nil {
		return nil, err
	}
	if it.Type != TypeConnectApp {
		it.StatusReason = ReasonNotValidated // nothing to link: validate
	}
	if err := s.DB.CreateIntegration(ctx, it); err != nil {
		return nil, nameConflict(err)
	}
	return view(it), nil
}

func nameConflict(err error) error {
	if apperr.CodeOf(err) == apperr.Conflict {
		return &apperr.Error{Code: apperr.Conflict, Message: "an integration with this name exists", Fields: map[string]string{"name": "is already used by another integration"}}
	}
	return err
}

// Get returns the tenant's integration.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Integration, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	return view(it), nil
}

// Update applies a PATCH.
func (s *Service) Update(ctx context.Context, tenantID, id string, in Input) (*Integration, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if err := s.applyAll(&in, it, false); err != nil {
		return nil, err
	}
	if err := s.DB.SaveIntegration(ctx, it); err != nil {
		return nil, nameConflict(err)
	}
	return view(it), nil
}

// Delete removes the tenant's integration, its link and its ingested data
// (the foreign keys cascade), after stopping its jobs.
func (s *Service) Delete(ctx context.Context, tenantID, id string) error {
	if _, err := s.DB.GetIntegration(ctx, tenantID, id); err != nil {
		return err
	}
	if s.Queue != nil {
		if err := s.Queue.CancelIntegration(ctx, id); err != nil {
			return err
		}
	}
	return s.DB.DeleteIntegration(ctx, tenantID, id)
}

// Page is one page of a listing.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Listing limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// List pages through the tenant's integrations. The cursor is opaque to
// callers (base64 of the last id seen).
func (s *Service) List(ctx context.Context, tenantID, cursor string, limit int) (*Page[*Integration], error) {
	after, err := DecodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	rows, err := s.DB.ListIntegrations(ctx, tenantID, after, limit+1)
	if err != nil {
		return nil, err
	}
	p := &Page[*Integration]{Items: []*Integration{}}
	for i := range rows {
		if i == limit {
			p.NextCursor = EncodeCursor(rows[i-1].ID)
			break
		}
		p.Items = append(p.Items, view(&rows[i]))
	}
	return p, nil
}

// EncodeCursor and DecodeCursor make the opaque paging cursor.
func EncodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 64 {
		return "", &apperr.Error{Code: apperr.Invalid, Message: "invalid cursor", Fields: map[string]string{"cursor": "is not a cursor from a previous page"}}
	}
	return string(b), nil
}

// InstallationChanged lets the integration linked to an installation
// follow Jira's lifecycle events (wired as lifecycle.Service.Changed).
func (s *Service) InstallationChanged(ctx context.Context, clientKey, event string) error {
	it, err := s.DB.IntegrationByClientKey(ctx, clientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	switch event {
	case "uninstalled":
		it.Status, it.StatusReason = StatusUninstalled, ReasonAppUninstalled
		if s.Queue != nil {
			// No more syncs; the data stays until the retention purge.
			if err := s.Queue.CancelIntegration(ctx, it.ID); err != nil {
				return err
			}
		}
	case "disabled":
		it.Status, it.StatusReason = StatusFailing, ReasonAppDisabled
	case "enabled":
		if it.StatusReason != ReasonAppDisabled {
			return nil
		}
		it.Status, it.StatusReason = StatusPending, ReasonReenabled
	default:
		// A reinstall keeps whatever the integration showed: an
		// uninstalled one is linked again with a new key.
		return nil
	}
	return s.DB.SaveIntegration(ctx, it)
}

// Link is what the page inside Jira shows about its installation's link.
type Link struct {
	IntegrationName string
	TenantName      string
	LinkedAt        time.Time
	Status          string
}

// LinkOf returns the live link of an installation, or nil when it is not
// linked (or only by an integration that saw the app uninstalled).
func (s *Service) LinkOf(ctx context.Context, clientKey string) (*Link, error) {
	it, err := s.DB.IntegrationByClientKey(ctx, clientKey)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if it.Status == StatusUninstalled || it.LinkedAt == nil {
		return nil, nil
	}
	t, err := s.DB.GetTenant(ctx, it.TenantID)
	if err != nil {
		return nil, err
	}
	return &Link{IntegrationName: it.Name, TenantName: t.Name, LinkedAt: *it.LinkedAt, Status: it.Status}, nil
}
