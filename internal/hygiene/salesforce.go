package hygiene

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// SalesforceSettings is the integration's Salesforce mapping: the Jira
// field whose values name Salesforce cases (nil: no mapping).
type SalesforceSettings struct {
	SalesforceField *string `json:"salesforce_field"`
}

// salesforceKinds are the field kinds that can hold case references:
// texts, numbers, options and lists of them.
var salesforceKinds = []string{KindString, KindNumber, KindArray, KindOther}

// Salesforce returns the integration's Salesforce mapping.
func (s *Service) Salesforce(ctx context.Context, tenantID, id string) (*SalesforceSettings, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	rs, err := s.DB.GetReportSettings(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	return &SalesforceSettings{SalesforceField: rs.SalesforceField}, nil
}

// SaveSalesforce sets (or, with null or "", clears) the Salesforce field.
// A changed field drops the links found through the old one; issues are
// linked again as they are written, and a full sync is scheduled so that
// every stored issue is.
func (s *Service) SaveSalesforce(ctx context.Context, tenantID, id string, in SalesforceSettings) (*SalesforceSettings, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	var field *string
	if in.SalesforceField != nil && strings.TrimSpace(*in.SalesforceField) != "" {
		f := strings.TrimSpace(*in.SalesforceField)
		field = &f
		if !fieldIDPattern.MatchString(f) {
			return nil, apperr.Validation(map[string]string{"salesforce_field": "is not a Jira field id such as customfield_10100"})
		}
		if slices.Contains(it.ExcludedFields, f) {
			return nil, apperr.Validation(map[string]string{"salesforce_field": fmt.Sprintf("%s is an excluded (sensitive) field of this integration, so it is never ingested", quote(f))})
		}
		fs, err := s.siteFields(ctx, it)
		if err != nil {
			return nil, err
		}
		src, ok := fs.resolve(f)
		if !ok {
			return nil, apperr.Validation(map[string]string{"salesforce_field": fs.unknownField(f)})
		}
		if !slices.Contains(salesforceKinds, src.Kind) || src.Column != "" && !slices.Contains([]string{"summary", "description", "labels"}, f) {
			return nil, apperr.Validation(map[string]string{"salesforce_field": fmt.Sprintf("%s (%s) is a %s field, which cannot hold Salesforce case ids or numbers: use a text, number, select or labels field",
				src.Name, f, src.Kind)})
		}
	}
	changed, err := s.DB.SaveSalesforceField(ctx, it.ID, field)
	if err != nil {
		return nil, err
	}
	if changed && field != nil {
		s.fullSync(ctx, it, "the Salesforce field changed")
	}
	return &SalesforceSettings{SalesforceField: field}, nil
}

// SalesforceLink is one issue <-> case pair.
type SalesforceLink struct {
	IssueID  string `json:"issue_id"`
	IssueKey string `json:"issue_key"`
	Case     string `json:"case"`
	Kind     string `json:"kind"`
}

// SalesforceLinkPage is a page of links.
type SalesforceLinkPage struct {
	Items      []SalesforceLink `json:"items"`
	NextCursor string           `json:"next_cursor"`
}

// SalesforceLinks pages through the integration's issue <-> case pairs in
// issue id order; caseRef, when set, lists the issues of that case only.
func (s *Service) SalesforceLinks(ctx context.Context, tenantID, id, caseRef, cur string, limit int) (*SalesforceLinkPage, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	afterIssue, afterCase := int64(math.MinInt64), ""
	if cur != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cur)
		idPart, casePart, ok := strings.Cut(string(raw), ":")
		n, perr := strconv.ParseInt(idPart, 10, 64)
		if err != nil || !ok || perr != nil {
			return nil, apperr.Validation(map[string]string{"cursor": "is not a cursor from a previous page"})
		}
		afterIssue, afterCase = n, casePart
	}
	rows, err := s.DB.ListSalesforceLinks(ctx, it.ID, strings.TrimSpace(caseRef), afterIssue, afterCase, limit+1)
	if err != nil {
		return nil, err
	}
	p := &SalesforceLinkPage{Items: []SalesforceLink{}}
	for i, r := range rows {
		if i == limit {
			last := rows[i-1]
			p.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.IssueID, 10) + ":" + last.CaseRef))
			break
		}
		p.Items = append(p.Items, SalesforceLink{IssueID: strconv.FormatInt(r.IssueID, 10), IssueKey: r.IssueKey, Case: r.CaseRef, Kind: r.Kind})
	}
	return p, nil
}
