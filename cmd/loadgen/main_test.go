package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/app"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v", got)
	}
	l := summarize([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if l.P50 != 2 || l.Max != 3 || l.Mean != 2 {
		t.Errorf("summarize = %+v", l)
	}
}

func TestIssueUpdatedBody(t *testing.T) {
	b := issueUpdatedBody("http://127.0.0.1:1234", 3, 3072)
	if len(b) < 3000 || len(b) > 3100 {
		t.Errorf("body is %d bytes, want about 3072", len(b))
	}
	var v struct {
		WebhookEvent string `json:"webhookEvent"`
		Issue        struct{ Key string }
	}
	if err := json.Unmarshal(b, &v); err != nil || v.WebhookEvent != "jira:issue_updated" || v.Issue.Key != "SEI-103" {
		t.Errorf("body %s: %+v, %v", b[:80], v, err)
	}
}

// TestRunAgainstService runs the generator briefly against the real
// service (in process, on SQLite): every webhook must verify. Unlinked,
// the service drops them; linked through the public API, it stores every
// one of them.
func TestRunAgainstService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the service")
	}
	for _, linked := range []bool{false, true} {
		t.Run(map[bool]string{false: "unlinked", true: "linked"}[linked], func(t *testing.T) {
			srv := httptest.NewUnstartedServer(nil)
			t.Cleanup(srv.Close)
			base := "http://" + srv.Listener.Addr().String()
			spec, err := secrets.GenerateKeySpec()
			if err != nil {
				t.Fatal(err)
			}
			kr, err := secrets.ParseKeyRing(spec)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			keysFile := filepath.Join(dir, "api-keys")
			var db *store.DB
			onKeys := func(keysURL string) error {
				env := map[string]string{
					"BASE_URL": base, "CONNECT_INSTALL_KEYS_URL": keysURL, "JIRA_HOST_ALLOWLIST": "127.0.0.1",
					"ENCRYPTION_KEYS": spec, "LOG_LEVEL": "warn", "DATA_DIR": dir,
					"DATABASE_URL": "sqlite:" + filepath.Join(dir, "connect.db"),
				}
				cfg, err := config.Load(func(k string) string { return env[k] })
				if err != nil {
					return err
				}
				log := app.NewLogger(cfg, &bytes.Buffer{})
				db, err = app.OpenStore(context.Background(), cfg, log)
				if err != nil {
					return err
				}
				t.Cleanup(func() { db.Close() })
				a, err := app.New(cfg, log, db, kr, app.Options{})
				if err != nil {
					return err
				}
				// Tenants as `connect tenants create` makes them: one per
				// sitesPerTenant sites.
				var keys []string
				for i := range 2 {
					_, key, err := a.Integrations.CreateTenant(context.Background(), fmt.Sprintf("loadgen %d", i))
					if err != nil {
						return err
					}
					keys = append(keys, key)
				}
				if err := os.WriteFile(keysFile, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
					return err
				}
				srv.Config = app.NewServer(a.Handler, log)
				srv.Start()
				return nil
			}
			// 12 sites: two tenants, the second with fewer than its 10.
			o := options{base: base, sites: 12, concurrency: 4, duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond,
				tokensPerSite: 2, bodySize: 1024, readyTimeout: 10 * time.Second, reqTimeout: 5 * time.Second}
			if linked {
				o.apiKeysFile = keysFile
			}
			var logs bytes.Buffer
			res, err := run(context.Background(), o, &logs, onKeys)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, logs.String())
			}
			if res.failed() {
				var b bytes.Buffer
				res.shout(&b)
				t.Fatal(b.String())
			}
			sent := res.Requests + res.WarmupRequests
			if res.Server == nil || res.Server.WebhookRequests["204"] != sent {
				t.Errorf("server counted %+v, loadgen sent %d", res.Server, sent)
			}
			var stored, integrations int64
			if err := db.Gorm.Model(&store.WebhookEvent{}).Count(&stored).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Gorm.Model(&store.Integration{}).Where("client_key IS NOT NULL").Count(&integrations).Error; err != nil {
				t.Fatal(err)
			}
			want, wantLinked := int64(0), int64(0)
			if linked {
				want, wantLinked = sent, int64(o.sites)
			}
			if stored != want || integrations != wantLinked || res.Linked != linked {
				t.Errorf("%d webhooks stored and %d sites linked (result says linked=%v), want %d and %d", stored, integrations, res.Linked, want, wantLinked)
			}
			var out bytes.Buffer
			res.writeText(&out)
			if !strings.Contains(out.String(), fmt.Sprintf("RESULT linked=%t requests=", linked)) {
				t.Errorf("no RESULT line:\n%s", out.String())
			}
			if strings.Contains(logs.String()+out.String(), "sei_") {
				t.Errorf("an API key reached the output")
			}
		})
	}
}

// TestRunReportsErrors: a service that refuses webhooks makes a failed run,
// not a fast one.
func TestRunReportsErrors(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz", "/metrics":
		case "/atlassian-connect.json":
			_, _ = w.Write([]byte(`{"baseUrl":"` + srv.URL + `","key":"k","lifecycle":{"installed":"/installed"},
				"modules":{"webhooks":[{"event":"jira:issue_updated","url":"/hook"}]}}`))
		case "/installed":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	o := options{base: srv.URL, sites: 2, concurrency: 2, duration: 100 * time.Millisecond,
		tokensPerSite: 1, bodySize: 100, readyTimeout: 5 * time.Second, reqTimeout: 5 * time.Second}
	res, err := run(context.Background(), o, io.Discard, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !res.failed() || res.Errors == 0 || res.Errors != res.Requests || res.Statuses["401"] == 0 {
		t.Fatalf("failed() = %v, errors %d of %d, statuses %v", res.failed(), res.Errors, res.Requests, res.Statuses)
	}
	var b bytes.Buffer
	res.shout(&b)
	if !strings.Contains(b.String(), "NOT A VALID BENCHMARK") || !strings.Contains(b.String(), "HTTP 401") {
		t.Errorf("shout:\n%s", b.String())
	}
}
