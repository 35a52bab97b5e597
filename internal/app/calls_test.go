package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/store"
)

// TestCallRejections covers HS256 calls from Jira (webhooks, pages).
func TestCallRejections(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		hook := h.base + s.App.Webhooks["jira:issue_updated"]
		body := []byte(`{"webhookEvent":"jira:issue_updated"}`)
		sign := func(claims map[string]any) string {
			tok, err := atlassianjwt.SignHS256([]byte(s.SharedSecret), claims)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		good := func() map[string]any {
			now := time.Now()
			return map[string]any{"iss": s.ClientKey, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "qsh": qsh(http.MethodPost, hook, h.base)}
		}
		badSig := func() string {
			tok := sign(good())
			return tok[:len(tok)-4] + "AAAA"
		}
		unknownIss := func() string {
			tok, _ := atlassianjwt.SignHS256([]byte("another-secret-another-secret-xx"), with(good(), "iss", "no-such-client"))
			return tok
		}

		// Unknown issuer and bad signature answer byte-for-byte the same.
		a := h.expect(h.do(http.MethodPost, hook, "JWT "+badSig(), body))(401)
		b := h.expect(h.do(http.MethodPost, hook, "JWT "+unknownIss(), body))(401)
		if a != b {
			t.Errorf("unknown iss answers differently from a bad signature:\n%s\n%s", a, b)
		}

		cases := []struct {
			name   string
			method string
			url    string
			auth   string
			body   []byte
			ctype  string
			want   int
		}{
			{name: "no token", url: hook, want: 401},
			{name: "exp missing", url: hook, auth: sign(with(good(), "exp", nil)), want: 401},
			{name: "exp zero", url: hook, auth: sign(with(good(), "exp", 0)), want: 401},
			{name: "exp string", url: hook, auth: sign(with(good(), "exp", "9999999999")), want: 401},
			{name: "exp past", url: hook, auth: sign(with(good(), "exp", time.Now().Add(-time.Hour).Unix())), want: 401},
			{name: "qsh other method", url: hook, auth: sign(with(good(), "qsh", qsh(http.MethodGet, hook, h.base))), want: 401},
			{name: "qsh other path", url: hook, auth: sign(with(good(), "qsh", qsh(http.MethodPost, h.base+"/webhooks/jira/comment", h.base))), want: 401},
			{name: "qsh other query", url: hook + "?x=1", auth: sign(good()), want: 401},
			{name: "qsh missing", url: hook, auth: sign(with(good(), "qsh", nil)), want: 401},
			{name: "context-qsh on a webhook", url: hook, auth: sign(with(good(), "qsh", atlassianjwt.ContextQSH)), want: 401},
			{name: "alg none", url: hook, auth: rawToken(map[string]any{"alg": "none"}, good(), nil), want: 401},
			{name: "token in header and query", url: hook + "?jwt=" + url.QueryEscape(sign(good())), auth: sign(good()), want: 401},
			{name: "token in query and form", url: hook + "?jwt=" + url.QueryEscape(sign(good())), body: []byte("jwt=" + sign(good())), ctype: "application/x-www-form-urlencoded", want: 401},
			{name: "garbage token", url: hook, auth: "not.a.jwt", want: 401},
			{name: "malformed JSON body", url: hook, auth: sign(good()), body: []byte(`{"webhookEvent":`), want: 400},
			{name: "empty body", url: hook, auth: sign(good()), body: []byte{}, want: 400},
			{name: "1 MiB of dots in a form body", url: hook, body: append([]byte("jwt="), bytes.Repeat([]byte("."), 1<<20)...), ctype: "application/x-www-form-urlencoded", want: 413},
			{name: "10 KiB of dots in the header", url: hook, auth: strings.Repeat(".", 10<<10), want: 401},
			{name: "1 MiB of dots in the header", url: hook, auth: strings.Repeat(".", 1<<20), want: 431},
			{name: "1 MiB of dots in the query", url: hook + "?jwt=" + strings.Repeat(".", 1<<20), want: 431},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				h.t = t
				method := c.method
				if method == "" {
					method = http.MethodPost
				}
				b := body
				if c.body != nil {
					b = c.body
				}
				auth := ""
				if c.auth != "" {
					auth = "JWT " + c.auth
				}
				hdr := []string{}
				if c.ctype != "" {
					hdr = []string{"Content-Type", c.ctype}
				}
				began := time.Now()
				resp, err := h.do(method, c.url, auth, b, hdr...)
				got := h.expect(resp, err)(c.want)
				if d := time.Since(began); d > time.Second {
					t.Errorf("took %v", d)
				}
				if c.want < 431 && !strings.Contains(got, `"error":{"code":`) {
					t.Errorf("not the JSON error shape: %s", got)
				}
			})
		}
		h.t = t
		// The server is unharmed: a good call still works.
		h.expect(h.do(http.MethodPost, hook, "JWT "+sign(good()), body))(http.StatusNoContent)
		// A token in the query string alone is fine (pages use that).
		h.expect(h.do(http.MethodPost, hook+"?jwt="+url.QueryEscape(sign(good())), "", body))(http.StatusNoContent)

		// Rejections are counted by reason.
		resp, err := http.Get(h.base + "/metrics")
		metrics := h.expect(resp, err)(200)
		for _, want := range []string{`jwt_rejections_total{reason="bad_signature"}`, `jwt_rejections_total{reason="unknown_issuer"}`,
			`jwt_rejections_total{reason="multiple_tokens"}`, `http_requests_total{method="POST",route="/webhooks/jira/issue",status="204"}`,
			`http_request_duration_seconds_bucket`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestContextTokensOnlyWhereMeant: a context token (qsh "context-qsh") must
// not open a page, a webhook or a lifecycle route.
func TestContextTokensOnlyWhereMeant(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		tok, err := s.ContextToken(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(s.InstallPayload("enabled"))
		h.expect(h.do(http.MethodPost, h.base+"/webhooks/jira/issue", "JWT "+tok, []byte(`{}`)))(401)
		h.expect(h.do(http.MethodPost, h.base+"/lifecycle/enabled", "JWT "+tok, payload))(401)
		h.expect(h.do(http.MethodGet, h.base+"/jira/configure?jwt="+url.QueryEscape(tok), "", nil))(401)
	})
}

func TestOperability(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/atlassian-connect.json": 200, "/nope": 404} {
			resp, err := http.Get(h.base + path)
			h.expect(resp, err)(want)
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s lacks nosniff", path)
			}
		}
		resp, err := http.Get(h.base + "/atlassian-connect.json")
		body := h.expect(resp, err)(200)
		var d struct {
			BaseURL string `json:"baseUrl"`
		}
		if json.Unmarshal([]byte(body), &d); d.BaseURL != h.base {
			t.Errorf("descriptor baseUrl = %q, want %q", d.BaseURL, h.base)
		}
		resp, err = h.do(http.MethodPost, h.base+"/lifecycle/installed", "", nil)
		h.expect(resp, err)(401)
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("lifecycle answer Cache-Control = %q", resp.Header.Get("Cache-Control"))
		}
		resp, err = h.do(http.MethodDelete, h.base+"/lifecycle/installed", "", nil)
		h.expect(resp, err)(405)
		// /readyz reports 503 once the database is gone.
		h.db.Close()
		resp, err = http.Get(h.base + "/readyz")
		h.expect(resp, err)(503)
		_, _ = io.Copy(io.Discard, resp.Body)
	})
}
