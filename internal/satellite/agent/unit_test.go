package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/satellite/config"
)

// TestBackoff: exponential, capped, jittered within the upper half.
func TestBackoff(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute}
	for _, tc := range []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{1, 0, 500 * time.Millisecond}, {1, 1, time.Second},
		{2, 0, time.Second}, {3, 0.5, 3 * time.Second},
		{7, 1, time.Minute}, {30, 0, 30 * time.Second}, {1000, 1, time.Minute},
	} {
		if got := b.wait(tc.attempt, func() float64 { return tc.rnd }); got != tc.want {
			t.Errorf("attempt %d, rand %v: %v, want %v", tc.attempt, tc.rnd, got, tc.want)
		}
	}
}

// TestLoggerScrubsSecrets: whatever way a secret reaches a log line —
// message, string, error, group, a struct — it comes out redacted.
func TestLoggerScrubsSecrets(t *testing.T) {
	const key, pw = "sei_k3m9x2ab_topsecret", "hunter2-password"
	var b strings.Builder
	log := NewLogger(&b, slog.LevelDebug, "json", []string{key, pw, "abc"})
	type leaky struct{ Header string }
	log.With("auth", "Bearer "+key).WithGroup("g").Info("calling with "+pw,
		"err", errors.New("proxy said: Authorization: Bearer "+key),
		"nested", slog.GroupValue(slog.String("password", pw)),
		"struct", leaky{Header: pw},
		"secret", config.Secret(pw),
		"fine", "abc is too short to scrub")
	out := b.String()
	for _, s := range []string{key, pw} {
		if strings.Contains(out, s) {
			t.Fatalf("a secret reached the log:\n%s", out)
		}
	}
	if !strings.Contains(out, "abc is too short") || strings.Count(out, "[redacted") < 5 {
		t.Errorf("log line:\n%s", out)
	}
	// A ServiceError never holds the key.
	e := &ServiceError{Status: 401, Message: "unauthorized"}
	if msg := e.advice("ACME", "4711"); !strings.Contains(msg, "satellite.api_key") || !strings.Contains(msg, "tenant ACME") {
		t.Errorf("advice: %s", msg)
	}
	_ = fmt.Sprint(e)
}
