package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/secrets"
)

// service is the built cmd/connect running as a child process. Every run
// (and every admin command) appends its output to one log file, which is
// scanned for secrets and data races at cleanup and shown, redacted, when
// the test fails.
type service struct {
	t       *testing.T
	env     map[string]string
	base    string // BASE_URL
	logPath string
	runs    int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	waitErr error
	secrets []string // never in a log line, nor in the test's output
}

// newService prepares (does not start) the service on a free loopback port
// with the given database, the simulator's keys URL and extra variables.
func newService(t *testing.T, databaseURL, keysURL string, extra map[string]string) *service {
	t.Helper()
	spec, err := secrets.GenerateKeySpec()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{
		"BASE_URL":                 base,
		"LISTEN_ADDR":              "127.0.0.1:" + strconv.Itoa(port),
		"DATABASE_URL":             databaseURL,
		"DATA_DIR":                 t.TempDir(),
		"ENCRYPTION_KEYS":          spec,
		"CONNECT_INSTALL_KEYS_URL": keysURL,
		"JIRA_HOST_ALLOWLIST":      "127.0.0.1",
		"JOBS_POLL_INTERVAL":       "100ms",
		"LOG_LEVEL":                "info",
		"LOG_FORMAT":               "json",
		"SHUTDOWN_TIMEOUT":         "10s",
	}
	for k, v := range extra {
		env[k] = v
	}
	s := &service{t: t, env: env, base: base, logPath: filepath.Join(t.TempDir(), "service.log")}
	// The key ring's key material (after "kid:").
	if _, key, ok := strings.Cut(spec, ":"); ok {
		s.secrets = append(s.secrets, key)
	}
	t.Cleanup(s.cleanup)
	return s
}

// freePort is a loopback port nothing listens on now; the service binds
// it moments later (and again after a restart, as a real one would).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// remember adds strings that must appear in no log line.
func (s *service) remember(secret ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secret {
		if v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
}

func (s *service) environ() []string {
	// Only what the service needs, not the test's environment: a stray
	// DATABASE_URL or LOG_LEVEL of the developer must not leak in.
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	if v := os.Getenv("GORACE"); v != "" {
		out = append(out, "GORACE="+v)
	}
	for k, v := range s.env {
		out = append(out, k+"="+v)
	}
	return out
}

func (s *service) logFile() *os.File {
	s.t.Helper()
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	return f
}

// start runs `connect serve` and waits until /readyz answers 200.
func (s *service) start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("service already running")
	}
	s.runs++
	lf := s.logFile()
	fmt.Fprintf(lf, "=== e2e: start #%d at %s\n", s.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(connectBin, "serve")
	cmd.Env = s.environ()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		lf.Close()
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		lf.Close()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			s.t.Fatalf("service exited during start-up: %v", s.exitErr())
		default:
		}
		if st, err := s.readyz(); err == nil && st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("service not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyz returns /readyz's status.
func (s *service) readyz() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *service) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// running reports whether the process is alive.
func (s *service) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL: no shutdown code runs, nothing is flushed or
// marked; the process is simply gone, as in an OOM kill or a lost node.
func (s *service) kill9() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatal("service not running")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill -9: %v", err)
	}
	<-exited
	var ee *exec.ExitError
	if err := s.exitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		s.t.Fatalf("after kill -9 the service ended with %v, want killed by SIGKILL", err)
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// stop sends SIGTERM and requires a clean exit (status 0) within 30s.
func (s *service) stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		s.t.Error("service did not stop within 30s of SIGTERM")
	}
	if err := s.exitErr(); err != nil {
		s.t.Errorf("service exit after SIGTERM: %v, want status 0", err)
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// admin runs an administration subcommand (`connect tenants create …`)
// with the service's environment and returns its stdout.
func (s *service) admin(args ...string) []byte {
	s.t.Helper()
	lf := s.logFile()
	defer lf.Close()
	fmt.Fprintf(lf, "=== e2e: connect %s\n", strings.Join(args, " "))
	var stdout bytes.Buffer
	cmd := exec.Command(connectBin, args...)
	cmd.Env = s.environ()
	cmd.Stdout, cmd.Stderr = &stdout, lf
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("connect %s: %v (see the service log)", strings.Join(args, " "), err)
	}
	return stdout.Bytes()
}

func (s *service) logs() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// redact removes every remembered secret from text.
func (s *service) redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.secrets {
		text = strings.ReplaceAll(text, v, "[REDACTED]")
	}
	return text
}

// cleanup kills a service still running, then checks its log: no secret,
// no token, no data race; on failure it shows the log's tail, redacted.
func (s *service) cleanup() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
	logs := s.logs()
	for _, bad := range []string{"eyJ", "jwt=", "sharedSecret"} {
		if strings.Contains(logs, bad) {
			s.t.Errorf("service log contains %q", bad)
		}
	}
	s.mu.Lock()
	for _, v := range s.secrets {
		if strings.Contains(logs, v) {
			s.t.Errorf("service log contains a secret (%d characters)", len(v))
		}
	}
	s.mu.Unlock()
	if strings.Contains(logs, "WARNING: DATA RACE") {
		s.t.Error("the service reported a data race (see its log below)")
	}
	if s.t.Failed() {
		lines := strings.Split(strings.TrimRight(s.redact(logs), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		s.t.Logf("service log (last %d lines, secrets redacted):\n%s", len(lines), strings.Join(lines, "\n"))
	}
}
