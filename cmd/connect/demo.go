package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/app"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/secrets"
)

// demo is a first look for newcomers: the service on the embedded default,
// an embedded Jira simulator that installs the app, a tenant and an
// integration linked by a Connect key, a full sync with a progress bar,
// then counts and a few sample issues. Everything runs over real HTTP on
// loopback, through the same paths Jira and SEI use.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issues := fs.Int("issues", 2000, "issues in the simulated Jira site")
	keep := fs.Bool("keep", false, "keep serving after the sync (Ctrl-C to stop)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "connect-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	atl, err := jirasim.New()
	if err != nil {
		return err
	}
	defer atl.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		return err
	}
	env := map[string]string{"BASE_URL": base, "DATA_DIR": dir, "ENCRYPTION_KEYS": spec, "CONNECT_INSTALL_KEYS_URL": atl.Keys.URL,
		"JIRA_HOST_ALLOWLIST": "127.0.0.1", "LOG_LEVEL": "warn", "JOBS_POLL_INTERVAL": "100ms"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg, stderr)
	a, err := app.Open(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	srv := app.NewServer(a.Handler, log)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if err := a.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Stop(sctx)
	}()
	say("● SEI Connect app serving on %s (SQLite in %s)", base, dir)

	jiraApp, err := atl.LoadApp(ctx, base+"/atlassian-connect.json")
	if err != nil {
		return err
	}
	site := atl.NewSite(jiraApp)
	defer site.Close()
	if err := site.Generate(1, jirasim.DefaultGenSpec(*issues)); err != nil {
		return err
	}
	if err := expect(site.Install(ctx)); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	say("● Jira site %s (simulated, %d issues) installed the app: signed install verified", site.BaseURL, *issues)

	tenant, apiKey, err := a.Integrations.CreateTenant(ctx, "Demo Inc.")
	if err != nil {
		return err
	}
	api := &apiClient{base: base + "/api/v1", key: apiKey}
	var it struct{ ID, Status string }
	if err := api.do(ctx, "POST", "/integrations", map[string]any{"name": "Demo Jira", "timezone": "Europe/Berlin"}, &it); err != nil {
		return err
	}
	say("● Tenant %q and integration %q created (status %s)", tenant.Name, "Demo Jira", it.Status)

	tok, err := site.ContextToken(time.Now())
	if err != nil {
		return err
	}
	var key struct {
		Key       string    `json:"key"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := (&apiClient{base: base, auth: "JWT " + tok}).do(ctx, "POST", "/connect-keys", nil, &key); err != nil {
		return err
	}
	say("● A Jira admin pressed Generate key on the app's page: %s (valid until %s)", key.Key, key.ExpiresAt.Format(time.Kitchen))
	if err := api.do(ctx, "POST", "/integrations/"+it.ID+"/connect-key", map[string]any{"key": key.Key}, nil); err != nil {
		return err
	}
	var val struct {
		Validation struct {
			OK     bool
			Checks []struct{ Name, Status, Message string }
		}
	}
	if err := api.do(ctx, "POST", "/integrations/"+it.ID+"/validate", nil, &val); err != nil {
		return err
	}
	say("● Key redeemed; Validate Connection:")
	for _, c := range val.Validation.Checks {
		say("    %-15s %-4s %s", c.Name, c.Status, c.Message)
	}
	if !val.Validation.OK {
		return errors.New("validation failed")
	}

	began := time.Now()
	for {
		var m struct {
			Sync struct {
				State  *string
				Stored map[string]int64
				Counts map[string]int
			}
		}
		if err := api.do(ctx, "GET", "/integrations/"+it.ID+"/monitoring", nil, &m); err != nil {
			return err
		}
		done := m.Sync.Stored["issues"]
		width := 40
		filled := int(int64(width) * done / int64(max(*issues, 1)))
		fmt.Fprintf(stdout, "\r\033[K● Syncing [%s%s] %d/%d issues", strings.Repeat("#", min(filled, width)), strings.Repeat(".", max(width-filled, 0)), done, *issues)
		if m.Sync.State != nil && *m.Sync.State != "running" {
			fmt.Fprintln(stdout)
			if *m.Sync.State != "succeeded" {
				return fmt.Errorf("sync %s", *m.Sync.State)
			}
			say("● Full sync %s in %v: %d issues, %d transitions, %d comments, %d users, %d requests to Jira",
				*m.Sync.State, time.Since(began).Round(time.Millisecond), m.Sync.Stored["issues"], m.Sync.Stored["transitions"],
				m.Sync.Stored["comments"], m.Sync.Stored["users"], m.Sync.Counts["requests"])
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}

	var page struct {
		Items []struct {
			Key, Status, Summary string
			Assignee             *string `json:"assignee_account_id"`
			Updated              time.Time
		}
	}
	if err := api.do(ctx, "GET", "/integrations/"+it.ID+"/issues?limit=5", nil, &page); err != nil {
		return err
	}
	say("● A few issues, as SEI reads them (GET /api/v1/integrations/%s/issues):", it.ID)
	for _, is := range page.Items {
		say("    %-10s %-12s %s", is.Key, is.Status, is.Summary)
	}
	if *keep {
		// The demo tenant's key, on loopback, for the person at the
		// terminal: this is program output, never a log line.
		say("\nServing until Ctrl-C. Try:\n  curl -H 'Authorization: Bearer %s' %s/api/v1/integrations/%s/monitoring", apiKey, base, it.ID)
		<-ctx.Done()
	}
	return nil
}

func expect(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// apiClient calls the service's HTTP API as SEI (or the page) would.
type apiClient struct{ base, key, auth string }

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
