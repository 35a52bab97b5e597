package jira

import (
	"context"
	"sync"
	"time"
)

// fakeClock advances only when slept on, and remembers every wait, so a
// test can assert how long a client would have waited without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// NewFakeClock starts at 2025-03-01 10:00:30 UTC: half a minute into a
// minute, so minute-precision reset times land in the future.
func NewFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 10, 0, 30, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(max(d, 0))
	return nil
}

// Slept returns the waits so far, in order.
func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Total is the sum of the waits.
func (c *fakeClock) Total() time.Duration {
	var t time.Duration
	for _, d := range c.Slept() {
		t += d
	}
	return t
}
