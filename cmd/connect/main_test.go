package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestServeOnEmbeddedDefault is the newcomer's path: no configuration but a
// data directory; the service generates a development key, creates the
// SQLite database, answers /readyz, and stops cleanly when told to.
func TestServeOnEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATA_DIR": dir, "LISTEN_ADDR": "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, func(k string) string { return env[k] }, logs, listening) }()
	var addr string
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatal("no listen")
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no graceful stop")
	}
	for _, f := range []string{"encryption.key", "connect.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not created: %v", f, err)
		}
	}
	if !strings.Contains(logs.String(), "ENCRYPTION_KEYS is not set") {
		t.Errorf("no loud warning about the development key:\n%s", logs)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "encryption.key"))
	if k := strings.TrimSpace(string(key)); k == "" || strings.Contains(logs.String(), k) {
		t.Errorf("development key empty or logged")
	}
}

func TestBadConfigurationFailsClearly(t *testing.T) {
	env := map[string]string{"APP_ENV": "production", "BASE_URL": "http://sei.example.com"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEYS") || !strings.Contains(err.Error(), "BASE_URL") {
		t.Errorf("err = %v", err)
	}
}

func TestTakenPortFailsAtOnce(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": "127.0.0.1:0"}
	ln := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serve(ctx, func(k string) string { return env[k] }, io.Discard, ln)
	addr := <-ln
	env2 := map[string]string{"DATA_DIR": t.TempDir(), "LISTEN_ADDR": addr}
	if err := serve(context.Background(), func(k string) string { return env2[k] }, io.Discard, nil); err == nil {
		t.Error("second serve on a taken port succeeded")
	}
}

func TestKeygenAndMigrate(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	spec := strings.TrimSpace(out.String())
	env := map[string]string{"DATA_DIR": t.TempDir(), "ENCRYPTION_KEYS": spec, "APP_ENV": "production", "BASE_URL": "https://sei.example.com"}
	out.Reset()
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "schema at version ") {
		t.Errorf("migrate said %q", out.String())
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}

// TestAdminCommands: tenants and API keys from the command line, as the
// README shows them; the one-time key is printed once and works.
func TestAdminCommands(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tenants", "create", "--name", "Acme"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var created struct{ TenantID, APIKey string }
	if err := json.Unmarshal(out.Bytes(), &struct {
		TenantID *string `json:"tenant_id"`
		APIKey   *string `json:"api_key"`
	}{&created.TenantID, &created.APIKey}); err != nil || created.TenantID == "" || !strings.HasPrefix(created.APIKey, "sei_") {
		t.Fatalf("tenants create printed %q (%v)", out.String(), err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"apikeys", "create", "--tenant", created.TenantID}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var second struct {
		APIKey string `json:"api_key"`
		Prefix string `json:"prefix"`
	}
	if err := json.Unmarshal(out.Bytes(), &second); err != nil || second.Prefix == "" || !strings.HasPrefix(second.APIKey, second.Prefix+"_") {
		t.Fatalf("apikeys create printed %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"apikeys", "revoke", "--key", second.Prefix}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"apikeys", "revoke", "--key", second.Prefix}, getenv, io.Discard, io.Discard); err == nil {
		t.Error("revoking twice succeeded")
	}
	for _, args := range [][]string{{"tenants", "create"}, {"apikeys", "create"}, {"apikeys", "create", "--tenant", "nope"}, {"tenants", "drop"}} {
		if err := run(context.Background(), args, getenv, io.Discard, io.Discard); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestDemo runs `connect demo` end to end on a small simulated site.
func TestDemo(t *testing.T) {
	var out lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, []string{"demo", "-issues", "300"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"installed the app", "Generate key", "site_reachable  pass", "Full sync succeeded", "300 issues"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
