package ingest_test

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// Syncs through CloudTokenSource and DataCenterSource, over real HTTP
// against the simulator, into SQLite and PostgreSQL, compared with the
// simulator's ground truth.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newIntegration creates a tenant and an integration of typ.
func newIntegration(t *testing.T, db *store.DB, typ string) *store.Integration {
	t.Helper()
	ctx := context.Background()
	tenant := &store.Tenant{ID: uuid.Must(uuid.NewV7()).String(), Name: "Acme"}
	if err := db.CreateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	it := &store.Integration{ID: uuid.Must(uuid.NewV7()).String(), TenantID: tenant.ID, Name: "Acme Jira", Type: typ,
		Timezone: "Europe/Berlin", Tags: []string{}, ExcludedFields: []string{}, Settings: "{}", Status: "connected"}
	if err := db.CreateIntegration(ctx, it); err != nil {
		t.Fatal(err)
	}
	return it
}

// syncer syncs with a fresh source from open for every run.
func syncer(db *store.DB, open func() (ingest.Source, error)) *ingest.Syncer {
	return &ingest.Syncer{DB: db, Now: time.Now, Log: quiet, PartitionSize: 700,
		Sources: func(context.Context, *store.Integration) (ingest.Source, error) { return open() }}
}

func client(t *testing.T, baseURL string, auth jira.Authenticator, opts ...jira.Option) *jira.Client {
	t.Helper()
	c, err := jira.New(baseURL, auth, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// equalsTruth checks the database against the ground truth: every issue,
// transition, comment, and user with the email the credentials may see.
func equalsTruth(t *testing.T, db *store.DB, itID string, gt *jirasim.GroundTruth) {
	t.Helper()
	ctx := context.Background()
	var stored []store.JiraIssue
	for after := int64(-1 << 63); ; {
		page, err := db.ListIssues(ctx, itID, store.IssueFilter{}, after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, page...)
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].IssueID
	}
	byID := map[int64]store.JiraIssue{}
	for _, is := range stored {
		byID[is.IssueID] = is
	}
	if len(stored) != len(gt.Issues) {
		t.Errorf("stored %d issues, Jira shows %d", len(stored), len(gt.Issues))
	}
	want := map[string]int64{"issues": int64(len(gt.Issues)), "users": int64(len(gt.Users))}
	bad := 0
	for _, ti := range gt.Issues {
		want["transitions"] += int64(len(ti.Transitions))
		want["comments"] += int64(len(ti.Comments))
		is, ok := byID[ti.ID]
		assignee := ""
		if ok && is.AssigneeAccountID != nil {
			assignee = *is.AssigneeAccountID
		}
		if !ok || is.Key != ti.Key || is.Status != ti.Status || is.StatusCategory != ti.StatusCategory || !is.Updated.Equal(ti.Updated) ||
			!is.Created.Equal(ti.Created) || assignee != ti.Assignee || is.ProjectKey != ti.ProjectKey {
			if bad++; bad < 5 {
				t.Errorf("issue %s (%d): stored %v %+v, Jira %+v", ti.Key, ti.ID, ok, is, ti)
			}
		}
	}
	got, err := db.CountIngested(ctx, itID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"transitions", "comments", "users"} {
		if got[k] != want[k] {
			t.Errorf("stored %d %s, Jira has %d", got[k], k, want[k])
		}
	}
	// Transitions and comments of a few issues in full.
	checked := 0
	for _, ti := range gt.Issues {
		if len(ti.Transitions) < 2 || len(ti.Comments) < 1 || checked == 5 {
			continue
		}
		checked++
		_, trs, cs, err := db.IssueByKey(ctx, itID, ti.Key)
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) != len(ti.Transitions) || len(cs) != len(ti.Comments) {
			t.Errorf("%s: %d transitions, %d comments; Jira %d, %d", ti.Key, len(trs), len(cs), len(ti.Transitions), len(ti.Comments))
			continue
		}
		for i, tr := range ti.Transitions {
			if deref(trs[i].ToStatus) != tr.To || !trs[i].At.Equal(tr.At) || deref(trs[i].AuthorAccountID) != tr.Author {
				t.Errorf("%s transition %d: stored %v %v %v, Jira %+v", ti.Key, i, deref(trs[i].ToStatus), trs[i].At, deref(trs[i].AuthorAccountID), tr)
			}
		}
		for i, c := range ti.Comments {
			if cs[i].CommentID != strconv.FormatInt(c.ID, 10) || deref(cs[i].Body) != c.Body || deref(cs[i].AuthorAccountID) != c.Author {
				t.Errorf("%s comment %d differs: %q by %s, Jira %q by %s", ti.Key, i, deref(cs[i].Body), deref(cs[i].AuthorAccountID), c.Body, c.Author)
			}
		}
	}
	var users []store.JiraUser
	if err := db.Gorm.WithContext(ctx).Where("integration_id = ?", itID).Find(&users).Error; err != nil {
		t.Fatal(err)
	}
	stUsers := map[string]store.JiraUser{}
	for _, u := range users {
		stUsers[u.AccountID] = u
	}
	for _, u := range gt.Users {
		su, ok := stUsers[u.AccountID]
		switch {
		case !ok:
			t.Errorf("user %s missing", u.AccountID)
		case deref(su.Email) != u.VisibleEmail:
			t.Errorf("user %s: email %q, the credentials see %q", u.AccountID, deref(su.Email), u.VisibleEmail)
		case su.DisplayName != u.DisplayName || su.Active != u.Active:
			t.Errorf("user %s: %q/%v, want %q/%v", u.AccountID, su.DisplayName, su.Active, u.DisplayName, u.Active)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mutate changes the site as people do between two syncs.
func mutate(t *testing.T, s *jirasim.Site, author string) {
	t.Helper()
	gt := s.GroundTruth()
	ids := []string{}
	for _, i := range []int{0, 1, 2, 3, 4, len(gt.Issues) / 2, len(gt.Issues) - 1} {
		ids = append(ids, strconv.FormatInt(gt.Issues[i].ID, 10))
	}
	steps := []func() error{
		func() error { _, err := s.TransitionIssue(ids[0], "Done"); return err },
		func() error { _, err := s.AddComment(ids[1], author, "a new comment\nover two lines"); return err },
		func() error {
			_, err := s.UpdateIssue(ids[2], func(f map[string]any) { f["summary"] = "renamed"; f["assignee"] = author })
			return err
		},
		func() error { _, err := s.DeleteIssue(ids[3]); return err },
		func() error { return s.MoveIssueOutOfView(ids[4]) },
		func() error { _, err := s.TransitionIssue(ids[5], "In Progress"); return err },
		func() error {
			_, err := s.CreateIssue(gt.Issues[0].ProjectKey, map[string]any{"summary": "brand new", "assignee": author})
			return err
		},
	}
	for _, f := range steps {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCloudAPITokenSync(t *testing.T) {
	s := jirasim.NewCloudSite()
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(1500)
	spec.LongTailShare, spec.Users = 0.03, 80 // truncated changelogs for bulkfetch; hidden emails
	if err := s.Generate(11, spec); err != nil {
		t.Fatal(err)
	}
	s.AddBasicUser("557058:sei-bot", "SEI Bot", "sei.bot@example.com", "api-token-1")
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		it := newIntegration(t, db, "jira_cloud_api_token")
		c := client(t, s.BaseURL, jira.Basic{Username: "sei.bot@example.com", Password: "api-token-1"})
		sy := syncer(db, func() (ingest.Source, error) { return ingest.NewCloudTokenSource(c), nil })
		before := s.RequestCounts()
		if err := sy.Sync(ctx, it.ID, ingest.ModeFull); err != nil {
			t.Fatal(err)
		}
		after := s.RequestCounts()
		gt := s.GroundTruth()
		equalsTruth(t, db, it.ID, gt)
		bulk := after["/rest/api/3/changelog/bulkfetch"] - before["/rest/api/3/changelog/bulkfetch"]
		perIssue := 0
		for p, n := range after {
			if strings.HasSuffix(p, "/changelog") && strings.HasPrefix(p, "/rest/api/3/issue/") {
				perIssue += n - before[p]
			}
		}
		long := 0
		for _, ti := range gt.Issues {
			if ti.Histories > jirasim.EmbeddedChangelogMax {
				long++
			}
		}
		if long == 0 || bulk == 0 || bulk > long || perIssue != 0 {
			t.Errorf("%d issues with truncated changelogs took %d bulkfetch calls and %d per-issue changelog calls", long, bulk, perIssue)
		}
		hidden := 0
		for _, u := range gt.Users {
			if u.Email != "" && u.VisibleEmail == "" {
				hidden++
			}
		}
		if hidden == 0 {
			t.Error("no user hides their email: the test proves nothing about privacy")
		}

		// Search (raw issues, for other callers than the syncer) completes
		// the changelogs too.
		src := ingest.NewCloudTokenSource(c)
		q := ingest.Query{JQL: "id > 0 ORDER BY id ASC", Fields: []string{"status"}, Changelog: true, MaxResults: 100}
		complete := 0
		for {
			raws, next, err := src.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range raws {
				p, err := ingest.Parse(raw)
				if err != nil || p.ChangelogTruncated() {
					t.Fatalf("issue %v: %v, truncated", p, err)
				}
				if len(p.Histories) > jirasim.EmbeddedChangelogMax {
					complete++
				}
			}
			if next == "" {
				break
			}
			q.PageToken = next
		}
		if complete != long {
			t.Errorf("Search completed %d long changelogs of %d", complete, long)
		}

		mutate(t, s, gt.Users[0].AccountID)
		if err := sy.Sync(ctx, it.ID, ingest.ModeIncremental); err != nil {
			t.Fatal(err)
		}
		equalsTruth(t, db, it.ID, s.GroundTruth())
	})
}

// dcAuths are the ways to call a Data Center site: a personal access
// token, a password, an ADFS token.
func dcAuths(t *testing.T, s *jirasim.Site) map[string]jira.Authenticator {
	t.Helper()
	s.AddDCUser("sei.bot", "SEI Bot", "sei.bot@example.com")
	s.SetPassword("sei.bot", "secret-password")
	s.EnableADFS(jirasim.ADFSConfig{ClientID: "sei-ingest", Resource: "urn:jira:acme", TokenTTL: time.Hour})
	s.SetADFSPassword("sei.bot", "adfs-password")
	adfs, err := jira.NewADFS(jira.ADFSConfig{TokenURL: s.ADFSURL(), ClientID: "sei-ingest", Resource: "urn:jira:acme",
		Username: "sei.bot", Password: "adfs-password"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]jira.Authenticator{
		"pat":   jira.Bearer{Token: s.IssuePAT("sei.bot")},
		"basic": jira.Basic{Username: "sei.bot", Password: "secret-password"},
		"adfs":  adfs,
	}
}

func dcSite(t *testing.T, n int, edit func(*jirasim.GenSpec), opts ...jirasim.SiteOption) *jirasim.Site {
	t.Helper()
	s := jirasim.NewDataCenterSite(opts...)
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(n)
	if edit != nil {
		edit(&spec)
	}
	if err := s.Generate(23, spec); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDataCenterSync(t *testing.T) {
	s := dcSite(t, 1500, func(g *jirasim.GenSpec) { g.LongTailShare = 0.01 })
	auths := dcAuths(t, s)
	for _, name := range []string{"pat", "basic", "adfs"} {
		t.Run(name, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				it := newIntegration(t, db, "jira_datacenter")
				c := client(t, s.BaseURL, auths[name])
				sy := syncer(db, func() (ingest.Source, error) { return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil })
				if err := sy.Sync(ctx, it.ID, ingest.ModeFull); err != nil {
					t.Fatal(err)
				}
				equalsTruth(t, db, it.ID, s.GroundTruth())
				// Each run mutates the shared site anew: the incremental
				// sync must pick up this run's changes.
				mutate(t, s, jirasim.DCUserKey(1))
				if err := sy.Sync(ctx, it.ID, ingest.ModeIncremental); err != nil {
					t.Fatal(err)
				}
				equalsTruth(t, db, it.ID, s.GroundTruth())
			})
		})
	}
	if n := s.WindowRefusals(); n != 0 {
		t.Errorf("%d searches refused past the result window", n)
	}
	if n := s.ADFSTokenRequests(); n != 1 {
		t.Errorf("%d ADFS token requests for every ADFS sync (one cached token)", n)
	}
}

// TestDataCenterResultWindow: a project larger than the result window is
// read to its end, keyset or by counted updated windows, without a page
// past the window.
func TestDataCenterResultWindow(t *testing.T) {
	// 3,000 issues in one project against a window of 500 and pages of 50
	// play 30,000 against 10,000 and 100 at a tenth of the cost.
	s := dcSite(t, 3000, func(g *jirasim.GenSpec) { g.Projects = 1 })
	s.SetResultWindow(500)
	s.SetDCMaxResults(50)
	auth := dcAuths(t, s)["pat"]
	for _, paging := range []string{ingest.PagingKeyset, ingest.PagingWindows} {
		t.Run(paging, func(t *testing.T) {
			db := storetest.Open(t, store.DialectSQLite)
			ctx := context.Background()
			it := newIntegration(t, db, "jira_datacenter")
			var srcs []*ingest.DataCenterSource
			var mu sync.Mutex
			c := client(t, s.BaseURL, auth)
			sy := syncer(db, func() (ingest.Source, error) {
				src := ingest.NewDataCenterSource(c, ingest.DataCenterOptions{Window: 500, Paging: paging})
				mu.Lock()
				srcs = append(srcs, src)
				mu.Unlock()
				return src, nil
			})
			sy.PartitionSize = 2000 // a partition holds more than the window too
			if err := sy.Sync(ctx, it.ID, ingest.ModeFull); err != nil {
				t.Fatal(err)
			}
			equalsTruth(t, db, it.ID, s.GroundTruth())
			st := srcs[0].Stats()
			t.Logf("%s: %d searches, %d counts, %d probes, %d windows", paging, st.Searches, st.Counts, st.Probes, st.Windows)
			if paging == ingest.PagingWindows && (st.Counts == 0 || st.Windows < 6) {
				t.Errorf("windows: %+v", st)
			}
			if paging == ingest.PagingKeyset && st.Counts+st.Probes != 0 {
				t.Errorf("keyset paging counted: %+v", st)
			}

			// Every issue changed since an old watermark: an incremental
			// read in updated order, through windows, in order, each once.
			src := ingest.NewDataCenterSource(c, ingest.DataCenterOptions{Window: 500, Paging: paging})
			q := ingest.Query{JQL: "updated >= 0 ORDER BY updated ASC, id ASC", Fields: []string{"updated"}, MaxResults: 100}
			type key struct{ updated, id int64 }
			var got []key
			for {
				issues, next, err := src.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, raw := range issues {
					p, err := ingest.Parse(raw)
					if err != nil {
						t.Fatal(err)
					}
					var f struct {
						Fields struct {
							Updated jira.Time `json:"updated"`
						} `json:"fields"`
					}
					if err := jsonUnmarshal(raw, &f); err != nil {
						t.Fatal(err)
					}
					got = append(got, key{f.Fields.Updated.UnixMilli(), p.ID})
				}
				if next == "" {
					break
				}
				q.PageToken = next
			}
			if len(got) != len(s.GroundTruth().Issues) || !slices.IsSortedFunc(got, func(a, b key) int {
				return cmp.Or(cmp.Compare(a.updated, b.updated), cmp.Compare(a.id, b.id))
			}) {
				t.Errorf("read %d issues (want %d), in order: %v", len(got), len(s.GroundTruth().Issues), slices.IsSortedFunc(got, func(a, b key) int {
					return cmp.Or(cmp.Compare(a.updated, b.updated), cmp.Compare(a.id, b.id))
				}))
			}
		})
	}
	if n := s.WindowRefusals(); n != 0 {
		t.Errorf("%d searches refused past the result window", n)
	}
}

// TestDataCenterTies: more issues than a page share one updated
// millisecond; keyset paging walks them by id, none lost or repeated.
func TestDataCenterTies(t *testing.T) {
	s := dcSite(t, 40, func(g *jirasim.GenSpec) { g.Projects = 1 })
	s.SetDCMaxResults(10)
	auth := dcAuths(t, s)["pat"]
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	key := s.GroundTruth().Issues[0].ProjectKey
	for range 35 {
		if _, err := s.CreateIssue(key, nil, jirasim.At(at)); err != nil {
			t.Fatal(err)
		}
	}
	src := ingest.NewDataCenterSource(client(t, s.BaseURL, auth), ingest.DataCenterOptions{})
	q := ingest.Query{JQL: "updated >= 0 ORDER BY updated ASC, id ASC", Fields: []string{"summary"}, MaxResults: 10}
	seen := map[int64]int{}
	for range 100 {
		issues, next, err := src.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range issues {
			p, _ := ingest.Parse(raw)
			seen[p.ID]++
		}
		if next == "" {
			break
		}
		q.PageToken = next
	}
	if len(seen) != 75 {
		t.Errorf("read %d distinct issues, want 75", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("issue %d read %d times", id, n)
		}
	}
}

// revokeAfter revokes a credential as the nth search request leaves: a
// token revoked in the middle of a sync.
type revokeAfter struct {
	base   http.RoundTripper
	n      atomic.Int32
	after  int32
	revoke func()
}

func (r *revokeAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/rest/api/2/search") && r.n.Add(1) == r.after {
		r.revoke()
	}
	return r.base.RoundTrip(req)
}

// TestDataCenterRevokedMidSync: a PAT revoked in the middle of a full sync
// fails it with ErrCredentialsRejected, keeping what was stored; after
// re-authentication the next sync resumes from the checkpoints and ends
// equal to the ground truth.
func TestDataCenterRevokedMidSync(t *testing.T) {
	s := dcSite(t, 2000, nil)
	s.AddDCUser("sei.bot", "SEI Bot", "sei.bot@example.com")
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		it := newIntegration(t, db, "jira_datacenter")
		pat := s.IssuePAT("sei.bot")
		var current atomic.Value
		current.Store(pat)
		rt := &revokeAfter{base: http.DefaultTransport, after: 15, revoke: func() { s.RevokePAT(pat) }}
		sy := syncer(db, func() (ingest.Source, error) {
			c, err := jira.New(s.BaseURL, jira.Bearer{Token: current.Load().(string)}, jira.WithHTTPClient(&http.Client{Transport: rt, Timeout: time.Minute}))
			return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), err
		})
		sy.Parallel = 2
		err := sy.Sync(ctx, it.ID, ingest.ModeFull)
		if !errors.Is(err, jira.ErrCredentialsRejected) || !jira.IsUnauthorized(err) {
			t.Fatalf("sync with a PAT revoked midway: %v", err)
		}
		counts, _ := db.CountIngested(ctx, it.ID)
		cps, _ := db.Checkpoints(ctx, it.ID)
		if counts["issues"] == 0 || counts["issues"] >= 2000 || cps["full:plan"] == "" {
			t.Fatalf("after the failure: %v stored, checkpoints %v", counts, len(cps))
		}
		run, _ := db.LatestRun(ctx, it.ID)
		if run.State != ingest.StateFailed || run.Error == nil || strings.Contains(*run.Error, pat) {
			t.Errorf("failed run: %+v", run)
		}

		// Re-authenticated with a new token: the sync resumes.
		current.Store(s.IssuePAT("sei.bot"))
		if err := sy.Sync(ctx, it.ID, ingest.ModeIncremental); err != nil {
			t.Fatal(err)
		}
		equalsTruth(t, db, it.ID, s.GroundTruth())
		run, _ = db.LatestRun(ctx, it.ID)
		if run.Mode != ingest.ModeFull || run.Issues+int(counts["issues"]) > 2000+2*sy.PageSize*sy.Parallel {
			t.Errorf("the resumed run read %d issues after %d were stored", run.Issues, counts["issues"])
		}
	})
}

// TestDataCenterRefusals: ADFS refusing the grant, and a self-signed
// certificate, fail a sync plainly; skipping verification when asked works.
func TestDataCenterRefusals(t *testing.T) {
	s := dcSite(t, 200, nil, jirasim.WithTLS())
	auths := dcAuths(t, s)
	db := storetest.Open(t, store.DialectSQLite)
	ctx := context.Background()
	it := newIntegration(t, db, "jira_datacenter")

	bad, err := jira.NewADFS(jira.ADFSConfig{TokenURL: s.ADFSURL(), ClientID: "sei-ingest", Resource: "urn:jira:acme",
		Username: "sei.bot", Password: "wrong-adfs-password", TLS: insecureTLS()})
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s.BaseURL, bad, jira.WithInsecureSkipVerify())
	err = syncer(db, func() (ingest.Source, error) { return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil }).Sync(ctx, it.ID, ingest.ModeFull)
	var ae *jira.ADFSError
	if !errors.Is(err, jira.ErrCredentialsRejected) || !errors.As(err, &ae) || ae.Code != "invalid_grant" || strings.Contains(err.Error(), "wrong-adfs-password") {
		t.Errorf("refused grant: %v", err)
	}

	c = client(t, s.BaseURL, auths["pat"])
	err = syncer(db, func() (ingest.Source, error) { return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil }).Sync(ctx, it.ID, ingest.ModeFull)
	if !jira.IsCertificate(err) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("self-signed without allow_unsafe_ssl: %v", err)
	}

	c = client(t, s.BaseURL, auths["pat"], jira.WithInsecureSkipVerify())
	if err := syncer(db, func() (ingest.Source, error) { return ingest.NewDataCenterSource(c, ingest.DataCenterOptions{}), nil }).Sync(ctx, it.ID, ingest.ModeFull); err != nil {
		t.Fatal(err)
	}
	equalsTruth(t, db, it.ID, s.GroundTruth())
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // a test of the unsafe option
