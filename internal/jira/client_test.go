package jira_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

// The fake Atlassian's RSA key is slow to make; one serves every test.
var atlassian = sync.OnceValues(jirasim.New)

func newSite(t *testing.T, opts ...jirasim.SiteOption) *jirasim.Site {
	t.Helper()
	atl, err := atlassian()
	if err != nil {
		t.Fatal(err)
	}
	s := atl.NewSite(&jirasim.App{Key: "io.sei.test", Raw: map[string]any{"name": "SEI for Jira"}}, opts...)
	t.Cleanup(s.Close)
	return s
}

func appAuth(s *jirasim.Site) jira.ConnectJWT {
	return jira.ConnectJWT{AppKey: s.App.Key, SharedSecret: []byte(s.SharedSecret)}
}

// newClient builds a client whose retries wait no real time (the clock reads
// the real time, so tokens stay valid); opts may replace the clock.
func newClient(t *testing.T, baseURL string, auth jira.Authenticator, opts ...jira.Option) *jira.Client {
	t.Helper()
	c, err := jira.New(baseURL, auth, append([]jira.Option{jira.WithClock(instantClock{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addIssues(t *testing.T, s *jirasim.Site, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		id := fmt.Sprint(10000 + i)
		if err := s.AddIssue(jirasim.Issue(id, fmt.Sprintf("SEI-%d", i), map[string]any{
			"summary": fmt.Sprintf("Issue %d", i),
			"status":  map[string]any{"name": "To Do"},
		})); err != nil {
			t.Fatal(err)
		}
	}
}

// issueIDs decodes the ids of a page.
func issueIDs(t *testing.T, p *jira.SearchPage) []string {
	t.Helper()
	var ids []string
	for _, raw := range p.Issues {
		var v struct{ ID string }
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	return ids
}

func TestSignedCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []jirasim.SiteOption
	}{
		{"cloud site", nil},
		{"context path", []jirasim.SiteOption{jirasim.WithContextPath("/jira")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSite(t, tc.opts...)
			if tc.opts != nil && !strings.HasSuffix(s.BaseURL, "/jira") {
				t.Fatalf("BaseURL %s has no context path", s.BaseURL)
			}
			c := newClient(t, s.BaseURL, appAuth(s))
			ctx := context.Background()

			info, err := c.ServerInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.BaseURL != s.BaseURL || info.DeploymentType != "Cloud" || info.ServerTitle == "" || info.Version == "" {
				t.Errorf("serverInfo = %+v", info)
			}
			if d := time.Since(info.ServerTime.Time); d < -time.Minute || d > time.Minute {
				t.Errorf("serverTime %v is not now", info.ServerTime)
			}

			me, err := c.Myself(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if me.AccountID != s.AppAccountID || me.AccountType != "app" || me.TimeZone != "Etc/UTC" || !me.Active || me.DisplayName != "SEI for Jira" {
				t.Errorf("myself = %+v", me)
			}

			s.AddUser("acc-1", "Ada", "ada@example.com")
			s.AddUser("acc-2", "Bob", "bob@example.com")
			emails, err := c.UserEmails(ctx, []string{"acc-2", "acc-unknown", "acc-1"})
			if err != nil {
				t.Fatal(err)
			}
			want := []jira.UserEmail{{AccountID: "acc-2", Email: "bob@example.com"}, {AccountID: "acc-1", Email: "ada@example.com"}}
			if fmt.Sprint(emails) != fmt.Sprint(want) {
				t.Errorf("emails = %v, want %v", emails, want)
			}

			if got := s.Requests(jira.PathMyself); got != 1 {
				t.Errorf("site counted %d calls to myself, want 1", got)
			}
		})
	}
}

func TestSearchPaging(t *testing.T) {
	t.Parallel()
	s := newSite(t, jirasim.WithContextPath("/jira"))
	addIssues(t, s, 7)
	s.SetSearchLimits(3, 5)
	c := newClient(t, s.BaseURL, appAuth(s))
	ctx := context.Background()

	// Fields requested: pages stop at the site's cap (3) although 50 were
	// asked for, and the last page has no token. (Jira Cloud refuses
	// unbounded JQL on this endpoint, and so does the simulator.)
	var got []string
	req := jira.SearchRequest{JQL: "project = SEI ORDER BY key ASC", MaxResults: 50, Fields: []string{"summary", "status"}, Expand: []string{"changelog"}}
	var pages int
	for {
		p, err := c.SearchJQL(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, issueIDs(t, p)...)
		if p.IsLast {
			if p.NextPageToken != "" {
				t.Errorf("last page has token %q", p.NextPageToken)
			}
			break
		}
		if len(p.Issues) != 3 {
			t.Errorf("page %d has %d issues, want 3", pages, len(p.Issues))
		}
		req.NextPageToken = p.NextPageToken
	}
	if pages != 3 || strings.Join(got, ",") != "10001,10002,10003,10004,10005,10006,10007" {
		t.Errorf("%d pages of %v", pages, got)
	}

	// The first issue carries the requested fields only.
	p, err := c.SearchJQL(ctx, jira.SearchRequest{JQL: "project = SEI ORDER BY key ASC", MaxResults: 1, Fields: []string{"summary"}})
	if err != nil {
		t.Fatal(err)
	}
	var issue struct {
		Key    string
		Fields map[string]any
	}
	if err := json.Unmarshal(p.Issues[0], &issue); err != nil {
		t.Fatal(err)
	}
	if issue.Key != "SEI-1" || issue.Fields["summary"] != "Issue 1" || issue.Fields["status"] != nil {
		t.Errorf("issue = %+v", issue)
	}

	// Ids only (the endpoint's default): a larger cap, 5 here.
	p, err = c.SearchJQL(ctx, jira.SearchRequest{JQL: "project = SEI ORDER BY key ASC", MaxResults: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Issues) != 5 || p.IsLast || string(p.Issues[0]) != `{"id":"10001"}` {
		t.Errorf("ids-only page: %d issues, isLast %v, first %s", len(p.Issues), p.IsLast, p.Issues[0])
	}

	// The POST form of the search, through Client.Post.
	var post jira.SearchPage
	err = c.Post(ctx, jira.PathSearchJQL, nil, map[string]any{"jql": "project = SEI", "maxResults": 2, "fields": []string{"summary"}}, &post)
	if err != nil {
		t.Fatal(err)
	}
	if len(post.Issues) != 2 || post.NextPageToken == "" {
		t.Errorf("POST search: %d issues, token %q", len(post.Issues), post.NextPageToken)
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	s := newSite(t, jirasim.WithContextPath("/jira"))
	for _, tc := range []struct {
		name string
		base string
		auth jira.Authenticator
	}{
		{"wrong secret", s.BaseURL, jira.ConnectJWT{AppKey: s.App.Key, SharedSecret: []byte("not-the-secret")}},
		{"another app's key", s.BaseURL, jira.ConnectJWT{AppKey: "io.other.app", SharedSecret: []byte(s.SharedSecret)}},
		{"expired", s.BaseURL, jira.ConnectJWT{AppKey: s.App.Key, SharedSecret: []byte(s.SharedSecret), Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}},
		// The qsh must be relative to the site's base path: a client that
		// takes the server root for the base signs /jira/rest/… and fails.
		{"qsh over the context path", s.Server.URL, appAuth(s)},
		{"no credentials", s.BaseURL, nil},
		{"basic, unknown user", s.BaseURL, jira.Basic{Username: "eve@example.com", Password: "guess"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.base, tc.auth)
			path := jira.PathMyself
			if tc.base == s.Server.URL {
				path = "/jira" + path
			}
			err := c.Get(context.Background(), path, nil, &jira.User{})
			if !jira.IsUnauthorized(err) {
				t.Fatalf("err = %v, want 401", err)
			}
			if jira.IsForbidden(err) || jira.IsNetwork(err) || jira.IsRateLimited(err) {
				t.Errorf("%v classified as more than unauthorized", err)
			}
			want := "jira: GET " + path + ": 401 Unauthorized: " + jirasim.MsgUnauthenticated
			if err.Error() != want {
				t.Errorf("err = %q, want %q", err, want)
			}
		})
	}

	t.Run("fault: every call 401", func(t *testing.T) {
		s := newSite(t)
		s.SetFault(jirasim.RESTFaultUnauthorized)
		_, err := newClient(t, s.BaseURL, appAuth(s)).ServerInfo(context.Background())
		if !jira.IsUnauthorized(err) {
			t.Fatalf("err = %v, want 401", err)
		}
	})
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.AddBasicUser("557058:ada", "Ada", "ada@example.com", "api-token-1")
	me, err := newClient(t, s.BaseURL, jira.Basic{Username: "ada@example.com", Password: "api-token-1"}).Myself(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if me.AccountID != "557058:ada" || me.AccountType != "atlassian" || me.EmailAddress != "ada@example.com" {
		t.Errorf("myself = %+v", me)
	}
	_, err = newClient(t, s.BaseURL, jira.Basic{Username: "ada@example.com", Password: "api-token-2"}).Myself(context.Background())
	if !jira.IsUnauthorized(err) {
		t.Errorf("wrong API token: err = %v, want 401", err)
	}
}

func TestForbidden(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	c := newClient(t, s.BaseURL, appAuth(s))
	ctx := context.Background()

	s.SetFault(jirasim.RESTFaultSearchForbidden)
	_, err := c.SearchJQL(ctx, jira.SearchRequest{JQL: "ORDER BY key"})
	var je *jira.Error
	if !jira.IsForbidden(err) || !errors.As(err, &je) {
		t.Fatalf("search: err = %v, want 403", err)
	}
	if len(je.Messages) != 1 || je.Messages[0] != jirasim.MsgSearchForbidden || je.Path != jira.PathSearchJQL || je.Method != http.MethodGet {
		t.Errorf("error = %#v", je)
	}
	if want := "jira: GET /rest/api/3/search/jql: 403 Forbidden: " + jirasim.MsgSearchForbidden; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}

	s.SetFault(jirasim.RESTFaultEmailForbidden)
	_, err = c.UserEmails(ctx, []string{"acc-1"})
	if !jira.IsForbidden(err) || !strings.Contains(err.Error(), jirasim.MsgEmailNotApproved) {
		t.Errorf("email: err = %v, want 403 with %q", err, jirasim.MsgEmailNotApproved)
	}
	s.SetFault(jirasim.RESTFaultEmailNotApproved)
	_, err = c.UserEmails(ctx, []string{"acc-1"})
	if jira.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), jirasim.MsgEmailNotApproved) {
		t.Errorf("email: err = %v, want 400 with %q", err, jirasim.MsgEmailNotApproved)
	}

	s.SetFault(jirasim.RESTFaultNone)
	err = c.Get(ctx, "/rest/api/3/nope", nil, nil)
	if !jira.IsNotFound(err) {
		t.Errorf("unknown path: err = %v, want 404", err)
	}
}

func TestRateLimited(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.SetFault(jirasim.RESTFaultRateLimited)
	s.SetRetryAfter(7 * time.Second)
	clk := jira.NewFakeClock()
	c := newClient(t, s.BaseURL, appAuth(s), jira.WithClock(clk))
	_, err := c.Myself(context.Background())
	var je *jira.Error
	if !jira.IsRateLimited(err) || !errors.As(err, &je) {
		t.Fatalf("err = %v, want 429", err)
	}
	if je.RetryAfter != 7*time.Second || je.RateLimitReason != "jira-burst-based" || je.Attempts != jira.DefaultMaxAttempts {
		t.Errorf("RetryAfter = %v, reason %q, attempts %d; want 7s, jira-burst-based, %d", je.RetryAfter, je.RateLimitReason, je.Attempts, jira.DefaultMaxAttempts)
	}
	// Every retry waited the 7 s asked for, then the attempts ran out.
	if got, want := clk.Total(), time.Duration(jira.DefaultMaxAttempts-1)*7*time.Second; got != want {
		t.Errorf("waited %v, want %v", got, want)
	}
	if got := s.Requests(jira.PathMyself); got != jira.DefaultMaxAttempts {
		t.Errorf("site saw %d requests, want %d", got, jira.DefaultMaxAttempts)
	}
	if st := c.Stats(); st.Requests != int64(jira.DefaultMaxAttempts) || st.RateLimited != int64(jira.DefaultMaxAttempts) || st.Retries != int64(jira.DefaultMaxAttempts-1) || st.RetryWait != clk.Total() {
		t.Errorf("stats = %+v", st)
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	t.Run("closed server", func(t *testing.T) {
		s := newSite(t)
		c := newClient(t, s.BaseURL, appAuth(s))
		s.Close()
		_, err := c.ServerInfo(context.Background())
		if !jira.IsNetwork(err) || jira.StatusOf(err) != 0 {
			t.Fatalf("err = %v, want a network error", err)
		}
		if !strings.HasPrefix(err.Error(), "jira: GET /rest/api/3/serverInfo: ") {
			t.Errorf("err = %q", err)
		}
	})
	t.Run("connection dropped", func(t *testing.T) {
		s := newSite(t)
		s.SetFault(jirasim.RESTFaultUnreachable)
		_, err := newClient(t, s.BaseURL, appAuth(s)).ServerInfo(context.Background())
		if !jira.IsNetwork(err) {
			t.Fatalf("err = %v, want a network error", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s := newSite(t)
		s.SetFault(jirasim.RESTFaultSlow)
		_, err := newClient(t, s.BaseURL, appAuth(s), jira.WithTimeout(100*time.Millisecond)).ServerInfo(context.Background())
		if !jira.IsNetwork(err) {
			t.Fatalf("err = %v, want a network error", err)
		}
	})
	t.Run("cancelled is not network", func(t *testing.T) {
		s := newSite(t)
		s.SetFault(jirasim.RESTFaultSlow)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := newClient(t, s.BaseURL, appAuth(s)).ServerInfo(ctx)
		if jira.IsNetwork(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want a cancellation", err)
		}
	})
}

func TestResponseCap(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	addIssues(t, s, 50)
	ctx := context.Background()
	req := jira.SearchRequest{JQL: "project = SEI", MaxResults: 50, Fields: []string{"*all"}}

	// A streamed (chunked) body over the cap.
	_, err := newClient(t, s.BaseURL, appAuth(s), jira.WithMaxResponseBytes(4096)).SearchJQL(ctx, req)
	if !errors.Is(err, jira.ErrResponseTooLarge) || jira.IsNetwork(err) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
	// A body with Content-Length over the cap.
	_, err = newClient(t, s.BaseURL, appAuth(s), jira.WithMaxResponseBytes(64)).ServerInfo(ctx)
	if !errors.Is(err, jira.ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
	// Under the default cap the same page arrives whole.
	p, err := newClient(t, s.BaseURL, appAuth(s)).SearchJQL(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Issues) != 50 {
		t.Fatalf("%d issues, want 50", len(p.Issues))
	}
}

func TestDecodeError(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	var wrong []string
	err := newClient(t, s.BaseURL, appAuth(s)).Get(context.Background(), jira.PathMyself, nil, &wrong)
	if err == nil || !strings.Contains(err.Error(), "jira: GET /rest/api/3/myself: 200 OK: decoding JSON response body: ") {
		t.Fatalf("err = %v", err)
	}
}

// recorder remembers the Authorization headers it set, to look for them
// where they must not be.
type recorder struct {
	jira.Authenticator
	mu   sync.Mutex
	seen []string
}

func (r *recorder) Authenticate(req *http.Request, basePath string) error {
	err := r.Authenticator.Authenticate(req, basePath)
	r.mu.Lock()
	r.seen = append(r.seen, req.Header.Get("Authorization"))
	r.mu.Unlock()
	return err
}

func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	addIssues(t, s, 20)
	ctx := context.Background()
	wrong := &recorder{Authenticator: jira.ConnectJWT{AppKey: s.App.Key, SharedSecret: []byte("wrong-secret-0123456789")}}
	right := &recorder{Authenticator: appAuth(s)}
	secrets := []string{"JWT ", "Bearer ", "Basic ", s.SharedSecret, "wrong-secret-0123456789", "jwt=", "nextPageToken=", "maxResults=", "jql="}

	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, err)
	}
	search := jira.SearchRequest{JQL: "project = SEI ORDER BY key", MaxResults: 20, Fields: []string{"*all"}, NextPageToken: "bogus"}
	_, err := newClient(t, s.BaseURL, wrong).SearchJQL(ctx, search)
	collect(err)
	_, err = newClient(t, s.BaseURL, right).SearchJQL(ctx, search) // 400 for the token
	collect(err)
	search.NextPageToken = ""
	_, err = newClient(t, s.BaseURL, right, jira.WithMaxResponseBytes(512)).SearchJQL(ctx, search)
	collect(err)
	for _, f := range []jirasim.RESTFault{jirasim.RESTFaultSearchForbidden, jirasim.RESTFaultRateLimited, jirasim.RESTFaultServerError, jirasim.RESTFaultUnreachable} {
		s.SetFault(f)
		_, err = newClient(t, s.BaseURL, right).SearchJQL(ctx, search)
		collect(err)
	}
	s.SetFault(jirasim.RESTFaultNone)
	_, err = newClient(t, s.BaseURL, jira.Basic{Username: "ada@example.com", Password: "hunter2-api-token"}).SearchJQL(ctx, search)
	collect(err)
	_, err = newClient(t, s.BaseURL, jira.Bearer{Token: "pat-token-0123456789"}).SearchJQL(ctx, search)
	collect(err)
	s.Close()
	_, err = newClient(t, s.BaseURL, right).SearchJQL(ctx, search)
	collect(err)

	secrets = append(secrets, "hunter2-api-token", "pat-token-0123456789")
	for _, r := range []*recorder{wrong, right} {
		for _, h := range r.seen {
			secrets = append(secrets, strings.TrimPrefix(h, "JWT "))
		}
	}
	if len(secrets) < 12 {
		t.Fatalf("recorded no tokens: %v", secrets)
	}
	for _, err := range errs {
		t.Log(err)
		texts := []string{err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err)}
		for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
			texts = append(texts, e.Error())
		}
		for _, text := range texts {
			for _, sec := range secrets {
				if strings.Contains(text, sec) {
					t.Errorf("error text %q contains %q", text, sec)
				}
			}
		}
	}

	// Credentials do not print either.
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	for _, a := range []jira.Authenticator{appAuth(s), jira.Basic{Username: "u", Password: "hunter2-api-token"}, jira.Bearer{Token: "pat-token-0123456789"}} {
		c := newClient(t, s.BaseURL, a)
		log.Info("auth", "auth", a)
		fmt.Fprintf(&buf, "%v %+v %#v %v %+v", a, a, a, c, *c)
	}
	for _, sec := range []string{s.SharedSecret, "hunter2-api-token", "pat-token-0123456789"} {
		if strings.Contains(buf.String(), sec) {
			t.Errorf("printed credentials contain %q:\n%s", sec, buf.String())
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "acme.atlassian.net", "ftp://acme.atlassian.net", "https://", "https://acme.atlassian.net?x=1", "https://user:pw-secret@acme.atlassian.net"} {
		if _, err := jira.New(bad, nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "pw-secret") {
			t.Errorf("New(%q): error %q shows the password", bad, err)
		}
	}
	c, err := jira.New("https://acme.atlassian.net/jira/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL.Path != "/jira" || c.HTTP.Timeout != jira.DefaultTimeout || c.MaxResponseBytes != jira.DefaultMaxResponseBytes {
		t.Errorf("client = %+v", c)
	}
	err = c.Get(context.Background(), "rest/api/3/myself", nil, nil)
	if err == nil {
		t.Error("a path without a leading / was accepted")
	}
}
