package jirasim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	s.SetRateLimit(4, 5)
	myself := func() reply { return call(t, s, http.MethodGet, "/rest/api/3/myself", nil, s.SharedSecret, "") }
	var last reply
	for i := range 5 {
		last = myself()
		if last.status != 200 || last.header.Get("X-RateLimit-Limit") != "5" {
			t.Fatalf("call %d: %d %v", i, last.status, last.header)
		}
		near := last.header.Get("X-RateLimit-NearLimit") == "true"
		// Under 20% of 5 left: only at 0.
		if rem := last.header.Get("X-RateLimit-Remaining"); (rem == "0") != near {
			t.Errorf("call %d: remaining %s, near limit %v", i, rem, near)
		}
	}
	r := myself()
	r.want(t, 429, jirasim.MsgRateLimited)
	h := r.header
	if h.Get("Retry-After") != "1" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Limit") != "5" ||
		h.Get("X-RateLimit-NearLimit") != "true" || h.Get("RateLimit-Reason") != "jira-burst-based" {
		t.Errorf("429 headers %v", h)
	}
	// Atlassian: "yyyy-MM-ddTHH:mmZ".
	if reset := h.Get("X-RateLimit-Reset"); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\dZ$`).MatchString(reset) {
		t.Errorf("X-RateLimit-Reset %q", reset)
	}
	if s.RateLimited() != 1 {
		t.Errorf("RateLimited() = %d", s.RateLimited())
	}
	// Strangers are refused before the limiter counts them.
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, "", "").want(t, 401, "")
	time.Sleep(300 * time.Millisecond) // 4/s: a token is back
	myself().want(t, 200, "")

	// Many clients at once: the bucket holds.
	s.SetRateLimit(20, 10)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				st := myself().status
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	allowed := 10 + 20*time.Since(start).Seconds()
	if ok := float64(statuses[200]); ok > allowed+1 || statuses[429] == 0 {
		t.Errorf("%v in %v (at most %.0f allowed)", statuses, time.Since(start), allowed)
	}
	if s.RateLimited() != 1+statuses[429] {
		t.Errorf("RateLimited() = %d, saw %d", s.RateLimited(), 1+statuses[429])
	}
	s.SetRateLimit(0, 0)
	if r := myself(); r.status != 200 || r.header.Get("X-RateLimit-Limit") != "" {
		t.Errorf("limiter off: %d %v", r.status, r.header)
	}
}

func TestInjections(t *testing.T) {
	t.Parallel()
	s := genSite(t, 1, 30, nil)
	search := url.Values{"jql": {"id >= 0 ORDER BY id"}, "fields": {"*all"}}
	// Without keep-alive: Go's transport silently retries an idempotent
	// request whose reused connection is reset.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	raw := func(method, path string, q url.Values) (*http.Response, []byte, error) {
		t.Helper()
		u, _ := url.Parse(s.BaseURL + path)
		u.RawQuery = q.Encode()
		req, _ := http.NewRequest(method, u.String(), nil)
		req.Header.Set("Authorization", "JWT "+signFor(t, s, method, u))
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	s.Inject(jirasim.Injection{Kind: jirasim.InjectServerError, Path: "/rest/api/3/myself", Count: 2})
	s.Inject(jirasim.Injection{Kind: jirasim.InjectServerError, Path: "/rest/api/3/serverInfo", Status: 502, Count: 1})
	for i := range 3 {
		resp, body, err := raw(http.MethodGet, "/rest/api/3/myself", nil)
		switch {
		case err != nil:
			t.Fatal(err)
		case i < 2 && (resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), jirasim.MsgServerError)):
			t.Errorf("call %d: %d %v", i, resp.StatusCode, resp.Header)
		case i == 2 && resp.StatusCode != 200:
			t.Errorf("after the count: %d", resp.StatusCode)
		}
	}
	if resp, _, _ := raw(http.MethodGet, "/rest/api/3/serverInfo", nil); resp.StatusCode != 502 {
		t.Errorf("502: %d", resp.StatusCode)
	}

	s.Inject(jirasim.Injection{Kind: jirasim.InjectReset, Path: "/rest/api/3/search", Method: "GET", Count: 1})
	if _, _, err := raw(http.MethodGet, "/rest/api/3/search/jql", search); err == nil {
		t.Error("reset: no error")
	}

	s.Inject(jirasim.Injection{Kind: jirasim.InjectTruncated, Path: "/rest/api/3/search/jql", Count: 1})
	resp, body, err := raw(http.MethodGet, "/rest/api/3/search/jql", search)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v, %d bytes", err, len(body))
	}
	_ = resp

	s.Inject(jirasim.Injection{Kind: jirasim.InjectMalformed, Path: "/rest/api/3/search/jql", Count: 1})
	resp, body, err = raw(http.MethodGet, "/rest/api/3/search/jql", search)
	var v any
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &v) == nil {
		t.Errorf("malformed: %v %v, body valid JSON", err, resp)
	}
	if resp, body, err = raw(http.MethodGet, "/rest/api/3/search/jql", search); err != nil || json.Unmarshal(body, &v) != nil {
		t.Errorf("after the faults: %v %v", err, resp)
	}

	s.Inject(jirasim.Injection{Kind: jirasim.InjectSlow, Path: "/rest/api/3/field", Delay: 150 * time.Millisecond, Count: 1})
	start := time.Now()
	if resp, _, err := raw(http.MethodGet, "/rest/api/3/field", nil); err != nil || resp.StatusCode != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("slow: %v after %v", err, time.Since(start))
	}
	s.SetRetryAfter(3 * time.Second)
	s.Inject(jirasim.Injection{Kind: jirasim.InjectRateLimited, Path: "/rest/api/3/field", Count: 1})
	if resp, _, _ := raw(http.MethodGet, "/rest/api/3/field", nil); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("429: %v", resp)
	}

	// A probability strikes about that share of calls.
	before := s.Injected()
	s.SetFaultSeed(7)
	s.Inject(jirasim.Injection{Kind: jirasim.InjectServerError, Path: "/rest/api/3/project", Probability: 0.3})
	failed := 0
	for range 200 {
		if resp, _, _ := raw(http.MethodGet, "/rest/api/3/project/search", nil); resp.StatusCode == 503 {
			failed++
		}
	}
	if failed < 35 || failed > 85 || s.Injected()-before != failed {
		t.Errorf("%d of 200 failed at p=0.3 (injected %d)", failed, s.Injected()-before)
	}
	s.ClearInjections()
	if resp, _, _ := raw(http.MethodGet, "/rest/api/3/project/search", nil); resp.StatusCode != 200 {
		t.Errorf("after clearing: %d", resp.StatusCode)
	}
	if want := 2 + 1 + 1 + 1 + 1 + 1 + 1 + failed; s.Injected() != want {
		t.Errorf("Injected() = %d, want %d", s.Injected(), want)
	}
}

func TestLatencyAndCounters(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	s.SetLatency(80 * time.Millisecond)
	start := time.Now()
	call(t, s, http.MethodGet, "/rest/api/3/serverInfo", nil, s.SharedSecret, "").want(t, 200, "")
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("answered in %v", d)
	}
	s.SetLatency(0)
	call(t, s, http.MethodGet, "/rest/api/3/myself", nil, s.SharedSecret, "").want(t, 200, "")
	call(t, s, http.MethodGet, "/rest/api/3/issue/1/comment", nil, s.SharedSecret, "").want(t, 404, "")
	if s.TotalRequests() != 3 || s.Requests("/rest/api/3/issue/1/comment") != 1 || len(s.RequestCounts()) != 3 {
		t.Errorf("total %d, counts %v", s.TotalRequests(), s.RequestCounts())
	}
}
