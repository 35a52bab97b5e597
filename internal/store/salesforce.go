package store

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
)

// Kinds of Salesforce case reference.
const (
	SalesforceCaseID     = "case_id"     // an 18-character Case record id
	SalesforceCaseNumber = "case_number" // a case number as shown, digits
)

// SalesforceLink ties an issue to a Salesforce case its salesforce_field
// names.
type SalesforceLink struct {
	IntegrationID string `gorm:"column:integration_id;primaryKey"`
	IssueID       int64  `gorm:"column:issue_id;primaryKey;autoIncrement:false"`
	CaseRef       string `gorm:"column:case_ref;primaryKey"`
	Kind          string `gorm:"column:kind"`
}

func (SalesforceLink) TableName() string { return "salesforce_links" }

// SalesforceExtractor finds the links an issue's field names, without
// integration and issue ids (internal/ingest's SalesforceLinks, which store
// cannot import).
type SalesforceExtractor func(field string, issue *JiraIssue) []SalesforceLink

const salesforcePlugin = "sei:salesforce"

// salesforceHook is a gorm plugin only as a place to keep the extractor:
// gorm shares plugins between a handle and every session and transaction
// derived from it, as WatchLinks relies on too.
type salesforceHook struct{ extract SalesforceExtractor }

func (*salesforceHook) Name() string              { return salesforcePlugin }
func (*salesforceHook) Initialize(*gorm.DB) error { return nil }

// SetSalesforceExtractor sets how WriteIssues finds Salesforce cases in
// issues. Call it while wiring, before the handle writes issues; without
// it no links are written.
func (d *DB) SetSalesforceExtractor(f SalesforceExtractor) error {
	if p, ok := d.Gorm.Config.Plugins[salesforcePlugin].(*salesforceHook); ok {
		p.extract = f
		return nil
	}
	return mapError(d.Gorm.Use(&salesforceHook{extract: f}), "salesforce extractor")
}

func (d *DB) salesforceExtractor() SalesforceExtractor {
	if p, ok := d.Gorm.Config.Plugins[salesforcePlugin].(*salesforceHook); ok {
		return p.extract
	}
	return nil
}

// replaceSalesforceLinks rewrites the links of the incoming issues that are
// now stored as given; the others lost to a newer stored version, whose
// links stand. WriteIssues has locked them (PostgreSQL) or holds the only
// writer (SQLite), so the comparison cannot race another writer.
func (d *DB) replaceSalesforceLinks(ctx context.Context, integrationID, field string, issues []JiraIssue, extract SalesforceExtractor) error {
	g := d.Gorm.WithContext(ctx)
	ids := make([]int64, len(issues))
	for i := range issues {
		ids[i] = issues[i].IssueID
	}
	var stored []struct {
		IssueID int64
		Updated time.Time
	}
	if err := g.Table("jira_issues").Select("issue_id, updated").Where("integration_id = ? AND issue_id IN ?", integrationID, ids).
		Scan(&stored).Error; err != nil {
		return mapError(err, "issues")
	}
	current := make(map[int64]time.Time, len(stored))
	for _, s := range stored {
		current[s.IssueID] = normTime(s.Updated)
	}
	var mine []int64
	var links []SalesforceLink
	for i := range issues {
		is := &issues[i]
		if at, ok := current[is.IssueID]; !ok || !at.Equal(normTime(is.Updated)) || slices.Contains(mine, is.IssueID) {
			continue
		}
		mine = append(mine, is.IssueID)
		for _, l := range extract(field, is) {
			l.IntegrationID, l.IssueID = integrationID, is.IssueID
			links = append(links, l)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	if err := g.Where("integration_id = ? AND issue_id IN ?", integrationID, mine).Delete(&SalesforceLink{}).Error; err != nil {
		return mapError(err, "salesforce links")
	}
	if len(links) == 0 {
		return nil
	}
	return mapError(g.CreateInBatches(links, insertBatch/4).Error, "salesforce links")
}

// SalesforceLinkRow is a link with its issue's key, for listings.
type SalesforceLinkRow struct {
	IssueID  int64  `gorm:"column:issue_id"`
	IssueKey string `gorm:"column:key"`
	CaseRef  string `gorm:"column:case_ref"`
	Kind     string `gorm:"column:kind"`
}

// ListSalesforceLinks pages through an integration's links in (issue id,
// case) order, after the given position; caseRef, when set, keeps the
// links to that case only.
func (d *DB) ListSalesforceLinks(ctx context.Context, integrationID, caseRef string, afterIssue int64, afterCase string, limit int) ([]SalesforceLinkRow, error) {
	q := d.Gorm.WithContext(ctx).Table("salesforce_links l").
		Select("l.issue_id, i.key, l.case_ref, l.kind").
		Joins("JOIN jira_issues i ON i.integration_id = l.integration_id AND i.issue_id = l.issue_id").
		Where("l.integration_id = ?", integrationID).
		Where("(l.issue_id > ? OR (l.issue_id = ? AND l.case_ref > ?))", afterIssue, afterIssue, afterCase)
	if caseRef != "" {
		q = q.Where("l.case_ref = ?", caseRef)
	}
	var out []SalesforceLinkRow
	err := q.Order("l.issue_id, l.case_ref").Limit(limit).Scan(&out).Error
	return out, mapError(err, "salesforce links")
}

// SalesforceCases returns the case references of the given issues, by
// issue id, each list in case order.
func (d *DB) SalesforceCases(ctx context.Context, integrationID string, issueIDs []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	for start := 0; start < len(issueIDs); start += insertBatch {
		chunk := issueIDs[start:min(start+insertBatch, len(issueIDs))]
		var rows []SalesforceLink
		if err := d.Gorm.WithContext(ctx).Where("integration_id = ? AND issue_id IN ?", integrationID, chunk).
			Order("issue_id, case_ref").Find(&rows).Error; err != nil {
			return nil, mapError(err, "salesforce links")
		}
		for _, r := range rows {
			out[r.IssueID] = append(out[r.IssueID], r.CaseRef)
		}
	}
	return out, nil
}
