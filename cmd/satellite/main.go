// Command satellite is the SEI Ingestion Satellite: it runs inside the
// customer's network, ingests Jira Data Center with the service's engine
// and pushes the result to SEI over HTTPS, outbound only.
//
//	satellite [run] [--config satellite.yml] [--data-dir DIR] [--interval 15m] [--once]
//	satellite validate [--config satellite.yml]
//	satellite version
//
// Exit status: 0 done (or stopped by a signal), 1 failed, 2 invalid
// satellite.yml or command line.
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
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/satellite/agent"
	"github.com/sei-io/jira-connect/internal/satellite/config"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = ""

const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage:
  satellite [run] [flags]        ingest Jira Data Center and push to SEI until stopped
  satellite validate [--config]  check satellite.yml and exit (status 2 when invalid)
  satellite version

Get satellite.yml from SEI (GET /api/v1/integrations/{id}/satellite.yml),
fill in the values in <ANGLE BRACKETS>, and run the satellite next to it.
`

// run is main without the process: arguments, environment and outputs
// are passed in, the exit status comes back.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runAgent(ctx, args, getenv, stderr)
	case "validate":
		return validate(args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "satellite", versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "satellite: unknown command %q\n\n%s", cmd, usage)
	return exitInvalid
}

func configFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return fs.String("config", envOr(getenv, "SATELLITE_CONFIG", "satellite.yml"), "the satellite.yml to run from (env SATELLITE_CONFIG)")
}

func validate(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("satellite validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	c, warns, ok := load(*path, stderr)
	if !ok {
		return exitInvalid
	}
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s is valid: %d integration(s) for tenant %s, pushing to %s\n", c.Path, len(c.Integrations), c.Satellite.Tenant, c.Satellite.URL)
	return exitOK
}

// load reads satellite.yml, printing its problems for the person who
// runs the command, one per line with file, line and key, and returns its
// warnings for the caller to show its way.
func load(path string, stderr io.Writer) (*config.Config, []string, bool) {
	c, problems, err := config.Load(path)
	var warns []string
	for _, p := range problems {
		warns = append(warns, p.String())
	}
	if err != nil {
		for _, w := range warns {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		var e *config.Error
		if errors.As(err, &e) {
			for _, p := range e.Problems {
				fmt.Fprintln(stderr, p)
			}
			fmt.Fprintf(stderr, "%s is invalid: %d problem(s)\n", path, len(e.Problems))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return nil, nil, false
	}
	if st, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		warns = append(warns, fmt.Sprintf("%s holds secrets and other users of this host may read it: chmod 600 %s", path, path))
	}
	return c, warns, true
}

func runAgent(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("satellite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage+"\nFlags:\n"); fs.PrintDefaults() }
	path := configFlag(fs, getenv)
	dataDir := fs.String("data-dir", envOr(getenv, "SATELLITE_DATA_DIR", "satellite-data"),
		"where the satellite keeps its database (ingested data and checkpoints; env SATELLITE_DATA_DIR)")
	defInterval, err1 := envDuration(getenv, "SATELLITE_INTERVAL", 15*time.Minute)
	defTimeout, err2 := envDuration(getenv, "SATELLITE_SYNC_TIMEOUT", 2*time.Hour)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(stderr, "satellite:", err)
		return exitInvalid
	}
	interval := fs.Duration("interval", defInterval, "time between incremental syncs (env SATELLITE_INTERVAL)")
	syncTimeout := fs.Duration("sync-timeout", defTimeout,
		"longest one sync may run before it is stopped and resumed at the next (env SATELLITE_SYNC_TIMEOUT)")
	once := fs.Bool("once", false, "sync and push once, then exit (for a scheduler)")
	level := fs.String("log-level", envOr(getenv, "SATELLITE_LOG_LEVEL", "info"), "debug, info, warn or error (env SATELLITE_LOG_LEVEL)")
	format := fs.String("log-format", envOr(getenv, "SATELLITE_LOG_FORMAT", "json"), "json or text (env SATELLITE_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "satellite: unexpected arguments %q\n", fs.Args())
		return exitInvalid
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "satellite: --log-level %q: use debug, info, warn or error\n", *level)
		return exitInvalid
	}
	if *format != "json" && *format != "text" {
		fmt.Fprintf(stderr, "satellite: --log-format %q: use json or text\n", *format)
		return exitInvalid
	}
	if *interval <= 0 || *syncTimeout <= 0 {
		fmt.Fprintln(stderr, "satellite: --interval and --sync-timeout must be positive durations, e.g. 15m")
		return exitInvalid
	}
	c, warns, ok := load(*path, stderr)
	if !ok {
		return exitInvalid
	}
	log := agent.NewLogger(stderr, lvl, *format, c.Secrets())
	for _, w := range warns {
		log.Warn("satellite.yml: " + w)
	}
	opts := agent.Options{Config: c, DatabaseURL: "sqlite:" + filepath.Join(*dataDir, "satellite.db"),
		Interval: *interval, SyncTimeout: *syncTimeout, Version: versionString(), Log: log}
	if *once {
		// A scheduled run must end: a push the service keeps refusing
		// waits for the next run, its data kept.
		opts.MaxPushAttempts = 8
	}
	a, err := agent.New(ctx, opts)
	if err != nil {
		log.Error("satellite cannot start", "error", err)
		return exitFailed
	}
	defer a.Close()
	if *once {
		if err := a.RunOnce(ctx); err != nil {
			log.Error("satellite run failed; what was read is kept and pushed at the next run", "error", err)
			return exitFailed
		}
		return exitOK
	}
	if err := a.Run(ctx); err != nil {
		log.Error("satellite failed", "error", err)
		return exitFailed
	}
	return exitOK
}

func envOr(getenv func(string) string, key, def string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return def
}

func envDuration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(key))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return def, fmt.Errorf("%s=%q: use a positive duration such as 15m or 1h", key, v)
	}
	return d, nil
}

func versionString() string {
	if version != "" {
		return version
	}
	return agent.BuildVersion()
}
