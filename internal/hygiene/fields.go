package hygiene

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/store"
)

// Kinds of field value, from the field's schema in the site's field list.
// They decide which operators apply and how a value is read in SQL.
const (
	KindString   = "string"   // text, and single values shown by name: option, priority, status, version...
	KindNumber   = "number"   // numbers
	KindDate     = "date"     // a day without time: yyyy-mm-dd
	KindDateTime = "datetime" // an instant
	KindUser     = "user"     // an account, compared by accountId
	KindArray    = "array"    // several values (labels, components, multi-selects...)
	KindOther    = "other"    // anything else: only "missing" applies
)

// SiteField is one entry of GET /rest/api/3/field.
type SiteField struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Custom bool   `json:"custom"`
	Schema struct {
		Type  string `json:"type"`
		Items string `json:"items"`
	} `json:"schema"`
}

// kindOf maps a field schema to a kind.
func kindOf(schemaType string) string {
	switch schemaType {
	case "string", "option", "option-with-child", "priority", "status", "issuetype", "resolution", "project",
		"securitylevel", "version", "component", "sd-customerrequesttype":
		return KindString
	case "number":
		return KindNumber
	case "date":
		return KindDate
	case "datetime":
		return KindDateTime
	case "user":
		return KindUser
	case "array":
		return KindArray
	}
	return KindOther
}

// column is where the model keeps a system field instead of the
// other-fields JSON (internal/ingest's transform).
type column struct {
	name string
	kind string
}

var columns = map[string]column{
	"summary":        {"summary", KindString},
	"description":    {"description", KindString},
	"issuetype":      {"issue_type", KindString},
	"project":        {"project_key", KindString},
	"status":         {"status", KindString},
	"priority":       {"priority", KindString},
	"assignee":       {"assignee_account_id", KindUser},
	"reporter":       {"reporter_account_id", KindUser},
	"creator":        {"creator_account_id", KindUser},
	"created":        {"created", KindDateTime},
	"updated":        {"updated", KindDateTime},
	"resolutiondate": {"resolved", KindDateTime},
	"duedate":        {"due_date", KindDate},
	"components":     {"components", KindArray},
	"labels":         {"labels", KindArray},
	"fixVersions":    {"fix_versions", KindArray},
	"parent":         {"parent_key", KindString},
}

// systemCatalog is what is known of a site before its field list has been
// fetched once: the system fields every Jira Cloud site has.
var systemCatalog = []SiteField{
	sys("summary", "Summary", "string"), sys("description", "Description", "string"),
	sys("issuetype", "Issue Type", "issuetype"), sys("project", "Project", "project"),
	sys("status", "Status", "status"), sys("priority", "Priority", "priority"),
	sys("assignee", "Assignee", "user"), sys("reporter", "Reporter", "user"), sys("creator", "Creator", "user"),
	sys("created", "Created", "datetime"), sys("updated", "Updated", "datetime"),
	sys("resolutiondate", "Resolved", "datetime"), sys("resolution", "Resolution", "resolution"),
	sys("duedate", "Due date", "date"), sys("components", "Components", "array"),
	sys("labels", "Labels", "array"), sys("fixVersions", "Fix versions", "array"),
	sys("versions", "Affects versions", "array"), sys("parent", "Parent", "issuelink"),
	sys("environment", "Environment", "string"), sys("timeestimate", "Remaining Estimate", "number"),
	sys("timeoriginalestimate", "Original estimate", "number"), sys("timespent", "Time Spent", "number"),
	sys("statuscategorychangedate", "Status Category Changed", "datetime"),
}

func sys(id, name, typ string) SiteField {
	f := SiteField{ID: id, Name: name}
	f.Schema.Type = typ
	return f
}

// FieldLister fetches a site's field list from Jira.
type FieldLister interface {
	ListFields(ctx context.Context, it *store.Integration) ([]SiteField, error)
}

// SourceFields lists fields through the Jira sources ingestion uses (the
// linked site, signed with its shared secret).
type SourceFields struct {
	Sources ingest.SourceFactory
}

// fieldsTimeout bounds the one call settings validation makes to Jira.
const fieldsTimeout = 10 * time.Second

// ListFields implements FieldLister.
func (f SourceFields) ListFields(ctx context.Context, it *store.Integration) ([]SiteField, error) {
	ctx, cancel := context.WithTimeout(ctx, fieldsTimeout)
	defer cancel()
	src, err := f.Sources(ctx, it)
	if err != nil {
		return nil, err
	}
	cs, ok := src.(*ingest.CloudSource)
	if !ok {
		return nil, apperr.New(apperr.Unavailable, "this integration's Jira cannot list its fields")
	}
	var out []SiteField
	if err := cs.Client.Get(ctx, "/rest/api/3/field", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// fieldSet is the field list settings are validated against.
type fieldSet struct {
	byID map[string]SiteField
	// fromSite: the list came from the site (now or stored from an
	// earlier fetch); false: only the system catalogue is known.
	fromSite bool
	meta     ingest.FieldMeta
}

// siteFields returns the site's field list: fetched now when the site can
// be reached (and stored for later), otherwise the stored one, otherwise
// the system catalogue. A site that cannot be reached does not block
// saving settings whose fields are known.
func (s *Service) siteFields(ctx context.Context, it *store.Integration) (*fieldSet, error) {
	var list []SiteField
	fromSite := false
	if s.Fields != nil {
		fetched, err := s.Fields.ListFields(ctx, it)
		if err == nil && len(fetched) > 0 {
			list, fromSite = fetched, true
			rows := make([]store.JiraField, 0, len(fetched))
			for _, f := range fetched {
				rows = append(rows, store.JiraField{FieldID: f.ID, Name: f.Name, Custom: f.Custom, SchemaType: f.Schema.Type, SchemaItems: f.Schema.Items})
			}
			if err := s.DB.ReplaceJiraFields(ctx, it.ID, rows); err != nil {
				return nil, err
			}
		} else if err != nil {
			s.log().InfoContext(ctx, "site field list not fetched; validating with the stored one", "integration_id", it.ID, "error", err.Error())
		}
	}
	if list == nil {
		stored, err := s.DB.JiraFields(ctx, it.ID)
		if err != nil {
			return nil, err
		}
		for _, r := range stored {
			f := SiteField{ID: r.FieldID, Name: r.Name, Custom: r.Custom}
			f.Schema.Type, f.Schema.Items = r.SchemaType, r.SchemaItems
			list = append(list, f)
		}
		fromSite = len(list) > 0
	}
	fs := &fieldSet{byID: map[string]SiteField{}, fromSite: fromSite}
	for _, f := range systemCatalog {
		fs.byID[f.ID] = f
	}
	metaIn := make([]ingest.SiteField, 0, len(list))
	for _, f := range list {
		fs.byID[f.ID] = f
		metaIn = append(metaIn, ingest.SiteField{ID: f.ID, Name: f.Name, Custom: f.Custom})
	}
	fs.meta = ingest.MetaFromFields(metaIn)
	return fs, nil
}

// unknownField explains why a field id was not found.
func (fs *fieldSet) unknownField(id string) string {
	if fs.fromSite {
		return fmt.Sprintf("%s is not in the Jira site's field list", quote(id))
	}
	return fmt.Sprintf("%s is not a Jira system field, and the site's field list is not known yet: link the Jira site first", quote(id))
}

// source is where a field's value is read, and its kind.
type source struct {
	Column string `json:"column,omitempty"` // a jira_issues column; "" for the other-fields JSON
	Kind   string `json:"kind"`
	Name   string `json:"name"`
}

// resolve finds where the model keeps a field: a column for the system
// fields it extracts and for the site's sprint and story points fields
// (found by name, as ingestion finds them), the other-fields JSON for the
// rest.
func (fs *fieldSet) resolve(id string) (source, bool) {
	f, ok := fs.byID[id]
	if !ok {
		return source{}, false
	}
	if c, ok := columns[id]; ok {
		return source{Column: c.name, Kind: c.kind, Name: f.Name}, true
	}
	switch id {
	case fs.meta.SprintID:
		// The model keeps the name of the latest sprint the issue is in.
		return source{Column: "sprint", Kind: KindString, Name: f.Name}, true
	case fs.meta.StoryPointsID:
		return source{Column: "story_points", Kind: KindNumber, Name: f.Name}, true
	}
	return source{Kind: kindOf(f.Schema.Type), Name: f.Name}, true
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
