// Package jira owns the app's REST client for Jira: building each request
// under the site's base URL, authenticating it (the Connect app's JWT today;
// HTTP Basic and bearer tokens for API tokens and Data Center), bounding what
// it reads back, and turning every failure into one *Error that names the
// call by method and path and never carries a credential.
//
// Each call is one attempt: a fresh request, signed for that attempt, sent
// once. Retries with backoff and adaptive concurrency belong around
// Client.attempt, which is why a request body is kept as bytes (replayable)
// and an *Error keeps the status and Retry-After a policy needs.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
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
// so one process talking to many sites keeps one connection pool.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return t
}()

// Client calls one Jira site's REST API.
//
// The zero values of HTTP, MaxResponseBytes and UserAgent mean the defaults;
// a nil Auth sends requests without credentials. A Client is safe for
// concurrent use if its Auth is.
type Client struct {
	BaseURL          *url.URL // the site's base URL; its path (a context path such as /jira) prefixes every API path
	Auth             Authenticator
	HTTP             *http.Client
	MaxResponseBytes int64
	UserAgent        string
}

// Option configures a Client built by New.
type Option func(*options)

type options struct {
	http      *http.Client
	timeout   time.Duration
	maxBytes  int64
	userAgent string
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
	o := options{timeout: DefaultTimeout, maxBytes: DefaultMaxResponseBytes, userAgent: DefaultUserAgent}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBytes <= 0 {
		return nil, errors.New("jira: MaxResponseBytes must be positive")
	}
	h := o.http
	if h == nil {
		h = newHTTPClient(o.timeout)
	} else if o.timeout != DefaultTimeout {
		c := *h
		c.Timeout = o.timeout
		h = &c
	}
	return &Client{BaseURL: u, Auth: auth, HTTP: h, MaxResponseBytes: o.maxBytes, UserAgent: o.userAgent}, nil
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
// discards it). path is the API path, e.g. /rest/api/3/myself.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	return c.call(ctx, http.MethodGet, path, query, nil, out)
}

// Post calls POST path?query with body encoded as JSON (nil for none) and
// decodes a JSON response into out (nil discards it).
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

// call is where a retry policy will go: it may run attempt again, since the
// body is bytes and attempt signs each request afresh.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
		return &Error{Method: method, Path: path, Err: errors.New("API path must start with / and have no query or fragment")}
	}
	if c.BaseURL == nil {
		return &Error{Method: method, Path: path, Err: errors.New("client has no base URL")}
	}
	return c.attempt(ctx, method, path, query, body, out)
}

// attempt sends one request and reads its response. Every error it returns
// is an *Error.
func (c *Client) attempt(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	fail := func(status int, err error) error {
		return &Error{Status: status, Method: method, Path: path, Err: err}
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
	if c.Auth != nil {
		if err := c.Auth.Authenticate(req, basePath); err != nil {
			return fail(0, fmt.Errorf("authenticating request: %w", err))
		}
	}
	h := c.HTTP
	if h == nil {
		h = defaultHTTP
	}
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
		}
		return fail(0, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Status: resp.StatusCode, Method: method, Path: path, RetryAfter: retryAfter(resp.Header, time.Now())}
		// An error body is read only as far as a message can reach; a
		// longer one is not Jira's error shape.
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		if err == nil && len(data) <= maxErrorBody {
			e.Messages = jiraMessages(data)
		}
		return e
	}

	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	if resp.ContentLength > limit {
		return fail(resp.StatusCode, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes", ErrResponseTooLarge, resp.ContentLength, limit))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fail(resp.StatusCode, fmt.Errorf("reading response body: %w", err))
	}
	if int64(len(data)) > limit {
		return fail(resp.StatusCode, fmt.Errorf("%w: more than the limit of %d bytes", ErrResponseTooLarge, limit))
	}
	if out == nil {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(resp.StatusCode, errors.New("empty response body where JSON was expected"))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fail(resp.StatusCode, decodeError(resp.Header.Get("Content-Type"), err))
	}
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
