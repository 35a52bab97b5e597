package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ReportSettings are an integration's settings for the hygiene report and
// the Salesforce mapping (migration 00005). Hygiene is JSON owned by
// internal/hygiene; Slots say which values hygiene_issues keeps for its
// custom misses; SalesforceField is a Jira field id, nil for no mapping.
type ReportSettings struct {
	IntegrationID   string        `gorm:"column:integration_id;primaryKey"`
	Hygiene         string        `gorm:"column:hygiene"`
	Slots           []HygieneSlot `gorm:"column:slots;serializer:json"`
	SalesforceField *string       `gorm:"column:salesforce_field"`
	UpdatedAt       time.Time     `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (ReportSettings) TableName() string { return "report_settings" }

func (r *ReportSettings) AfterFind(*gorm.DB) error { r.UpdatedAt = normTime(r.UpdatedAt); return nil }

// SearchFields are the Jira fields the settings read from issues'
// other-fields JSON, which a search must request for them to be there
// (see ingest.WithReportFields): the slots' and the Salesforce field.
func (r *ReportSettings) SearchFields() []string {
	var out []string
	for _, s := range r.Slots {
		if s.Field != "" && s.Column == "" && !slices.Contains(out, s.Field) {
			out = append(out, s.Field)
		}
	}
	if r.SalesforceField != nil && !slices.Contains(out, *r.SalesforceField) {
		out = append(out, *r.SalesforceField)
	}
	return out
}

// HygieneSlots is how many field values hygiene_issues keeps per issue
// (s0/n0 … s9/n9): one per field of a custom hygiene miss, of which there
// are at most 10.
const HygieneSlots = 10

// Value kinds of a slot (internal/hygiene's field kinds).
const (
	SlotString   = "string"
	SlotUser     = "user"
	SlotNumber   = "number"
	SlotDate     = "date"
	SlotDateTime = "datetime"
	SlotArray    = "array"
	SlotOther    = "other"
)

// ListSeparator separates the values of a list in a slot's text, and
// starts and ends it, so "has the value v" is a substring test for
// ListSeparator+v+ListSeparator.
const ListSeparator = "\x1f"

// HygieneSlot is what one slot of hygiene_issues holds: a field's value,
// read from a jira_issues column (Column) or from the other-fields JSON
// (Column ""), kept as s<k> (texts, dates, lists) or n<k> (numbers,
// instants as epoch seconds) by Kind. A slot with Field "" is unused.
type HygieneSlot struct {
	Field  string `json:"field"`
	Column string `json:"column,omitempty"`
	Kind   string `json:"kind"`
}

// JiraField is one entry of a site's field list as last fetched.
type JiraField struct {
	IntegrationID string    `gorm:"column:integration_id;primaryKey"`
	FieldID       string    `gorm:"column:field_id;primaryKey"`
	Name          string    `gorm:"column:name"`
	Custom        bool      `gorm:"column:custom"`
	SchemaType    string    `gorm:"column:schema_type"`
	SchemaItems   string    `gorm:"column:schema_items"`
	FetchedAt     time.Time `gorm:"column:fetched_at"`
}

func (JiraField) TableName() string { return "jira_fields" }

func (f *JiraField) AfterFind(*gorm.DB) error { f.FetchedAt = normTime(f.FetchedAt); return nil }

// GetReportSettings returns the integration's report settings; an
// integration that never saved any gets the zero settings, not an error.
func (d *DB) GetReportSettings(ctx context.Context, integrationID string) (*ReportSettings, error) {
	return d.reportSettings(ctx, integrationID, false)
}

// reportSettings reads the settings; share locks them on PostgreSQL, so a
// writer of hygiene_issues and a change of slots take turns.
func (d *DB) reportSettings(ctx context.Context, integrationID string, share bool) (*ReportSettings, error) {
	var rows []ReportSettings
	q := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID).Limit(1)
	if share && d.dialect == DialectPostgres {
		q = q.Clauses(clause.Locking{Strength: "SHARE"})
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, mapError(err, "report settings")
	}
	if len(rows) == 0 {
		return &ReportSettings{IntegrationID: integrationID, Hygiene: "{}", Slots: []HygieneSlot{}}, nil
	}
	if rows[0].Slots == nil {
		rows[0].Slots = []HygieneSlot{}
	}
	return &rows[0], nil
}

// SaveHygieneSettings stores the hygiene settings and their slots, keeping
// the Salesforce field. A slot given to another field is brought in step
// in the same transaction, so a report never reads a slot filled for
// another field (see refreshHygieneSlots).
func (d *DB) SaveHygieneSettings(ctx context.Context, integrationID, hygiene string, slots []HygieneSlot) error {
	if slots == nil {
		slots = []HygieneSlot{}
	}
	return d.Tx(ctx, func(tx *DB) error {
		prev, err := tx.GetReportSettings(ctx, integrationID)
		if err != nil {
			return err
		}
		row := ReportSettings{IntegrationID: integrationID, Hygiene: hygiene, Slots: slots, SalesforceField: prev.SalesforceField,
			UpdatedAt: normTime(d.now())}
		// The row is written (and so locked) before hygiene_issues is: the
		// order WriteIssues takes them in, which cannot deadlock.
		if err := tx.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "integration_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"hygiene", "slots", "updated_at"}),
		}).Create(&row).Error; err != nil {
			return mapError(err, "report settings")
		}
		return tx.refreshHygieneSlots(ctx, integrationID, prev, slots)
	})
}

// SaveSalesforceField stores the Salesforce field (nil: no mapping). When it
// changes, the links found through the old field are deleted in the same
// transaction: they no longer describe the setting. It reports whether the
// field changed.
func (d *DB) SaveSalesforceField(ctx context.Context, integrationID string, field *string) (bool, error) {
	changed := false
	err := d.Tx(ctx, func(tx *DB) error {
		cur, err := tx.GetReportSettings(ctx, integrationID)
		if err != nil {
			return err
		}
		if (cur.SalesforceField == nil) == (field == nil) && (field == nil || *cur.SalesforceField == *field) {
			return nil
		}
		changed = true
		g := tx.Gorm.WithContext(ctx)
		row := ReportSettings{IntegrationID: integrationID, Hygiene: cur.Hygiene, Slots: cur.Slots, SalesforceField: field,
			UpdatedAt: normTime(d.now())}
		if err := g.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "integration_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"salesforce_field", "updated_at"}),
		}).Create(&row).Error; err != nil {
			return mapError(err, "report settings")
		}
		return mapError(g.Where("integration_id = ?", integrationID).Delete(&SalesforceLink{}).Error, "salesforce links")
	})
	return changed, err
}

// ReplaceJiraFields stores a freshly fetched field list in place of the
// previous one.
func (d *DB) ReplaceJiraFields(ctx context.Context, integrationID string, fields []JiraField) error {
	now := normTime(d.now())
	return d.Tx(ctx, func(tx *DB) error {
		g := tx.Gorm.WithContext(ctx)
		if err := g.Where("integration_id = ?", integrationID).Delete(&JiraField{}).Error; err != nil {
			return mapError(err, "jira fields")
		}
		if len(fields) == 0 {
			return nil
		}
		for i := range fields {
			fields[i].IntegrationID, fields[i].FetchedAt = integrationID, now
		}
		return mapError(g.CreateInBatches(fields, insertBatch/7).Error, "jira fields")
	})
}

// JiraFields returns the stored field list, by id; empty when it was never
// fetched.
func (d *DB) JiraFields(ctx context.Context, integrationID string) ([]JiraField, error) {
	var out []JiraField
	err := d.Gorm.WithContext(ctx).Where("integration_id = ?", integrationID).Order("field_id").Find(&out).Error
	return out, mapError(err, "jira fields")
}

// writeReportRows keeps what the hygiene report and the Salesforce mapping
// derive from issues in step with the issues a batch just wrote (kept: the
// ones that won over what was stored, whose children are now the batch's):
// their hygiene_issues rows, and their Salesforce links when the
// integration has a Salesforce field. WriteIssues calls it in its
// transaction.
//
// The rows' fixed columns are computed here from the batch, not read back
// from jira_issues: reading back cost an index scan per page whose plan
// went wrong while a first sync was still filling the table (the planner's
// statistics said "a few rows", so it scanned the integration's issues
// for every page: 40% of PostgreSQL's time in a sync). Slots, which only
// integrations with custom misses use, are then filled by SQL from the
// stored issues (slotExprs), the one definition of a slot's value.
func (d *DB) writeReportRows(ctx context.Context, integrationID string, kept []JiraIssue, b *IssueBatch) error {
	if len(kept) == 0 {
		return nil
	}
	rs, err := d.reportSettings(ctx, integrationID, true)
	if err != nil {
		return err
	}
	rows := hygieneBaseRows(kept, b.Transitions)
	if d.dialect == DialectPostgres {
		err = d.pgUpsertHygieneBase(ctx, rows)
	} else {
		err = mapError(d.Gorm.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "integration_id"}, {Name: "issue_id"}},
			DoUpdates: clause.AssignmentColumns(hygieneColumns),
		}).CreateInBatches(rows, insertBatch/len(hygieneColumns)*5).Error, "hygiene issues")
	}
	if err != nil {
		return err
	}
	if slices.ContainsFunc(rs.Slots, func(s HygieneSlot) bool { return s.Field != "" }) {
		ids := make([]int64, len(kept))
		for i := range kept {
			ids[i] = kept[i].IssueID
		}
		for start := 0; start < len(ids); start += insertBatch {
			if err := d.updateHygieneSlots(ctx, integrationID, rs.Slots, ids[start:min(start+insertBatch, len(ids))]); err != nil {
				return err
			}
		}
	}
	if rs.SalesforceField == nil {
		return nil
	}
	extract := d.salesforceExtractor()
	if extract == nil {
		return nil
	}
	return d.replaceSalesforceLinks(ctx, integrationID, *rs.SalesforceField, kept, extract)
}

// hygieneBase is a hygiene_issues row without its slots.
type hygieneBase struct {
	IntegrationID     string     `gorm:"column:integration_id;primaryKey"`
	IssueID           int64      `gorm:"column:issue_id;primaryKey"`
	Key               string     `gorm:"column:key"`
	ProjectKey        string     `gorm:"column:project_key"`
	Created           time.Time  `gorm:"column:created"`
	Updated           time.Time  `gorm:"column:updated"`
	Resolved          *time.Time `gorm:"column:resolved"`
	FirstChange       *time.Time `gorm:"column:first_change"`
	AssigneeAccountID *string    `gorm:"column:assignee_account_id"`
	HasDueDate        bool       `gorm:"column:has_due_date"`
	DescriptionLength *int32     `gorm:"column:description_length"`
	HasComponents     bool       `gorm:"column:has_components"`
}

func (hygieneBase) TableName() string { return "hygiene_issues" }

// hygieneBaseRows derives the fixed columns as RebuildHygieneIssues' SQL
// does from the stored rows (TestHygieneRowsAgree holds them equal): the
// first status change is the earliest of the issue's transitions, which
// for a written issue are the batch's; the description's length is in
// characters, as SQL's length() counts.
func hygieneBaseRows(issues []JiraIssue, transitions []JiraTransition) []hygieneBase {
	first := make(map[int64]time.Time, len(issues))
	for i := range transitions {
		t := &transitions[i]
		if at, ok := first[t.IssueID]; !ok || t.At.Before(at) {
			first[t.IssueID] = t.At
		}
	}
	out := make([]hygieneBase, len(issues))
	for i := range issues {
		is := &issues[i]
		r := hygieneBase{IntegrationID: is.IntegrationID, IssueID: is.IssueID, Key: is.Key, ProjectKey: is.ProjectKey,
			Created: is.Created, Updated: is.Updated, Resolved: is.Resolved, AssigneeAccountID: is.AssigneeAccountID,
			HasDueDate: is.DueDate != nil}
		if at, ok := first[is.IssueID]; ok {
			at = normTime(at)
			r.FirstChange = &at
		}
		if is.Description != nil {
			n := int32(utf8.RuneCountInString(*is.Description))
			r.DescriptionLength = &n
		}
		switch is.Components {
		case "[]", "", "null":
		default:
			r.HasComponents = true
		}
		out[i] = r
	}
	return out
}

const pgUpsertHygieneBase = `INSERT INTO hygiene_issues (integration_id, issue_id, key, project_key, created, updated, resolved,
first_change, assignee_account_id, has_due_date, description_length, has_components)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
$8::timestamptz[], $9::text[], $10::bool[], $11::int4[], $12::bool[])
ON CONFLICT (integration_id, issue_id) DO UPDATE SET key = EXCLUDED.key, project_key = EXCLUDED.project_key,
created = EXCLUDED.created, updated = EXCLUDED.updated, resolved = EXCLUDED.resolved, first_change = EXCLUDED.first_change,
assignee_account_id = EXCLUDED.assignee_account_id, has_due_date = EXCLUDED.has_due_date,
description_length = EXCLUDED.description_length, has_components = EXCLUDED.has_components`

// pgUpsertHygieneBase writes rows as WriteIssues writes issues: one
// statement of column arrays, the same text for any batch.
func (d *DB) pgUpsertHygieneBase(ctx context.Context, rows []hygieneBase) error {
	n := len(rows)
	integ, ids, keys, projects := make([]string, n), make([]int64, n), make([]string, n), make([]string, n)
	created, updated, resolved, first := make([]time.Time, n), make([]time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	assignee, due, desc, comps := make([]*string, n), make([]bool, n), make([]*int32, n), make([]bool, n)
	for i, r := range rows {
		integ[i], ids[i], keys[i], projects[i] = r.IntegrationID, r.IssueID, r.Key, r.ProjectKey
		created[i], updated[i], resolved[i], first[i] = r.Created, r.Updated, r.Resolved, r.FirstChange
		assignee[i], due[i], desc[i], comps[i] = r.AssigneeAccountID, r.HasDueDate, r.DescriptionLength, r.HasComponents
	}
	return d.pgExec(ctx, "hygiene issues", pgUpsertHygieneBase, integ, ids, keys, projects, created, updated, resolved, first,
		assignee, due, desc, comps)
}

// updateHygieneSlots fills the used slots of some issues' rows from the
// stored issues. Both sides are reached by their primary key, whatever the
// planner believes about the tables' sizes.
func (d *DB) updateHygieneSlots(ctx context.Context, integrationID string, slots []HygieneSlot, ids []int64) error {
	exprs := d.slotExprs(slots)
	cols := slotColumns()
	var sets []string
	for k := range HygieneSlots {
		if k < len(slots) && slots[k].Field != "" {
			sets = append(sets, cols[2*k]+" = "+exprs[2*k], cols[2*k+1]+" = "+exprs[2*k+1])
		}
	}
	where := func(integ, in string) string {
		return " WHERE h.integration_id = " + integ + " AND h.issue_id " + in + " AND j.integration_id = h.integration_id AND j.issue_id " +
			in + " AND j.issue_id = h.issue_id"
	}
	q := "UPDATE hygiene_issues AS h SET " + strings.Join(sets, ", ") + " FROM " + d.fromIssues(slots)
	if d.dialect == DialectPostgres {
		return d.pgExec(ctx, "hygiene issues", q+where("$1", "= ANY($2::bigint[])"), integrationID, ids)
	}
	args := []any{integrationID}
	for range 2 {
		for _, id := range ids {
			args = append(args, id)
		}
	}
	in := "IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
	return mapError(d.Gorm.WithContext(ctx).Exec(q+where("?", in), args...).Error, "hygiene issues")
}

// hygieneColumns are the hygiene_issues columns derived from jira_issues
// and jira_transitions the same way whatever the settings.
var hygieneColumns = []string{"key", "project_key", "created", "updated", "resolved", "first_change", "assignee_account_id",
	"has_due_date", "description_length", "has_components"}

func slotColumns() []string {
	out := make([]string, 0, 2*HygieneSlots)
	for k := range HygieneSlots {
		out = append(out, fmt.Sprintf("s%d", k), fmt.Sprintf("n%d", k))
	}
	return out
}

// slotExprs returns the SELECT list of every slot, in slotColumns order,
// over the jira_issues row "j" (and, on PostgreSQL, its other-fields JSON
// parsed once as "f.fj").
func (d *DB) slotExprs(slots []HygieneSlot) []string {
	out := make([]string, 0, 2*HygieneSlots)
	for k := range HygieneSlots {
		s, n := "NULL", "NULL"
		if k < len(slots) && slots[k].Field != "" {
			s, n = slotValue(d.dialect == DialectPostgres, slots[k])
		}
		out = append(out, s, n)
	}
	return out
}

// fromIssues is the FROM of the statements that derive hygiene_issues rows.
// On PostgreSQL the other-fields text is parsed into jsonb once per row in
// a LATERAL subquery that OFFSET 0 keeps from being merged into the
// statement (merged, each slot would parse it again).
func (d *DB) fromIssues(slots []HygieneSlot) string {
	if d.dialect == DialectPostgres && slices.ContainsFunc(slots, func(s HygieneSlot) bool { return s.Field != "" && s.Column == "" }) {
		return "jira_issues j CROSS JOIN LATERAL (SELECT j.fields::jsonb AS fj OFFSET 0) f"
	}
	return "jira_issues j"
}

// RebuildHygieneIssues derives the hygiene_issues rows of all the
// integration's issues from what is stored, slots included: for data
// loaded around WriteIssues (benchmarks, repairs), and the reference
// WriteIssues' rows are tested against.
func (d *DB) RebuildHygieneIssues(ctx context.Context, integrationID string) error {
	return d.Tx(ctx, func(tx *DB) error {
		rs, err := tx.reportSettings(ctx, integrationID, true)
		if err != nil {
			return err
		}
		cols := append(append([]string{"integration_id", "issue_id"}, hygieneColumns...), slotColumns()...)
		sets := make([]string, 0, len(cols)-2)
		for _, c := range cols[2:] {
			sets = append(sets, c+" = excluded."+c)
		}
		// Each issue's first status change by one grouped pass over the
		// transitions.
		q := "INSERT INTO hygiene_issues (" + strings.Join(cols, ", ") + ")\n" +
			"SELECT j.integration_id, j.issue_id, j.key, j.project_key, j.created, j.updated, j.resolved, ft.first_change,\n" +
			"  j.assignee_account_id, j.due_date IS NOT NULL, length(j.description), j.components NOT IN ('[]', '', 'null'),\n  " +
			strings.Join(tx.slotExprs(rs.Slots), ", ") + "\n" +
			"FROM " + tx.fromIssues(rs.Slots) +
			" LEFT JOIN (SELECT issue_id, min(at) AS first_change FROM jira_transitions WHERE integration_id = ? GROUP BY issue_id) ft" +
			" ON ft.issue_id = j.issue_id\nWHERE j.integration_id = ?\nORDER BY j.issue_id\n" +
			"ON CONFLICT (integration_id, issue_id) DO UPDATE SET " + strings.Join(sets, ", ")
		return mapError(tx.Gorm.WithContext(ctx).Exec(q, integrationID, integrationID).Error, "hygiene issues")
	})
}

// refreshHygieneSlots brings the slots whose field changed in step with
// the new settings. Only rows whose value changes are written: a slot is
// filled from jira_issues when its field's values are there (a column, or
// a JSON field the settings already had ingestion fetch), and otherwise
// emptied, for the full sync that fetches the field to fill. A slot left
// unused keeps its values; nothing reads them, and it is brought in step
// when it is used again. Filling a slot for a column-held field (status,
// priority…) writes most rows: on PostgreSQL about a minute per million
// issues on a busy 2-vCPU machine, in the PUT that asks for it.
func (d *DB) refreshHygieneSlots(ctx context.Context, integrationID string, prev *ReportSettings, slots []HygieneSlot) error {
	fetched := prev.SearchFields()
	distinct := " IS DISTINCT FROM "
	if d.dialect != DialectPostgres {
		distinct = " IS NOT "
	}
	for k := range HygieneSlots {
		var was, now HygieneSlot
		if k < len(prev.Slots) {
			was = prev.Slots[k]
		}
		if k < len(slots) {
			now = slots[k]
		}
		if was == now || now.Field == "" {
			continue
		}
		sc, nc := fmt.Sprintf("s%d", k), fmt.Sprintf("n%d", k)
		var q string
		if now.Column != "" || slices.Contains(fetched, now.Field) {
			sv, nv := slotValue(d.dialect == DialectPostgres, now)
			q = fmt.Sprintf("UPDATE hygiene_issues AS h SET %[1]s = %[3]s, %[2]s = %[4]s FROM %[5]s "+
				"WHERE h.integration_id = ? AND j.integration_id = h.integration_id AND j.issue_id = h.issue_id "+
				"AND (h.%[1]s%[6]s%[3]s OR h.%[2]s%[6]s%[4]s)", sc, nc, sv, nv, d.fromIssues([]HygieneSlot{now}), distinct)
		} else {
			q = fmt.Sprintf("UPDATE hygiene_issues SET %[1]s = NULL, %[2]s = NULL WHERE integration_id = ? AND (%[1]s IS NOT NULL OR %[2]s IS NOT NULL)", sc, nc)
		}
		if err := d.Gorm.WithContext(ctx).Exec(q, integrationID).Error; err != nil {
			return mapError(err, "hygiene issues")
		}
	}
	return nil
}

// slotValue is the SQL of a slot's text and number. Jira's JSON shapes
// vary: a string, a number, an object shown by its value, name, accountId
// or key (options, users, versions), or a list of those. Empty texts and
// lists are NULL, so "missing" is both being NULL.
func slotValue(pg bool, s HygieneSlot) (text, num string) {
	if s.Column != "" {
		c := "j." + s.Column
		switch s.Kind {
		case SlotNumber:
			return "NULL", c
		case SlotDateTime:
			return "NULL", epoch(pg, c)
		case SlotArray:
			return listText(pg, c, true), "NULL"
		case SlotOther:
			return "CASE WHEN " + c + " IS NOT NULL THEN '1' END", "NULL"
		}
		return "NULLIF(" + c + ", '')", "NULL"
	}
	if pg {
		j := "(f.fj -> '" + s.Field + "')"
		switch s.Kind {
		case SlotNumber:
			return "NULL", fmt.Sprintf("(CASE WHEN jsonb_typeof(%[1]s) = 'number' THEN (%[1]s #>> '{}')::double precision END)", j)
		case SlotDate:
			return fmt.Sprintf("(CASE WHEN jsonb_typeof(%[1]s) = 'string' AND (%[1]s #>> '{}') ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN %[1]s #>> '{}' END)", j), "NULL"
		case SlotDateTime:
			// The shape is checked first: a cast of a malformed text would
			// fail the whole statement.
			return "NULL", epoch(true, fmt.Sprintf("(CASE WHEN jsonb_typeof(%[1]s) = 'string' AND (%[1]s #>> '{}') ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+){0,1}){0,1}(Z|[+-][0-9]{2}(:{0,1}[0-9]{2}){0,1})$' THEN (%[1]s #>> '{}')::timestamptz END)", j))
		case SlotArray:
			return listText(true, j, false), "NULL"
		case SlotOther:
			return fmt.Sprintf("(CASE WHEN %[1]s IS NOT NULL AND %[1]s NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{}'::jsonb) THEN '1' END)", j), "NULL"
		}
		return fmt.Sprintf("NULLIF(CASE jsonb_typeof(%[1]s) WHEN 'object' THEN coalesce(%[1]s ->> 'value', %[1]s ->> 'name', %[1]s ->> 'accountId', %[1]s ->> 'key') WHEN 'array' THEN NULL ELSE %[1]s #>> '{}' END, '')", j), "NULL"
	}
	path := func(sub string) string {
		p := `'$."` + s.Field + `"`
		if sub != "" {
			p += "." + sub
		}
		return p + "'"
	}
	typ := "json_type(j.fields, " + path("") + ")"
	get := func(sub string) string { return "json_extract(j.fields, " + path(sub) + ")" }
	switch s.Kind {
	case SlotNumber:
		return "NULL", fmt.Sprintf("(CASE WHEN %s IN ('integer', 'real') THEN %s END)", typ, get(""))
	case SlotDate:
		return fmt.Sprintf("(CASE WHEN %s = 'text' AND %s GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN %s END)", typ, get(""), get("")), "NULL"
	case SlotDateTime:
		// SQLite's date functions want the offset as +01:00; Jira writes
		// +0100. A text of another shape gives NULL.
		v := get("")
		norm := fmt.Sprintf("(CASE WHEN %s = 'text' THEN (CASE WHEN %[2]s GLOB '*[+-][0-9][0-9][0-9][0-9]' THEN substr(%[2]s, 1, length(%[2]s) - 2) || ':' || substr(%[2]s, -2) ELSE %[2]s END) END)", typ, v)
		return "NULL", epoch(false, norm)
	case SlotArray:
		return listText(false, path(""), false), "NULL"
	case SlotOther:
		return fmt.Sprintf("(CASE WHEN %[1]s IS NOT NULL AND %[1]s <> 'null' AND NOT (%[1]s = 'text' AND %[2]s = '') AND NOT (%[1]s = 'array' AND json_array_length(j.fields, %[3]s) = 0) AND NOT (%[1]s = 'object' AND %[2]s = '{}') THEN '1' END)",
			typ, get(""), path("")), "NULL"
	}
	return fmt.Sprintf("NULLIF(CASE %s WHEN 'object' THEN CAST(coalesce(%s, %s, %s, %s) AS TEXT) WHEN 'array' THEN NULL WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(%s AS TEXT) END, '')",
		typ, get("value"), get("name"), get("accountId"), get("key"), get("")), "NULL"
}

// epoch is an instant as epoch seconds.
func epoch(pg bool, t string) string {
	if pg {
		return "extract(epoch FROM " + t + ")::double precision"
	}
	// unixepoch counts in whole milliseconds, as Jira's instants are, where
	// julianday arithmetic would put an instant a hair before itself.
	return "unixepoch(" + t + ", 'subsec')"
}

// listText joins a list's values shown as text with ListSeparator, which
// also starts and ends it; NULL for no values. src is a JSON array: a
// jira_issues column of JSON text (column) or, on PostgreSQL, a jsonb
// value, on SQLite a JSON path into j.fields.
func listText(pg bool, src string, column bool) string {
	if pg {
		if column {
			src = src + "::jsonb"
		}
		return fmt.Sprintf("(SELECT chr(31) || string_agg(CASE jsonb_typeof(e) WHEN 'object' THEN coalesce(e ->> 'value', e ->> 'name', e ->> 'accountId', e ->> 'key') ELSE e #>> '{}' END, chr(31)) || chr(31) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(%[1]s) = 'array' THEN %[1]s ELSE '[]'::jsonb END) e WHERE jsonb_typeof(e) <> 'null')", src)
	}
	each := "json_each(j.fields, " + src + ")"
	if column {
		each = "json_each(" + src + ")"
	}
	return fmt.Sprintf("(SELECT char(31) || group_concat(CAST(CASE e.type WHEN 'object' THEN coalesce(json_extract(e.value, '$.value'), json_extract(e.value, '$.name'), json_extract(e.value, '$.accountId'), json_extract(e.value, '$.key')) ELSE e.value END AS TEXT), char(31)) || char(31) FROM %s e WHERE e.type <> 'null')", each)
}

// ReadReport runs fn in one read-only snapshot, so the counts and the
// pages of a report agree. On PostgreSQL it turns JIT compilation off for
// it: the report's wide expressions cost seconds to compile and the
// statements run in well under that.
func (d *DB) ReadReport(ctx context.Context, fn func(tx *DB) error) error {
	if d.dialect != DialectPostgres {
		return d.Tx(ctx, fn)
	}
	var fnErr error
	err := d.Gorm.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		if err := g.Exec("SET LOCAL jit = off").Error; err != nil {
			return err
		}
		child := *d
		child.Gorm = g
		fnErr = fn(&child)
		return fnErr
	}, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if fnErr != nil {
		return fnErr
	}
	return mapError(err, "hygiene report")
}

// QueryReport runs one read-only report query (built by internal/hygiene
// for this database's dialect) and hands each row to scan.
func (d *DB) QueryReport(ctx context.Context, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := d.Gorm.WithContext(ctx).Raw(query, args...).Rows()
	if err != nil {
		return mapError(err, "hygiene report")
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return mapError(err, "hygiene report")
		}
	}
	return mapError(rows.Err(), "hygiene report")
}
