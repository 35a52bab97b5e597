package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

type result struct {
	Target          string           `json:"target"`
	Sites           int              `json:"sites"`
	Linked          bool             `json:"linked"` // each site to an integration: webhooks are stored and enqueued
	Concurrency     int              `json:"concurrency"`
	Warmup          string           `json:"warmup"`
	Duration        string           `json:"duration"`
	TokensPerSite   int              `json:"tokens_per_site"`
	BodyBytes       int              `json:"body_bytes"`
	Requests        int64            `json:"requests"` // started in the measured phase
	Errors          int64            `json:"errors"`   // of those, not 2xx
	ReqPerSec       float64          `json:"req_per_sec"`
	Latency         latency          `json:"latency_ms"`
	Seconds         []second         `json:"per_second"` // measured phase, by request start
	WarmupRequests  int64            `json:"warmup_requests"`
	WarmupErrors    int64            `json:"warmup_errors"`
	TransportErrors int64            `json:"transport_errors"`
	Statuses        map[string]int64 `json:"statuses"`
	ErrorSamples    []string         `json:"error_samples,omitempty"`
	CPU             CPUUse           `json:"cpu"`
	Server          *ServerCount     `json:"server,omitempty"`
	DBInstall       *DBUse           `json:"db_install_phase,omitempty"`
	DBWebhooks      *DBUse           `json:"db_webhook_phase,omitempty"`
}

// latency in milliseconds.
type latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// summarize sorts d (every recorded latency) and takes nearest-rank
// percentiles.
func summarize(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	return latency{
		Mean: ms(sum / time.Duration(len(d))),
		P50:  ms(percentile(d, 50)),
		P90:  ms(percentile(d, 90)),
		P99:  ms(percentile(d, 99)),
		P999: ms(percentile(d, 99.9)),
		Max:  ms(d[len(d)-1]),
	}
}

// percentile of sorted d by nearest rank: the smallest value with at least
// p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	rank := int(p/100*float64(n) + 0.9999999)
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func (r *result) failed() bool {
	return r.Requests == 0 || r.Errors > 0 || r.WarmupErrors > 0 || r.TransportErrors > 0 ||
		(r.Server != nil && r.Server.total(r.Server.JWTRejections) > 0)
}

// disturbedCores is how much CPU besides the server and loadgen makes a
// run suspect: anything beyond kernel noise is another process competing
// for the cores.
const disturbedCores = 0.15

func (r *result) disturbed() bool {
	return r.CPU.OtherCores != nil && *r.CPU.OtherCores > disturbedCores
}

// shout makes a failed run impossible to miss.
func (r *result) shout(w io.Writer) {
	bar := strings.Repeat("!", 72)
	fmt.Fprintln(w, bar)
	switch {
	case r.Requests == 0:
		fmt.Fprintln(w, "!! FAILED: no request completed in the measured phase")
	default:
		fmt.Fprintf(w, "!! FAILED: %d of %d measured requests and %d of %d warm-up requests were not 2xx\n",
			r.Errors, r.Requests, r.WarmupErrors, r.WarmupRequests)
	}
	if r.Server != nil && r.Server.total(r.Server.JWTRejections) > 0 {
		fmt.Fprintf(w, "!! the service rejected tokens: %v\n", r.Server.JWTRejections)
	}
	fmt.Fprintf(w, "!! statuses %v, transport errors %d\n", r.Statuses, r.TransportErrors)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(w, "!!   e.g. %s\n", s)
	}
	fmt.Fprintln(w, "!! THESE FIGURES ARE NOT A VALID BENCHMARK")
	fmt.Fprintln(w, bar)
}

func (r *result) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *result) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("target       POST %s (jira:issue_updated, %d B body)", r.Target, r.BodyBytes)
	linked := "not linked to integrations: webhooks acknowledged and dropped"
	if r.Linked {
		linked = "each linked to an integration: webhooks stored and enqueued"
	}
	p("load         %d sites round robin (%s), %d keep-alive connections, %d pre-signed tokens per site, warm-up %s, measured %s",
		r.Sites, linked, r.Concurrency, r.TokensPerSite, r.Warmup, r.Duration)
	p("requests     %d measured, %d errors (warm-up: %d requests, %d errors)", r.Requests, r.Errors, r.WarmupRequests, r.WarmupErrors)
	codes := slices.Sorted(maps.Keys(r.Statuses))
	var sts []string
	for _, c := range codes {
		sts = append(sts, fmt.Sprintf("%s: %d", c, r.Statuses[c]))
	}
	p("statuses     %s; transport errors %d", strings.Join(sts, ", "), r.TransportErrors)
	p("throughput   %.0f req/s", r.ReqPerSec)
	l := r.Latency
	p("latency      mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", msf(l.Mean), msf(l.P50), msf(l.P90), msf(l.P99), msf(l.P999), msf(l.Max))
	if worst := r.slowestSeconds(3); len(worst) > 0 {
		p("slowest      %s (max latency by second of the measured phase)", strings.Join(worst, ", "))
	}
	srv, perReq := "unknown", "unknown"
	if r.CPU.ServerCores != nil {
		srv = fmt.Sprintf("%.2f", *r.CPU.ServerCores)
		if r.ReqPerSec > 0 {
			perReq = fmt.Sprintf("%.0f", *r.CPU.ServerCores/r.ReqPerSec*1e6)
		}
	}
	other, pg := "unknown", "unknown"
	if c := r.CPU; c.MachineCores != nil {
		pg = "unknown"
		if c.PostgresCores != nil {
			pg = fmt.Sprintf("%.2f", *c.PostgresCores)
		}
		p("cpu          server %s cores, loadgen %.2f, PostgreSQL %s; whole machine %.2f cores (steal %.2f) in the measured phase",
			srv, c.LoadgenCores, pg, *c.MachineCores, *c.StealCores)
		if c.OtherCores != nil {
			other = fmt.Sprintf("%.2f", *c.OtherCores)
			p("             everything else (kernel threads, other processes): %s cores", other)
		}
		p("             server CPU per request %s µs (rises when the host's cores are shared with other guests, which steal does not always show)", perReq)
	} else {
		p("cpu          server %s cores, loadgen %.2f cores (measured phase)", srv, r.CPU.LoadgenCores)
	}
	if r.Server != nil {
		p("server says  %d webhook POSTs (%v), JWT rejections %v", r.Server.total(r.Server.WebhookRequests), r.Server.WebhookRequests, r.Server.JWTRejections)
	}
	if d := r.DBInstall; d != nil {
		p("postgres     install phase: %d transactions (%d commits, %d rollbacks), %d rows inserted, %d updated",
			d.Transactions, d.Commits, d.Rollbacks, d.TupInserted, d.TupUpdated)
	}
	if d := r.DBWebhooks; d != nil {
		p("postgres     webhook phase: %d transactions (%d commits, %d rollbacks) for %d webhooks = %.3f per 1000; %d rows fetched, %d inserted, %d updated; %d sessions opened",
			d.Transactions, d.Commits, d.Rollbacks, r.Requests+r.WarmupRequests, d.PerKRequests, d.TupFetched, d.TupInserted, d.TupUpdated, d.Sessions)
	}
	// One machine-readable line for scripts/bench-webhooks.sh.
	dbx, dbk, dbs := int64(-1), "unknown", int64(-1)
	if r.DBWebhooks != nil {
		dbx, dbk, dbs = r.DBWebhooks.Transactions, fmt.Sprintf("%.1f", r.DBWebhooks.PerKRequests), r.DBWebhooks.Sessions
	}
	p("RESULT linked=%t requests=%d errors=%d rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f server_cores=%s loadgen_cores=%.2f pg_cores=%s other_cores=%s server_us_per_req=%s db_xacts=%d db_xacts_per_1k=%s db_sessions=%d",
		r.Linked, r.Requests, r.Errors+r.WarmupErrors, r.ReqPerSec, l.P50, l.P90, l.P99, l.Max, srv, r.CPU.LoadgenCores, pg, other, perReq, dbx, dbk, dbs)
	if r.disturbed() {
		p("WARNING      %s cores went to something other than the server, loadgen and PostgreSQL: another process shared the machine; these figures are not clean", other)
	}
}

// slowestSeconds names the n seconds of the measured phase with the
// highest max latency, so stalls (GC, cache reloads) can be placed in time.
func (r *result) slowestSeconds(n int) []string {
	idx := make([]int, len(r.Seconds))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch x, y := r.Seconds[a].MaxMs, r.Seconds[b].MaxMs; {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	})
	var out []string
	for _, i := range idx[:min(n, len(idx))] {
		out = append(out, fmt.Sprintf("s%d: %s over %d req", i, msf(r.Seconds[i].MaxMs), r.Seconds[i].Requests))
	}
	return out
}

// msf formats milliseconds with the precision they deserve.
func msf(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.1fms", ms)
	}
}
