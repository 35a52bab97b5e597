// Package ingest owns getting Jira data into the database: planning a sync
// into partitions, paging through Jira with checkpoints, transforming
// issues (dropping excluded fields before anything is written or logged),
// collecting users and their emails, sweeping away deleted issues, and
// turning webhook notifications into fresh reads of the issues they name.
package ingest

import (
	"bytes"
	json "github.com/goccy/go-json"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/store"
)

// FieldMeta names the custom fields the model extracts, found by name in
// the site's field list (/rest/api/3/field); ids differ between sites.
type FieldMeta struct {
	SprintID      string
	StoryPointsID string
	ByName        map[string]string // lower-case field name -> id, for changelog items without fieldId
}

// DefaultFieldMeta is what Jira Cloud sites usually use.
func DefaultFieldMeta() FieldMeta {
	return FieldMeta{SprintID: "customfield_10020", StoryPointsID: "customfield_10016", ByName: map[string]string{}}
}

// SiteField is one entry of the site's field list.
type SiteField struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Custom bool   `json:"custom"`
}

// MetaFromFields reads the site's field list.
func MetaFromFields(fields []SiteField) FieldMeta {
	m := DefaultFieldMeta()
	for _, f := range fields {
		name := strings.ToLower(f.Name)
		m.ByName[name] = f.ID
		switch name {
		case "sprint":
			m.SprintID = f.ID
		case "story points", "story point estimate":
			m.StoryPointsID = f.ID
		}
	}
	return m
}

// Exclusions are an integration's sensitive fields. "comments" stands for
// comment bodies; every other entry is a Jira field id (summary and
// description included).
type Exclusions struct {
	fields   map[string]bool
	comments bool
}

// NewExclusions builds the set from the integration's excluded_fields.
func NewExclusions(names []string) Exclusions {
	e := Exclusions{fields: map[string]bool{}}
	for _, n := range names {
		if n == "comments" {
			e.comments = true
			e.fields["comment"] = true
			continue
		}
		e.fields[n] = true
	}
	return e
}

// Field reports whether a field id is excluded.
func (e Exclusions) Field(id string) bool { return e.fields[id] }

// Comments reports whether comment bodies are excluded.
func (e Exclusions) Comments() bool { return e.comments }

// Fields that the search asks for. Everything else Jira has is not needed
// by the model, so it is neither fetched nor stored.
var baseFields = []string{"summary", "description", "issuetype", "project", "status", "priority", "assignee", "reporter",
	"creator", "created", "updated", "resolutiondate", "duedate", "components", "labels", "fixVersions", "parent", "comment"}

// SearchFields returns the fields to request, excluded ones left out, so
// sensitive values do not even cross the network.
func SearchFields(meta FieldMeta, ex Exclusions) []string {
	out := make([]string, 0, len(baseFields)+2)
	for _, f := range append(append([]string{}, baseFields...), meta.SprintID, meta.StoryPointsID) {
		if f != "" && !ex.Field(f) {
			out = append(out, f)
		}
	}
	return out
}

// History is one changelog entry.
type History struct {
	ID      string       `json:"id"`
	Author  *UserRef     `json:"author"`
	Created jira.Time    `json:"created"`
	Items   []ChangeItem `json:"items"`
}

// ChangeItem is one changed field of a history.
type ChangeItem struct {
	Field      string  `json:"field"`
	FieldType  string  `json:"fieldtype"`
	FieldID    string  `json:"fieldId"`
	From       *string `json:"from"`
	FromString *string `json:"fromString"`
	To         *string `json:"to"`
	ToString   *string `json:"toString"`
}

// Comment is one comment as Jira returns it.
type Comment struct {
	ID      string          `json:"id"`
	Author  *UserRef        `json:"author"`
	Body    json.RawMessage `json:"body"`
	Created jira.Time       `json:"created"`
	Updated jira.Time       `json:"updated"`
}

// namedRef is the shape of Jira's issuetype, project, priority...
type namedRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	ID   string `json:"id"`
}

// UserRef is a user as embedded in issues.
type UserRef struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName"`
	Active      *bool  `json:"active"`
	TimeZone    string `json:"timeZone"`
	AccountType string `json:"accountType"`
}

// Parsed is an issue read from Jira, before it is turned into rows; the
// syncer completes truncated changelogs and comments on it.
type Parsed struct {
	fields            fieldSet
	ID                int64
	Key               string
	Histories         []History
	HistoriesTotal    int // as Jira reports; > len(Histories) means truncated
	Comments          []Comment
	CommentsTotal     int
	CommentsTruncated bool
}

// Parse decodes one issue of a search answer.
func Parse(b []byte) (*Parsed, error) {
	var r struct {
		issueHead
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return parsed(&r.issueHead, fieldSetOf(r.Fields))
}

// parsed completes an issue decoded as part of a page (pageDecoder) or
// alone (Parse).
func parsed(h *issueHead, fs fieldSet) (*Parsed, error) {
	id, err := strconv.ParseInt(h.ID, 10, 64)
	if err != nil {
		return nil, err
	}
	p := &Parsed{fields: fs, ID: id, Key: h.Key}
	if h.Changelog != nil {
		p.Histories = h.Changelog.Histories
		p.HistoriesTotal = max(h.Changelog.Total, len(h.Changelog.Histories))
	}
	if c := fs.known.Comment; c != nil {
		p.Comments, p.CommentsTotal = c.Comments, max(c.Total, len(c.Comments))
		p.fields.known.Comment = nil // kept once, in p.Comments
	}
	return p, nil
}

// ChangelogTruncated reports whether Jira embedded only part of the
// changelog, so the rest must be fetched.
func (p *Parsed) ChangelogTruncated() bool { return p.HistoriesTotal > len(p.Histories) }

// CommentsIncomplete reports whether the embedded comments are partial.
func (p *Parsed) CommentsIncomplete() bool { return p.CommentsTotal > len(p.Comments) }

// Rows is one issue turned into database rows plus the users it names.
type Rows struct {
	Issue        store.JiraIssue
	Transitions  []store.JiraTransition
	FieldChanges []store.JiraFieldChange
	Comments     []store.JiraComment
	Users        map[string]UserRef // accountId -> what the issue told about them
}

// Transformer turns parsed issues into rows for one integration.
type Transformer struct {
	IntegrationID string
	Meta          FieldMeta
	Exclude       Exclusions
	Location      *time.Location // the integration's time zone
	Now           func() time.Time
}

// extracted fields: modelled as columns, so not repeated in Fields JSON.
var extracted = map[string]bool{"summary": true, "description": true, "issuetype": true, "project": true, "status": true,
	"priority": true, "assignee": true, "reporter": true, "creator": true, "created": true, "updated": true,
	"resolutiondate": true, "duedate": true, "components": true, "labels": true, "fixVersions": true, "parent": true, "comment": true}

// Rows transforms p. Excluded fields are dropped here, before anything else
// sees them: they are not copied into columns, the other-fields JSON, the
// changelog values or comment bodies.
func (t *Transformer) Rows(p *Parsed) (*Rows, error) {
	k := &p.fields.known
	out := &Rows{Users: map[string]UserRef{}}
	is := &out.Issue
	is.IntegrationID, is.IssueID, is.Key = t.IntegrationID, p.ID, p.Key
	is.SyncedAt = t.Now().UTC()

	// use reports whether a model field may be read: not excluded.
	use := func(field string) bool { return !t.Exclude.Field(field) }
	if k.Summary != nil && use("summary") {
		s := *k.Summary
		is.Summary = &s
	}
	if use("description") {
		if txt := ADFText(k.Description); txt != "" {
			is.Description = &txt
		}
	}
	if k.IssueType != nil && use("issuetype") {
		is.IssueType = k.IssueType.Name
	}
	if k.Project != nil && use("project") {
		is.ProjectKey, is.ProjectID = k.Project.Key, k.Project.ID
	}
	if is.ProjectKey == "" {
		is.ProjectKey, _, _ = strings.Cut(p.Key, "-")
	}
	if k.Status != nil && use("status") {
		is.Status, is.StatusCategory = k.Status.Name, k.Status.StatusCategory.Key
	}
	if k.Priority != nil && use("priority") && k.Priority.Name != "" {
		pr := k.Priority.Name
		is.Priority = &pr
	}
	for _, u := range []struct {
		field string
		ref   *UserRef
		dst   **string
	}{{"assignee", k.Assignee, &is.AssigneeAccountID}, {"reporter", k.Reporter, &is.ReporterAccountID}, {"creator", k.Creator, &is.CreatorAccountID}} {
		if u.ref != nil && use(u.field) && u.ref.AccountID != "" {
			id := u.ref.AccountID
			*u.dst = &id
			out.Users[id] = *u.ref
		}
	}
	if k.Created != nil && use("created") {
		is.Created = k.Created.UTC()
	}
	if k.Updated != nil && use("updated") {
		is.Updated = k.Updated.UTC()
	}
	if is.Updated.IsZero() {
		is.Updated = is.Created
	}
	if k.ResolutionDate != nil && use("resolutiondate") && !k.ResolutionDate.IsZero() {
		r := k.ResolutionDate.UTC()
		is.Resolved = &r
	}
	if k.DueDate != nil && use("duedate") && *k.DueDate != "" {
		// A due date has no offset: it means that day where the team
		// works, which is the integration's time zone.
		if d, err := time.ParseInLocation("2006-01-02", *k.DueDate, t.Location); err == nil {
			due, at := *k.DueDate, d.UTC()
			is.DueDate, is.DueAt = &due, &at
		}
	}
	is.Components = namesJSON(k.Components, use("components"))
	is.FixVersions = namesJSON(k.FixVersions, use("fixVersions"))
	var labels []string
	if use("labels") {
		labels = k.Labels
	}
	is.Labels = mustJSON(nonNil(labels))
	if k.Parent != nil && use("parent") && k.Parent.Key != "" {
		parent := k.Parent.Key
		is.ParentKey = &parent
	}
	custom := p.fields.custom
	getCustom := func(field string, v any) bool {
		raw, ok := custom[field]
		if !ok || t.Exclude.Field(field) || isNull(raw) {
			return false
		}
		return json.Unmarshal(raw, v) == nil
	}
	if t.Meta.SprintID != "" {
		var sprints []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if getCustom(t.Meta.SprintID, &sprints) && len(sprints) > 0 {
			name := sprints[len(sprints)-1].Name // the latest sprint the issue is in
			is.Sprint = &name
		}
	}
	if t.Meta.StoryPointsID != "" {
		var sp float64
		if getCustom(t.Meta.StoryPointsID, &sp) {
			is.StoryPoints = &sp
		}
	}
	other := make(map[string]json.RawMessage, len(custom))
	for k, v := range custom {
		if extracted[k] || k == t.Meta.SprintID || k == t.Meta.StoryPointsID || t.Exclude.Field(k) || isNull(v) {
			continue
		}
		other[k] = v
	}
	is.Fields = mustJSON(other)

	for _, h := range p.Histories {
		t.history(out, h)
	}
	for _, c := range p.Comments {
		row := store.JiraComment{IntegrationID: t.IntegrationID, IssueID: p.ID, CommentID: c.ID, Created: c.Created.UTC(), Updated: c.Updated.UTC()}
		if row.Updated.IsZero() {
			row.Updated = row.Created
		}
		if c.Author != nil && c.Author.AccountID != "" {
			id := c.Author.AccountID
			row.AuthorAccountID = &id
			out.Users[id] = *c.Author
		}
		if !t.Exclude.Comments() {
			if txt := ADFText(c.Body); txt != "" {
				row.Body = &txt
			}
		}
		out.Comments = append(out.Comments, row)
	}
	return out, nil
}

func (t *Transformer) history(out *Rows, h History) {
	var author *string
	if h.Author != nil && h.Author.AccountID != "" {
		id := h.Author.AccountID
		author = &id
		out.Users[id] = *h.Author
	}
	at := h.Created.UTC()
	for i, it := range h.Items {
		fieldID := it.FieldID
		if fieldID == "" {
			fieldID = t.Meta.ByName[strings.ToLower(it.Field)]
		}
		if fieldID == "" {
			fieldID = it.Field
		}
		if fieldID == "status" || (it.FieldID == "" && strings.EqualFold(it.Field, "status")) {
			out.Transitions = append(out.Transitions, store.JiraTransition{IntegrationID: t.IntegrationID, IssueID: out.Issue.IssueID,
				HistoryID: h.ID, Item: i, FromStatus: it.FromString, ToStatus: it.ToString, FromStatusID: it.From, ToStatusID: it.To,
				AuthorAccountID: author, At: at})
			continue
		}
		ch := store.JiraFieldChange{IntegrationID: t.IntegrationID, IssueID: out.Issue.IssueID, HistoryID: h.ID, Item: i,
			Field: it.Field, AuthorAccountID: author, At: at}
		if it.FieldID != "" {
			fid := it.FieldID
			ch.FieldID = &fid
		}
		// An excluded field's change is kept as "it changed" without
		// its values, so history stays complete and nothing leaks.
		if !t.Exclude.Field(fieldID) && !t.Exclude.Field(it.Field) {
			ch.FromValue, ch.FromString, ch.ToValue, ch.ToString = it.From, it.FromString, it.To, it.ToString
		}
		out.FieldChanges = append(out.FieldChanges, ch)
	}
}

func namesJSON(items []namedRef, use bool) string {
	if !use {
		items = nil
	}
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, it.Name)
	}
	return mustJSON(names)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// ADFText flattens an Atlassian Document Format value (or a plain string,
// as API v2 returns) into text: text nodes in order, a newline after each
// block.
func ADFText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	var node adfNode
	if json.Unmarshal(raw, &node) != nil {
		return ""
	}
	var sb strings.Builder
	node.write(&sb)
	return strings.TrimSpace(sb.String())
}

type adfNode struct {
	Type    string    `json:"type"`
	Text    string    `json:"text"`
	Content []adfNode `json:"content"`
	Attrs   struct {
		Text string `json:"text"` // mentions, emoji
	} `json:"attrs"`
}

func (n *adfNode) write(sb *strings.Builder) {
	switch n.Type {
	case "text":
		sb.WriteString(n.Text)
	case "mention", "emoji":
		sb.WriteString(n.Attrs.Text)
	case "hardBreak":
		sb.WriteByte('\n')
	}
	for i := range n.Content {
		n.Content[i].write(sb)
	}
	switch n.Type {
	case "paragraph", "heading", "listItem", "codeBlock", "blockquote", "tableRow", "rule":
		sb.WriteByte('\n')
	}
}
