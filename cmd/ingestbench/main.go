// Command ingestbench measures ingestion end to end: the real ingest.Syncer,
// reading through ingest.CloudSource and internal/jira's client (retries,
// AIMD limiter, every request signed with the Connect JWT), from a
// generated jirasim site, into a fresh PostgreSQL database (or SQLite).
// It prints the wall time, issues a second, the requests made and their
// cost per issue, the 429s met and the Retry-After waited, the peak RSS,
// and checks what was stored against the simulator's ground truth: a
// benchmark that ingests wrong data is worthless, so a mismatch exits 1.
//
// The simulator runs in this process unless -jirasim names a jirasim binary
// (go build -o /tmp/jirasim ./cmd/jirasim): then it runs in a child process,
// installs itself through a minimal descriptor this command serves, and the
// peak RSS printed is the ingester's own (the child's is printed beside
// it). Ground truth is then rebuilt in this process from the same seed and
// spec after the measurement.
//
// Examples (see BENCHMARKS.md for the figures):
//
//	eval "$(scripts/testpg.sh start)"
//	go run ./cmd/ingestbench -issues 100000 -latency 100ms -rate 20 -long-tail 0
//	go run ./cmd/ingestbench -issues 100000
//	go build -o /tmp/jirasim ./cmd/jirasim && go run ./cmd/ingestbench -issues 1000000 -jirasim /tmp/jirasim
//
// -mode datacenter measures Jira Data Center instead (datacenter.go): a
// full sync through ingest.DataCenterSource with a personal access token,
// then every issue read as one incremental query far larger than the
// 10,000-result window, keyset and by counted windows, each printed with
// the requests made against the minimum:
//
//	go run ./cmd/ingestbench -mode datacenter -issues 100000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

// appKey is the app key the site trusts (iss of every JWT).
const appKey = "io.sei.jira-connect"

type options struct {
	issues        int
	latency       time.Duration
	rate          float64
	burst         int
	db            string
	dsn           string
	sqlitePath    string
	keep          bool
	parallel      int
	partitionSize int
	longTail      float64
	seed          int64
	jirasimBin    string
	simCPUProfile string
	simPrebuild   bool
	cpuProfile    string
	memProfile    string
	logLevel      string
	now           string

	mode         string // cloud or datacenter
	dcMaxResults int
	resultWindow int
	paging       string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := jirasim.DefaultGenSpec(100000)
	fs.IntVar(&o.issues, "issues", 100000, "issues on the simulated site")
	fs.DurationVar(&o.latency, "latency", 0, "delay the simulator adds to every REST answer")
	fs.Float64Var(&o.rate, "rate", 0, "simulator rate limit in requests a second, a token bucket (0: none)")
	fs.IntVar(&o.burst, "burst", 100, "burst of the simulator's token bucket")
	fs.StringVar(&o.db, "db", "postgres", "postgres or sqlite")
	fs.StringVar(&o.dsn, "dsn", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL of a role that may CREATE DATABASE; a fresh database is created per run (default $TEST_DATABASE_URL)")
	fs.StringVar(&o.sqlitePath, "sqlite-path", "", "SQLite file (default: a new file in a temporary directory, removed afterwards)")
	fs.BoolVar(&o.keep, "keep", false, "keep the database after the run")
	fs.IntVar(&o.parallel, "parallel", 0, "Syncer.Parallel: partitions synced at once (0: the Syncer's default)")
	fs.IntVar(&o.partitionSize, "partition-size", 0, "Syncer.PartitionSize: issues per partition (0: the Syncer's default)")
	fs.Float64Var(&o.longTail, "long-tail", d.LongTailShare, "share of issues whose changelog (>100) and comments (>20) outgrow what a search embeds")
	fs.Int64Var(&o.seed, "seed", 42, "generator seed")
	fs.BoolVar(&o.simPrebuild, "sim-prebuild", false, "the simulator renders every issue before the sync and serves stored JSON (jirasim -prebuild), as Jira serves its database, instead of generating issues per search")
	fs.StringVar(&o.simCPUProfile, "sim-cpuprofile", "", "with -jirasim: the simulator process writes a CPU profile to this file")
	fs.StringVar(&o.jirasimBin, "jirasim", "", "a jirasim binary (go build ./cmd/jirasim) to run the simulator in a separate process; default in-process")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the sync to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a heap profile at the end of the sync to this file")
	fs.StringVar(&o.logLevel, "log-level", "warn", "the Syncer's log level")
	fs.StringVar(&o.now, "now", "", "the site's present for generated data, RFC 3339 (default: now); fix it to compare runs")
	fs.StringVar(&o.mode, "mode", "cloud", "cloud (the Connect app) or datacenter (Jira Data Center with a personal access token)")
	fs.IntVar(&o.dcMaxResults, "dc-max-results", jirasim.DCDefaultMaxResults, "datacenter: the most issues the server grants a search page")
	fs.IntVar(&o.resultWindow, "result-window", jirasim.DCResultWindow, "datacenter: the server's result window (startAt + maxResults)")
	fs.StringVar(&o.paging, "paging", "keyset", "datacenter: the full sync's paging, keyset or windows")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.issues <= 0:
		return nil, errors.New("-issues must be positive")
	case o.db != "postgres" && o.db != "sqlite":
		return nil, errors.New("-db must be postgres or sqlite")
	case o.db == "postgres" && o.dsn == "":
		return nil, errors.New("-db postgres needs -dsn or TEST_DATABASE_URL (eval \"$(scripts/testpg.sh start)\")")
	case o.longTail < 0 || o.longTail > 1:
		return nil, errors.New("-long-tail must be in [0, 1]")
	case o.mode != "cloud" && o.mode != "datacenter":
		return nil, errors.New("-mode must be cloud or datacenter")
	case o.mode == "datacenter" && o.jirasimBin != "":
		return nil, errors.New("-mode datacenter runs the simulator in this process; -jirasim is for cloud")
	case o.paging != "keyset" && o.paging != "windows":
		return nil, errors.New("-paging must be keyset or windows")
	}
	return o, nil
}

// spec is the generated site: DefaultGenSpec's shape with the chosen long
// tail and a fixed present (whole seconds, so a child jirasim given it as
// RFC 3339 generates the very same data).
func (o *options) spec(now time.Time) jirasim.GenSpec {
	s := jirasim.DefaultGenSpec(o.issues)
	s.LongTailShare = o.longTail
	s.Now = now.UTC().Truncate(time.Second)
	return s
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	now := time.Now()
	if o.now != "" {
		if now, err = time.Parse(time.RFC3339, o.now); err != nil {
			return fmt.Errorf("-now: %w", err)
		}
	}
	spec := o.spec(now)
	if o.mode == "datacenter" {
		return runDataCenter(ctx, o, spec, log, stdout)
	}

	where := "in-process (its memory counts in this process's RSS)"
	if o.jirasimBin != "" {
		where = "separate process " + o.jirasimBin
	}
	fmt.Fprintf(stdout, "ingestbench: %d issues, %d projects, %d users, long tail %g, seed %d\n",
		spec.Issues, spec.Projects, spec.Users, spec.LongTailShare, o.seed)
	fmt.Fprintf(stdout, "  simulator %s; latency %v; rate %s\n", where, o.latency, rateText(o.rate, o.burst))
	fmt.Fprintf(stdout, "  %s on %s cores (GOMAXPROCS %d), %s\n", runtime.Version(), fmt.Sprint(runtime.NumCPU()), runtime.GOMAXPROCS(0), o.db)

	db, dbURL, cleanup, err := openDatabase(ctx, o, log)
	if err != nil {
		return err
	}
	defer cleanup()
	if o.keep {
		fmt.Fprintf(stdout, "  database kept: %s\n", redact(dbURL))
	}

	began := time.Now()
	sim, err := startSimulator(ctx, o, spec, stderr)
	if err != nil {
		return err
	}
	defer sim.close()
	fmt.Fprintf(stdout, "  site ready in %v at %s\n", time.Since(began).Round(time.Millisecond), sim.baseURL)

	it, src, err := seedRows(ctx, db, sim)
	if err != nil {
		return err
	}
	syncer := newSyncer(db, src, o, log)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	pm := postmasterPID(ctx, db)
	cpu0 := sampleCPU(pm)
	simCPU0 := sim.cpu()
	start := time.Now()
	syncErr := syncer.Sync(ctx, it.ID, "full")
	wall := time.Since(start)
	cpu1 := sampleCPU(pm)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return err
		}
	}
	rss := peakRSS("self")
	simRSS := sim.peakRSS() // stops a child simulator
	simCPU := sim.cpu() - simCPU0
	if syncErr != nil {
		return fmt.Errorf("sync failed after %v: %w", wall.Round(time.Millisecond), syncErr)
	}

	res := result{wall: wall, issues: spec.Issues, rss: rss, simRSS: simRSS, inProcess: o.jirasimBin == "",
		rate: o.rate, stats: src.stats(), cpu0: cpu0, cpu1: cpu1, pgLocal: pm > 0, simCPU: simCPU, simTotal: sim.totalRequests(), simCounts: sim.requestCounts(), sim429: sim.rateLimited()}
	if run, err := db.LatestRun(ctx, it.ID); err == nil {
		res.run = run
	}
	res.print(stdout)

	// Ground truth after the measurement: for a separate simulator it is
	// rebuilt here, which would otherwise inflate the RSS just read.
	vstart := time.Now()
	truth, err := sim.groundTruth(ctx, o, spec)
	if err != nil {
		return fmt.Errorf("ground truth: %w", err)
	}
	report, ok, err := verify(ctx, db, it.ID, truth)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprint(stdout, report)
	fmt.Fprintf(stdout, "  (verified in %v)\n", time.Since(vstart).Round(time.Millisecond))
	if !ok {
		return errors.New("stored data differs from the ground truth")
	}
	return nil
}

func rateText(r float64, burst int) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g requests/s, burst %d", r, burst)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
