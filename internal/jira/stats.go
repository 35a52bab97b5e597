package jira

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Stats is what a client's calls cost, for a run's statistics.
type Stats struct {
	Requests      int64         // attempts sent (a call with two retries counts three)
	Retries       int64         // attempts made again after a failure
	RateLimited   int64         // 429 answers
	ServerErrors  int64         // 5xx answers
	NetworkErrors int64         // attempts that got no answer, or lost it mid-body
	NearLimit     int64         // answers warning that a rate budget is nearly spent
	RetryWait     time.Duration // time spent waiting before retries
	QueueWait     time.Duration // time spent waiting for the Limiter (a slot or a token)
}

// Counters accumulates Stats. It is safe for concurrent use and may be
// shared by several clients (all the sites of one ingestion run, say); New
// gives each client its own unless WithCounters says otherwise.
type Counters struct {
	requests, retries, rateLimited, serverErrors, networkErrors, nearLimit atomic.Int64
	retryWait, queueWait                                                   atomic.Int64 // nanoseconds
}

// Snapshot reads the counters; a nil *Counters reads as zero.
func (c *Counters) Snapshot() Stats {
	if c == nil {
		return Stats{}
	}
	return Stats{
		Requests:      c.requests.Load(),
		Retries:       c.retries.Load(),
		RateLimited:   c.rateLimited.Load(),
		ServerErrors:  c.serverErrors.Load(),
		NetworkErrors: c.networkErrors.Load(),
		NearLimit:     c.nearLimit.Load(),
		RetryWait:     time.Duration(c.retryWait.Load()),
		QueueWait:     time.Duration(c.queueWait.Load()),
	}
}

// attempted counts one attempt and what came of it (e nil on success).
func (c *Counters) attempted(e *Error, h http.Header) {
	if c == nil {
		return
	}
	c.requests.Add(1)
	if nearLimit(h) {
		c.nearLimit.Add(1)
	}
	if e == nil {
		return
	}
	switch {
	case e.Status == http.StatusTooManyRequests:
		c.rateLimited.Add(1)
	case e.Status >= 500:
		c.serverErrors.Add(1)
	case isNetworkErr(e.Err):
		c.networkErrors.Add(1)
	}
}

func (c *Counters) retried(wait time.Duration) {
	if c != nil {
		c.retries.Add(1)
		c.retryWait.Add(int64(wait))
	}
}

func (c *Counters) queued(wait time.Duration) {
	if c != nil && wait > 0 {
		c.queueWait.Add(int64(wait))
	}
}
