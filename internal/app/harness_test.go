package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/config"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/jobs"
	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness runs the real service over HTTP against the Jira simulator.
type harness struct {
	t    *testing.T
	db   *store.DB
	app  *App
	srv  *httptest.Server
	atl  *jirasim.Atlassian
	jira *jirasim.App
	logs *syncBuffer
	base string // BASE_URL
	// skew is added to the service's clock (nanoseconds), to test expiry.
	skew atomic.Int64
}

func (h *harness) now() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }

// redeemBurstFor lets a test raise the redemption rate limit (env key
// "_REDEEM_BURST") where it tests something else, like races.
func redeemBurstFor(env map[string]string) int {
	n, _ := strconv.Atoi(env["_REDEEM_BURST"])
	return n
}

// start runs the service on db with BASE_URL = server URL + basePath.
func start(t *testing.T, db *store.DB, basePath string, env map[string]string) *harness {
	t.Helper()
	atl, err := jirasim.New()
	if err != nil {
		t.Fatal(err)
	}
	atl.SlowDelay = 3 * time.Second
	t.Cleanup(atl.Close)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + basePath
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"BASE_URL":                 base,
		"CONNECT_INSTALL_KEYS_URL": atl.Keys.URL,
		"JIRA_HOST_ALLOWLIST":      "127.0.0.1",
		"ENCRYPTION_KEYS":          spec,
		"LOG_LEVEL":                "debug",
		"DATA_DIR":                 t.TempDir(),
		"JOBS_POLL_INTERVAL":       "50ms",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := NewLogger(cfg, logs)
	kr, err := secrets.ParseKeyRing(vars["ENCRYPTION_KEYS"])
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, atl: atl, logs: logs, base: base}
	a, err := New(cfg, log, db, kr, Options{HTTPClient: &http.Client{Timeout: 500 * time.Millisecond}, Now: h.now,
		RedeemBurst: redeemBurstFor(env)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config = NewServer(a.Handler, log)
	srv.Start()
	t.Cleanup(srv.Close)
	bg, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = a.Stop(sctx)
	})
	select {
	case <-a.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("installation listener did not start")
	}
	jira, err := atl.LoadApp(context.Background(), base+"/atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	h.app, h.srv, h.jira = a, srv, jira
	t.Cleanup(h.assertNoSecretsLogged)
	return h
}

func (h *harness) site() *jirasim.Site {
	s := h.atl.NewSite(h.jira)
	h.t.Cleanup(s.Close)
	return s
}

// installed returns a site that has installed the app.
func (h *harness) installed() *jirasim.Site {
	h.t.Helper()
	s := h.site()
	h.expect(s.Install(context.Background()))(http.StatusNoContent)
	return s
}

// expect checks a response's status and returns its body.
func (h *harness) expect(resp *http.Response, err error) func(status int) string {
	h.t.Helper()
	return func(status int) string {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			h.t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
		}
		return string(b)
	}
}

// do sends a request with an optional Authorization header and body.
func (h *harness) do(method, rawURL, auth string, body []byte, header ...string) (*http.Response, error) {
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return http.DefaultClient.Do(req)
}

func (h *harness) installation(clientKey string) *store.Installation {
	h.t.Helper()
	in, err := h.db.GetInstallation(context.Background(), clientKey)
	if err != nil {
		h.t.Fatalf("installation %s: %v", clientKey, err)
	}
	return in
}

func (h *harness) countInstallations() int64 {
	var n int64
	if err := h.db.Gorm.Table("installations").Count(&n).Error; err != nil {
		h.t.Fatal(err)
	}
	return n
}

// secretsSeen are strings that must never reach a log line.
var secretsSeen sync.Map

func remember(s ...string) {
	for _, v := range s {
		secretsSeen.Store(v, true)
	}
}

// assertNoSecretsLogged fails if a shared secret, a token or a jwt query
// parameter appears anywhere in the service's log output.
func (h *harness) assertNoSecretsLogged() {
	logs := h.logs.String()
	for _, bad := range []string{"eyJ", "jwt=", "sharedSecret"} {
		if strings.Contains(logs, bad) {
			h.t.Errorf("log output contains %q:\n%s", bad, logs)
		}
	}
	secretsSeen.Range(func(k, _ any) bool {
		if s := k.(string); s != "" && strings.Contains(logs, s) {
			h.t.Errorf("log output contains a secret")
		}
		return true
	})
}

// rawToken builds a JWT from arbitrary header and claims with a signature
// function, for the malformed tokens no well-behaved signer produces.
func rawToken(header, claims any, sign func(input string) []byte) string {
	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	if sign == nil {
		return input + "."
	}
	return input + "." + enc.EncodeToString(sign(input))
}

func qsh(method, rawURL, base string) string {
	u, _ := url.Parse(rawURL)
	b, _ := url.Parse(base)
	return atlassianjwt.QSH(method, u, b.Path)
}

func forEachDB(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	storetest.ForEach(t, fn)
}

// newTenant creates a tenant the way `connect tenants create` does and
// returns its id and API key.
func (h *harness) newTenant(name string) (string, string) {
	h.t.Helper()
	t, key, err := h.app.Integrations.CreateTenant(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	remember(key)
	return t.ID, key
}

// api calls /api/v1 with a bearer key and a JSON body (nil for none); it
// returns the status and the decoded JSON answer.
func (h *harness) api(method, path, apiKey string, body any) (int, map[string]any) {
	h.t.Helper()
	var b []byte
	if body != nil {
		if raw, ok := body.(string); ok {
			b = []byte(raw)
		} else {
			b, _ = json.Marshal(body)
		}
	}
	auth := ""
	if apiKey != "" {
		auth = "Bearer " + apiKey
	}
	resp, err := h.do(method, h.base+"/api/v1"+path, auth, b)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	out["_retry_after"] = resp.Header.Get("Retry-After")
	return resp.StatusCode, out
}

// connectKey generates a Connect key as the page does: a context token from
// the site, POST /connect-keys.
func (h *harness) connectKey(s *jirasim.Site) string {
	h.t.Helper()
	tok, err := s.ContextToken(time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	body := h.expect(h.do(http.MethodPost, h.base+"/connect-keys", "JWT "+tok, nil))(http.StatusCreated)
	var k struct {
		Key       string    `json:"key"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &k); err != nil || k.Key == "" {
		h.t.Fatalf("connect key answer %s: %v", body, err)
	}
	remember(k.Key)
	return k.Key
}

// webhookSignedWith posts an issue webhook to the service at base, signed
// for site s but with the given shared secret (e.g. one rotated away).
func (h *harness) webhookSignedWith(s *jirasim.Site, secret, base string) (*http.Response, error) {
	u := base + "/webhooks/jira/issue"
	now := time.Now()
	tok, err := atlassianjwt.SignHS256([]byte(secret), map[string]any{"iss": s.ClientKey, "iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(), "qsh": qsh(http.MethodPost, u, base)})
	if err != nil {
		return nil, err
	}
	return h.do(http.MethodPost, u, "JWT "+tok, issueEventBody)
}

// issueEvent is a minimal Jira issue webhook body.
func issueEvent(event string) map[string]any {
	return map[string]any{"webhookEvent": event, "timestamp": time.Now().UnixMilli(), "issue": map[string]any{"id": "10001", "key": "ACME-1"}}
}

var issueEventBody = []byte(`{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"ACME-1"}}`)
