package jira

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy decides which failed attempts of a call are made again and how
// long the client waits before each.
//
// What is retried:
//   - 429 always: Jira did not process the request. 503 with a Retry-After
//     (or X-RateLimit-Reset) the same way: the server says "come back", so
//     nothing was done.
//   - Other 5xx except 501, network failures (reset, EOF, timeouts) and a
//     200 whose JSON is truncated or malformed (once per call) only for
//     idempotent requests: GET, and POST to the search endpoints, which
//     read. A connection that never opened (dial, DNS) sent nothing, so it
//     is retried whatever the method.
//   - Nothing else: other 4xx come back at once with Jira's message.
//
// How long: what Jira asked for with Retry-After (seconds or an HTTP date),
// else X-RateLimit-Reset (an ISO 8601 time) on a 429 or 503, else capped
// exponential backoff with full jitter: a uniformly random wait in
// [0, min(MaxDelay, BaseDelay·2^(n-1))] before retry n.
//
// The zero value makes one attempt per call (no retries); New starts from
// DefaultRetryPolicy. Zero delays mean the defaults.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included; 0
	// and 1 both mean no retries.
	MaxAttempts int
	// MaxElapsed bounds the time one call spends, attempts and waits
	// together: a wait that would end past it is not started and the last
	// error is returned instead. 0 means no bound but the context's.
	MaxElapsed time.Duration
	// BaseDelay and MaxDelay shape the backoff when Jira names no wait.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest wait Jira may ask for that the client
	// sits out; a longer one (an hourly quota resetting in 40 minutes)
	// ends the call with the 429 or 503 and its RetryAfter set, so a job
	// scheduler can come back later instead of holding a worker. 0 means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Defaults of DefaultRetryPolicy.
const (
	// DefaultMaxAttempts is 1 + 4 retries: the maxRetries of Atlassian's
	// own response-handling pseudo code on its rate limiting page.
	DefaultMaxAttempts = 5
	// DefaultMaxElapsed keeps one call from holding an ingestion worker
	// for more than a couple of minutes; longer trouble is the job
	// scheduler's to retry.
	DefaultMaxElapsed = 2 * time.Minute
	// DefaultBaseDelay starts the backoff for 5xx and network faults,
	// which are usually over in a second or two.
	DefaultBaseDelay = 500 * time.Millisecond
	// DefaultMaxDelay is Atlassian's maxRetryDelay (30 s).
	DefaultMaxDelay = 30 * time.Second
	// DefaultMaxRetryAfter separates burst limits (Retry-After of seconds)
	// from quota limits (resets up to an hour away).
	DefaultMaxRetryAfter = time.Minute
)

// DefaultRetryPolicy is the policy New gives a client.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:   DefaultMaxAttempts,
		MaxElapsed:    DefaultMaxElapsed,
		BaseDelay:     DefaultBaseDelay,
		MaxDelay:      DefaultMaxDelay,
		MaxRetryAfter: DefaultMaxRetryAfter,
	}
}

func (p RetryPolicy) attempts() int { return max(p.MaxAttempts, 1) }

func (p RetryPolicy) maxRetryAfter() time.Duration {
	if p.MaxRetryAfter <= 0 {
		return DefaultMaxRetryAfter
	}
	return p.MaxRetryAfter
}

// backoff is the wait before retry n (1-based) when Jira named none: full
// jitter over a capped exponential, rnd in [0, 1).
func (p RetryPolicy) backoff(n int, rnd float64) time.Duration {
	base, ceil := p.BaseDelay, p.MaxDelay
	if base <= 0 {
		base = DefaultBaseDelay
	}
	if ceil <= 0 {
		ceil = DefaultMaxDelay
	}
	d := base
	for i := 1; i < n && d < ceil; i++ {
		d *= 2
	}
	d = min(d, ceil)
	if rnd < 0 || rnd >= 1 {
		rnd = 0
	}
	return time.Duration(rnd * float64(d))
}

// Clock is the time a client and its Limiter see: when to stop retrying,
// how long to wait. Tests inject one so nothing sleeps for real.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done, when it returns ctx.Err() at once.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readPOSTs are the POST endpoints that only read (a search sent as a body
// because the JQL or the field list would not fit a URL), so retrying them
// is as safe as retrying a GET.
var readPOSTs = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range []string{"2", "3", "latest"} {
		for _, p := range []string{"search", "search/jql", "search/approximate-count", "changelog/bulkfetch"} {
			m["/rest/api/"+v+"/"+p] = true
		}
	}
	return m
}()

func idempotent(method, path string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return readPOSTs[strings.TrimSuffix(path, "/")]
	}
	return false
}

// serverWait is the wait a response asked for: Retry-After on any status,
// or on a 429 or 503 without it, the time until X-RateLimit-Reset.
func serverWait(status int, h http.Header, now time.Time) time.Duration {
	if d := retryAfter(h, now); d > 0 {
		return d
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if d := rateLimitReset(h, now); d > 0 {
			return d
		}
		if status == http.StatusTooManyRequests {
			return dcRefill(h)
		}
	}
	return 0
}

// dcRefill is, on a Data Center 429 without Retry-After, the time until
// its bucket gets tokens again: X-RateLimit-Interval-Seconds (tokens come
// in batches of X-RateLimit-FillRate once an interval). 0 when absent.
func dcRefill(h http.Header) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSpace(h.Get("X-RateLimit-Interval-Seconds")), 64)
	if err != nil || secs <= 0 || secs > 3600 {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

// Jira Cloud documents X-RateLimit-Reset as ISO 8601 "yyyy-MM-ddTHH:mmZ"
// (minute precision); seconds and offsets are read too.
var resetLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04Z0700",
}

// rateLimitReset reads X-RateLimit-Reset as the wait until that time; 0 if
// absent, unreadable or already past (a minute-precision time can be).
func rateLimitReset(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("X-RateLimit-Reset"))
	if v == "" {
		return 0
	}
	for _, l := range resetLayouts {
		if t, err := time.Parse(l, v); err == nil {
			if t.After(now) {
				return t.Sub(now)
			}
			return 0
		}
	}
	return 0
}

// nearLimit reports Jira's warning that less than 20% of a budget remains
// (X-RateLimit-NearLimit), or the same for the points-based quota
// (X-Beta-RateLimit-NearLimit). Data Center sends no such warning: its
// bucket (X-RateLimit-FillRate every X-RateLimit-Interval-Seconds) is
// followed by the Limiter's pacing instead (Limiter.observe), and a client
// pacing at the fill rate always sees the bucket nearly empty.
func nearLimit(h http.Header) bool {
	for _, k := range []string{"X-RateLimit-NearLimit", "X-Beta-RateLimit-NearLimit"} {
		if strings.EqualFold(strings.TrimSpace(h.Get(k)), "true") {
			return true
		}
	}
	return false
}

// rateLimitReason is the limit a 429 names (jira-burst-based,
// jira-quota-tenant-based, …), kept short and credential-free.
func rateLimitReason(h http.Header) string {
	for _, k := range []string{"RateLimit-Reason", "X-RateLimit-Reason", "X-Beta-RateLimit-Reason"} {
		if v := strings.TrimSpace(h.Get(k)); v != "" {
			return truncate(redact(v), 100)
		}
	}
	return ""
}

// errEmptyBody is the cause when a 2xx has no body where JSON was expected.
var errEmptyBody = errors.New("empty response body where JSON was expected")

// errNotJSON is the cause when a 2xx body is not JSON (cut short, or a
// page of HTML), as opposed to JSON of an unexpected shape.
var errNotJSON = errors.New("response body is not valid JSON")

// ErrUnexpectedShape is the cause when a 2xx body is valid JSON that does
// not decode into the value asked for (a field of another type): a caller
// with a more lenient reading may try that.
var ErrUnexpectedShape = errors.New("response JSON of an unexpected shape")

// malformed reports a 2xx body that is not JSON at all, or was cut short:
// a transport fault worth one more try, unlike JSON of the wrong shape.
func malformed(err error) bool {
	var syn *json.SyntaxError
	return errors.As(err, &syn) || errors.Is(err, errNotJSON) || errors.Is(err, errEmptyBody)
}

// unsent reports a failure before any byte of the request left: a dial or
// DNS error. Retrying it is safe for any method.
func unsent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

// retryClass says whether a failed attempt may be made again, and why.
// It does not weigh budgets; call does.
func retryClass(e *Error, idem bool) (reason string, ok bool) {
	switch s := e.Status; {
	case s == http.StatusTooManyRequests:
		return "rate_limited", true
	case s == http.StatusServiceUnavailable && e.RetryAfter > 0:
		return "unavailable", true
	case s >= 500 && s != http.StatusNotImplemented:
		return "server_error", idem
	case s == 0 && IsCertificate(e.Err):
		return "", false // the same certificate comes back on every attempt
	case s == 0 && isNetworkErr(e.Err):
		return "network", idem || unsent(e.Err)
	case s >= 200 && s <= 299 && isNetworkErr(e.Err):
		return "network", idem // the body broke off mid-read
	case s >= 200 && s <= 299 && malformed(e.Err):
		return "malformed_body", idem
	}
	return "", false
}
