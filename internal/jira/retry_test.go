package jira_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jira"
)

// instantClock reads the real time but waits no time at all.
type instantClock struct{}

func (instantClock) Now() time.Time                                   { return time.Now() }
func (instantClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// seen is one request as a scripted server received it.
type seen struct {
	Method, Path, RawQuery, Auth string
	Query                        url.Values
	Body                         []byte
}

// scripted is an httptest server answering its n-th request with the n-th
// handler (the last one from then on), recording every request.
type scripted struct {
	*httptest.Server
	mu       sync.Mutex
	handlers []http.HandlerFunc
	reqs     []seen
}

func serve(t *testing.T, handlers ...http.HandlerFunc) *scripted {
	t.Helper()
	s := &scripted{handlers: handlers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.URL.Query(), body})
		h := s.handlers[min(n, len(s.handlers)-1)]
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// jsonAnswer answers status with body and extra headers ("Name: value").
func jsonAnswer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func jiraErr(status int, msg string, headers ...string) http.HandlerFunc {
	b, _ := json.Marshal(map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
	return jsonAnswer(status, string(b), headers...)
}

const meJSON = `{"accountId":"557058:app","accountType":"app","active":true,"timeZone":"Europe/Berlin"}`

var ok200 = jsonAnswer(200, meJSON)

// reset drops the connection with a TCP RST, as a load balancer that gives
// up on a request does.
func reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// claims decodes a JWT's payload, unverified.
func claims(t *testing.T, authorization string) map[string]any {
	t.Helper()
	tok, ok := strings.CutPrefix(authorization, "JWT ")
	parts := strings.Split(tok, ".")
	if !ok || len(parts) != 3 {
		t.Fatalf("Authorization %q is not a JWT", authorization)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const testSecret = "shared-secret-0123456789abcdef"

func TestRetryAfterStorm(t *testing.T) {
	t.Parallel()
	clk := jira.NewFakeClock()
	srv := serve(t,
		jiraErr(429, "Rate limit exceeded.", "Retry-After: 3", "RateLimit-Reason: jira-burst-based"),
		jiraErr(429, "Rate limit exceeded.", "Retry-After: 1", "X-RateLimit-Reset: 2099-01-01T00:00Z"), // Retry-After wins
		func(w http.ResponseWriter, r *http.Request) {
			// An HTTP date two seconds ahead of the client's clock.
			w.Header().Set("Retry-After", clk.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			jiraErr(429, "Rate limit exceeded.")(w, r)
		},
		ok200,
	)
	auth := jira.ConnectJWT{AppKey: "io.sei.test", SharedSecret: []byte(testSecret), Now: clk.Now}
	c := newClient(t, srv.URL, auth, jira.WithClock(clk))
	me, err := c.Myself(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if me.TimeZone != "Europe/Berlin" {
		t.Errorf("myself = %+v", me)
	}
	if got, want := clk.Slept(), []time.Duration{3 * time.Second, time.Second, 2 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waited %v, want exactly %v", got, want)
	}
	st := c.Stats()
	if st.Requests != 4 || st.Retries != 3 || st.RateLimited != 3 || st.RetryWait != 6*time.Second {
		t.Errorf("stats = %+v", st)
	}

	// Every attempt was signed afresh: the same qsh, a later iat and exp.
	reqs := srv.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	u, _ := url.Parse(srv.URL + jira.PathMyself)
	wantQSH := atlassianjwt.QSH(http.MethodGet, u, "")
	var lastIat, lastExp float64
	for i, r := range reqs {
		cl := claims(t, r.Auth)
		if cl["qsh"] != wantQSH || cl["iss"] != "io.sei.test" {
			t.Errorf("attempt %d: claims %v, want qsh %s", i+1, cl, wantQSH)
		}
		iat, exp := cl["iat"].(float64), cl["exp"].(float64)
		if i > 0 && (iat <= lastIat || exp <= lastExp) {
			t.Errorf("attempt %d: iat %v exp %v not after %v %v: not re-signed", i+1, iat, exp, lastIat, lastExp)
		}
		lastIat, lastExp = iat, exp
	}
	if got := claims(t, reqs[3].Auth)["iat"].(float64) - claims(t, reqs[0].Auth)["iat"].(float64); got != 6 {
		t.Errorf("last attempt signed %vs after the first, want 6", got)
	}
}

func TestRateLimitReset(t *testing.T) {
	t.Parallel()
	clk := jira.NewFakeClock() // 10:00:30
	srv := serve(t,
		// Jira's documented minute precision: 30 s ahead.
		jiraErr(429, "Rate limit exceeded.", "X-RateLimit-Reset: 2025-03-01T10:01Z"),
		// RFC 3339 with seconds, on a 503: 10 s after 10:01:00.
		jiraErr(503, "Service unavailable.", "X-RateLimit-Reset: 2025-03-01T10:01:10Z"),
		// Already past: no hint, so backoff (jitter 0.5 of 500 ms·2²).
		jiraErr(429, "Rate limit exceeded.", "X-RateLimit-Reset: 2025-03-01T09:00Z"),
		ok200,
	)
	c := newClient(t, srv.URL, nil, jira.WithClock(clk), jira.WithRand(func() float64 { return 0.5 }))
	if _, err := c.Myself(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := clk.Slept(), []time.Duration{30 * time.Second, 10 * time.Second, time.Second}; !slices.Equal(got, want) {
		t.Errorf("waited %v, want %v", got, want)
	}
}

func TestServerErrorsRetried(t *testing.T) {
	t.Parallel()
	policy := jira.RetryPolicy{MaxAttempts: 6, BaseDelay: time.Second, MaxDelay: 3 * time.Second}
	clk := jira.NewFakeClock()
	srv := serve(t,
		jiraErr(503, "Service unavailable."), // no hint: backoff 0.5·1s
		jiraErr(502, "Bad gateway."),         // 0.5·2s
		jiraErr(500, "Internal server error."),
		jiraErr(504, "Gateway timeout."), // 0.5·min(8s, 3s)
		jiraErr(503, "Service unavailable.", "Retry-After: 4"),
		ok200,
	)
	c := newClient(t, srv.URL, nil, jira.WithClock(clk), jira.WithRetryPolicy(policy), jira.WithRand(func() float64 { return 0.5 }))
	if _, err := c.Myself(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 1500 * time.Millisecond, 4 * time.Second}
	if got := clk.Slept(); !slices.Equal(got, want) {
		t.Errorf("waited %v, want %v", got, want)
	}
	if st := c.Stats(); st.ServerErrors != 5 || st.Retries != 5 {
		t.Errorf("stats = %+v", st)
	}

	t.Run("attempts run out", func(t *testing.T) {
		srv := serve(t, jiraErr(500, "Internal server error."))
		clk := jira.NewFakeClock()
		_, err := newClient(t, srv.URL, nil, jira.WithClock(clk)).Myself(context.Background())
		var je *jira.Error
		if !errors.As(err, &je) || je.Status != 500 || je.Attempts != jira.DefaultMaxAttempts || !jira.IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
		if !strings.HasSuffix(err.Error(), fmt.Sprintf("(after %d attempts)", jira.DefaultMaxAttempts)) || je.Messages[0] != "Internal server error." {
			t.Errorf("err = %q", err)
		}
		if len(srv.requests()) != jira.DefaultMaxAttempts {
			t.Errorf("%d requests", len(srv.requests()))
		}
		for i, d := range clk.Slept() { // full jitter never exceeds its cap
			if limit := jira.DefaultBaseDelay << i; d < 0 || d > limit {
				t.Errorf("wait %d = %v, above %v", i+1, d, limit)
			}
		}
	})
	t.Run("501 is not retried", func(t *testing.T) {
		srv := serve(t, jiraErr(501, "Not implemented."))
		_, err := newClient(t, srv.URL, nil).Myself(context.Background())
		if jira.StatusOf(err) != 501 || len(srv.requests()) != 1 || jira.IsTransient(err) {
			t.Errorf("err = %v after %d requests", err, len(srv.requests()))
		}
	})
}

func TestClientErrorsNotRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		msg    string
		is     func(error) bool
	}{
		{400, "The value 'x' is invalid for the parameter 'maxResults'.", func(err error) bool { return jira.StatusOf(err) == 400 }},
		{401, "Client must be authenticated to access this resource.", jira.IsUnauthorized},
		{403, "You do not have permission to search.", jira.IsForbidden},
		{404, "Issue does not exist or you do not have permission to see it.", jira.IsNotFound},
		{409, "Conflict.", func(err error) bool { return jira.StatusOf(err) == 409 }},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			t.Parallel()
			srv := serve(t, jiraErr(tc.status, tc.msg, "Retry-After: 1"), ok200)
			clk := jira.NewFakeClock()
			c := newClient(t, srv.URL, nil, jira.WithClock(clk))
			_, err := c.Myself(context.Background())
			var je *jira.Error
			if !tc.is(err) || !errors.As(err, &je) {
				t.Fatalf("err = %v", err)
			}
			if len(je.Messages) != 1 || je.Messages[0] != tc.msg || je.Attempts != 1 || jira.IsTransient(err) {
				t.Errorf("error = %#v", je)
			}
			if want := fmt.Sprintf("jira: GET %s: %d %s: %s", jira.PathMyself, tc.status, http.StatusText(tc.status), tc.msg); err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
			if n := len(srv.requests()); n != 1 || len(clk.Slept()) != 0 {
				t.Errorf("%d requests, waits %v: retried", n, clk.Slept())
			}
		})
	}
}

func TestPostRetries(t *testing.T) {
	t.Parallel()
	body := map[string]any{"jql": "project = SEI", "fields": []string{"summary"}}
	search := `{"issues":[],"isLast":true}`
	for _, tc := range []struct {
		name     string
		path     string
		first    http.HandlerFunc
		requests int
	}{
		{"search: 500 retried", jira.PathSearchJQL, jiraErr(500, "boom"), 2},
		{"search: reset retried", jira.PathSearchJQL, reset, 2},
		{"write: 429 retried", "/rest/api/3/issue", jiraErr(429, "slow down", "Retry-After: 1"), 2},
		{"write: 503 with Retry-After retried", "/rest/api/3/issue", jiraErr(503, "later", "Retry-After: 1"), 2},
		{"write: 503 without Retry-After not retried", "/rest/api/3/issue", jiraErr(503, "down"), 1},
		{"write: 500 not retried", "/rest/api/3/issue", jiraErr(500, "boom"), 1},
		{"write: reset not retried", "/rest/api/3/issue", reset, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tc.first, jsonAnswer(200, search))
			err := newClient(t, srv.URL, nil).Post(context.Background(), tc.path, nil, body, &jira.SearchPage{})
			reqs := srv.requests()
			if len(reqs) != tc.requests || (err == nil) != (tc.requests == 2) {
				t.Fatalf("%d requests, err %v", len(reqs), err)
			}
			for _, r := range reqs {
				if r.Method != http.MethodPost || string(r.Body) != string(reqs[0].Body) || !strings.Contains(string(r.Body), `"project = SEI"`) {
					t.Errorf("request %s %s", r.Method, r.Body)
				}
			}
		})
	}

	t.Run("refused connection retried for any method", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		clk := jira.NewFakeClock()
		err := newClient(t, srv.URL, nil, jira.WithClock(clk), jira.WithRetryPolicy(jira.RetryPolicy{MaxAttempts: 3})).
			Post(context.Background(), "/rest/api/3/issue", nil, body, nil)
		var je *jira.Error
		if !jira.IsNetwork(err) || !errors.As(err, &je) || je.Attempts != 3 || len(clk.Slept()) != 2 {
			t.Errorf("err = %v, waits %v", err, clk.Slept())
		}
	})
}

func TestConnectionReset(t *testing.T) {
	t.Parallel()
	srv := serve(t, reset, reset, ok200)
	c := newClient(t, srv.URL, nil)
	me, err := c.Myself(context.Background())
	if err != nil || me.AccountID != "557058:app" {
		t.Fatalf("myself = %+v, %v", me, err)
	}
	if st := c.Stats(); st.Requests != 3 || st.NetworkErrors != 2 || st.Retries != 2 {
		t.Errorf("stats = %+v", st)
	}

	t.Run("body cut short", func(t *testing.T) {
		t.Parallel()
		short := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "500")
			w.WriteHeader(200)
			io.WriteString(w, `{"accountId":"55`)
			w.(http.Flusher).Flush()
			reset(w, nil)
		}
		srv := serve(t, short, short, ok200)
		if _, err := newClient(t, srv.URL, nil).Myself(context.Background()); err != nil || len(srv.requests()) != 3 {
			t.Fatalf("err %v after %d requests", err, len(srv.requests()))
		}
	})
}

func TestMalformedBodyRetriedOnce(t *testing.T) {
	t.Parallel()
	truncated := jsonAnswer(200, `{"issues":[{"id":"10001"},{"id":"100`)
	t.Run("recovers", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, truncated, jsonAnswer(200, `{"issues":[{"id":"10001"}],"isLast":true}`))
		p, err := newClient(t, srv.URL, nil).SearchJQL(context.Background(), jira.SearchRequest{JQL: "project = SEI"})
		if err != nil || len(p.Issues) != 1 || len(srv.requests()) != 2 {
			t.Fatalf("page %+v, err %v, %d requests", p, err, len(srv.requests()))
		}
	})
	for name, h := range map[string]http.HandlerFunc{
		"truncated twice": truncated,
		"login page":      func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>Log in</html>") },
		"empty":           jsonAnswer(200, ""),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, h)
			_, err := newClient(t, srv.URL, nil).SearchJQL(context.Background(), jira.SearchRequest{JQL: "project = SEI"})
			var je *jira.Error
			if !errors.As(err, &je) || je.Status != 200 || je.Attempts != 2 || len(srv.requests()) != 2 {
				t.Errorf("err = %v after %d requests", err, len(srv.requests()))
			}
		})
	}
	t.Run("wrong shape is not retried", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jsonAnswer(200, `{"issues":"none"}`))
		_, err := newClient(t, srv.URL, nil).SearchJQL(context.Background(), jira.SearchRequest{JQL: "project = SEI"})
		if err == nil || len(srv.requests()) != 1 {
			t.Errorf("err = %v after %d requests", err, len(srv.requests()))
		}
	})
}

func TestRetryBudgets(t *testing.T) {
	t.Parallel()
	t.Run("cancel during a wait", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jiraErr(429, "Rate limit exceeded.", "Retry-After: 30"))
		c, err := jira.New(srv.URL, nil) // the real clock
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		started := time.Now()
		_, err = c.Myself(ctx)
		if took := time.Since(started); took > 5*time.Second {
			t.Errorf("returned after %v", took)
		}
		if !errors.Is(err, context.Canceled) || jira.IsNetwork(err) || len(srv.requests()) != 1 {
			t.Errorf("err = %v after %d requests", err, len(srv.requests()))
		}
	})
	t.Run("deadline before the wait ends", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jiraErr(429, "Rate limit exceeded.", "Retry-After: 30"))
		clk := jira.NewFakeClock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := newClient(t, srv.URL, nil, jira.WithClock(clk)).Myself(ctx)
		var je *jira.Error
		if !jira.IsRateLimited(err) || !errors.As(err, &je) || je.RetryAfter != 30*time.Second || len(clk.Slept()) != 0 {
			t.Errorf("err = %v, waits %v", err, clk.Slept())
		}
	})
	t.Run("Retry-After beyond MaxRetryAfter", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jiraErr(429, "Rate limit exceeded.", "X-RateLimit-Reset: 2025-03-01T11:00Z", "RateLimit-Reason: jira-quota-tenant-based"))
		clk := jira.NewFakeClock()
		_, err := newClient(t, srv.URL, nil, jira.WithClock(clk)).Myself(context.Background())
		var je *jira.Error
		if !errors.As(err, &je) || je.RetryAfter != 59*time.Minute+30*time.Second || je.RateLimitReason != "jira-quota-tenant-based" || len(clk.Slept()) != 0 {
			t.Errorf("err = %#v, waits %v", err, clk.Slept())
		}
	})
	t.Run("MaxElapsed", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jiraErr(429, "Rate limit exceeded.", "Retry-After: 4"))
		clk := jira.NewFakeClock()
		policy := jira.DefaultRetryPolicy()
		policy.MaxElapsed = 10 * time.Second
		_, err := newClient(t, srv.URL, nil, jira.WithClock(clk), jira.WithRetryPolicy(policy)).Myself(context.Background())
		if !jira.IsRateLimited(err) || !slices.Equal(clk.Slept(), []time.Duration{4 * time.Second, 4 * time.Second}) {
			t.Errorf("err = %v, waits %v", err, clk.Slept())
		}
	})
	t.Run("no retries", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, jiraErr(500, "boom"), ok200)
		_, err := newClient(t, srv.URL, nil, jira.WithRetryPolicy(jira.RetryPolicy{MaxAttempts: 1})).Myself(context.Background())
		if jira.StatusOf(err) != 500 || len(srv.requests()) != 1 {
			t.Errorf("err = %v after %d requests", err, len(srv.requests()))
		}
	})
}

func TestNoSecretsInRetryLogs(t *testing.T) {
	t.Parallel()
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
	echo := jiraErr(503, "bad token JWT "+tok+" in https://x/rest?jwt="+tok, "Retry-After: 1")
	srv := serve(t, echo, jiraErr(429, "slow", "Retry-After: 1", "RateLimit-Reason: Bearer "+tok), jiraErr(502, "Bearer "+tok), jsonAnswer(200, `{"issues":[],"isLast":true}`))
	var buf bytes.Buffer
	rec := &recorder{Authenticator: jira.ConnectJWT{AppKey: "io.sei.test", SharedSecret: []byte(testSecret)}}
	c := newClient(t, srv.URL, rec, jira.WithLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	_, err := c.SearchJQL(context.Background(), jira.SearchRequest{JQL: "project = SEI", NextPageToken: "page-token-secret"})
	if err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	if strings.Count(logs, `"msg":"jira: retrying"`) != 3 {
		t.Fatalf("logs:\n%s", logs)
	}
	secrets := []string{testSecret, tok, "eyJ", "JWT ", "Bearer ", "page-token-secret", "nextPageToken", "jql="}
	for _, h := range rec.seen {
		secrets = append(secrets, strings.TrimPrefix(h, "JWT "))
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("logs contain %q:\n%s", sec, logs)
		}
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	srv := serve(t, ok200)
	shared := new(jira.Counters)
	a := newClient(t, srv.URL, nil, jira.WithCounters(shared))
	b := newClient(t, srv.URL, jira.Basic{}, jira.WithCounters(shared)) // no credentials: nothing is sent
	if _, err := a.Myself(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Myself(context.Background()); err == nil || jira.IsTransient(err) {
		t.Fatalf("err = %v", err)
	}
	if st := shared.Snapshot(); st.Requests != 1 || st != a.Stats() || len(srv.requests()) != 1 {
		t.Errorf("shared %+v, a %+v, server saw %d", st, a.Stats(), len(srv.requests()))
	}
	var none *jira.Counters
	if none.Snapshot() != (jira.Stats{}) || (&jira.Client{}).Stats() != (jira.Stats{}) {
		t.Error("nil counters are not zero")
	}
}
