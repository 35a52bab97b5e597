package jira

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of a Limiter.
const (
	// DefaultInitialConcurrency is where a site starts: enough to overlap
	// latency, few enough that a fresh site is not hit with a burst.
	DefaultInitialConcurrency = 4
	// DefaultMinConcurrency: one request at a time still makes progress.
	DefaultMinConcurrency = 1
	// DefaultMaxConcurrency is the ceiling, and the idle connections kept
	// per host, so every slot can reuse a warm connection.
	DefaultMaxConcurrency = 16
	// DefaultIncreaseAfter is how many successes, with the limit reached,
	// earn one more slot: from 1 back to 4 takes 60 calls, from 8 to 16
	// takes 160, so the limit creeps up where a 429 halves it at once.
	DefaultIncreaseAfter = 20
)

// LimiterConfig configures NewLimiter; zero fields mean the defaults.
type LimiterConfig struct {
	Initial, Min, Max int // bounds on requests in flight
	// IncreaseAfter is the window of successes (at a full limit) after
	// which the limit grows by one.
	IncreaseAfter int
	// Rate, when positive, also caps requests per second with a token
	// bucket of Burst tokens (default: max(1, Rate)): a budget configured
	// for a site, or a Data Center's. A Data Center that sends its own
	// X-RateLimit-FillRate and X-RateLimit-Interval-Seconds is followed
	// without configuration, never above a configured Rate.
	Rate  rate.Limit
	Burst int
	Clock Clock // nil: the system clock
}

// Limiter bounds the requests in flight to one Jira site, adapting the bound
// the way TCP adapts its window (AIMD): a 429, a 503 or an
// X-RateLimit-NearLimit halves it, and a window of successes while it was
// fully used raises it by one. One Limiter serves every request to a site,
// from every goroutine and every Client given it; callers just make
// requests and wait their turn, first come, first served.
//
// A halving happens once per round of requests: answers to requests sent
// before the last halving do not halve again, so a burst of eight 429s
// for eight parallel requests halves the limit once, not eight times.
type Limiter struct {
	clock         Clock
	min, max      int
	increaseAfter int
	confRate      rate.Limit
	confBurst     int

	mu        sync.Mutex
	limit     int
	inFlight  int
	epoch     uint64 // bumped by each decrease
	successes int
	saturated bool // the limit was reached since the window began
	waiters   []*waiter
	bucket    *rate.Limiter
	// pausedUntil holds every new request: a 429 with Retry-After speaks
	// for the site's (or app's) quota, not for the one call that met it.
	pausedUntil time.Time
}

type waiter struct {
	ready chan struct{}
	p     permit
}

// permit is one admitted request.
type permit struct {
	epoch  uint64
	bucket *rate.Limiter
}

// signal is what an answer says about the site's load.
type signal int

const (
	sigNeutral   signal = iota // says nothing (4xx, network failure)
	sigSuccess                 // answered, with room to spare
	sigCongested               // 429, 503 or near the limit: back off
)

// NewLimiter returns a Limiter; see LimiterConfig for the defaults.
func NewLimiter(cfg LimiterConfig) *Limiter {
	l := &Limiter{clock: cfg.Clock, min: cfg.Min, max: cfg.Max, increaseAfter: cfg.IncreaseAfter}
	if l.clock == nil {
		l.clock = SystemClock{}
	}
	if l.min <= 0 {
		l.min = DefaultMinConcurrency
	}
	if l.max <= 0 {
		l.max = max(DefaultMaxConcurrency, l.min)
	}
	l.max = max(l.max, l.min)
	if l.increaseAfter <= 0 {
		l.increaseAfter = DefaultIncreaseAfter
	}
	l.limit = cfg.Initial
	if l.limit <= 0 {
		l.limit = DefaultInitialConcurrency
	}
	l.limit = min(max(l.limit, l.min), l.max)
	if cfg.Rate > 0 {
		l.confRate = cfg.Rate
		l.confBurst = cfg.Burst
		if l.confBurst <= 0 {
			l.confBurst = max(1, int(cfg.Rate))
		}
		l.bucket = rate.NewLimiter(l.confRate, l.confBurst)
	}
	return l
}

// Limit is the current bound on requests in flight.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// InFlight is how many requests hold a slot now.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Rate is the current cap on requests per second; rate.Inf when none.
func (l *Limiter) Rate() rate.Limit {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bucket == nil {
		return rate.Inf
	}
	return l.bucket.Limit()
}

// acquire waits for a slot, then for a token when a rate is capped. It
// returns how long it waited. A nil Limiter admits everything at once.
func (l *Limiter) acquire(ctx context.Context) (permit, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return permit{}, 0, err
	}
	if l == nil {
		return permit{}, 0, nil
	}
	paused, err := l.waitPause(ctx)
	if err != nil {
		return permit{}, paused, err
	}
	p, waited, err := l.acquireSlot(ctx)
	return p, paused + waited, err
}

// Pause holds new requests for d (from now; a later end wins over an
// earlier one). The client calls it on a 429 that says when to come back,
// so the calls of the other workers wait too instead of each meeting its
// own 429.
func (l *Limiter) Pause(d time.Duration) {
	if l == nil || d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := l.clock.Now().Add(d); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}

// waitPause sleeps until no pause is in force; a pause extended while
// sleeping is waited out too.
func (l *Limiter) waitPause(ctx context.Context) (time.Duration, error) {
	var waited time.Duration
	for {
		l.mu.Lock()
		d := l.pausedUntil.Sub(l.clock.Now())
		l.mu.Unlock()
		if d <= 0 {
			return waited, nil
		}
		if err := l.clock.Sleep(ctx, d); err != nil {
			return waited, err
		}
		waited += d
	}
}

// acquireSlot is acquire once no pause is in force.
func (l *Limiter) acquireSlot(ctx context.Context) (permit, time.Duration, error) {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inFlight < l.limit {
		p := l.admitLocked()
		l.mu.Unlock()
		return l.pace(ctx, p, 0)
	}
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	started := time.Now()
	select {
	case <-w.ready:
		return l.pace(ctx, w.p, time.Since(started))
	case <-ctx.Done():
		l.mu.Lock()
		if i := slices.Index(l.waiters, w); i >= 0 {
			l.waiters = slices.Delete(l.waiters, i, i+1)
			l.mu.Unlock()
			return permit{}, time.Since(started), ctx.Err()
		}
		l.mu.Unlock()
		// Granted as the context ended: hand the slot on.
		l.release(w.p, sigNeutral)
		return permit{}, time.Since(started), ctx.Err()
	}
}

func (l *Limiter) admitLocked() permit {
	l.inFlight++
	if l.inFlight >= l.limit {
		l.saturated = true
	}
	return permit{epoch: l.epoch, bucket: l.bucket}
}

// grantLocked hands free slots to waiters in arrival order.
func (l *Limiter) grantLocked() {
	for len(l.waiters) > 0 && l.inFlight < l.limit {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		w.p = l.admitLocked()
		close(w.ready)
	}
}

// pace waits for a token of the rate cap, holding the slot meanwhile.
func (l *Limiter) pace(ctx context.Context, p permit, waited time.Duration) (permit, time.Duration, error) {
	if p.bucket == nil {
		return p, waited, nil
	}
	now := l.clock.Now()
	r := p.bucket.ReserveN(now, 1)
	if !r.OK() { // a burst of 0 cannot happen here; stay safe anyway
		return p, waited, nil
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return p, waited, nil
	}
	if err := l.clock.Sleep(ctx, d); err != nil {
		r.CancelAt(l.clock.Now())
		l.release(p, sigNeutral)
		return permit{}, waited, err
	}
	return p, waited + d, nil
}

// release frees p's slot and adapts the limit to what the answer said. It
// returns the limit before and after.
func (l *Limiter) release(p permit, s signal) (from, to int) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	from = l.limit
	switch s {
	case sigCongested:
		if p.epoch == l.epoch {
			l.limit = max(l.min, l.limit/2)
			l.epoch++
			l.successes, l.saturated = 0, false
		}
	case sigSuccess:
		l.successes++
		if l.successes >= l.increaseAfter {
			// Growing a limit nobody reached would only measure the
			// caller's parallelism; the window must have filled it.
			if l.saturated && l.limit < l.max {
				l.limit++
			}
			l.successes, l.saturated = 0, false
		}
	}
	l.grantLocked()
	return from, l.limit
}

// observe follows a Data Center's rate limiting headers: a bucket of
// X-RateLimit-Limit tokens refilled with X-RateLimit-FillRate tokens every
// X-RateLimit-Interval-Seconds. Jira Cloud does not send the fill rate, so
// its X-RateLimit-Limit (a different measure) is left alone.
func (l *Limiter) observe(h http.Header) {
	if l == nil || h == nil {
		return
	}
	fill, err1 := strconv.ParseFloat(strings.TrimSpace(h.Get("X-RateLimit-FillRate")), 64)
	interval, err2 := strconv.ParseFloat(strings.TrimSpace(h.Get("X-RateLimit-Interval-Seconds")), 64)
	if err1 != nil || err2 != nil || fill <= 0 || interval <= 0 {
		return
	}
	r := rate.Limit(fill / interval)
	burst := max(1, int(fill))
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil && n > 0 {
		burst = n
	}
	if l.confRate > 0 {
		r = min(r, l.confRate)
		burst = min(burst, l.confBurst)
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.bucket == nil:
		l.bucket = rate.NewLimiter(r, burst)
	case l.bucket.Limit() != r || l.bucket.Burst() != burst:
		l.bucket.SetLimitAt(now, r)
		l.bucket.SetBurstAt(now, burst)
	}
}
