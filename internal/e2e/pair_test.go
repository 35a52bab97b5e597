package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// rig is one service process paired with one simulated Jira site.
type rig struct {
	t      *testing.T
	svc    *service
	atl    *jirasim.Atlassian
	site   *jirasim.Site
	apiKey string
	itID   string
	// siteOptions are given to the site link makes.
	siteOptions []jirasim.SiteOption
}

// newRig starts the simulator's keys server and the service (not yet
// paired) on databaseURL with the extra environment.
func newRig(t *testing.T, databaseURL string, extra map[string]string) *rig {
	t.Helper()
	atl, err := jirasim.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(atl.Close)
	svc := newService(t, databaseURL, atl.Keys.URL, extra)
	svc.start()
	return &rig{t: t, svc: svc, atl: atl}
}

// pair links (see link) and validates the connection, which enqueues the
// first (full) sync. It returns when validation has passed.
func (r *rig) pair(seed int64, spec jirasim.GenSpec, setup func(*jirasim.Site)) {
	r.t.Helper()
	r.link(seed, spec, setup)
	r.validate()
}

// link does what a Jira admin and SEI do, over HTTP, against the running
// service: Jira loads the descriptor and installs the app on a site
// generated from spec (configured by setup before anything is served);
// `connect tenants create` makes a tenant; SEI creates an integration; the
// admin opens the app's page and generates a Connect key; SEI redeems it.
func (r *rig) link(seed int64, spec jirasim.GenSpec, setup func(*jirasim.Site)) {
	t := r.t
	t.Helper()
	ctx := context.Background()
	app, err := r.atl.LoadApp(ctx, r.svc.base+"/atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	site := r.atl.NewSite(app, r.siteOptions...)
	t.Cleanup(site.Close)
	r.svc.remember(site.SharedSecret)
	if err := site.Generate(seed, spec); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(site)
	}
	r.site = site
	if st := status(site.Install(ctx)); st != http.StatusNoContent {
		t.Fatalf("install: HTTP %d, want 204", st)
	}

	var tenant struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
	}
	if err := json.Unmarshal(r.svc.admin("tenants", "create", "--name", "Acme"), &tenant); err != nil || tenant.APIKey == "" {
		t.Fatalf("tenants create: unexpected output (%v)", err)
	}
	r.apiKey = tenant.APIKey
	r.svc.remember(tenant.APIKey)

	var it struct{ ID, Status string }
	r.api(http.MethodPost, "/integrations", map[string]any{"name": "Acme Jira", "timezone": "Europe/Berlin"}, http.StatusCreated, &it)
	r.itID = it.ID

	// The admin opens the app's configure page in Jira (a page JWT in the
	// query), whose script asks for a context token and generates a key.
	page, err := site.PageURL("sei-configure")
	if err != nil {
		t.Fatal(err)
	}
	if st := status(http.Get(page)); st != http.StatusOK {
		t.Fatalf("configure page: HTTP %d", st)
	}
	tok, err := site.ContextToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := doJSON(http.MethodPost, r.svc.base+"/connect-keys", "JWT "+tok, nil, http.StatusCreated, &key); err != nil || key.Key == "" {
		t.Fatalf("generate a Connect key: %v", err)
	}
	r.svc.remember(key.Key)
	r.api(http.MethodPost, "/integrations/"+r.itID+"/connect-key", map[string]any{"key": key.Key}, http.StatusOK, nil)
}

// validate is SEI's Validate Connection; passing it starts the first sync.
func (r *rig) validate() {
	r.t.Helper()
	var val struct {
		Validation struct {
			OK     bool `json:"ok"`
			Checks []struct{ Name, Status, Message string }
		} `json:"validation"`
	}
	r.api(http.MethodPost, "/integrations/"+r.itID+"/validate", nil, http.StatusOK, &val)
	if !val.Validation.OK {
		r.t.Fatalf("validation failed: %+v", val.Validation.Checks)
	}
}

// api calls /api/v1 as SEI does and decodes the answer into out (if not
// nil); any other status than want fails the test.
func (r *rig) api(method, path string, body any, want int, out any) {
	r.t.Helper()
	if err := doJSON(method, r.svc.base+"/api/v1"+path, "Bearer "+r.apiKey, body, want, out); err != nil {
		r.t.Fatal(err)
	}
}

func doJSON(method, url, auth string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// The path only: the URL is ours, the answer may be long.
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %.300s", method, req.URL.Path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %v", method, req.URL.Path, err)
		}
	}
	return nil
}

func status(resp *http.Response, err error) int {
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// monitoring is GET …/monitoring's answer, the parts these tests read.
type monitoring struct {
	Status string `json:"status"`
	Sync   struct {
		State         *string          `json:"state"`
		Mode          *string          `json:"mode"`
		LastStartedAt *time.Time       `json:"last_started_at"`
		LastFinished  *time.Time       `json:"last_finished_at"`
		Counts        map[string]int   `json:"counts"`
		Stored        map[string]int64 `json:"stored"`
		LastError     *string          `json:"last_error"`
	} `json:"sync"`
}

func (m *monitoring) state() string {
	if m.Sync.State == nil {
		return ""
	}
	return *m.Sync.State
}

func (m *monitoring) started() time.Time {
	if m.Sync.LastStartedAt == nil {
		return time.Time{}
	}
	return *m.Sync.LastStartedAt
}

// monitor reads the integration's monitoring; ok is false when the
// service did not answer (it may be down on purpose).
func (r *rig) monitor() (m monitoring, ok bool) {
	err := doJSON(http.MethodGet, r.svc.base+"/api/v1/integrations/"+r.itID+"/monitoring", "Bearer "+r.apiKey, nil, http.StatusOK, &m)
	return m, err == nil
}

// runSeen is one sync run as monitoring showed it.
type runSeen struct {
	Started, Finished time.Time
	State, Mode       string
	Counts            map[string]int
	Error             string
}

// waitSucceeded polls monitoring until a run that finished after `after`
// has succeeded (the newest run; the first sync is full, and the service
// runs no incremental one before a full one completes), and returns it.
// Runs that fail on the way are logged, and tolerated when
// tolerateFailures (River retries them), else fatal.
func (r *rig) waitSucceeded(after time.Time, timeout time.Duration, tolerateFailures bool) runSeen {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	var last runSeen
	for time.Now().Before(deadline) {
		m, ok := r.monitor()
		if ok && m.state() != "" {
			cur := runSeen{Started: m.started(), State: m.state(), Counts: m.Sync.Counts}
			if m.Sync.LastFinished != nil {
				cur.Finished = *m.Sync.LastFinished
			}
			if m.Sync.Mode != nil {
				cur.Mode = *m.Sync.Mode
			}
			if m.Sync.LastError != nil {
				cur.Error = r.svc.redact(*m.Sync.LastError)
			}
			if cur.Started != last.Started || cur.State != last.State {
				r.t.Logf("monitoring: run started %s: %s %s %v %s", cur.Started.Format("15:04:05.000"), cur.Mode, cur.State, cur.Counts, cur.Error)
			}
			last = cur
			if !cur.Finished.IsZero() && !cur.Finished.Before(after) {
				switch cur.State {
				case "succeeded":
					return cur
				case "failed":
					if !tolerateFailures {
						r.t.Fatalf("sync failed: %s", cur.Error)
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("no successful sync within %v (last seen: %+v)", timeout, last)
	return last
}
