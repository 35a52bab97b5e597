package jira_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

// The simulator's injected faults, met by the retry policy.
func TestSimulatorFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	search := jira.SearchRequest{JQL: "project = SEI ORDER BY key", Fields: []string{"summary"}}
	for _, tc := range []struct {
		name  string
		inj   jirasim.Injection
		call  func(*jira.Client) error
		waits []time.Duration // nil: not checked
	}{
		{"reset", jirasim.Injection{Kind: jirasim.InjectReset, Path: jira.PathMyself, Count: 2},
			func(c *jira.Client) error { _, err := c.Myself(ctx); return err }, nil},
		{"truncated", jirasim.Injection{Kind: jirasim.InjectTruncated, Path: jira.PathSearchJQL, Count: 2},
			func(c *jira.Client) error { _, err := c.SearchJQL(ctx, search); return err }, nil},
		{"malformed", jirasim.Injection{Kind: jirasim.InjectMalformed, Path: jira.PathSearchJQL, Count: 1},
			func(c *jira.Client) error { _, err := c.SearchJQL(ctx, search); return err }, nil},
		{"503 with Retry-After", jirasim.Injection{Kind: jirasim.InjectServerError, Path: jira.PathMyself, Count: 2},
			func(c *jira.Client) error { _, err := c.Myself(ctx); return err }, []time.Duration{time.Second, time.Second}},
		{"429", jirasim.Injection{Kind: jirasim.InjectRateLimited, Path: jira.PathMyself, Count: 3},
			func(c *jira.Client) error { _, err := c.Myself(ctx); return err }, []time.Duration{time.Second, time.Second, time.Second}},
		{"reset on a POST search", jirasim.Injection{Kind: jirasim.InjectReset, Path: jira.PathSearchJQL, Method: "POST", Count: 1},
			func(c *jira.Client) error { _, err := c.SearchJQLPost(ctx, search); return err }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSite(t)
			addIssues(t, s, 3)
			s.Inject(tc.inj)
			clk := jira.NewFakeClock()
			c := newClient(t, s.BaseURL, appAuth(s), jira.WithClock(clk))
			if err := tc.call(c); err != nil {
				t.Fatal(err)
			}
			if s.Injected() != max(tc.inj.Count, 1) {
				t.Errorf("%d faults struck, want %d", s.Injected(), tc.inj.Count)
			}
			if tc.waits != nil && !slices.Equal(clk.Slept(), tc.waits) {
				t.Errorf("waited %v, want %v", clk.Slept(), tc.waits)
			}
		})
	}

	t.Run("malformed twice is not retried again", func(t *testing.T) {
		t.Parallel()
		s := newSite(t)
		addIssues(t, s, 3)
		s.Inject(jirasim.Injection{Kind: jirasim.InjectMalformed, Path: jira.PathSearchJQL})
		_, err := newClient(t, s.BaseURL, appAuth(s)).SearchJQL(ctx, search)
		var je *jira.Error
		if !errors.As(err, &je) || je.Status != 200 || je.Attempts != 2 || s.Requests(jira.PathSearchJQL) != 2 {
			t.Errorf("err = %v after %d requests", err, s.Requests(jira.PathSearchJQL))
		}
	})
}

// TestSimulatorRateLimit runs workers against a site whose token bucket
// is far smaller than their appetite: every call gets through, waiting out
// the 429s on the real clock, and the Limiter backs off.
func TestSimulatorRateLimit(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.SetRateLimit(50, 5)
	lim := jira.NewLimiter(jira.LimiterConfig{})
	c, err := jira.New(s.BaseURL, appAuth(s), jira.WithLimiter(lim))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if _, err := c.Myself(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.Requests-st.RateLimited != 12 || st.RateLimited != int64(s.RateLimited()) || st.RateLimited == 0 || st.NearLimit == 0 {
		t.Errorf("stats %+v, site sent %d 429s", st, s.RateLimited())
	}
	if st.RetryWait < time.Second {
		t.Errorf("waited only %v for the 429s", st.RetryWait)
	}
	if lim.Limit() >= jira.DefaultInitialConcurrency {
		t.Errorf("limit %d did not come down", lim.Limit())
	}
}

func TestSimulatorCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t)
	addIssues(t, s, 2)
	c := newClient(t, s.BaseURL, appAuth(s))

	t.Run("users in batches the site accepts", func(t *testing.T) {
		var want []string
		for i := range 250 {
			id := fmt.Sprintf("557058:sim-%03d", i)
			s.AddUser(id, fmt.Sprintf("User %d", i), fmt.Sprintf("u%d@example.com", i))
			want = append(want, id)
		}
		// The simulator refuses more than 100 accountIds a call, as Jira does.
		users, err := c.UsersBulk(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range users {
			got = append(got, u.AccountID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || users[0].DisplayName == "" {
			t.Errorf("%d users; first %+v", len(users), users[0])
		}
		emails, err := c.UserEmails(ctx, want)
		if err != nil || len(emails) != 250 {
			t.Errorf("%d emails, err %v", len(emails), err)
		}
	})

	t.Run("fields and projects", func(t *testing.T) {
		fields, err := c.Fields(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]jira.Field{}
		for _, f := range fields {
			byID[f.ID] = f
		}
		if f := byID["summary"]; f.Name == "" || f.Custom || f.Schema == nil || f.Schema.Type != "string" {
			t.Errorf("summary field %+v", f)
		}
		projects, err := c.Projects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(projects, func(p jira.Project) bool { return p.Key == "SEI" && p.ID != "" }) {
			t.Errorf("projects %+v", projects)
		}
	})

	t.Run("changelog and comments", func(t *testing.T) {
		for _, st := range []string{"In Progress", "Done", "To Do"} {
			if _, err := s.TransitionIssue("SEI-1", st); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			if _, err := s.AddComment("SEI-1", "557058:sim-001", fmt.Sprintf("comment %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		page, err := c.IssueChangelog(ctx, "SEI-1", 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		all, err := c.AllIssueChangelog(ctx, "SEI-1", 0)
		if err != nil {
			t.Fatal(err)
		}
		var moves []string
		for _, h := range all {
			for _, it := range h.Items {
				if it.FieldID == "status" {
					moves = append(moves, it.FromString+">"+it.ToString)
				}
			}
		}
		if len(page.Values) > 2 || !strings.HasSuffix(strings.Join(moves, ","), "To Do>In Progress,In Progress>Done,Done>To Do") {
			t.Errorf("page of %d, status moves %v", len(page.Values), moves)
		}
		comments, err := c.AllIssueComments(ctx, "10001", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(comments) != 3 || comments[0].Author == nil || comments[0].Author.AccountID != "557058:sim-001" || len(comments[2].Body) == 0 ||
			jirasim.ADFText(comments[2].Body) != "comment 2" {
			t.Errorf("comments %+v", comments)
		}
		if _, err := c.IssueComments(ctx, "SEI-404", 0, 0); !jira.IsNotFound(err) {
			t.Errorf("comments of a missing issue: %v", err)
		}
	})
}
