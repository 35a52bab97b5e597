// Command hygienebench times the issue hygiene report on PostgreSQL over a
// large generated integration (1,000,000 issues by default).
//
// It creates a database on the server named by -admin (a URL of a role
// that may CREATE DATABASE), migrates it, and loads the issues, their
// status transitions and 500 users with set-based SQL (generate_series, in
// the database: ingestion is not what is measured), then saves hygiene
// settings with five custom misses through the service (so they are
// validated and resolved as in production) and times the report as the API
// computes it, several runs after a warm-up. See BENCHMARKS.md, "Hygiene
// report".
//
//	go run ./cmd/hygienebench -admin "$TEST_DATABASE_URL"
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/sei-io/jira-connect/internal/hygiene"
	"github.com/sei-io/jira-connect/internal/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hygienebench:", err)
		os.Exit(1)
	}
}

// The generated site's custom fields, as /rest/api/3/field would list them.
var benchFields = []store.JiraField{
	{FieldID: "customfield_10030", Name: "Severity", Custom: true, SchemaType: "option"},
	{FieldID: "customfield_10031", Name: "Effort", Custom: true, SchemaType: "number"},
	{FieldID: "customfield_10040", Name: "Team notes", Custom: true, SchemaType: "string"},
	{FieldID: "customfield_10050", Name: "Target date", Custom: true, SchemaType: "date"},
	{FieldID: "customfield_10060", Name: "Platforms", Custom: true, SchemaType: "array", SchemaItems: "option"},
	{FieldID: "customfield_10100", Name: "Salesforce case", Custom: true, SchemaType: "string"},
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("hygienebench", flag.ContinueOnError)
	admin := fs.String("admin", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL of a role that may CREATE DATABASE")
	name := fs.String("db", "hygiene_bench", "database to create (dropped first unless -reuse)")
	issues := fs.Int("issues", 1_000_000, "issues to generate")
	runs := fs.Int("runs", 5, "timed runs after one warm-up")
	reuse := fs.Bool("reuse", false, "keep an existing database of that name and its data (skips the load)")
	keep := fs.Bool("keep", false, "keep the database afterwards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *admin == "" {
		return errors.New("-admin (or TEST_DATABASE_URL) is required")
	}
	u, err := url.Parse(*admin)
	if err != nil {
		return errors.New("-admin is not a URL")
	}
	if !*reuse {
		if err := adminExec(ctx, *admin, `DROP DATABASE IF EXISTS "`+*name+`" WITH (FORCE)`); err != nil {
			return err
		}
		if err := adminExec(ctx, *admin, `CREATE DATABASE "`+*name+`"`); err != nil {
			return err
		}
	}
	if !*keep {
		defer func() {
			_ = adminExec(context.Background(), *admin, `DROP DATABASE IF EXISTS "`+*name+`" WITH (FORCE)`)
		}()
	}
	u.Path = "/" + *name
	// One connection: its server process is the one whose CPU time is read.
	db, err := store.Open(ctx, u.String(), store.Options{Logger: slog.New(slog.DiscardHandler), MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	const tenantID, integrationID = "bench-tenant", "bench-integration"
	now := time.Now().UTC().Truncate(time.Second)
	if !*reuse {
		started := time.Now()
		if err := load(ctx, db, tenantID, integrationID, *issues, now); err != nil {
			return err
		}
		fmt.Fprintf(out, "loaded %d issues in %s\n", *issues, time.Since(started).Round(time.Millisecond))
	}
	svc := &hygiene.Service{DB: db, Now: time.Now}
	if _, err := svc.SaveSettings(ctx, tenantID, integrationID, benchSettings()); err != nil {
		return fmt.Errorf("hygiene settings: %w", err)
	}
	if !*reuse {
		// WriteIssues keeps hygiene_issues in step page by page; the
		// generated issues bypassed it, so derive all rows at once.
		started := time.Now()
		if err := db.RebuildHygieneIssues(ctx, integrationID); err != nil {
			return err
		}
		if err := db.Gorm.WithContext(ctx).Exec("VACUUM ANALYZE hygiene_issues").Error; err != nil {
			return err
		}
		fmt.Fprintf(out, "derived hygiene_issues in %s\n", time.Since(started).Round(time.Millisecond))
	}
	var pid int
	db.Gorm.WithContext(ctx).Raw("SELECT pg_backend_pid()").Scan(&pid)
	var counts struct{ Issues, Transitions int64 }
	db.Gorm.WithContext(ctx).Raw("SELECT (SELECT count(*) FROM jira_issues) AS issues, (SELECT count(*) FROM jira_transitions) AS transitions").Scan(&counts)
	var version string
	db.Gorm.WithContext(ctx).Raw("SHOW server_version").Scan(&version)
	fmt.Fprintf(out, "PostgreSQL %s; %d issues, %d transitions, 500 users; 8 built-in + 5 custom categories\n", version, counts.Issues, counts.Transitions)

	for _, mode := range []struct {
		name, set string
	}{
		{"parallel plan allowed (server default)", "RESET max_parallel_workers_per_gather"},
		{"serial plan (max_parallel_workers_per_gather = 0)", "SET max_parallel_workers_per_gather = 0"},
	} {
		if err := db.Gorm.WithContext(ctx).Exec(mode.set).Error; err != nil {
			return err
		}
		fmt.Fprintf(out, "\n## %s\n", mode.name)
		for _, c := range []struct {
			name string
			q    hygiene.Query
		}{
			{"all issues (no time frame, all projects)", hygiene.Query{}},
			{"last 90 days, 3 of 20 projects", hygiene.Query{From: now.AddDate(0, 0, -90).Format(time.DateOnly), To: now.Format(time.DateOnly), Projects: "P01,P02,P03"}},
		} {
			var times, cpus []time.Duration
			var rep *hygiene.Report
			for i := 0; i <= *runs; i++ {
				cpu0 := backendCPU(pid)
				load0 := loadAverage()
				started := time.Now()
				r, err := svc.Report(ctx, tenantID, integrationID, c.q)
				if err != nil {
					return err
				}
				if i > 0 { // the first run warms the caches
					times = append(times, time.Since(started))
					if cpu0 >= 0 {
						cpus = append(cpus, backendCPU(pid)-cpu0)
					}
					_ = load0
				}
				rep = r
			}
			slices.Sort(times)
			slices.Sort(cpus)
			fmt.Fprintf(out, "\n%s: total %d, score %.2f\n", c.name, rep.Total, deref(rep.Score))
			fmt.Fprintf(out, "  report wall time: min %s, median %s, max %s over %d runs\n", ms(times[0]), ms(times[len(times)/2]), ms(times[len(times)-1]), len(times))
			if len(cpus) > 0 {
				fmt.Fprintf(out, "  PostgreSQL CPU of the session's process (parallel workers not included): median %s\n", ms(cpus[len(cpus)/2]))
			}
			fmt.Fprintf(out, "  load average when done: %s\n", loadAverage())
			for _, cat := range rep.Categories {
				fmt.Fprintf(out, "  %-24s %8d misses  ratio %.4f  weight %5.2f  first page %d keys\n", cat.Key, cat.Misses, cat.Ratio, cat.Weight, len(cat.Issues.Items))
			}
		}
	}

	// Settings changes bring the slots of every stored issue in step in the
	// PUT's transaction: a field ingestion has not fetched yet only empties
	// its slot where it held something; a field kept in a column (priority)
	// fills it for every issue.
	notFetched := benchSettings()
	notFetched.CustomMisses = append(notFetched.CustomMisses, hygiene.CustomInput{Name: "No Salesforce case", Field: "customfield_10100", Operator: hygiene.OpMissing})
	column := benchSettings()
	column.CustomMisses = append(column.CustomMisses, hygiene.CustomInput{Name: "Medium priority", Field: "priority", Operator: hygiene.OpEquals, Value: []byte(`"Medium"`)})
	fmt.Fprintln(out)
	for _, step := range []struct {
		name string
		in   hygiene.Input
	}{
		{"a custom miss on a field not fetched yet", notFetched},
		{"a custom miss on priority (a column) instead", column},
		{"back to the five custom misses", benchSettings()},
	} {
		started := time.Now()
		if _, err := svc.SaveSettings(ctx, tenantID, integrationID, step.in); err != nil {
			return err
		}
		fmt.Fprintf(out, "saving settings, %s: %s\n", step.name, time.Since(started).Round(time.Millisecond))
	}
	return nil
}

// backendCPU is the CPU time (user + system) of a local PostgreSQL server
// process, -1 when it cannot be read (a remote server).
func backendCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return -1
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func benchSettings() hygiene.Input {
	raw := func(s string) []byte { return []byte(s) }
	return hygiene.Input{CustomMisses: []hygiene.CustomInput{
		{Name: "No severity", Field: "customfield_10030", Operator: hygiene.OpMissing},
		{Name: "High effort", Field: "customfield_10031", Operator: hygiene.OpGreaterThan, Value: raw(`15`)},
		{Name: "Urgent notes", Field: "customfield_10040", Operator: hygiene.OpContains, Value: raw(`"urgent"`)},
		{Name: "Target passed", Field: "customfield_10050", Operator: hygiene.OpOlderThanDays, Value: raw(`7`)},
		{Name: "Not on web", Field: "customfield_10060", Operator: hygiene.OpNotContains, Value: raw(`"Web"`)},
	}}
}

// load writes the tenant, the integration and the generated data. Random
// draws are seeded, so every load is the same data.
func load(ctx context.Context, db *store.DB, tenantID, integrationID string, n int, now time.Time) error {
	if err := db.CreateTenant(ctx, &store.Tenant{ID: tenantID, Name: "bench"}); err != nil {
		return err
	}
	it := &store.Integration{ID: integrationID, TenantID: tenantID, Name: "bench", Type: "jira_connect_app", Timezone: "Europe/Berlin",
		Settings: "{}", Status: "connected", Tags: []string{}, ExcludedFields: []string{}}
	if err := db.CreateIntegration(ctx, it); err != nil {
		return err
	}
	if err := db.ReplaceJiraFields(ctx, integrationID, slices.Clone(benchFields)); err != nil {
		return err
	}
	g := db.Gorm.WithContext(ctx)
	for _, step := range []struct {
		what string
		sql  string
		args []any
	}{
		{"seed", "SELECT setseed(0.42)", nil},
		{"users", `INSERT INTO jira_users (integration_id, account_id, display_name, active, updated_at)
SELECT ?, 'user-' || g, 'User ' || g, g % 20 <> 0, ? FROM generate_series(1, 500) g`, []any{integrationID, now}},
		// 20 projects; created over two years; 70% resolved within 0-60
		// days; 85% assigned (5% of users inactive); 30% with a due date;
		// 60% with components; descriptions missing, short or long.
		{"issues", `INSERT INTO jira_issues (integration_id, issue_id, key, project_key, project_id, issue_type, status, status_category,
    priority, assignee_account_id, reporter_account_id, creator_account_id, summary, description, created, updated, resolved,
    due_date, due_at, components, labels, fix_versions, fields, synced_at)
SELECT ?, 100000 + g, p || '-' || g, p, p, 'Task',
    CASE WHEN resolved IS NULL THEN 'In Progress' ELSE 'Done' END, CASE WHEN resolved IS NULL THEN 'indeterminate' ELSE 'done' END,
    'Medium', CASE WHEN r1 < 0.85 THEN 'user-' || (1 + (r2 * 499)::int) END, 'user-1', 'user-1',
    'Issue ' || g || ' of project ' || p,
    CASE WHEN r3 < 0.10 THEN NULL WHEN r3 < 0.20 THEN 'Fix it' ELSE repeat('Steps to reproduce and expected result. ', 1 + (r4 * 10)::int) END,
    created, LEAST(CAST(? AS timestamptz), created + (r5 * interval '120 days')), resolved,
    CASE WHEN r6 < 0.30 THEN to_char(created + interval '14 days', 'YYYY-MM-DD') END,
    CASE WHEN r6 < 0.30 THEN date_trunc('day', created) + interval '14 days' END,
    CASE WHEN r7 < 0.60 THEN '["API"]' ELSE '[]' END, '[]', '[]',
    jsonb_strip_nulls(jsonb_build_object(
        'customfield_10030', CASE WHEN r8 < 0.70 THEN jsonb_build_object('value', (ARRAY['Critical','Major','Minor','Trivial'])[1 + (g % 4)], 'id', (10000 + g % 4)::text) END,
        'customfield_10031', CASE WHEN r9 < 0.50 THEN to_jsonb(round((r9 * 40)::numeric, 1)) END,
        'customfield_10040', CASE WHEN r4 < 0.50 THEN to_jsonb('Notes: ' || md5(g::text) || CASE WHEN r4 < 0.05 THEN ' urgent' ELSE '' END) END,
        'customfield_10050', CASE WHEN r5 < 0.40 THEN to_jsonb(to_char(created + interval '30 days', 'YYYY-MM-DD')) END,
        'customfield_10060', CASE WHEN r6 > 0.50 THEN jsonb_build_array(jsonb_build_object('value', CASE WHEN r7 < 0.5 THEN 'Web' ELSE 'iOS' END, 'id', '20001')) END,
        'customfield_10100', CASE WHEN r8 > 0.90 THEN to_jsonb(lpad((g % 99999999)::text, 8, '0')) END
    ))::text,
    ?
FROM (
    SELECT g, 'P' || lpad((g % 20)::text, 2, '0') AS p, created,
        CASE WHEN r0 < 0.70 THEN LEAST(CAST(? AS timestamptz), created + r0 / 0.70 * interval '60 days') END AS resolved,
        r1, r2, r3, r4, r5, r6, r7, r8, r9
    FROM (
        SELECT g, CAST(? AS timestamptz) - random() * interval '730 days' AS created, random() AS r0, random() AS r1, random() AS r2, random() AS r3,
            random() AS r4, random() AS r5, random() AS r6, random() AS r7, random() AS r8, random() AS r9
        FROM generate_series(1, ?) g
    ) d
) s`, []any{integrationID, now, now, now, now, n}},
		// About two status changes per issue: 90% have a first one
		// within 0-72 hours, 60% a second and 60% a third later on.
		{"transitions", `INSERT INTO jira_transitions (integration_id, issue_id, history_id, item, from_status, to_status, at)
SELECT i.integration_id, i.issue_id, (i.issue_id * 10 + k)::text, 0, 'To Do', 'In Progress',
    LEAST(CAST(? AS timestamptz), i.created + random() * k * interval '72 hours')
FROM jira_issues i CROSS JOIN generate_series(1, 3) k
WHERE i.integration_id = ? AND random() < CASE WHEN k = 1 THEN 0.9 ELSE 0.6 END`, []any{now, integrationID}},
		{"analyze", "ANALYZE", nil},
	} {
		started := time.Now()
		if err := g.Exec(step.sql, step.args...).Error; err != nil {
			return fmt.Errorf("load %s: %w", step.what, err)
		}
		fmt.Printf("  %-12s %s\n", step.what, time.Since(started).Round(time.Millisecond))
	}
	return nil
}

func adminExec(ctx context.Context, admin, stmt string) error {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(strings.Fields(stmt)[:2], " "), err)
	}
	return nil
}
