// Package ratelimit owns keyed token buckets: one bucket per key (a tenant,
// a client address), created on first use and forgotten when idle. Buckets
// live in the memory of one replica; with N replicas behind a balancer the
// effective limit is at most N times the configured one, which still stops
// brute force against 140-bit keys by dozens of orders of magnitude.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter limits events per key.
type Limiter struct {
	every time.Duration
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New allows burst events at once per key, refilled one per `every`.
func New(every time.Duration, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: every, burst: burst, now: now, buckets: map[string]*bucket{}}
}

// idleAfter is when an unused bucket is full again and can be dropped.
func (l *Limiter) idleAfter() time.Duration { return l.every * time.Duration(l.burst+1) }

// Allow takes one token from key's bucket. When none is left it takes
// nothing and says how long to wait.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%1024 == 0 {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idleAfter() {
				delete(l.buckets, k)
			}
		}
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
