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

// The fast path for Jira's own layout reads exactly what time.Parse reads,
// and leaves to it (or to a refusal) whatever is not that layout.
func TestParseJiraLayoutAgreesWithTimeParse(t *testing.T) {
	offsets := []int{0, 3600, -3600, 19800, -34200, 45900, 50400, -43200}
	base := time.Date(1999, 12, 31, 23, 59, 59, 999e6, time.UTC)
	for i := range 5000 {
		at := base.Add(time.Duration(i) * 7919 * time.Minute).Add(time.Duration(i%1000) * time.Millisecond)
		s := at.In(time.FixedZone("", offsets[i%len(offsets)])).Format(JiraLayout)
		want, err := time.Parse(timeLayouts[0], s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseJiraLayout([]byte(s))
		if !ok || !got.Equal(want) {
			t.Fatalf("%s: got %v (%v), want %v", s, got, ok, want)
		}
		if _, gotOff := got.Zone(); gotOff != offsets[i%len(offsets)] {
			t.Fatalf("%s: offset %d", s, gotOff)
		}
	}
	for _, s := range []string{"2024-02-30T10:00:00.000+0000", "2023-02-29T10:00:00.000+0000", "2024-13-01T10:00:00.000+0000",
		"2024-05-01T24:00:00.000+0000", "2024-05-01T10:60:00.000+0000", "2024-05-01 10:00:00.000+0000", "2024-05-01T10:00:00,000+0000",
		"2024-05-01T10:00:00.000+2460", "2024-05-01T10:00:00.0a0+0000", "2024-05-01T10:00:00.000Z0000"} {
		if _, ok := parseJiraLayout([]byte(s)); ok {
			t.Errorf("%s read as a time", s)
		}
		var v Time
		_, perr := time.Parse(timeLayouts[0], s)
		if err := json.Unmarshal([]byte(`"`+s+`"`), &v); (err == nil) != (perr == nil) {
			t.Errorf("%s: Unmarshal error %v, time.Parse error %v", s, err, perr)
		}
	}
	if got, ok := parseJiraLayout([]byte("2024-02-29T10:00:00.000+0000")); !ok || got.Day() != 29 {
		t.Errorf("a leap day: %v %v", got, ok)
	}
}
