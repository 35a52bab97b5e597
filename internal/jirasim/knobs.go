package jirasim

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetLatency delays every REST answer by d (0 for none): the round trip
// to a real site, to benchmark an ingester's concurrency.
func (s *Site) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.latency = max(d, 0)
}

// SetRateLimit puts a token bucket in front of the site's REST API:
// perSecond tokens a second, at most burst saved up, one per
// authenticated call (perSecond <= 0 removes it). An empty bucket answers
// 429 as Jira Cloud's burst limiter does (see tooManyRequests); every
// answer carries X-RateLimit-Limit (burst) and X-RateLimit-Remaining,
// and X-RateLimit-NearLimit: true once under 20% remains.
func (s *Site) SetRateLimit(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perSecond <= 0 {
		s.rest.limiter = nil
		return
	}
	b := float64(max(burst, 1))
	s.rest.limiter = &bucket{rate: perSecond, burst: b, tokens: b, last: time.Now()}
}

// RateLimited is how many 429s the site has sent (limiter, faults and
// injections alike).
func (s *Site) RateLimited() int { return int(s.rest.rateLimited.Load()) }

type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take spends a token if there is one; else it says how long until one.
func (b *bucket) take(now time.Time) (ok bool, remaining int, wait time.Duration) {
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, int(b.tokens), 0
	}
	return false, 0, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// admit runs the rate limiter; false means a 429 was written.
func (s *Site) admit(w http.ResponseWriter) bool {
	s.mu.Lock()
	lim := s.rest.limiter
	if lim == nil {
		s.mu.Unlock()
		return true
	}
	ok, remaining, wait := lim.take(time.Now())
	burst := int(lim.burst)
	if s.isDC() {
		dcRateHeaders(w.Header(), lim, remaining, wait)
		s.mu.Unlock()
		if !ok {
			s.rest.rateLimited.Add(1)
			jiraError(w, http.StatusTooManyRequests, MsgRateLimited)
		}
		return ok
	}
	s.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(burst))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if float64(remaining) < 0.2*float64(burst) {
		h.Set("X-RateLimit-NearLimit", "true")
	}
	if ok {
		return true
	}
	s.tooManyRequests(w, wait)
	return false
}

// tooManyRequests answers 429 as Jira's burst limiter: Retry-After in whole
// seconds (at least 1), and X-RateLimit-Reset, "the timestamp (in ISO 8601
// format) when the rate limit will reset, calculated as the request
// timestamp plus the Retry-After period", in Atlassian's documented form
// yyyy-MM-ddTHH:mmZ — minute precision, so it can lie up to a minute in
// the past: wait for Retry-After, not for the reset.
func (s *Site) tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	s.rest.rateLimited.Add(1)
	secs := max(1, int((wait+time.Second-1)/time.Second))
	h := w.Header()
	if s.isDC() {
		// Data Center's limiter says only how long to wait.
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("X-RateLimit-Remaining", "0")
		jiraError(w, http.StatusTooManyRequests, MsgRateLimited)
		return
	}
	h.Set("Retry-After", strconv.Itoa(secs))
	if h.Get("X-RateLimit-Limit") == "" {
		h.Set("X-RateLimit-Limit", "100")
	}
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-NearLimit", "true")
	h.Set("X-RateLimit-Reset", time.Now().Add(time.Duration(secs)*time.Second).UTC().Format("2006-01-02T15:04Z"))
	h.Set("RateLimit-Reason", "jira-burst-based")
	jiraError(w, http.StatusTooManyRequests, MsgRateLimited)
}

// InjectKind is a failure Site.Inject plays.
type InjectKind int

const (
	// InjectServerError answers Injection.Status (default 503, with
	// Retry-After: 1 as Jira sends on some 503s).
	InjectServerError InjectKind = iota + 1
	// InjectReset closes the connection without an answer.
	InjectReset
	// InjectTruncated announces the full Content-Length, sends half the
	// body and closes the connection.
	InjectTruncated
	// InjectMalformed answers 200 with half the JSON followed by a
	// proxy's HTML page, under the JSON content type.
	InjectMalformed
	// InjectSlow answers after Injection.Delay (default the Atlassian's
	// SlowDelay), or never if the client gives up first.
	InjectSlow
	// InjectRateLimited answers 429 as RESTFaultRateLimited does.
	InjectRateLimited
)

// Injection is a fault played on some authenticated REST calls.
type Injection struct {
	Kind InjectKind
	// Path limits it to calls whose path (relative to the context path)
	// starts with Path; Method, when set, to that method.
	Path, Method string
	// Probability of striking each matching call; 0 means every call.
	Probability float64
	// Count is how many times it strikes before it is spent; 0 means
	// without end (until ClearInjections).
	Count int
	// Status for InjectServerError; Delay for InjectSlow.
	Status int
	Delay  time.Duration
}

type injection struct {
	Injection
	fired int
}

// Inject adds a fault; several may be active, the first that strikes wins.
func (s *Site) Inject(inj Injection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.injections = append(s.rest.injections, &injection{Injection: inj})
}

// ClearInjections removes every injected fault.
func (s *Site) ClearInjections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.injections = nil
}

// Injected is how many calls an injected fault has struck.
func (s *Site) Injected() int { return int(s.rest.injected.Load()) }

// SetFaultSeed seeds the random draws of injected faults' probabilities.
func (s *Site) SetFaultSeed(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rest.fsrc.Seed(seed, seed^0x5851F42D4C957F2D)
}

func (s *Site) pickInjection(method, rel string) *Injection {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inj := range s.rest.injections {
		if inj.Count > 0 && inj.fired >= inj.Count {
			continue
		}
		if !strings.HasPrefix(rel, inj.Path) || (inj.Method != "" && !strings.EqualFold(inj.Method, method)) {
			continue
		}
		if inj.Probability > 0 && s.rest.frng.Float64() >= inj.Probability {
			continue
		}
		inj.fired++
		s.rest.injected.Add(1)
		cp := inj.Injection
		return &cp
	}
	return nil
}
