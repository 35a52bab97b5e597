// Command loadgen plays Jira Cloud against a running connect service to
// measure JWT-verified webhook throughput and latency.
//
// It starts a fake Atlassian install-keys server (jirasim) and publishes its
// URL (-keys-url-file), which the service must be given as
// CONNECT_INSTALL_KEYS_URL; waits for the service's /readyz; loads its
// descriptor; installs -sites sites (the service must allow 127.0.0.1 in
// JIRA_HOST_ALLOWLIST); then posts jira:issue_updated webhooks over
// -concurrency keep-alive connections for -warmup plus -duration, each with
// an HS256 token from a pool signed in advance (signing per request would
// take CPU from the server on a small machine). With -api-keys-file it first
// links every site to an integration through the public API, so that each
// webhook is stored and its job enqueued, as for a real linked site. It
// prints requests, errors, req/s and latency percentiles, and exits 1 if any
// request failed.
//
// scripts/bench-webhooks.sh runs it against the built binary on PostgreSQL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	base          string
	keysURLFile   string
	serverPIDFile string
	pgPIDFile     string
	sites         int
	concurrency   int
	duration      time.Duration
	warmup        time.Duration
	tokensPerSite int
	bodySize      int
	readyTimeout  time.Duration
	reqTimeout    time.Duration
	pgStats       string
	pgDB          string
	statsSettle   time.Duration
	apiKeysFile   string
	json          bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ExitOnError)
	fs.StringVar(&o.base, "base", "http://127.0.0.1:8080", "the service's BASE_URL")
	fs.StringVar(&o.keysURLFile, "keys-url-file", "", "write the install-keys server's URL to this file (give it to the service as CONNECT_INSTALL_KEYS_URL)")
	fs.StringVar(&o.serverPIDFile, "server-pid-file", "", "file holding the service's pid, to report its CPU use during the run (optional)")
	fs.StringVar(&o.pgPIDFile, "pg-pid-file", "", "PostgreSQL's postmaster.pid, to report its CPU use during the run (optional)")
	fs.IntVar(&o.sites, "sites", 50, "Jira sites to install; webhooks go round robin over them")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent keep-alive connections")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "warm-up before measuring (not recorded)")
	fs.IntVar(&o.tokensPerSite, "tokens", 16, "pre-signed tokens per site (re-signed every minute)")
	fs.IntVar(&o.bodySize, "body-size", 3072, "approximate webhook body size in bytes")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long to wait for /readyz")
	fs.DurationVar(&o.reqTimeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.pgStats, "pg-stats", "", "PostgreSQL URL to read pg_stat_database from before/after the webhook phase (optional)")
	fs.StringVar(&o.pgDB, "pg-db", "bench", "database whose pg_stat_database row -pg-stats reads")
	fs.DurationVar(&o.statsSettle, "stats-settle", 11*time.Second, "wait before each pg_stat_database read, so idle backends have flushed their counters (PostgreSQL flushes within 10s)")
	fs.StringVar(&o.apiKeysFile, "api-keys-file", "", "SEI API keys, one per line, of different tenants (one per 10 sites): link every site to an integration of its own through the public API, so webhooks are stored and enqueued as in production; without it sites stay unlinked and their webhooks are dropped")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	onKeys := func(url string) error {
		if o.keysURLFile == "" {
			fmt.Fprintln(os.Stderr, "loadgen: install keys at", url)
			return nil
		}
		return writeFileAtomic(o.keysURLFile, url+"\n")
	}
	res, err := run(ctx, o, os.Stderr, onKeys)
	if res != nil {
		if o.json {
			err = errors.Join(err, res.writeJSON(os.Stdout))
		} else {
			res.writeText(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if res.failed() {
		res.shout(os.Stderr)
		os.Exit(1)
	}
}

func (o *options) validate() error {
	var errs []error
	if o.sites < 1 {
		errs = append(errs, errors.New("-sites must be at least 1"))
	}
	if o.concurrency < 1 {
		errs = append(errs, errors.New("-concurrency must be at least 1"))
	}
	if o.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if o.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if o.tokensPerSite < 1 {
		errs = append(errs, errors.New("-tokens must be at least 1"))
	}
	return errors.Join(errs...)
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// logf writes progress to w with a timestamp relative to nothing in
// particular: the wall clock, which lines up with the service's log.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "loadgen %s: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
