package jirasim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

// simNow is the present of generated test sites.
var simNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// genSite is a site generated from seed with spec adjusted by edit.
func genSite(t *testing.T, seed int64, n int, edit func(*jirasim.GenSpec), opts ...jirasim.SiteOption) *jirasim.Site {
	t.Helper()
	s := newSite(t, nil, opts...)
	spec := jirasim.DefaultGenSpec(n)
	spec.Now = simNow
	if edit != nil {
		edit(&spec)
	}
	if err := s.Generate(seed, spec); err != nil {
		t.Fatal(err)
	}
	return s
}

type rawIssue struct {
	ID        string                     `json:"id"`
	Key       string                     `json:"key"`
	Fields    map[string]json.RawMessage `json:"fields"`
	Changelog *struct {
		StartAt    int               `json:"startAt"`
		MaxResults int               `json:"maxResults"`
		Total      int               `json:"total"`
		Histories  []json.RawMessage `json:"histories"`
	} `json:"changelog"`
}

func (r rawIssue) id(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type searchPage struct {
	Issues        []rawIssue `json:"issues"`
	NextPageToken string     `json:"nextPageToken"`
	IsLast        bool       `json:"isLast"`
}

// searchAll pages through a GET search; each page passes through visit
// (which may be nil) before the next is asked for.
func searchAll(t *testing.T, s *jirasim.Site, q url.Values, visit func(page int)) []rawIssue {
	t.Helper()
	var all []rawIssue
	for page := 0; ; page++ {
		r := call(t, s, http.MethodGet, "/rest/api/3/search/jql", q, s.SharedSecret, "")
		if r.status != 200 {
			t.Fatalf("search %v: %d %s", q, r.status, r.body)
		}
		var p searchPage
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Issues...)
		if visit != nil {
			visit(page)
		}
		if p.IsLast {
			if p.NextPageToken != "" {
				t.Fatal("last page with a token")
			}
			return all
		}
		q = cloneValues(q)
		q.Set("nextPageToken", p.NextPageToken)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func getJSON(t *testing.T, s *jirasim.Site, path string, q url.Values, out any) {
	t.Helper()
	r := call(t, s, http.MethodGet, path, q, s.SharedSecret, "")
	if r.status != 200 {
		t.Fatalf("GET %s %v: %d %s", path, q, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
}

func field[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	return v
}

func signFor(t *testing.T, s *jirasim.Site, method string, u *url.URL) string {
	t.Helper()
	tok, err := atlassianjwt.Sign(s.App.Key, []byte(s.SharedSecret), method, u, s.ContextPath, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
