package hygiene

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Category statuses.
const (
	Evaluated    = "evaluated"
	NotEvaluated = "not_evaluated"
)

// builtin is a built-in category; needs are the Jira fields it reads, so
// excluding one of them leaves the category not evaluated.
type builtin struct {
	key, name string
	needs     []string
}

var builtins = []builtin{
	{"idle", "Idle", []string{"updated", "resolutiondate"}},
	{"no_assignee", "No Assignee", []string{"assignee"}},
	{"no_due_date", "No Due Date", []string{"duedate"}},
	{"poor_description", "Poor Description", []string{"description"}},
	{"no_components", "No Components", []string{"components"}},
	{"inactive_assignee", "Inactive Assignee", []string{"assignee"}},
	{"missed_response_time", "Missed Response Time", []string{"created", "status"}},
	{"missed_resolution_time", "Missed Resolution Time", []string{"created", "resolutiondate"}},
}

// Page sizes of offending issue keys.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Report is the hygiene report.
type Report struct {
	Total int64 `json:"total"`
	// Score is nil when no category with a weight could be evaluated.
	Score      *float64   `json:"score"`
	Categories []Category `json:"categories"`
}

// Category is one category's result.
type Category struct {
	Key    string    `json:"key"`
	Name   string    `json:"name"`
	Misses int64     `json:"misses"`
	Ratio  float64   `json:"ratio"`
	Weight float64   `json:"weight"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	Issues IssuePage `json:"issues"`
}

// IssuePage is a page of offending issue keys, in issue id order.
type IssuePage struct {
	Items      []string `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// Query is a report request as the API receives it; every member is
// validated here.
type Query struct {
	From, To string // yyyy-mm-dd in the integration's time zone, or RFC 3339
	Projects string // comma-separated project keys; "" for all
	Weights  string // comma-separated key:weight; "" for equal weights
	Limit    int    // page size of offending keys; 0 for the default
}

// IssuesQuery asks for one category's offending keys: the scope of Query
// and a category, or a cursor from an earlier page (which carries them).
type IssuesQuery struct {
	Query
	Category string
	Cursor   string
}

// scope is which issues a report counts, fixed when the report is asked
// for; cursors carry it so later pages answer the same question.
type scope struct {
	From     *time.Time `json:"f,omitempty"`
	To       *time.Time `json:"t,omitempty"`
	Projects []string   `json:"p,omitempty"`
	AsOf     time.Time  `json:"n"`
}

// cursor is the opaque paging cursor of offending keys.
type cursor struct {
	Scope    scope  `json:"s"`
	Category string `json:"c"`
	After    int64  `json:"a"`
}

func (c cursor) encode() string {
	raw, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 8<<10 || json.Unmarshal(raw, &c) != nil || c.Category == "" {
		return c, apperr.Validation(map[string]string{"cursor": "is not a cursor from a previous page"})
	}
	return c, nil
}

// category is a category as the queries see it.
type category struct {
	key, name string
	weight    float64
	reason    string // not evaluated, why
	cond      func(b *sqlb) string
}

// plan is what a report computes, for one integration.
type plan struct {
	it   *store.Integration
	loc  *time.Location
	st   stored
	sc   scope
	cats []*category
}

// Report computes the hygiene report of the tenant's integration.
func (s *Service) Report(ctx context.Context, tenantID, id string, q Query) (*Report, error) {
	p, err := s.plan(ctx, tenantID, id, q, nil)
	if err != nil {
		return nil, err
	}
	limit, err := pageSize(q.Limit)
	if err != nil {
		return nil, err
	}
	var evaluated []*category
	for _, c := range p.cats {
		if c.reason == "" {
			evaluated = append(evaluated, c)
		}
	}
	res, err := s.count(ctx, p, evaluated, limit)
	if err != nil {
		return nil, err
	}

	// Weights of the evaluated categories are scaled to sum to 100: the
	// weight of a category that cannot be evaluated is spread over the
	// rest in proportion to theirs.
	var sum float64
	for _, c := range evaluated {
		sum += c.weight
	}
	out := &Report{Total: res.total, Categories: make([]Category, 0, len(p.cats))}
	score := 100.0
	for _, c := range p.cats {
		cat := Category{Key: c.key, Name: c.name, Status: Evaluated, Issues: IssuePage{Items: []string{}}}
		if c.reason != "" {
			cat.Status, cat.Reason = NotEvaluated, c.reason
			out.Categories = append(out.Categories, cat)
			continue
		}
		r := res.byKey[c.key]
		cat.Misses = r.misses
		var ratio float64
		if res.total > 0 {
			ratio = float64(r.misses) / float64(res.total)
		}
		w := 0.0
		if sum > 0 {
			w = c.weight * 100 / sum
		}
		score -= w * ratio
		cat.Ratio, cat.Weight = round(ratio, 4), round(w, 2)
		cat.Issues.Items = r.keys
		if r.misses > int64(len(r.keys)) && len(r.keys) > 0 {
			cat.Issues.NextCursor = cursor{Scope: p.sc, Category: c.key, After: r.lastID}.encode()
		}
		out.Categories = append(out.Categories, cat)
	}
	if sum > 0 {
		sc := round(math.Min(100, math.Max(0, score)), 2)
		out.Score = &sc
	}
	return out, nil
}

// Issues pages through one category's offending issue keys.
func (s *Service) Issues(ctx context.Context, tenantID, id string, q IssuesQuery) (*IssuePage, error) {
	limit, err := pageSize(q.Limit)
	if err != nil {
		return nil, err
	}
	var cur cursor
	var p *plan
	if q.Cursor != "" {
		if cur, err = decodeCursor(q.Cursor); err != nil {
			return nil, err
		}
		if p, err = s.plan(ctx, tenantID, id, Query{}, &cur.Scope); err != nil {
			return nil, err
		}
	} else {
		if q.Category == "" {
			return nil, apperr.Validation(map[string]string{"category": "is required (or a cursor from a previous page)"})
		}
		if p, err = s.plan(ctx, tenantID, id, Query{From: q.From, To: q.To, Projects: q.Projects}, nil); err != nil {
			return nil, err
		}
		cur = cursor{Scope: p.sc, Category: q.Category, After: math.MinInt64}
	}
	i := slices.IndexFunc(p.cats, func(c *category) bool { return c.key == cur.Category })
	if i < 0 {
		return nil, apperr.Validation(map[string]string{"category": fmt.Sprintf("%s is not a category of this integration", quote(cur.Category))})
	}
	c := p.cats[i]
	if c.reason != "" {
		return nil, apperr.Validation(map[string]string{"category": c.key + " is not evaluated: " + c.reason})
	}
	page := &IssuePage{Items: []string{}}
	err = s.DB.ReadReport(ctx, func(tx *store.DB) error {
		keys, ids, err := s.firstMisses(ctx, tx, p, c, cur.After, limit+1)
		if err != nil {
			return err
		}
		if len(keys) > limit {
			keys, ids = keys[:limit], ids[:limit]
			page.NextCursor = cursor{Scope: p.sc, Category: c.key, After: ids[limit-1]}.encode()
		}
		page.Items = keys
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

func pageSize(n int) (int, error) {
	if n == 0 {
		return DefaultPageSize, nil
	}
	if n < 1 || n > MaxPageSize {
		return 0, apperr.Validation(map[string]string{"limit": fmt.Sprintf("must be an integer from 1 to %d", MaxPageSize)})
	}
	return n, nil
}

// plan reads the integration and its settings and validates the request;
// a cursor's scope (sc) replaces the request's time frame and projects.
func (s *Service) plan(ctx context.Context, tenantID, id string, q Query, sc *scope) (*plan, error) {
	it, err := s.DB.GetIntegration(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	rs, err := s.DB.GetReportSettings(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	st, err := decodeStored(rs.Hygiene)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(it.Timezone)
	if err != nil {
		loc = time.UTC
	}
	p := &plan{it: it, loc: loc, st: st, sc: scope{AsOf: s.now().UTC().Truncate(time.Microsecond)}}
	f := map[string]string{}
	if sc != nil {
		p.sc = *sc
	} else {
		p.sc.From = timeBound(q.From, loc, false, "from", f)
		p.sc.To = timeBound(q.To, loc, true, "to", f)
		if p.sc.From != nil && p.sc.To != nil && !p.sc.From.Before(*p.sc.To) {
			f["to"] = "must be after from"
		}
		p.sc.Projects = projectList(q.Projects, f)
	}
	p.cats = categories(it.ID, st, it.ExcludedFields, p.sc.AsOf, loc)
	if q.Weights != "" {
		p.cats = applyWeights(p.cats, q.Weights, f)
	}
	if len(f) > 0 {
		return nil, apperr.Validation(f)
	}
	return p, nil
}

// timeBound parses a bound of the time frame: a date is that day's
// midnight in the integration's time zone, and "to" as a date includes
// that whole day; an RFC 3339 time is that instant ("to" excluded).
func timeBound(s string, loc *time.Location, isTo bool, name string, f map[string]string) *time.Time {
	if s == "" {
		return nil
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		if isTo {
			d = d.AddDate(0, 0, 1)
		}
		u := d.UTC()
		return &u
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		f[name] = "must be a date such as 2026-01-31 (in the integration's time zone) or an RFC 3339 time"
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func projectList(s string, f map[string]string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" || len(p) > 255 {
			f["projects"] = "must be comma-separated Jira project keys such as ENG,OPS"
			return nil
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > 500 {
		f["projects"] = "names more than 500 projects"
		return nil
	}
	return out
}

// categories lists the built-in categories, then the custom ones, each
// with weight 1 (equal weights) and, when it reads an excluded field, the
// reason it is not evaluated.
func categories(integrationID string, st stored, excluded []string, now time.Time, loc *time.Location) []*category {
	ex := map[string]bool{}
	for _, f := range excluded {
		ex[f] = true
	}
	reason := func(needs ...string) string {
		for _, n := range needs {
			if ex[n] {
				return fmt.Sprintf("%s is an excluded (sensitive) field of this integration: it is not ingested, so this category cannot be evaluated", quote(n))
			}
		}
		return ""
	}
	idle := now.Add(-time.Duration(st.IdleDays) * 24 * time.Hour)
	response := int64(st.ResponseTimeGoalHours) * 3600
	resolution := int64(st.ResolutionTimeGoalDays) * 86400
	conds := map[string]func(b *sqlb) string{
		"idle":        func(b *sqlb) string { return "i.resolved IS NULL AND i.updated < " + b.arg(idle) },
		"no_assignee": func(*sqlb) string { return "i.assignee_account_id IS NULL" },
		"no_due_date": func(*sqlb) string { return "NOT i.has_due_date" },
		"poor_description": func(b *sqlb) string {
			return "(i.description_length IS NULL OR i.description_length < " + b.arg(st.PoorDescriptionMinLength) + ")"
		},
		"no_components": func(*sqlb) string { return "NOT i.has_components" },
		// A hashed subquery of the (few) inactive users: cheaper per issue
		// than a join with every user.
		"inactive_assignee": func(b *sqlb) string {
			return "i.assignee_account_id IN (SELECT u.account_id FROM jira_users u WHERE u.integration_id = " + b.arg(integrationID) + " AND NOT u.active)"
		},
		// No status change by the goal: a miss once the goal has passed,
		// whether the first change came later or not at all.
		"missed_response_time": func(b *sqlb) string {
			return "i.created < " + b.arg(now.Add(-time.Duration(response)*time.Second)) +
				" AND (i.first_change IS NULL OR " + b.beyond("i.first_change", "i.created", response) + ")"
		},
		"missed_resolution_time": func(b *sqlb) string {
			return "i.created < " + b.arg(now.Add(-time.Duration(resolution)*time.Second)) +
				" AND (i.resolved IS NULL OR " + b.beyond("i.resolved", "i.created", resolution) + ")"
		},
	}
	var out []*category
	for _, bi := range builtins {
		out = append(out, &category{key: bi.key, name: bi.name, weight: 1, reason: reason(bi.needs...), cond: conds[bi.key]})
	}
	for _, c := range st.Custom {
		out = append(out, &category{key: c.Key, name: c.Name, weight: 1, reason: reason(c.Field),
			cond: func(b *sqlb) string { return b.customCond(c, now, loc) }})
	}
	return out
}

// applyWeights reads key:weight pairs. Given weights must sum to 100;
// categories they do not name get 0, and a category of weight 0 is left out
// of the report.
func applyWeights(cats []*category, spec string, f map[string]string) []*category {
	given := map[string]float64{}
	var sum float64
	for _, pair := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), ":")
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case !ok || err != nil || math.IsNaN(w) || math.IsInf(w, 0) || w < 0:
			f["weights"] = "must be comma-separated key:weight pairs such as idle:50,no_assignee:50, weights 0 or more"
			return cats
		case !slices.ContainsFunc(cats, func(c *category) bool { return c.key == k }):
			f["weights"] = fmt.Sprintf("%s is not a category of this integration", quote(k))
			return cats
		}
		if _, dup := given[k]; dup {
			f["weights"] = fmt.Sprintf("names %s twice", quote(k))
			return cats
		}
		given[k] = w
		sum += w
	}
	if math.Abs(sum-100) > 0.001 {
		f["weights"] = fmt.Sprintf("sum to %s; they must sum to 100", strconv.FormatFloat(sum, 'f', -1, 64))
		return cats
	}
	var out []*category
	for _, c := range cats {
		if w := given[c.key]; w > 0 {
			c.weight = w
			out = append(out, c)
		}
	}
	return out
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// scopeSQL is the FROM and WHERE of the issues in scope: hygiene_issues
// rows "i" with ids above after.
func (s *Service) scopeSQL(b *sqlb, p *plan, after int64) string {
	conds := []string{"i.integration_id = " + b.arg(p.it.ID)}
	if after != math.MinInt64 {
		conds = append(conds, "i.issue_id > "+b.arg(after))
	}
	if p.sc.From != nil {
		conds = append(conds, "i.created >= "+b.arg(*p.sc.From))
	}
	if p.sc.To != nil {
		conds = append(conds, "i.created < "+b.arg(*p.sc.To))
	}
	if len(p.sc.Projects) > 0 {
		ph := make([]string, len(p.sc.Projects))
		for i, pr := range p.sc.Projects {
			ph[i] = b.arg(pr)
		}
		conds = append(conds, "i.project_key IN ("+strings.Join(ph, ", ")+")")
	}
	return "hygiene_issues i WHERE " + strings.Join(conds, " AND ")
}

// counted is one category's count and first page.
type counted struct {
	misses int64
	keys   []string
	lastID int64
}

type countResult struct {
	total int64
	byKey map[string]*counted
}

// How first pages are found. Up to windowMax issues in scope, by one pass
// in id order that keeps running counts per category (window sums) and
// returns only each category's first misses. Above it, where sorting the
// scope would cost more than the count itself: a category with at most
// rareMax misses by one scan shared with the other rare ones, a commoner
// one by an ordered scan that stops at its limit-th miss, which comes
// early. (Variables for tests.)
var (
	windowMax int64 = 50_000
	rareMax   int64 = 2000
)

// count computes, in one read-only snapshot, the number of issues in
// scope, each category's misses (one aggregate pass, which PostgreSQL may
// run in parallel) and each category's first page of offending keys in
// issue id order.
func (s *Service) count(ctx context.Context, p *plan, cats []*category, limit int) (*countResult, error) {
	res := &countResult{byKey: map[string]*counted{}}
	for _, c := range cats {
		res.byKey[c.key] = &counted{keys: []string{}}
	}
	err := s.DB.ReadReport(ctx, func(tx *store.DB) error {
		b := newSQL(tx.Dialect())
		cols := []string{"count(*)"}
		for _, c := range cats {
			cols = append(cols, "count(*) FILTER (WHERE "+c.cond(b)+")")
		}
		query := "SELECT " + strings.Join(cols, ", ") + " FROM " + s.scopeSQL(b, p, math.MinInt64)
		counts := make([]int64, len(cols))
		dest := make([]any, len(cols))
		for i := range counts {
			dest[i] = &counts[i]
		}
		if err := tx.QueryReport(ctx, query, b.args, func(rows *sql.Rows) error { return rows.Scan(dest...) }); err != nil {
			return err
		}
		res.total = counts[0]
		var some, rare []*category
		for i, c := range cats {
			r := res.byKey[c.key]
			r.misses = counts[i+1]
			switch {
			case r.misses == 0:
			case res.total <= windowMax:
				some = append(some, c)
			case r.misses <= rareMax:
				rare = append(rare, c)
			default:
				keys, ids, err := s.firstMisses(ctx, tx, p, c, math.MinInt64, limit)
				if err != nil {
					return err
				}
				r.keys, r.lastID = keys, ids[len(ids)-1]
			}
		}
		if len(some) > 0 {
			return s.firstPagesWindowed(ctx, tx, p, some, res, limit)
		}
		return s.rareMisses(ctx, tx, p, rare, res, limit)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// firstMisses returns the keys and ids of a category's first misses with
// ids above after, in id order, at most limit.
func (s *Service) firstMisses(ctx context.Context, tx *store.DB, p *plan, c *category, after int64, limit int) ([]string, []int64, error) {
	b := newSQL(tx.Dialect())
	query := "SELECT i.issue_id, i.key FROM " + s.scopeSQL(b, p, after) + " AND (" + c.cond(b) + ") ORDER BY i.issue_id LIMIT " +
		strconv.Itoa(limit)
	keys, ids := []string{}, []int64{}
	err := tx.QueryReport(ctx, query, b.args, func(rows *sql.Rows) error {
		var id int64
		var key string
		if err := rows.Scan(&id, &key); err != nil {
			return err
		}
		keys, ids = append(keys, key), append(ids, id)
		return nil
	})
	return keys, ids, err
}

// firstPagesWindowed finds the first pages of cats in one pass over the
// issues in scope: per category a flag and its running sum in id order;
// the rows where a flag is set and its sum is at most limit are the pages.
// On PostgreSQL OFFSET 0 keeps the flags' subquery from being merged into
// the window's, which would evaluate each condition twice.
func (s *Service) firstPagesWindowed(ctx context.Context, tx *store.DB, p *plan, cats []*category, res *countResult, limit int) error {
	b := newSQL(tx.Dialect())
	flags := make([]string, len(cats))
	sums := make([]string, len(cats))
	picks := make([]string, len(cats))
	outer := make([]string, len(cats))
	for i, c := range cats {
		flags[i] = fmt.Sprintf("CASE WHEN %s THEN 1 ELSE 0 END AS f%d", c.cond(b), i)
		sums[i] = fmt.Sprintf("sum(s.f%[1]d) OVER w AS r%[1]d", i)
		picks[i] = fmt.Sprintf("(x.f%[1]d = 1 AND x.r%[1]d <= %[2]d)", i, limit)
		outer[i] = fmt.Sprintf("x.f%d", i)
	}
	offset := ""
	if b.pg {
		offset = " OFFSET 0"
	}
	query := "SELECT x.issue_id, x.key, " + strings.Join(outer, ", ") + " FROM (" +
		"SELECT s.*, " + strings.Join(sums, ", ") + " FROM (" +
		"SELECT i.issue_id, i.key, " + strings.Join(flags, ", ") + " FROM " + s.scopeSQL(b, p, math.MinInt64) + offset +
		") s WINDOW w AS (ORDER BY s.issue_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)" +
		") x WHERE " + strings.Join(picks, " OR ") + " ORDER BY x.issue_id"
	return s.collect(ctx, tx, query, b.args, cats, res, limit)
}

// collect reads rows of (issue id, key, one 0/1 flag per category) in id
// order into the categories' first pages.
func (s *Service) collect(ctx context.Context, tx *store.DB, query string, args []any, cats []*category, res *countResult, limit int) error {
	var id int64
	var key string
	flags := make([]int64, len(cats))
	dest := append([]any{&id, &key}, make([]any, len(cats))...)
	for i := range flags {
		dest[2+i] = &flags[i]
	}
	return tx.QueryReport(ctx, query, args, func(rows *sql.Rows) error {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, c := range cats {
			if r := res.byKey[c.key]; flags[i] == 1 && len(r.keys) < limit {
				r.keys, r.lastID = append(r.keys, key), id
			}
		}
		return nil
	})
}

// rareMisses finds the first pages of the rare categories in one scan that
// returns only their misses (at most rareMax each).
func (s *Service) rareMisses(ctx context.Context, tx *store.DB, p *plan, rare []*category, res *countResult, limit int) error {
	if len(rare) == 0 {
		return nil
	}
	b := newSQL(tx.Dialect())
	cols := []string{"i.issue_id", "i.key"}
	for _, c := range rare {
		cols = append(cols, "CASE WHEN "+c.cond(b)+" THEN 1 ELSE 0 END")
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + s.scopeSQL(b, p, math.MinInt64)
	ors := make([]string, len(rare))
	for i, c := range rare {
		ors[i] = "(" + c.cond(b) + ")"
	}
	query += " AND (" + strings.Join(ors, " OR ") + ") ORDER BY i.issue_id"
	return s.collect(ctx, tx, query, b.args, rare, res, limit)
}
