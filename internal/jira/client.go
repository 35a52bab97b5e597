// Package jira owns the app's REST client for Jira: building each request
// under the site's base URL, authenticating it (the Connect app's JWT today;
// HTTP Basic and bearer tokens for API tokens and Data Center), bounding what
// it reads back, and turning every failure into one *Error that names the
// call by method and path and never carries a credential.
//
// A call is one or more attempts: each a fresh request, signed afresh (a
// Connect JWT's exp is short), from a body kept as bytes so it can be sent
// again. Client.call wraps Client.attempt with the RetryPolicy (429 and 503
// waited out as Jira asks, transient faults retried with jittered backoff)
// and passes every attempt through the site's Limiter, which adapts how
// many requests are in flight (AIMD) to the answers.
package jira

import (
	"bytes"
	"context"
	"crypto/tls"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
)

const (
	// DefaultTimeout bounds one request, from dial to the last body byte.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseBytes caps a response body. A page of 100 issues
	// with every field and a changelog stays well under it.
	DefaultMaxResponseBytes int64 = 32 << 20
	// DefaultUserAgent names the app to Jira's logs and support.
	DefaultUserAgent = "sei-jira-connect/1.0"
)

// defaultTransport is shared by every client built without an HTTP option,
// so one process talking to many sites keeps one connection pool, with as
// many idle keep-alive connections per site as a Limiter lets requests fly.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = DefaultMaxConcurrency
	return t
}()

// Client calls one Jira site's REST API.
//
// The zero values of HTTP, MaxResponseBytes and UserAgent mean the defaults;
// a nil Auth sends requests without credentials. A Client built as a struct
// literal makes one attempt per call, ungated and uncounted, until Retry,
// Limiter and Counters are set; New sets all three. A Client is safe for
// concurrent use if its Auth is.
type Client struct {
	BaseURL          *url.URL // the site's base URL; its path (a context path such as /jira) prefixes every API path
	Auth             Authenticator
	HTTP             *http.Client
	MaxResponseBytes int64
	UserAgent        string

	Retry    RetryPolicy
	Limiter  *Limiter       // gates every request to the site; share one per site
	Counters *Counters      // what the calls cost; read with Stats
	Clock    Clock          // nil: the system clock
	Rand     func() float64 // [0, 1) for backoff jitter, safe for concurrent use; nil: math/rand/v2
	Logger   *slog.Logger   // retries and limit changes at debug level; nil: silent
}

// Option configures a Client built by New.
type Option func(*options)

type options struct {
	http       *http.Client
	timeout    time.Duration
	maxBytes   int64
	userAgent  string
	retry      RetryPolicy
	limiter    *Limiter
	limiterSet bool
	counters   *Counters
	clock      Clock
	rand       func() float64
	logger     *slog.Logger
	tls        *tls.Config
}

// WithHTTPClient sends requests through h instead of the default client
// (which has DefaultTimeout and does not follow redirects).
func WithHTTPClient(h *http.Client) Option { return func(o *options) { o.http = h } }

// WithTimeout sets the per-request timeout (on a copy of the HTTP client
// given with WithHTTPClient, if any).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxResponseBytes caps response bodies at n bytes.
func WithMaxResponseBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.userAgent = ua } }

// WithRetryPolicy replaces DefaultRetryPolicy; RetryPolicy{MaxAttempts: 1}
// turns retries off.
func WithRetryPolicy(p RetryPolicy) Option { return func(o *options) { o.retry = p } }

// WithLimiter gates the client's requests with l, which should be the one
// Limiter of the site, shared by every client that calls it. nil turns
// gating off. Without this option New gives the client a Limiter of its own
// with the defaults. The default transport keeps DefaultMaxConcurrency idle
// connections per host; a Limiter allowing more wants its own transport
// (WithHTTPClient) with MaxIdleConnsPerHost to match.
func WithLimiter(l *Limiter) Option {
	return func(o *options) { o.limiter, o.limiterSet = l, true }
}

// WithCounters counts the client's calls into c, which may be shared.
func WithCounters(c *Counters) Option { return func(o *options) { o.counters = c } }

// WithClock sets the clock of retries (and of the default Limiter).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithRand sets the source of backoff jitter, returning values in [0, 1).
func WithRand(f func() float64) Option { return func(o *options) { o.rand = f } }

// WithLogger logs retries and limit changes at debug level. Lines name the
// call by method and API path and never carry a credential or a query.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// New returns a client for the site at baseURL (e.g. https://acme.atlassian.net,
// or https://jira.example.com/jira for a site under a context path).
func New(baseURL string, auth Authenticator, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("jira: base URL %q does not parse", baseURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("jira: base URL %q: scheme must be http or https", baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("jira: base URL %q has no host", baseURL)
	case u.User != nil:
		// Not echoed: it holds credentials.
		return nil, errors.New("jira: base URL must not carry credentials; use an Authenticator")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("jira: base URL %s must not have a query or fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	o := options{timeout: DefaultTimeout, maxBytes: DefaultMaxResponseBytes, userAgent: DefaultUserAgent, retry: DefaultRetryPolicy()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBytes <= 0 {
		return nil, errors.New("jira: MaxResponseBytes must be positive")
	}
	h := o.http
	switch {
	case o.tls != nil:
		var err error
		if h, err = withTLS(h, o.tls, o.timeout); err != nil {
			return nil, err
		}
	case h == nil:
		h = newHTTPClient(o.timeout)
	case o.timeout != DefaultTimeout:
		c := *h
		c.Timeout = o.timeout
		h = &c
	}
	lim := o.limiter
	if !o.limiterSet {
		lim = NewLimiter(LimiterConfig{Clock: o.clock})
	}
	ctr := o.counters
	if ctr == nil {
		ctr = new(Counters)
	}
	return &Client{
		BaseURL: u, Auth: auth, HTTP: h, MaxResponseBytes: o.maxBytes, UserAgent: o.userAgent,
		Retry: o.retry, Limiter: lim, Counters: ctr, Clock: o.clock, Rand: o.rand, Logger: o.logger,
	}, nil
}

// Stats reads the client's counters.
func (c *Client) Stats() Stats { return c.Counters.Snapshot() }

func (c *Client) clock() Clock {
	if c.Clock == nil {
		return SystemClock{}
	}
	return c.Clock
}

func (c *Client) rand() float64 {
	if c.Rand == nil {
		return rand.Float64()
	}
	return c.Rand()
}

// defaultHTTP serves Clients built as struct literals without an HTTP client.
var defaultHTTP = newHTTPClient(DefaultTimeout)

func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: defaultTransport,
		Timeout:   timeout,
		// A redirect is answered, not followed: the Authorization header
		// must not travel to wherever a Location points, and a signed qsh
		// would not match the new path anyway. The 3xx becomes an *Error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Get calls GET path?query and decodes a JSON response into out (nil
// discards it). path is the API path, e.g. /rest/api/3/myself. Failures are
// retried as the client's RetryPolicy allows.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, http.MethodGet, path, query, nil, out)
}

// Post calls POST path?query with body encoded as JSON (nil for none) and
// decodes a JSON response into out (nil discards it). Only a 429, a 503
// with Retry-After and a connection that never opened are retried, unless
// path is a search (a read).
func (c *Client) Post(ctx context.Context, path string, query url.Values, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return &Error{Method: http.MethodPost, Path: path, Err: fmt.Errorf("encoding request body: %w", err)}
		}
	}
	return c.call(ctx, http.MethodPost, path, query, b, out)
}

// call makes the attempts of one call: each admitted by the Limiter, each
// answer fed back to it, failures retried as the RetryPolicy allows.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return &Error{Method: method, Path: path, Err: errors.New("API path must start with / and have no query or fragment")}
	}
	if c.BaseURL == nil {
		return &Error{Method: method, Path: path, Err: errors.New("client has no base URL")}
	}
	clk := c.clock()
	start := clk.Now()
	idem := idempotent(method, path)
	malformedRetried := false
	// A cached token (ADFS) that Jira stops accepting before its stated
	// expiry is dropped and the attempt made once more with a fresh one.
	auth, renewable := c.Auth, (*renewingAuth)(nil)
	if r, ok := c.Auth.(tokenRenewer); ok {
		renewable = &renewingAuth{tokenRenewer: r}
		auth = renewable
	}
	renewed := false
	for n := 1; ; n++ {
		p, queued, err := c.Limiter.acquire(ctx)
		c.Counters.queued(queued)
		if err != nil {
			return &Error{Method: method, Path: path, Attempts: n - 1, Err: fmt.Errorf("waiting for a request slot: %w", err)}
		}
		h, sent, err := c.attempt(ctx, auth, method, path, query, body, out)
		var e *Error
		if err != nil {
			e = err.(*Error) // attempt returns nothing else
			e.Attempts = n
		}
		if sent {
			c.Counters.attempted(e, h)
		}
		c.Limiter.observe(h)
		if from, to := c.Limiter.release(p, loadSignal(e, h)); from != to && c.Logger != nil {
			c.Logger.LogAttrs(ctx, slog.LevelDebug, "jira: concurrency limit changed",
				slog.String("method", method), slog.String("path", path), slog.Int("from", from), slog.Int("to", to))
		}
		if e == nil {
			return nil
		}
		if e.Status == http.StatusTooManyRequests {
			c.Limiter.Pause(e.RetryAfter) // the whole site waits, not only this call
		}
		if ctx.Err() != nil {
			return e
		}
		if renewable != nil && !renewed && e.Status != http.StatusForbidden && errors.Is(e, ErrCredentialsRejected) && renewable.used != "" {
			renewed = true
			renewable.invalidate(renewable.used)
			continue
		}
		reason, ok := retryClass(e, idem)
		if !ok || n >= c.Retry.attempts() {
			return e
		}
		if reason == "malformed_body" {
			if malformedRetried {
				return e
			}
			malformedRetried = true
		}
		wait := e.RetryAfter
		if wait > 0 {
			if wait > c.Retry.maxRetryAfter() {
				return e // too long to hold a worker: the caller reschedules
			}
		} else {
			wait = c.Retry.backoff(n, c.rand())
		}
		if c.Retry.MaxElapsed > 0 && clk.Now().Sub(start)+wait > c.Retry.MaxElapsed {
			return e
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return e // the caller would give up first: answer now
		}
		c.Counters.retried(wait)
		if c.Logger != nil {
			c.Logger.LogAttrs(ctx, slog.LevelDebug, "jira: retrying",
				slog.String("method", method), slog.String("path", path), slog.Int("attempt", n),
				slog.Int("status", e.Status), slog.String("reason", reason), slog.Duration("wait", wait),
				slog.String("error", e.Error()))
		}
		if err := clk.Sleep(ctx, wait); err != nil {
			return &Error{Method: method, Path: path, Attempts: n, Err: fmt.Errorf("waiting %s to retry: %w", wait, err)}
		}
	}
}

// loadSignal is what an attempt's answer says about the site's load.
func loadSignal(e *Error, h http.Header) signal {
	switch {
	case nearLimit(h):
		return sigCongested
	case e == nil:
		return sigSuccess
	case e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable:
		return sigCongested
	case e.Status >= 200 && e.Status <= 299:
		return sigSuccess // answered; the body was the trouble
	}
	return sigNeutral
}

// attempt sends one request and reads its response, returning the
// response's header (nil when none came) and whether a request went out at
// all (not when building or signing it failed). Every error it returns is
// an *Error.
func (c *Client) attempt(ctx context.Context, auth Authenticator, method, path string, query url.Values, body []byte, out any) (header http.Header, sent bool, _ error) {
	fail := func(status int, err error) (http.Header, bool, error) {
		return header, sent, &Error{Status: status, Method: method, Path: path, Err: err}
	}
	basePath := strings.TrimRight(c.BaseURL.Path, "/")
	u := &url.URL{Scheme: c.BaseURL.Scheme, Host: c.BaseURL.Host, Path: basePath + path, RawQuery: query.Encode()}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		// NewRequest's errors quote the URL; the cause alone is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(0, fmt.Errorf("building request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	ua := c.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		if err := auth.Authenticate(req, basePath); err != nil {
			return fail(0, fmt.Errorf("authenticating request: %w", err))
		}
	}
	h := c.HTTP
	if h == nil {
		h = defaultHTTP
	}
	sent = true
	resp, err := h.Do(req)
	if err != nil {
		// *url.Error's message holds the full URL, query and all; keep
		// only the cause (dial, DNS, TLS, timeout, cancellation).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		switch {
		case ctx.Err() != nil && !isNetworkErr(err):
			err = ctx.Err()
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("connection closed without a response: %w", err)
		case IsCertificate(err):
			err = fmt.Errorf("the site's TLS certificate is not trusted (trust its CA, or skip verification where that is allowed): %w", err)
		}
		return fail(0, err)
	}
	defer resp.Body.Close()
	header = resp.Header

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{
			Status: resp.StatusCode, Method: method, Path: path,
			RetryAfter: serverWait(resp.StatusCode, resp.Header, c.clock().Now()),
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			e.RateLimitReason = rateLimitReason(resp.Header)
		}
		e.Anonymous, e.DeniedReason = authAnswer(resp.StatusCode, resp.Header)
		// An error body is read only as far as a message can reach; a
		// longer one is not Jira's error shape.
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		if err == nil && len(data) <= maxErrorBody {
			e.Messages = jiraMessages(data)
		}
		return header, sent, e
	}

	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	if resp.ContentLength > limit {
		return fail(resp.StatusCode, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes", ErrResponseTooLarge, resp.ContentLength, limit))
	}
	buf := getBodyBuffer(resp.ContentLength)
	defer putBodyBuffer(buf) // decoding copies what it keeps (go-json copies its input, strings and raw values)
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	data := buf.Bytes()
	if err != nil {
		return fail(resp.StatusCode, fmt.Errorf("reading response body: %w", err))
	}
	if int64(len(data)) > limit {
		return fail(resp.StatusCode, fmt.Errorf("%w: more than the limit of %d bytes", ErrResponseTooLarge, limit))
	}
	if out == nil {
		return header, sent, nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(resp.StatusCode, errEmptyBody)
	}
	// The body is decoded into a fresh value that replaces *out only when
	// the whole body decoded: a truncated body leaves out as it was for the
	// next attempt. (go-json decodes as it scans, unlike encoding/json, and
	// at a third of the CPU: decoding search pages was half of a sync's.)
	if err := decodeInto(data, out); err != nil {
		// go-json's error types do not tell a cut body from a wrong
		// shape; the standard validator does, and runs only on failure.
		if !stdjson.Valid(data) {
			err = fmt.Errorf("%w: %w", errNotJSON, err)
		} else {
			err = fmt.Errorf("%w: %w", ErrUnexpectedShape, err)
		}
		return fail(resp.StatusCode, decodeError(resp.Header.Get("Content-Type"), err))
	}
	return header, sent, nil
}

// bodyBuffers recycles response bodies: a page of issues is megabytes,
// read by doubling (io.ReadAll) it was a quarter of a sync's allocations,
// and garbage is what drives the ingester's peak memory.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody: larger buffers are left to the collector rather than
// held by the pool.
const maxPooledBody = 8 << 20

func getBodyBuffer(contentLength int64) *bytes.Buffer {
	b := bodyBuffers.Get().(*bytes.Buffer)
	b.Reset()
	if contentLength > 0 && contentLength <= maxPooledBody {
		b.Grow(int(contentLength) + bytes.MinRead) // ReadFrom wants MinRead spare to see EOF without growing
	}
	return b
}

func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyBuffers.Put(b)
	}
}

// decodeInto unmarshals data into out, a non-nil pointer, all or nothing.
func decodeInto(data []byte, out any) error {
	dst := reflect.ValueOf(out)
	if dst.Kind() != reflect.Pointer || dst.IsNil() {
		return json.Unmarshal(data, out) // reports the misuse
	}
	fresh := reflect.New(dst.Type().Elem())
	if err := json.Unmarshal(data, fresh.Interface()); err != nil {
		return err
	}
	dst.Elem().Set(fresh.Elem())
	return nil
}

// decodeError says what was expected and what came, without quoting the
// body: a login page or a proxy's HTML is recognisable by its content type.
func decodeError(contentType string, err error) error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "" {
		mt = "none"
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return fmt.Errorf("decoding response body: expected JSON, got Content-Type %s: %w", mt, err)
	}
	return fmt.Errorf("decoding JSON response body: %w", err)
}
