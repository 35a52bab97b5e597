package jira

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func mustAcquire(t *testing.T, l *Limiter) permit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, _, err := l.acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return p
}

// blocked reports whether acquire would wait: it gives up after a moment.
func blocked(t *testing.T, l *Limiter) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	p, _, err := l.acquire(ctx)
	if err == nil {
		l.release(p, sigNeutral)
		return false
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire: %v", err)
	}
	return true
}

func TestLimiterAIMD(t *testing.T) {
	l := NewLimiter(LimiterConfig{Initial: 4, Min: 1, Max: 6, IncreaseAfter: 3})
	if l.Limit() != 4 {
		t.Fatalf("limit = %d", l.Limit())
	}

	// Four fly; a fifth waits.
	ps := []permit{mustAcquire(t, l), mustAcquire(t, l), mustAcquire(t, l), mustAcquire(t, l)}
	if !blocked(t, l) || l.InFlight() != 4 {
		t.Fatalf("a fifth request was admitted: in flight %d", l.InFlight())
	}

	// All four come back 429: one halving, not four.
	for _, p := range ps {
		l.release(p, sigCongested)
	}
	if l.Limit() != 2 || l.InFlight() != 0 {
		t.Fatalf("after a round of 429s: limit %d, in flight %d; want 2, 0", l.Limit(), l.InFlight())
	}

	// A request sent after the halving halves again; then the floor holds.
	p := mustAcquire(t, l)
	if from, to := l.release(p, sigCongested); from != 2 || to != 1 {
		t.Fatalf("second halving %d -> %d", from, to)
	}
	l.release(mustAcquire(t, l), sigCongested)
	if l.Limit() != 1 {
		t.Fatalf("limit %d below the minimum", l.Limit())
	}

	// Recovery: a window of successes at a full limit adds one slot.
	for range 3 {
		l.release(mustAcquire(t, l), sigSuccess)
	}
	if l.Limit() != 2 {
		t.Fatalf("after a window of successes: limit %d, want 2", l.Limit())
	}
	// Successes that never filled the limit do not raise it.
	for range 6 {
		l.release(mustAcquire(t, l), sigSuccess)
	}
	if l.Limit() != 2 {
		t.Fatalf("unsaturated successes raised the limit to %d", l.Limit())
	}
	// Filled, it grows one slot per window, up to the maximum.
	for range 20 {
		var held []permit
		for range l.Limit() {
			held = append(held, mustAcquire(t, l))
		}
		for range 3 {
			for _, p := range held {
				l.release(p, sigSuccess)
			}
			held = held[:0]
			for range l.Limit() {
				held = append(held, mustAcquire(t, l))
			}
		}
		for _, p := range held {
			l.release(p, sigNeutral)
		}
	}
	if l.Limit() != 6 || l.InFlight() != 0 {
		t.Fatalf("limit %d, in flight %d; want the maximum 6 and none", l.Limit(), l.InFlight())
	}

	// Neutral answers (a 404, a reset) change nothing.
	l.release(mustAcquire(t, l), sigNeutral)
	if l.Limit() != 6 {
		t.Fatalf("neutral answer moved the limit to %d", l.Limit())
	}
}

func TestLimiterQueue(t *testing.T) {
	l := NewLimiter(LimiterConfig{Initial: 1, Max: 1})
	held := mustAcquire(t, l)

	// Waiters are served in arrival order; a cancelled one leaves the line.
	order := make(chan string, 3)
	start := func(name string, ctx context.Context, queued int) {
		go func() {
			p, _, err := l.acquire(ctx)
			if err != nil {
				order <- name + ":" + err.Error()
				return
			}
			order <- name
			l.release(p, sigSuccess)
		}()
		for deadline := time.Now().Add(5 * time.Second); ; {
			l.mu.Lock()
			n := len(l.waiters)
			l.mu.Unlock()
			if n == queued {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("waiter never queued")
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	start("a", context.Background(), 1)
	start("b", ctxB, 2)
	start("c", context.Background(), 3)
	cancelB()
	if got := <-order; got != "b:context canceled" {
		t.Fatalf("first out: %s", got)
	}
	l.release(held, sigSuccess)
	if a, c := <-order, <-order; a != "a" || c != "c" {
		t.Fatalf("served %s then %s", a, c)
	}
	if l.InFlight() != 0 || len(l.waiters) != 0 {
		t.Fatalf("in flight %d, waiters %d", l.InFlight(), len(l.waiters))
	}

	// A nil Limiter admits everything, and a done context nothing.
	var none *Limiter
	if _, _, err := none.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on a done context: %v", err)
	}
}

func TestLimiterRate(t *testing.T) {
	clk := NewFakeClock()
	l := NewLimiter(LimiterConfig{Rate: 2, Burst: 1, Clock: clk})
	var waited []time.Duration
	for range 3 {
		p, w, err := l.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		waited = append(waited, w)
		l.release(p, sigSuccess)
	}
	want := []time.Duration{0, 500 * time.Millisecond, 500 * time.Millisecond}
	if !slices.Equal(waited, want) || !slices.Equal(clk.Slept(), want[1:]) {
		t.Errorf("waited %v, slept %v; want %v", waited, clk.Slept(), want)
	}

	// Cancelled while waiting for a token: the slot is handed back.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.acquire(ctx); err == nil || l.InFlight() != 0 {
		t.Errorf("err %v, in flight %d", err, l.InFlight())
	}
}

func TestLimiterLearnsDataCenterRate(t *testing.T) {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "20")
	h.Set("X-RateLimit-Remaining", "19")
	h.Set("X-RateLimit-FillRate", "10")
	h.Set("X-RateLimit-Interval-Seconds", "2")

	l := NewLimiter(LimiterConfig{})
	if l.Rate() != rate.Inf {
		t.Fatalf("rate %v before any answer", l.Rate())
	}
	cloud := http.Header{}
	cloud.Set("X-RateLimit-Limit", "350") // Jira Cloud's: no fill rate
	l.observe(cloud)
	if l.Rate() != rate.Inf {
		t.Fatalf("followed Cloud's X-RateLimit-Limit: %v", l.Rate())
	}
	l.observe(h)
	if l.Rate() != 5 || l.bucket.Burst() != 20 {
		t.Fatalf("rate %v burst %d, want 5/s and 20", l.Rate(), l.bucket.Burst())
	}
	// A configured budget is a ceiling the server cannot raise.
	capped := NewLimiter(LimiterConfig{Rate: 2, Burst: 4})
	capped.observe(h)
	if capped.Rate() != 2 || capped.bucket.Burst() != 4 {
		t.Fatalf("rate %v burst %d, want the configured 2/s and 4", capped.Rate(), capped.bucket.Burst())
	}
}

func TestLoadSignal(t *testing.T) {
	near := http.Header{}
	near.Set("X-RateLimit-NearLimit", "true")
	beta := http.Header{}
	beta.Set("X-Beta-RateLimit-NearLimit", "TRUE")
	for _, tc := range []struct {
		e    *Error
		h    http.Header
		want signal
	}{
		{nil, nil, sigSuccess},
		{nil, near, sigCongested},
		{nil, beta, sigCongested},
		{&Error{Status: 429}, nil, sigCongested},
		{&Error{Status: 503}, nil, sigCongested},
		{&Error{Status: 500}, nil, sigNeutral},
		{&Error{Status: 404}, near, sigCongested},
		{&Error{Status: 404}, nil, sigNeutral},
		{&Error{Status: 200, Err: errEmptyBody}, nil, sigSuccess},
		{&Error{Err: errors.New("reset")}, nil, sigNeutral},
	} {
		if got := loadSignal(tc.e, tc.h); got != tc.want {
			t.Errorf("loadSignal(%v, %v) = %d, want %d", tc.e, tc.h, got, tc.want)
		}
	}
}

func TestRateLimitResetParse(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 30, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                          0,
		"2025-03-01T10:01Z":         30 * time.Second, // Jira Cloud's documented form
		"2025-03-01T10:00:45Z":      15 * time.Second,
		"2025-03-01T10:00:45.5Z":    15500 * time.Millisecond,
		"2025-03-01T11:01+01:00":    30 * time.Second,
		"2025-03-01T10:00:45+0000":  15 * time.Second,
		"2025-03-01T10:00Z":         0, // past
		"1740823260":                0, // not ISO 8601
		"Sat, 01 Mar 2025 10:01:00": 0,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("X-RateLimit-Reset", v)
		}
		if got := rateLimitReset(h, now); got != want {
			t.Errorf("X-RateLimit-Reset %q = %v, want %v", v, got, want)
		}
	}
	// Only a 429 or 503 is timed by the reset; Retry-After wins over it.
	h := http.Header{}
	h.Set("X-RateLimit-Reset", "2025-03-01T10:01Z")
	if serverWait(http.StatusInternalServerError, h, now) != 0 || serverWait(http.StatusTooManyRequests, h, now) != 30*time.Second {
		t.Error("reset applied to the wrong statuses")
	}
	h.Set("Retry-After", "5")
	if serverWait(http.StatusTooManyRequests, h, now) != 5*time.Second {
		t.Error("Retry-After did not win")
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{BaseDelay: time.Second, MaxDelay: 10 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		if got := p.backoff(n, 0.999999999); got > want || got < want*99/100 {
			t.Errorf("backoff(%d) near the top = %v, want just under %v", n, got, want)
		}
		if got := p.backoff(n, 0); got != 0 {
			t.Errorf("backoff(%d, 0) = %v", n, got)
		}
	}
	if got := (RetryPolicy{}).backoff(1, 0.5); got != DefaultBaseDelay/2 {
		t.Errorf("zero policy backoff = %v", got)
	}
	if (RetryPolicy{}).attempts() != 1 || DefaultRetryPolicy().attempts() != DefaultMaxAttempts {
		t.Error("attempts")
	}
}

func TestIdempotent(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/rest/api/3/issue/SEI-1", true},
		{"POST", PathSearchJQL, true},
		{"POST", "/rest/api/2/search", true},
		{"POST", "/rest/api/3/search/approximate-count", true},
		{"POST", "/rest/api/3/issue", false},
		{"PUT", "/rest/api/3/issue/SEI-1", false},
		{"DELETE", "/rest/api/3/issue/SEI-1", false},
	} {
		if got := idempotent(tc.method, tc.path); got != tc.want {
			t.Errorf("idempotent(%s %s) = %v", tc.method, tc.path, got)
		}
	}
}

// TestLimiterPause: a pause holds every new request until it ends, and a
// longer pause set meanwhile extends it.
func TestLimiterPause(t *testing.T) {
	clk := NewFakeClock()
	l := NewLimiter(LimiterConfig{Clock: clk})
	l.Pause(2 * time.Second)
	l.Pause(time.Second) // shorter: changes nothing
	p, waited, err := l.acquire(context.Background())
	if err != nil || waited != 2*time.Second {
		t.Fatalf("waited %v, err %v; want 2s", waited, err)
	}
	l.release(p, sigNeutral)
	if p, waited, _ := l.acquire(context.Background()); waited != 0 {
		t.Errorf("waited %v after the pause ended", waited)
	} else {
		l.release(p, sigNeutral)
	}
	var nilLimiter *Limiter
	nilLimiter.Pause(time.Second) // no limiter, no pause, no panic

	l.Pause(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.acquire(ctx); err == nil || l.InFlight() != 0 {
		t.Errorf("cancelled during a pause: err %v, in flight %d", err, l.InFlight())
	}
}
