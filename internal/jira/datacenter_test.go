package jira_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

// dcSite is a Data Center simulator with a user "sei.bot" (password
// "pw") and ADFS for client "sei", resource "urn:jira".
func dcSite(t *testing.T, opts ...jirasim.SiteOption) *jirasim.Site {
	t.Helper()
	s := jirasim.NewDataCenterSite(opts...)
	t.Cleanup(s.Close)
	addIssues(t, s, 3)
	s.AddDCUser("sei.bot", "SEI Bot", "sei.bot@example.com")
	s.SetPassword("sei.bot", "pw")
	s.EnableADFS(jirasim.ADFSConfig{ClientID: "sei", Resource: "urn:jira", TokenTTL: time.Hour})
	s.SetADFSPassword("sei.bot", "adfs-secret-pw")
	return s
}

func adfsConfig(s *jirasim.Site) jira.ADFSConfig {
	return jira.ADFSConfig{TokenURL: s.ADFSURL(), ClientID: "sei", Resource: "urn:jira", Username: "sei.bot", Password: "adfs-secret-pw"}
}

func newADFS(t *testing.T, cfg jira.ADFSConfig) *jira.ADFS {
	t.Helper()
	a, err := jira.NewADFS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestADFS: one grant serves concurrent calls; the token is renewed
// before it expires, and at once when Jira stops accepting it.
func TestADFS(t *testing.T) {
	t.Parallel()
	s := dcSite(t)
	var mu sync.Mutex
	now := time.Now()
	cfg := adfsConfig(s)
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newADFS(t, cfg)
	c := newClient(t, s.BaseURL, a)
	ctx := context.Background()

	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 20 {
		wg.Go(func() {
			if me, err := c.MyselfV2(ctx); err != nil || me.Name != "sei.bot" || me.TimeZone == "" {
				t.Errorf("myself: %+v %v", me, err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := s.ADFSTokenRequests(); n != 1 || failed.Load() != 0 {
		t.Fatalf("%d token requests for 20 concurrent calls", n)
	}
	// A tenth of the hour before expiry, the token is renewed.
	mu.Lock()
	now = now.Add(53 * time.Minute)
	mu.Unlock()
	if _, err := c.MyselfV2(ctx); err != nil || s.ADFSTokenRequests() != 1 {
		t.Fatalf("53 min: %v, %d token requests", err, s.ADFSTokenRequests())
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := c.MyselfV2(ctx); err != nil || s.ADFSTokenRequests() != 2 {
		t.Fatalf("55 min: %v, %d token requests", err, s.ADFSTokenRequests())
	}
	// Jira stops accepting the token (a changed session): the call gets a
	// new one and succeeds.
	s.RevokeADFSTokens()
	if _, err := c.MyselfV2(ctx); err != nil || s.ADFSTokenRequests() != 3 {
		t.Fatalf("after revocation: %v, %d token requests", err, s.ADFSTokenRequests())
	}
	// Secrets never show.
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("auth", "adfs", a, "config", cfg)
	tok, _ := a.Token(ctx)
	for _, text := range []string{fmt.Sprint(a), fmt.Sprintf("%#v", a), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String()} {
		if strings.Contains(text, "adfs-secret-pw") || strings.Contains(text, tok) {
			t.Errorf("a secret shows in %q", text)
		}
	}
}

func TestADFSRefused(t *testing.T) {
	t.Parallel()
	s := dcSite(t)
	ctx := context.Background()
	for name, edit := range map[string]func(*jira.ADFSConfig){
		"wrong password": func(c *jira.ADFSConfig) { c.Password = "guess-password" },
		"unknown client": func(c *jira.ADFSConfig) { c.ClientID = "other" },
		"wrong resource": func(c *jira.ADFSConfig) { c.Resource = "urn:other" },
	} {
		cfg := adfsConfig(s)
		edit(&cfg)
		_, err := newClient(t, s.BaseURL, newADFS(t, cfg)).MyselfV2(ctx)
		var ae *jira.ADFSError
		if !errors.Is(err, jira.ErrCredentialsRejected) || !jira.IsUnauthorized(err) || !errors.As(err, &ae) || ae.Status != 400 || jira.IsTransient(err) {
			t.Errorf("%s: %v", name, err)
		}
		if strings.Contains(err.Error(), cfg.Password) {
			t.Errorf("%s: the password shows in %q", name, err)
		}
	}
	cfg := adfsConfig(s)
	cfg.Password = "guess-password"
	_, err := newClient(t, s.BaseURL, newADFS(t, cfg)).MyselfV2(ctx)
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("err = %v", err)
	}
	for _, bad := range []jira.ADFSConfig{{TokenURL: "ftp://x"}, {TokenURL: "https://u:p@adfs.example.com", ClientID: "c", Resource: "r", Username: "u", Password: "p"},
		{TokenURL: "https://adfs.example.com", ClientID: "c", Resource: "r", Username: "u"}} {
		if _, err := jira.NewADFS(bad); err == nil {
			t.Errorf("NewADFS(%v) accepted", bad)
		}
	}
}

// TestCredentialsRejected: a revoked token, a wrong password and a session
// Data Center answers as anonymous with a 404 are all ErrCredentialsRejected;
// a plain 404 is not.
func TestCredentialsRejected(t *testing.T) {
	t.Parallel()
	s := dcSite(t)
	ctx := context.Background()
	pat := s.IssuePAT("sei.bot")
	c := newClient(t, s.BaseURL, jira.Bearer{Token: pat})
	if _, err := c.MyselfV2(ctx); err != nil {
		t.Fatal(err)
	}
	var notFound *jira.Error
	if _, err := c.UserByKey(ctx, "nobody"); !errors.As(err, &notFound) || !jira.IsNotFound(err) || errors.Is(err, jira.ErrCredentialsRejected) {
		t.Errorf("a missing user: %v", err)
	}
	s.RevokePAT(pat)
	_, err := c.MyselfV2(ctx)
	var je *jira.Error
	if !errors.Is(err, jira.ErrCredentialsRejected) || !errors.As(err, &je) || !je.Anonymous || je.Attempts != 1 || !strings.Contains(err.Error(), "anonymous") {
		t.Errorf("revoked PAT: %v", err)
	}
	if _, err := newClient(t, s.BaseURL, jira.Basic{Username: "sei.bot", Password: "nope"}).MyselfV2(ctx); !errors.Is(err, jira.ErrCredentialsRejected) {
		t.Errorf("wrong password: %v", err)
	}
	s.SetAnonymousStatus(http.StatusNotFound)
	_, err = c.SearchV2(ctx, jira.SearchV2Request{JQL: "ORDER BY id", MaxResults: 10})
	if !errors.Is(err, jira.ErrCredentialsRejected) || !jira.IsUnauthorized(err) || jira.IsNotFound(err) || jira.StatusOf(err) != 404 {
		t.Errorf("anonymous 404: %v", err)
	}
	// A CAPTCHA after failed logins: forbidden, and the credentials are
	// refused until a person signs in.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Authentication-Denied-Reason", "CAPTCHA_CHALLENGE; login-url=https://jira.example.com/login.jsp")
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	_, err = newClient(t, srv.URL, jira.Basic{Username: "u", Password: "p"}).MyselfV2(ctx)
	if !errors.Is(err, jira.ErrCredentialsRejected) || !jira.IsForbidden(err) || jira.IsUnauthorized(err) || !strings.Contains(err.Error(), "CAPTCHA_CHALLENGE") || strings.Contains(err.Error(), "login-url") {
		t.Errorf("CAPTCHA: %v", err)
	}
}

// TestTLS: a self-signed site fails with a certificate error, once, unless
// its certificate is trusted or verification is skipped by name.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := dcSite(t, jirasim.WithTLS())
	ctx := context.Background()
	auth := jira.Basic{Username: "sei.bot", Password: "pw"}
	c := newClient(t, s.BaseURL, auth)
	_, err := c.MyselfV2(ctx)
	if !jira.IsCertificate(err) || jira.IsTransient(err) || !strings.Contains(err.Error(), "certificate") || c.Stats().Requests != 1 {
		t.Fatalf("self-signed: %v after %d requests", err, c.Stats().Requests)
	}
	if _, err := newClient(t, s.BaseURL, auth, jira.WithInsecureSkipVerify()).MyselfV2(ctx); err != nil {
		t.Errorf("insecure: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Server.Certificate())
	if _, err := newClient(t, s.BaseURL, auth, jira.WithRootCAs(pool)).MyselfV2(ctx); err != nil {
		t.Errorf("trusted CA: %v", err)
	}
	// ADFS on the same self-signed host.
	cfg := adfsConfig(s)
	if _, err := newClient(t, s.BaseURL, newADFS(t, cfg), jira.WithInsecureSkipVerify()).MyselfV2(ctx); !jira.IsCertificate(err) {
		t.Errorf("ADFS untrusted: %v", err)
	}
	cfg.TLS = &tls.Config{RootCAs: pool}
	if _, err := newClient(t, s.BaseURL, newADFS(t, cfg), jira.WithRootCAs(pool)).MyselfV2(ctx); err != nil {
		t.Errorf("ADFS trusted: %v", err)
	}
}

// TestDataCenterRateLimit: Data Center's headers pace the client, and a
// 429 without Retry-After waits the refill interval.
func TestDataCenterRateLimit(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("X-RateLimit-Limit", "10")
		h.Set("X-RateLimit-FillRate", "5")
		h.Set("X-RateLimit-Interval-Seconds", "2")
		if n.Add(1) == 1 {
			h.Set("X-RateLimit-Remaining", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		h.Set("X-RateLimit-Remaining", "9")
		h.Set("Retry-After", "0")
		writeJSON(w, map[string]any{"name": "sei.bot", "key": "JIRAUSER1"})
	}))
	defer srv.Close()
	clk := jira.NewFakeClock()
	lim := jira.NewLimiter(jira.LimiterConfig{Clock: clk})
	c := newClient(t, srv.URL, jira.Bearer{Token: "pat-0123456789"}, jira.WithClock(clk), jira.WithLimiter(lim))
	if _, err := c.MyselfV2(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clk.Slept(); len(got) == 0 || got[0] != 2*time.Second {
		t.Errorf("waited %v, want 2s first", got)
	}
	if r := lim.Rate(); r != 2.5 {
		t.Errorf("limiter rate %v, want 2.5/s from the headers", r)
	}
}
