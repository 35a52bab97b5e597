// Command jirasim runs a simulated Jira Cloud site — a generated,
// deterministic set of projects, issues, changelogs, comments and users
// behind Jira's REST API — with Atlassian's install-keys server beside
// it, and can install itself into a running Connect app.
//
// To run the app against it, in this order:
//
//  1. Start jirasim with fixed addresses and the app's descriptor URL:
//
//     go run ./cmd/jirasim -addr 127.0.0.1:8090 -keys-addr 127.0.0.1:8091 \
//     -app http://127.0.0.1:8080/atlassian-connect.json -issues 100000
//
//     It prints the keys URL and waits for the app.
//
//  2. Start the app trusting the simulator's install key and host:
//
//     CONNECT_INSTALL_KEYS_URL=http://127.0.0.1:8091 JIRA_HOST_ALLOWLIST=127.0.0.1 make run
//
//  3. jirasim sees the descriptor, performs the signed install (and
//     enabled), and prints the installation's clientKey. The app now holds
//     the site's shared secret and calls the site's REST API with it.
//
// Without -app the site serves on its own: HTTP Basic with -basic
// email:token works for curl, e.g.
//
//	curl -u ada@example.com:secret 'http://127.0.0.1:8090/rest/api/3/search/jql?jql=project=PLAT&fields=summary'
//
// -churn N changes N issues a second (a transition or a comment) and
// delivers the webhooks to the installed app.
//
// -mode datacenter plays Jira Data Center instead (API v2, startAt paging
// with the 10,000 result window, no Connect app and no keys server):
//
//	go run ./cmd/jirasim -mode datacenter -issues 100000 -dc-user sei.bot:secret \
//	  -pat sei.bot:my-personal-access-token -adfs sei-ingest:urn:jira -adfs-user sei.bot:adfs-pw -tls
//
//	curl -k -H 'Authorization: Bearer my-personal-access-token' \
//	  'https://127.0.0.1:8090/rest/api/2/search?jql=project=PLAT&maxResults=2'
//
// -tls serves https with a self-signed certificate (either mode).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "jirasim:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, keysAddr, contextPath, tz string
	app                             string
	appWait                         time.Duration
	basic                           string
	seed                            int64
	spec                            jirasim.GenSpec
	now                             string
	latency                         time.Duration
	rate                            float64
	burst                           int
	fault5xx, faultReset            float64
	faultTruncate, faultMalformed   float64
	faultSlow                       float64
	slowDelay                       time.Duration
	churn                           float64

	mode                       string
	tls                        bool
	dcUsers, pats, adfsUsers   listFlag
	adfs                       string
	dcMaxResults, resultWindow int
	hiddenEmails               float64
	anonymous404               bool
	cpuProfile                 string
	prebuild                   bool
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("jirasim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8090", "address of the site (host:0 for a free port)")
	fs.StringVar(&o.keysAddr, "keys-addr", "127.0.0.1:8091", "address of the install-keys server: the app's CONNECT_INSTALL_KEYS_URL")
	fs.StringVar(&o.contextPath, "context-path", "", "serve the site under a path, e.g. /jira")
	fs.StringVar(&o.tz, "tz", "Etc/UTC", "the app user's time zone: /myself reports it, date-times are rendered and JQL dates read in it")
	fs.StringVar(&o.app, "app", "", "the app's descriptor URL; jirasim waits for it, then installs itself")
	fs.DurationVar(&o.appWait, "app-wait", 2*time.Minute, "how long to wait for the app's descriptor")
	fs.StringVar(&o.basic, "basic", "", "email:token of a user who may call the REST API with HTTP Basic")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed: the same seed and sizes give the same site")
	d := jirasim.DefaultGenSpec(5000)
	fs.IntVar(&o.spec.Issues, "issues", d.Issues, "issues")
	fs.IntVar(&o.spec.Projects, "projects", 0, "projects (0: scaled to the issues)")
	fs.IntVar(&o.spec.Users, "users", 0, "users (0: scaled to the issues)")
	fs.Float64Var(&o.spec.EmailShare, "email-share", d.EmailShare, "share of users whose email the email API returns")
	fs.IntVar(&o.spec.TransitionsPerIssue, "transitions", d.TransitionsPerIssue, "mean status transitions per issue")
	fs.IntVar(&o.spec.CommentsPerIssue, "comments", d.CommentsPerIssue, "mean comments per issue")
	fs.Float64Var(&o.spec.LongTailShare, "long-tail", d.LongTailShare, "share of issues with more than 100 histories and 20 comments")
	fs.IntVar(&o.spec.CustomFields, "custom-fields", d.CustomFields, "extra custom fields")
	fs.IntVar(&o.spec.DescriptionBytes, "description-bytes", d.DescriptionBytes, "size of descriptions")
	fs.DurationVar(&o.spec.History, "history", 0, "how far back issues go (0: three years)")
	fs.StringVar(&o.now, "now", "", "the site's present for generated data, RFC 3339 (default: now)")
	fs.DurationVar(&o.latency, "latency", 0, "delay added to every REST answer")
	fs.Float64Var(&o.rate, "rate", 0, "rate limit in requests a second (0: none); beyond it, 429 with Retry-After")
	fs.IntVar(&o.burst, "burst", 100, "rate limit burst")
	fs.Float64Var(&o.fault5xx, "fault-5xx", 0, "probability of a 503 on a REST call")
	fs.Float64Var(&o.faultReset, "fault-reset", 0, "probability of a connection reset")
	fs.Float64Var(&o.faultTruncate, "fault-truncate", 0, "probability of a body cut halfway")
	fs.Float64Var(&o.faultMalformed, "fault-malformed", 0, "probability of a 200 whose body is not JSON")
	fs.Float64Var(&o.faultSlow, "fault-slow", 0, "probability of a slow answer (-slow-delay)")
	fs.DurationVar(&o.slowDelay, "slow-delay", 3*time.Second, "delay of slow answers")
	fs.Float64Var(&o.churn, "churn", 0, "issues changed a second, with webhooks to the installed app")
	fs.StringVar(&o.mode, "mode", "cloud", "cloud (Jira Cloud: Connect app and API tokens) or datacenter (Jira Data Center, API v2)")
	fs.BoolVar(&o.tls, "tls", false, "serve https with a self-signed certificate")
	fs.Float64Var(&o.hiddenEmails, "hidden-emails", d.HiddenEmailShare, "share of users whose profile hides their email from API tokens")
	fs.Var(&o.dcUsers, "dc-user", "datacenter: username:password of a user who may call with HTTP Basic (repeatable)")
	fs.Var(&o.pats, "pat", "datacenter: username:token, a personal access token (repeatable)")
	fs.StringVar(&o.adfs, "adfs", "", "datacenter: client_id:resource of an ADFS relying party; serves "+jirasim.ADFSPath)
	fs.Var(&o.adfsUsers, "adfs-user", "datacenter: username:password at ADFS (repeatable)")
	fs.IntVar(&o.dcMaxResults, "dc-max-results", jirasim.DCDefaultMaxResults, "datacenter: the most issues a search page grants")
	fs.IntVar(&o.resultWindow, "result-window", jirasim.DCResultWindow, "datacenter: the deepest a search may page (startAt + maxResults)")
	fs.BoolVar(&o.anonymous404, "anonymous-404", false, "datacenter: answer refused credentials with 404 (an expired session), not 401")
	fs.BoolVar(&o.prebuild, "prebuild", false, "render every generated issue at start, as stored JSON (5–20 KB of memory per issue): searches copy it instead of generating it")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the simulator to this file until it stops")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.spec.Projects == 0 {
		o.spec.Projects = jirasim.DefaultGenSpec(o.spec.Issues).Projects
	}
	if o.spec.Users == 0 {
		o.spec.Users = jirasim.DefaultGenSpec(o.spec.Issues).Users
	}
	if o.now != "" {
		t, err := time.Parse(time.RFC3339, o.now)
		if err != nil {
			return nil, fmt.Errorf("-now: %w", err)
		}
		o.spec.Now = t
	}
	if _, err := time.LoadLocation(o.tz); err != nil {
		return nil, fmt.Errorf("-tz: %w", err)
	}
	if o.basic != "" && !strings.Contains(o.basic, ":") {
		return nil, errors.New("-basic wants email:token")
	}
	o.spec.HiddenEmailShare = o.hiddenEmails
	switch o.mode {
	case "cloud":
		if len(o.dcUsers)+len(o.pats)+len(o.adfsUsers) > 0 || o.adfs != "" {
			return nil, errors.New("-dc-user, -pat, -adfs and -adfs-user need -mode datacenter")
		}
	case "datacenter":
		if o.app != "" {
			return nil, errors.New("-app needs -mode cloud: Data Center has no Connect app")
		}
		for name, l := range map[string]listFlag{"-dc-user": o.dcUsers, "-pat": o.pats, "-adfs-user": o.adfsUsers} {
			for _, v := range l {
				if u, p, ok := strings.Cut(v, ":"); !ok || u == "" || p == "" {
					return nil, fmt.Errorf("%s wants username:secret", name)
				}
			}
		}
		if o.adfs != "" && !strings.Contains(o.adfs, ":") {
			return nil, errors.New("-adfs wants client_id:resource")
		}
	default:
		return nil, fmt.Errorf("-mode %q: want cloud or datacenter", o.mode)
	}
	return o, nil
}

// run is main without the process. ready, when not nil, gets the site
// once it serves (for tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(*jirasim.Site)) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if o.mode == "datacenter" {
		return runDataCenter(ctx, o, stdout, stderr, ready)
	}
	// Listen first, so a taken port fails at once.
	keysL, err := net.Listen("tcp", o.keysAddr)
	if err != nil {
		return fmt.Errorf("keys server: %w", err)
	}
	siteL, err := net.Listen("tcp", o.addr)
	if err != nil {
		keysL.Close()
		return fmt.Errorf("site: %w", err)
	}
	atl, err := jirasim.NewWithKeysListener(keysL)
	if err != nil {
		keysL.Close()
		siteL.Close()
		return err
	}
	defer atl.Close()
	atl.SlowDelay = o.slowDelay
	fmt.Fprintf(stdout, "jirasim keys  %s\n", atl.Keys.URL)
	fmt.Fprintf(stdout, "  the app needs: CONNECT_INSTALL_KEYS_URL=%s JIRA_HOST_ALLOWLIST=%s\n", atl.Keys.URL, hostOf(siteL.Addr()))

	app := &jirasim.App{Key: "io.sei.jira-connect", Raw: map[string]any{"name": "SEI for Jira"}}
	if o.app != "" {
		fmt.Fprintf(stdout, "jirasim waiting for %s\n", o.app)
		if app, err = waitForApp(ctx, atl, o.app, o.appWait); err != nil {
			siteL.Close()
			return err
		}
	}
	opts := []jirasim.SiteOption{jirasim.WithListener(siteL), jirasim.WithTimeZone(o.tz)}
	if o.tls {
		opts = append(opts, jirasim.WithTLS())
	}
	if o.contextPath != "" {
		opts = append(opts, jirasim.WithContextPath(o.contextPath))
	}
	site := atl.NewSite(app, opts...)
	defer site.Close()
	start := time.Now()
	if err := site.Generate(o.seed, o.spec); err != nil {
		return err
	}
	if o.prebuild {
		site.Prebuild()
	}
	site.SetLatency(o.latency)
	if o.rate > 0 {
		site.SetRateLimit(o.rate, o.burst)
	}
	for kind, p := range map[jirasim.InjectKind]float64{jirasim.InjectServerError: o.fault5xx, jirasim.InjectReset: o.faultReset,
		jirasim.InjectTruncated: o.faultTruncate, jirasim.InjectMalformed: o.faultMalformed, jirasim.InjectSlow: o.faultSlow} {
		if p > 0 {
			site.Inject(jirasim.Injection{Kind: kind, Path: "/rest/", Probability: p})
		}
	}
	if o.basic != "" {
		email, tok, _ := strings.Cut(o.basic, ":")
		site.AddBasicUser("712020:jirasim-basic", "Basic User", email, tok)
	}
	fmt.Fprintf(stdout, "jirasim site  %s  (%d issues in %d projects, %d users, seed %d; generated in %v)\n",
		site.BaseURL, o.spec.Issues, o.spec.Projects, o.spec.Users, o.seed, time.Since(start).Round(time.Millisecond))

	if o.app != "" {
		if err := install(ctx, site, stdout); err != nil {
			return err
		}
	}
	if ready != nil {
		ready(site)
	}
	if o.churn > 0 {
		go churn(ctx, site, o, o.app != "", stderr)
	}
	<-ctx.Done()
	fmt.Fprintf(stdout, "jirasim stopping after %d requests (%d answered 429)\n", site.TotalRequests(), site.RateLimited())
	return nil
}

func hostOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// waitForApp polls the descriptor until the app answers.
func waitForApp(ctx context.Context, atl *jirasim.Atlassian, descriptor string, wait time.Duration) (*jirasim.App, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 200 * time.Millisecond
	for {
		app, err := atl.LoadApp(ctx, descriptor)
		if err == nil {
			return app, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the app's descriptor %s: %w (last: %v)", descriptor, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// install posts the signed installed callback, then enabled, as Jira does.
func install(ctx context.Context, site *jirasim.Site, stdout io.Writer) error {
	for _, step := range []struct {
		name string
		call func(context.Context) (*http.Response, error)
	}{{"installed", site.Install}, {"enabled", site.Enable}} {
		if _, declared := site.App.Lifecycle[step.name]; !declared {
			continue
		}
		resp, err := step.call(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: the app answered %d %s", step.name, resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	fmt.Fprintf(stdout, "jirasim installed into %s: clientKey %s, baseUrl %s\n", site.App.BaseURL, site.ClientKey, site.BaseURL)
	return nil
}

// churn changes issues at the given rate: a transition or a comment, with
// its webhook when an app is installed.
func churn(ctx context.Context, site *jirasim.Site, o *options, deliver bool, stderr io.Writer) {
	r := rand.New(rand.NewPCG(uint64(o.seed), 99))
	statuses := []string{"To Do", "In Progress", "In Review", "Done"}
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.churn))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := strconv.Itoa(jirasim.FirstGeneratedID + r.IntN(max(o.spec.Issues, 1)))
		var ev *jirasim.Event
		var err error
		if r.IntN(10) < 7 {
			ev, err = site.TransitionIssue(id, statuses[r.IntN(len(statuses))])
		} else {
			ev, err = site.AddComment(id, "", "churn at "+time.Now().Format(time.RFC3339))
		}
		if err == nil && deliver {
			err = site.DeliverAll(ctx, ev)
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "jirasim churn:", err)
		}
	}
}
