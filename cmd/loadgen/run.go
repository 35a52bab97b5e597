package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

const webhookEvent = "jira:issue_updated"

// Phases of the load, read by every worker before each request.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// run plays Jira against the service at o.base. onKeys receives the
// install-keys URL before anything waits on the service.
func run(ctx context.Context, o options, logw io.Writer, onKeys func(url string) error) (*result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(o.base, "/")
	atl, err := jirasim.New()
	if err != nil {
		return nil, fmt.Errorf("install-keys server: %w", err)
	}
	defer atl.Close()
	if err := onKeys(atl.Keys.URL); err != nil {
		return nil, fmt.Errorf("publish install-keys URL: %w", err)
	}

	logf(logw, "waiting for %s/readyz (up to %s)", base, o.readyTimeout)
	if err := waitReady(ctx, base+"/readyz", o.readyTimeout); err != nil {
		return nil, err
	}
	serverPID := readPID(ctx, o.serverPIDFile, logw)
	var pgPID int
	if o.pgPIDFile != "" {
		if pgPID, err = readPostmasterPID(o.pgPIDFile); err != nil {
			logf(logw, "warning: %v; PostgreSQL's CPU use will not be reported", err)
		}
	}

	app, err := atl.LoadApp(ctx, base+"/atlassian-connect.json")
	if err != nil {
		return nil, fmt.Errorf("load descriptor: %w", err)
	}
	if app.BaseURL != base {
		logf(logw, "warning: the descriptor's baseUrl is %s, not -base %s; posting to the descriptor's, as Jira would", app.BaseURL, base)
	}
	path, ok := app.Webhooks[webhookEvent]
	if !ok {
		return nil, fmt.Errorf("the descriptor declares no %s webhook", webhookEvent)
	}
	target := app.BaseURL + path

	var stats *pgStats
	if o.pgStats != "" {
		if stats, err = openPGStats(ctx, o.pgStats, o.pgDB); err != nil {
			return nil, err
		}
		defer stats.close()
	}
	snapBefore, err := stats.snapshot(ctx)
	if err != nil {
		return nil, err
	}

	logf(logw, "installing %d sites", o.sites)
	sites, err := install(ctx, atl, app, o.sites)
	for _, s := range sites {
		defer s.Close()
	}
	if err != nil {
		return nil, err
	}
	linked := false
	if o.apiKeysFile != "" {
		keys, err := readAPIKeys(o.apiKeysFile)
		if err != nil {
			return nil, err
		}
		logf(logw, "linking %d sites to integrations of %d tenants", len(sites), (len(sites)+sitesPerTenant-1)/sitesPerTenant)
		if err := link(ctx, base, sites, keys); err != nil {
			return nil, err
		}
		linked = true
	}

	res := &result{
		Target: target, Sites: o.sites, Linked: linked, Concurrency: o.concurrency,
		Warmup: o.warmup.String(), Duration: o.duration.String(),
		TokensPerSite: o.tokensPerSite, Statuses: map[string]int64{},
	}
	var snapInstalled pgSnapshot
	if stats != nil {
		logf(logw, "waiting %s for PostgreSQL's counters to settle", o.statsSettle)
		if err := sleep(ctx, o.statsSettle); err != nil {
			return nil, err
		}
		if snapInstalled, err = stats.snapshot(ctx); err != nil {
			return nil, err
		}
		d := snapInstalled.sub(snapBefore)
		res.DBInstall = &d
	}

	bodies := make([][]byte, len(sites))
	for i, s := range sites {
		bodies[i] = issueUpdatedBody(s.BaseURL, i, o.bodySize)
	}
	res.BodyBytes = len(bodies[0])
	pool, err := newTokenPool(sites, target, o.tokensPerSite)
	if err != nil {
		return nil, err
	}
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	defer stopRefresh()
	go pool.refreshEvery(refreshCtx, time.Minute, logw)

	client := &http.Client{
		Timeout: o.reqTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        o.concurrency,
			MaxIdleConnsPerHost: o.concurrency,
			MaxConnsPerHost:     o.concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
	defer client.CloseIdleConnections()

	logf(logw, "posting %s webhooks (%d B) to %s: %d connections, warm-up %s, measured %s",
		webhookEvent, res.BodyBytes, target, o.concurrency, o.warmup, o.duration)
	l := &load{client: client, target: target, bodies: bodies, pool: pool, statuses: map[int]int64{}}
	workers := make([]*worker, o.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = &worker{lat: make([]time.Duration, 0, 1<<14)}
		wg.Go(func() { l.work(ctx, workers[i]) })
	}
	var cpuStart, cpuEnd cpuSample
	timer := func(d time.Duration) bool { return sleep(ctx, d) == nil }
	completed := timer(o.warmup)
	if completed {
		cpuStart = sampleCPU(serverPID, pgPID)
		l.measureStart.Store(time.Now().UnixNano())
		l.phase.Store(phaseMeasure)
		completed = timer(o.duration)
		cpuEnd = sampleCPU(serverPID, pgPID)
	}
	l.phase.Store(phaseStop)
	wg.Wait()
	stopRefresh()
	if !completed {
		return nil, ctx.Err()
	}

	var lat []time.Duration
	var secs []second
	for _, w := range workers {
		lat = append(lat, w.lat...)
		for i, s := range w.secs {
			for len(secs) <= i {
				secs = append(secs, second{})
			}
			secs[i].Requests += s.Requests
			secs[i].MaxMs = max(secs[i].MaxMs, s.MaxMs)
		}
		res.WarmupRequests += w.warmupRequests
		res.WarmupErrors += w.warmupErrors
		res.Errors += w.errors
	}
	res.Requests = int64(len(lat))
	res.ReqPerSec = float64(res.Requests) / o.duration.Seconds()
	res.Latency = summarize(lat)
	res.Seconds = secs
	for code, n := range l.statuses {
		res.Statuses[strconv.Itoa(code)] = n
	}
	res.TransportErrors = l.transportErrors.Load()
	res.ErrorSamples = l.samples
	res.CPU = cpuEnd.sub(cpuStart, o.duration)

	// The service's own count, from its Prometheus endpoint.
	if sc, err := scrapeMetrics(ctx, base+"/metrics", path); err != nil {
		logf(logw, "warning: reading %s/metrics: %v", base, err)
	} else {
		res.Server = sc
	}

	if stats != nil {
		logf(logw, "waiting %s for PostgreSQL's counters to settle", o.statsSettle)
		if err := sleep(ctx, o.statsSettle); err != nil {
			return nil, err
		}
		after, err := stats.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		d := after.sub(snapInstalled)
		d.PerKRequests = 1000 * float64(d.Transactions) / float64(max(1, res.Requests+res.WarmupRequests))
		res.DBWebhooks = &d
	}
	return res, nil
}

// install installs n sites, a few at a time: each install is an RS256
// signature here and a database write there.
func install(ctx context.Context, atl *jirasim.Atlassian, app *jirasim.App, n int) ([]*jirasim.Site, error) {
	sites := make([]*jirasim.Site, n)
	for i := range sites {
		sites[i] = atl.NewSite(app)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, s := range sites {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := s.Install(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("install site %d: %w", i, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			if resp.StatusCode/100 != 2 {
				errs[i] = fmt.Errorf("install site %d: HTTP %d: %s", i, resp.StatusCode, bytes.TrimSpace(b))
			}
		})
	}
	wg.Wait()
	return sites, errors.Join(errs...)
}

// load is the shared state of the workers.
type load struct {
	client *http.Client
	target string
	bodies [][]byte
	pool   *tokenPool
	phase  atomic.Int32
	// measureStart is when the measured phase began (Unix ns).
	measureStart atomic.Int64
	next         atomic.Uint64 // round robin over sites

	transportErrors atomic.Int64
	mu              sync.Mutex
	statuses        map[int]int64
	samples         []string
}

// worker records what one connection saw; only its goroutine writes it,
// so the hot path takes no lock.
type worker struct {
	lat            []time.Duration // requests started in the measured phase
	errors         int64           // failures started in the measured phase
	warmupRequests int64
	warmupErrors   int64
	statuses       map[int]int64 // by HTTP status; 0 for transport errors
	secs           []second      // by second of the measured phase
}

// second is one second of the measured phase, by request start.
type second struct {
	Requests int64   `json:"requests"`
	MaxMs    float64 `json:"max_ms"`
}

func (l *load) work(ctx context.Context, w *worker) {
	w.statuses = map[int]int64{}
	defer func() {
		l.mu.Lock()
		for code, n := range w.statuses {
			if code != 0 {
				l.statuses[code] += n
			}
		}
		l.mu.Unlock()
	}()
	rd := new(bytes.Reader)
	for ctx.Err() == nil {
		phase := l.phase.Load()
		if phase == phaseStop {
			return
		}
		n := l.next.Add(1) - 1
		site := int(n % uint64(len(l.bodies)))
		body := l.bodies[site]
		rd.Reset(body)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.target, io.NopCloser(rd))
		if err != nil {
			panic(err) // the URL was parsed before
		}
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "JWT "+l.pool.token(site, n))
		req.Header.Set("User-Agent", "Atlassian HttpClient (jira-connect loadgen)")

		start := time.Now()
		code := l.do(req)
		elapsed := time.Since(start)
		if code < 0 {
			return // interrupted
		}
		w.statuses[code]++
		ok := code/100 == 2
		if phase == phaseMeasure {
			w.lat = append(w.lat, elapsed)
			if i := int(start.UnixNano()-l.measureStart.Load()) / int(time.Second); i >= 0 {
				for len(w.secs) <= i {
					w.secs = append(w.secs, second{})
				}
				w.secs[i].Requests++
				w.secs[i].MaxMs = max(w.secs[i].MaxMs, float64(elapsed)/float64(time.Millisecond))
			}
			if !ok {
				w.errors++
			}
		} else {
			w.warmupRequests++
			if !ok {
				w.warmupErrors++
			}
		}
	}
}

// do sends req and drains the answer so the connection is reused. It
// returns the HTTP status, 0 for a transport error (refused, reset,
// timeout) and -1 when the run was interrupted.
func (l *load) do(req *http.Request) int {
	resp, err := l.client.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return -1
		}
		l.transportErrors.Add(1)
		l.sample(err.Error())
		return 0
	}
	var snippet []byte
	if resp.StatusCode/100 != 2 {
		snippet, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		l.sample(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(snippet)))
	}
	return resp.StatusCode
}

func (l *load) sample(s string) {
	l.mu.Lock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, s)
	}
	l.mu.Unlock()
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readPID reads the service's pid, retrying briefly: the script writes the
// file just after starting the service, which may race with its readiness.
func readPID(ctx context.Context, path string, logw io.Writer) int {
	if path == "" {
		return 0
	}
	for range 50 {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	logf(logw, "warning: no pid in %s; the server's CPU use will not be reported", path)
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
