package jira

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		`"2024-05-01T09:30:00.000+0000"`: time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC),
		`"2024-05-01T11:30:00.250+0200"`: time.Date(2024, 5, 1, 9, 30, 0, 250e6, time.UTC),
		`"2024-05-01T09:30:00Z"`:         time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC),
		`"2024-05-01T11:30:00+02:00"`:    time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC),
		`"2024-05-01"`:                   time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		`null`:                           {},
	} {
		var v Time
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Errorf("%s: %v", in, err)
		} else if !v.Equal(want) {
			t.Errorf("%s = %v, want %v", in, v, want)
		}
	}
	var v Time
	if err := json.Unmarshal([]byte(`"yesterday"`), &v); err == nil {
		t.Error("a word parsed as a time")
	}
	b, _ := json.Marshal(Time{time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC)})
	if string(b) != `"2024-05-01T09:30:00.000+0000"` {
		t.Errorf("marshalled %s", b)
	}
}

func TestJiraMessages(t *testing.T) {
	got := jiraMessages([]byte(`{"errorMessages":["first", " "],"errors":{"b":"from b","a":"from a","n":3},"message":"gateway"}`))
	if strings.Join(got, "|") != "first|from a|from b|gateway" {
		t.Errorf("messages = %q", got)
	}
	if got := jiraMessages([]byte(`<html>Login</html>`)); got != nil {
		t.Errorf("HTML gave %q", got)
	}
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
	got = jiraMessages([]byte(`{"errorMessages":["bad Authorization: JWT ` + tok + `", "null for uri: https://x/rest?jwt=` + tok + `&a=b", "Bearer abcdefghijkl", "token ` + tok + ` seen"]}`))
	for _, m := range got {
		if strings.Contains(m, tok) || strings.Contains(m, "JWT ") || strings.Contains(m, "abcdefghijkl") || strings.Contains(m, "eyJ") {
			t.Errorf("message %q kept a credential", m)
		}
	}
	long := strings.Repeat("é", maxMessageLen)
	got = jiraMessages([]byte(`{"errorMessages":["` + long + `"]}`))
	if len(got[0]) > maxMessageLen+len("…") || !strings.HasSuffix(got[0], "…") {
		t.Errorf("long message kept %d bytes", len(got[0]))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"12":                            12 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 00:01:00 GMT": time.Minute,
		"Tue, 31 Dec 2024 23:00:00 GMT": 0,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
}
