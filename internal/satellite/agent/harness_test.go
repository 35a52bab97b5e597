package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/app"
	svcconfig "github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/ingest"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/jobs"
	"github.com/sei-io/jira-connect/internal/satellite/config"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// These tests run the real service (internal/app, in process, over HTTP
// on a SQLite database), the Jira simulator in Data Center mode on the
// other side, and the satellite in between with its own local database:
// nothing of ours is mocked.

// logBuffer collects log output written concurrently.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// seiService is the SEI service running for a test, with one tenant.
type seiService struct {
	t      *testing.T
	db     *store.DB
	base   string // BASE_URL
	key    string // the tenant's API key
	tenant string
	logs   *logBuffer
}

func startService(t *testing.T) *seiService {
	t.Helper()
	db := storetest.Open(t, "sqlite")
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"BASE_URL": base, "JIRA_HOST_ALLOWLIST": "127.0.0.1", "ENCRYPTION_KEYS": spec, "LOG_LEVEL": "debug",
		"DATA_DIR": t.TempDir(), "JOBS_POLL_INTERVAL": "50ms", "CONNECT_INSTALL_KEYS_URL": "http://127.0.0.1:1"}
	cfg, err := svcconfig.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := app.NewLogger(cfg, logs)
	kr, err := secrets.ParseKeyRing(spec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, log, db, kr, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config = app.NewServer(a.Handler, log)
	srv.Start()
	t.Cleanup(srv.Close)
	bg, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	tenant, key, err := a.Integrations.CreateTenant(context.Background(), "Acme")
	if err != nil {
		t.Fatal(err)
	}
	return &seiService{t: t, db: db, base: base, key: key, tenant: tenant.ID, logs: logs}
}

// api calls /api/v1 with the tenant's key.
func (s *seiService) api(method, path string, body any) (int, map[string]any, string) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+"/api/v1"+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// dcSite is a generated Data Center site whose account sei.bot signs in
// with a personal access token (returned) or the password "bot-password-1".
func dcSite(t *testing.T, issues int, opts ...jirasim.SiteOption) (*jirasim.Site, string) {
	t.Helper()
	s := jirasim.NewDataCenterSite(opts...)
	t.Cleanup(s.Close)
	spec := jirasim.DefaultGenSpec(issues)
	spec.Projects = 2
	if err := s.Generate(11, spec); err != nil {
		t.Fatal(err)
	}
	s.AddDCUser("sei.bot", "SEI Bot", "sei.bot@acme.com")
	s.SetPassword("sei.bot", "bot-password-1")
	return s, s.IssuePAT("sei.bot")
}

// satelliteIntegration creates a satellite integration of the site and
// returns its id and satellite.yml as the service renders it.
func (s *seiService) satelliteIntegration(site *jirasim.Site, auth map[string]any, tls map[string]any) (string, string) {
	s.t.Helper()
	body := map[string]any{"name": "Acme DC " + strconv.Itoa(int(time.Now().UnixNano()%1e6)), "type": "jira_datacenter", "connection": "satellite",
		"url": site.BaseURL, "timezone": "Europe/Berlin", "excluded_fields": []string{"description"}, "authentication": auth}
	if tls != nil {
		body["tls"] = tls
	}
	st, out, raw := s.api("POST", "/integrations", body)
	if st != 201 {
		s.t.Fatalf("create integration: %d %s", st, raw)
	}
	id, _ := out["id"].(string)
	st, _, yml := s.api("GET", "/integrations/"+id+"/satellite.yml", nil)
	if st != 200 {
		s.t.Fatalf("satellite.yml: %d %s", st, yml)
	}
	return id, yml
}

// writeConfig fills in satellite.yml's placeholders and loads it.
func writeConfig(t *testing.T, yml string, replace ...string) *config.Config {
	t.Helper()
	yml = strings.NewReplacer(replace...).Replace(yml)
	p := filepath.Join(t.TempDir(), "satellite.yml")
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := config.Load(p)
	if err != nil {
		t.Fatalf("satellite.yml from the service does not load: %v\n%s", err, yml)
	}
	return c
}

// satellite is an agent under test with its log.
type satellite struct {
	*Agent
	logs *logBuffer
}

// newSatellite starts an agent on the local database at dbPath, logging
// through the production logger (with its secret scrubber).
func newSatellite(t *testing.T, c *config.Config, dbPath string, tune func(*Options)) *satellite {
	t.Helper()
	logs := &logBuffer{}
	o := Options{Config: c, DatabaseURL: "sqlite:" + dbPath, Log: NewLogger(logs, slog.LevelDebug, "json", c.Secrets()),
		Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}, Version: "test",
		JiraOptions: []jira.Option{jira.WithRetryPolicy(jira.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxElapsed: 5 * time.Second})},
		Tune:        func(s *ingest.Syncer) { s.PageSize, s.PartitionSize, s.SweepPageSize = 25, 60, 1000 }}
	if tune != nil {
		tune(&o)
	}
	a, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return &satellite{Agent: a, logs: logs}
}

// assertNoSecrets fails when any of the values appears in the output.
func assertNoSecrets(t *testing.T, what, output string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(output, s) {
			t.Errorf("%s contains a secret (%d characters)", what, len(s))
		}
	}
}

// compareWithTruth checks the service's database against the simulator's
// ground truth: every issue (description excluded), transition, comment,
// and referenced user with email; nothing twice, nothing deleted kept.
func compareWithTruth(t *testing.T, db *store.DB, itID string, site *jirasim.Site) {
	t.Helper()
	gt := site.GroundTruth()
	g := db.Gorm.WithContext(context.Background())
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 12 {
			t.Errorf(format, args...)
		}
	}
	var issues []store.JiraIssue
	if err := g.Where("integration_id = ?", itID).Order("issue_id").Find(&issues).Error; err != nil {
		t.Fatal(err)
	}
	if len(issues) != len(gt.Issues) {
		fail("service has %d issues, Jira shows %d", len(issues), len(gt.Issues))
	}
	byID := map[int64]store.JiraIssue{}
	for _, is := range issues {
		byID[is.IssueID] = is
	}
	for _, id := range append(slices.Clone(gt.Deleted), gt.Hidden...) {
		if _, ok := byID[id]; ok {
			fail("issue %d is deleted or hidden in Jira but the service still has it", id)
		}
	}
	var trs []store.JiraTransition
	var cms []store.JiraComment
	g.Where("integration_id = ?", itID).Find(&trs)
	g.Where("integration_id = ?", itID).Find(&cms)
	trsOf := map[int64][]store.JiraTransition{}
	for _, tr := range trs {
		trsOf[tr.IssueID] = append(trsOf[tr.IssueID], tr)
	}
	cmsOf := map[int64][]store.JiraComment{}
	for _, c := range cms {
		cmsOf[c.IssueID] = append(cmsOf[c.IssueID], c)
	}
	for _, ti := range gt.Issues {
		is, ok := byID[ti.ID]
		if !ok {
			fail("issue %s (%d) missing at the service", ti.Key, ti.ID)
			continue
		}
		if is.Key != ti.Key || is.Status != ti.Status || is.StatusCategory != ti.StatusCategory || !is.Updated.Equal(ti.Updated) ||
			!is.Created.Equal(ti.Created) || deref(is.AssigneeAccountID) != ti.Assignee || deref(is.ReporterAccountID) != ti.Reporter ||
			is.ProjectKey != ti.ProjectKey || deref(is.Summary) != ti.Summary || is.IssueType != ti.IssueType {
			fail("issue %s differs: service %s/%s/%v/%s/%q, Jira %s/%s/%v/%s/%q", ti.Key,
				is.Key, is.Status, is.Updated, deref(is.AssigneeAccountID), deref(is.Summary), ti.Key, ti.Status, ti.Updated, ti.Assignee, ti.Summary)
		}
		if is.Description != nil {
			fail("issue %s: the excluded description reached the service", ti.Key)
		}
		got := trsOf[ti.ID]
		slices.SortFunc(got, func(a, b store.JiraTransition) int {
			return cmp.Or(a.At.Compare(b.At), cmp.Compare(atoi(a.HistoryID), atoi(b.HistoryID)), cmp.Compare(a.Item, b.Item))
		})
		want := slices.Clone(ti.Transitions)
		slices.SortStableFunc(want, func(a, b jirasim.TruthTransition) int {
			return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.HistoryID, b.HistoryID))
		})
		if len(got) != len(want) {
			fail("issue %s: service has %d transitions, Jira %d", ti.Key, len(got), len(want))
		} else {
			for i, tr := range want {
				if s := got[i]; atoi(s.HistoryID) != tr.HistoryID || deref(s.ToStatus) != tr.To || deref(s.FromStatus) != tr.From ||
					!s.At.Equal(tr.At) || deref(s.AuthorAccountID) != tr.Author {
					fail("issue %s transition %d differs", ti.Key, i)
					break
				}
			}
		}
		gotC := cmsOf[ti.ID]
		slices.SortFunc(gotC, func(a, b store.JiraComment) int { return cmp.Compare(atoi(a.CommentID), atoi(b.CommentID)) })
		wantC := slices.Clone(ti.Comments)
		slices.SortFunc(wantC, func(a, b jirasim.TruthComment) int { return cmp.Compare(a.ID, b.ID) })
		if len(gotC) != len(wantC) {
			fail("issue %s: service has %d comments, Jira %d", ti.Key, len(gotC), len(wantC))
		} else {
			for i, c := range wantC {
				if s := gotC[i]; atoi(s.CommentID) != c.ID || deref(s.Body) != c.Body || deref(s.AuthorAccountID) != c.Author || !s.Created.Equal(c.Created) {
					fail("issue %s comment %d differs", ti.Key, i)
					break
				}
			}
		}
	}
	var users []store.JiraUser
	g.Where("integration_id = ?", itID).Find(&users)
	stored := map[string]store.JiraUser{}
	for _, u := range users {
		stored[u.AccountID] = u
	}
	for _, u := range gt.Users {
		su, ok := stored[u.AccountID]
		switch {
		case !ok:
			fail("user %s missing at the service", u.AccountID)
		case u.Email != "" && (su.Email == nil || *su.Email != u.Email):
			fail("user %s: email differs from Jira's", u.AccountID)
		case u.Email == "" && su.Email != nil:
			fail("user %s: an email the site does not show", u.AccountID)
		case su.DisplayName != u.DisplayName || su.Active != u.Active:
			fail("user %s: %q/%v, want %q/%v", u.AccountID, su.DisplayName, su.Active, u.DisplayName, u.Active)
		}
	}
	if errs > 12 {
		t.Errorf("… %d differences in all", errs)
	}
}

// countRows counts an integration's rows of a table in a database.
func countRows(t *testing.T, db *store.DB, table, itID string) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm.Table(table).Where("integration_id = ?", itID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
