package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgStats reads one database's row of pg_stat_database, from a connection
// to another database (the one in the URL) so that reading does not count.
type pgStats struct {
	conn *pgx.Conn
	db   string
}

type pgSnapshot struct {
	Commits, Rollbacks                    int64
	TupReturned, TupFetched, TupInserted  int64
	TupUpdated, TupDeleted, BlocksTouched int64
	Sessions                              int64 // -1 before PostgreSQL 14
}

// DBUse is what the service asked of PostgreSQL during a phase.
type DBUse struct {
	Transactions int64 `json:"transactions"` // commits + rollbacks
	Commits      int64 `json:"xact_commit"`
	Rollbacks    int64 `json:"xact_rollback"`
	TupReturned  int64 `json:"tup_returned"`
	TupFetched   int64 `json:"tup_fetched"`
	TupInserted  int64 `json:"tup_inserted"`
	TupUpdated   int64 `json:"tup_updated"`
	// Sessions is how many connections were opened (PostgreSQL 14 and
	// later; -1 before): each is a backend process forked, so a pool that
	// closes and reopens connections under load shows here.
	Sessions int64 `json:"sessions"`
	// PerKRequests is transactions per 1000 webhooks (warm-up included).
	PerKRequests float64 `json:"transactions_per_1000_requests,omitempty"`
}

func openPGStats(ctx context.Context, url, db string) (*pgStats, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return nil, fmt.Errorf("-pg-stats: %w", err)
	}
	var dbname string
	if err := conn.QueryRow(cctx, "SELECT current_database()").Scan(&dbname); err == nil && dbname == db {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("-pg-stats connects to %s itself, so its own reads would count; connect to another database (e.g. postgres)", db)
	}
	return &pgStats{conn: conn, db: db}, nil
}

func (p *pgStats) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.conn.Close(ctx)
}

func (p *pgStats) snapshot(ctx context.Context) (pgSnapshot, error) {
	var s pgSnapshot
	if p == nil {
		return s, nil
	}
	// Statistics are cached per transaction; start from fresh ones.
	if _, err := p.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		return s, fmt.Errorf("pg_stat_clear_snapshot: %w", err)
	}
	// sessions through to_jsonb: the column only exists from PostgreSQL 14.
	err := p.conn.QueryRow(ctx, `SELECT xact_commit, xact_rollback, tup_returned, tup_fetched,
		tup_inserted, tup_updated, tup_deleted, blks_hit + blks_read, coalesce((to_jsonb(d) ->> 'sessions')::bigint, -1)
		FROM pg_stat_database d WHERE datname = $1`, p.db).
		Scan(&s.Commits, &s.Rollbacks, &s.TupReturned, &s.TupFetched, &s.TupInserted, &s.TupUpdated, &s.TupDeleted, &s.BlocksTouched, &s.Sessions)
	if err != nil {
		return s, fmt.Errorf("pg_stat_database for %s: %w", p.db, err)
	}
	return s, nil
}

func (s pgSnapshot) sub(o pgSnapshot) DBUse {
	sessions := s.Sessions - o.Sessions
	if s.Sessions < 0 || o.Sessions < 0 {
		sessions = -1
	}
	return DBUse{
		Transactions: s.Commits + s.Rollbacks - o.Commits - o.Rollbacks,
		Commits:      s.Commits - o.Commits,
		Rollbacks:    s.Rollbacks - o.Rollbacks,
		TupReturned:  s.TupReturned - o.TupReturned,
		TupFetched:   s.TupFetched - o.TupFetched,
		TupInserted:  s.TupInserted - o.TupInserted,
		TupUpdated:   s.TupUpdated - o.TupUpdated,
		Sessions:     sessions,
	}
}

// ServerCount is the service's own view, from its /metrics.
type ServerCount struct {
	// WebhookRequests counts POSTs to the webhook route by status.
	WebhookRequests map[string]int64 `json:"webhook_requests"`
	// JWTRejections counts refusals by reason.
	JWTRejections map[string]int64 `json:"jwt_rejections"`
}

func (c *ServerCount) total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func scrapeMetrics(ctx context.Context, url, route string) (*ServerCount, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	c := &ServerCount{WebhookRequests: map[string]int64{}, JWTRejections: map[string]int64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "http_requests_total":
			if strings.Contains(labels, `method="POST"`) && strings.Contains(labels, route+`"`) {
				c.WebhookRequests[label(labels, "status")] += int64(v)
			}
		case "jwt_rejections_total":
			c.JWTRejections[label(labels, "reason")] += int64(v)
		}
	}
	return c, sc.Err()
}

// label returns a label's value from Prometheus' text format.
func label(labels, name string) string {
	_, v, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}
