package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeApp serves a descriptor and records lifecycle calls and webhooks.
type fakeApp struct {
	srv      *httptest.Server
	mu       sync.Mutex
	install  map[string]any
	token    string
	url      *url.URL
	enabled  bool
	webhooks int
}

func newFakeApp(t *testing.T) *fakeApp {
	a := &fakeApp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /atlassian-connect.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"key": "io.sei.test", "name": "SEI test", "baseUrl": a.srv.URL,
			"lifecycle": map[string]string{"installed": "/installed", "enabled": "/enabled"},
			"modules": map[string]any{"webhooks": []map[string]string{
				{"event": "jira:issue_updated", "url": "/hook"}, {"event": "comment_created", "url": "/hook"}}},
		})
	})
	mux.HandleFunc("POST /installed", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		_ = json.NewDecoder(r.Body).Decode(&a.install)
		a.token, _ = atlassianjwt.ExtractToken(r)
		a.url = &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /enabled", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.enabled = true
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.webhooks++
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func TestInstallIntoApp(t *testing.T) {
	app := newFakeApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	ready := make(chan *jirasim.Site, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-keys-addr", "127.0.0.1:0", "-app", app.srv.URL + "/atlassian-connect.json",
			"-issues", "200", "-seed", "3", "-tz", "Europe/Berlin", "-churn", "100"}, &stdout, &stderr,
			func(s *jirasim.Site) { ready <- s })
	}()
	var site *jirasim.Site
	select {
	case site = <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s%s", err, stdout.String(), stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	out := stdout.String()
	for _, want := range []string{"CONNECT_INSTALL_KEYS_URL=" + site.Atlassian.Keys.URL, "JIRA_HOST_ALLOWLIST=127.0.0.1", "jirasim site  " + site.BaseURL, "clientKey " + site.ClientKey} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The install was signed with the key the keys server publishes.
	app.mu.Lock()
	token, u, body, enabled := app.token, app.url, app.install, app.enabled
	app.mu.Unlock()
	v := atlassianjwt.InstallVerifier{Keys: atlassianjwt.NewInstallKeys(site.Atlassian.Keys.URL, http.DefaultClient), Audience: app.srv.URL}
	claims, err := v.Verify(ctx, token, http.MethodPost, u)
	if err != nil || claims.Issuer != body["clientKey"] || body["baseUrl"] != site.BaseURL || !enabled {
		t.Fatalf("install: %v, claims %+v, body %v, enabled %v", err, claims, body, enabled)
	}

	// With the secret it received, the app calls the site.
	me, err := url.Parse(site.BaseURL + "/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := atlassianjwt.Sign("io.sei.test", []byte(body["sharedSecret"].(string)), http.MethodGet, me, "", time.Now())
	req, _ := http.NewRequest(http.MethodGet, me.String(), nil)
	req.Header.Set("Authorization", "JWT "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"timeZone":"Europe/Berlin"`) {
		t.Fatalf("myself: %d %s", resp.StatusCode, b)
	}

	// Churn delivers webhooks.
	deadline := time.Now().Add(10 * time.Second)
	for {
		app.mu.Lock()
		n := app.webhooks
		app.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhooks; stderr %s", n, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "jirasim stopping after") {
		t.Errorf("output:\n%s", stdout.String())
	}
}

func TestServeWithoutApp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	ready := make(chan *jirasim.Site, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-keys-addr", "127.0.0.1:0", "-issues", "300", "-basic", "ada@example.com:secret",
			"-context-path", "/jira", "-rate", "1000", "-burst", "7", "-latency", "1ms"}, &stdout, io.Discard, func(s *jirasim.Site) { ready <- s })
	}()
	var site *jirasim.Site
	select {
	case site = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, site.BaseURL+"/rest/api/3/search/jql?jql=project%3DPLAT&fields=summary&maxResults=2", nil)
	req.SetBasicAuth("ada@example.com", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"key":"PLAT-`) || resp.Header.Get("X-RateLimit-Limit") != "7" || !strings.HasSuffix(site.BaseURL, "/jira") {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeDataCenter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout syncBuffer
	ready := make(chan *jirasim.Site, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-mode", "datacenter", "-addr", "127.0.0.1:0", "-issues", "300", "-tls", "-pat", "sei.bot:tok-123",
			"-dc-user", "ada:pw", "-adfs", "sei:urn:jira", "-adfs-user", "sei.bot:adfs", "-dc-max-results", "7", "-result-window", "20"},
			&stdout, io.Discard, func(s *jirasim.Site) { ready <- s })
	}()
	var site *jirasim.Site
	select {
	case site = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	h := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the simulator's self-signed certificate
	get := func(path, user, pw string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodGet, site.BaseURL+path, nil)
		if pw == "" {
			req.Header.Set("Authorization", "Bearer "+user)
		} else {
			req.SetBasicAuth(user, pw)
		}
		resp, err := h.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, string(b)
	}
	if st, hd, body := get("/rest/api/2/search?jql=ORDER+BY+id&maxResults=50", "tok-123", ""); st != 200 || !strings.Contains(body, `"maxResults":7`) || hd.Get("X-AUSERNAME") != "sei.bot" {
		t.Errorf("PAT search: %d %v %.200s", st, hd, body)
	}
	if st, _, body := get("/rest/api/2/search?jql=ORDER+BY+id&startAt=14&maxResults=7", "ada", "pw"); st != 400 || !strings.Contains(body, "Search limit exceeded") {
		t.Errorf("past the window: %d %s", st, body)
	}
	if st, hd, _ := get("/rest/api/2/myself", "ada", "nope"); st != 401 || hd.Get("X-AUSERNAME") != "anonymous" {
		t.Errorf("wrong password: %d %v", st, hd)
	}
	if !strings.HasPrefix(site.BaseURL, "https://") || !strings.Contains(stdout.String(), site.ADFSURL()) {
		t.Errorf("%s\n%s", site.BaseURL, stdout.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "1 refused past the result window") {
		t.Errorf("output:\n%s", stdout.String())
	}
}

func TestRunErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "flag provided but not defined"},
		{[]string{"-tz", "Mars/Base"}, "-tz"},
		{[]string{"-basic", "nocolon"}, "email:token"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-mode", "server"}, "want cloud or datacenter"},
		{[]string{"-mode", "datacenter", "-pat", "nocolon"}, "username:secret"},
		{[]string{"-pat", "a:b"}, "need -mode datacenter"},
		{[]string{"-mode", "datacenter", "-adfs", "x"}, "client_id:resource"},
		{[]string{"-keys-addr", taken.Addr().String()}, "keys server"},
		{[]string{"-keys-addr", "127.0.0.1:0", "-addr", taken.Addr().String()}, "site"},
		{[]string{"-keys-addr", "127.0.0.1:0", "-addr", "127.0.0.1:0", "-app", "http://127.0.0.1:1/atlassian-connect.json", "-app-wait", "300ms"}, "descriptor"},
	} {
		err := run(ctx, tc.args, io.Discard, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
