package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// sitesPerTenant is how many sites one tenant links. Redemption is limited
// to 10 attempts at once per tenant and per client address, then one every
// 6 s; staying within the burst keeps linking 50 sites at a second instead
// of four minutes.
const sitesPerTenant = 10

// readAPIKeys reads SEI API keys, one per line (blank lines ignored). The
// keys are secrets: they are never printed.
func readAPIKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-api-keys-file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k := strings.TrimSpace(sc.Text()); k != "" {
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-api-keys-file: %w", err)
	}
	return keys, nil
}

// link links every site to an integration of its own the way an SEI user
// does (README, "Linking a Jira site to SEI"): create the integration with
// the tenant's API key, generate a Connect key on the app's page in Jira
// (POST /connect-keys with the page's context token) and redeem it. Sites
// go sitesPerTenant to a tenant, and each tenant's redemptions come from
// a loopback address of their own (127.0.0.0/8 is all loopback on Linux),
// so neither rate limit is met and the service needs no setting for it.
func link(ctx context.Context, base string, sites []*jirasim.Site, apiKeys []string) error {
	groups := (len(sites) + sitesPerTenant - 1) / sitesPerTenant
	if len(apiKeys) < groups {
		return fmt.Errorf("linking %d sites needs %d API keys of different tenants (%d sites each), -api-keys-file has %d",
			len(sites), groups, sitesPerTenant, len(apiKeys))
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	loopback := u.Hostname() == "localhost"
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	clients := make([]*http.Client, groups)
	for g := range clients {
		tr := &http.Transport{Proxy: nil, DisableCompression: true}
		if loopback {
			src := &net.TCPAddr{IP: net.IPv4(127, byte(1+g>>16), byte(g>>8), byte(g))}
			tr.DialContext = (&net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}).DialContext
		}
		clients[g] = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		defer tr.CloseIdleConnections()
	}

	errs := make([]error, len(sites))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, s := range sites {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			g := i / sitesPerTenant
			if err := linkSite(ctx, clients[g], base, apiKeys[g], s, i); err != nil {
				errs[i] = fmt.Errorf("link site %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func linkSite(ctx context.Context, c *http.Client, base, apiKey string, s *jirasim.Site, i int) error {
	var it struct {
		ID string `json:"id"`
	}
	if err := call(ctx, c, http.MethodPost, base+"/api/v1/integrations", "Bearer "+apiKey,
		map[string]any{"name": fmt.Sprintf("loadgen site %d", i)}, http.StatusCreated, &it); err != nil {
		return fmt.Errorf("create integration: %w", err)
	}
	tok, err := s.ContextToken(time.Now())
	if err != nil {
		return err
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := call(ctx, c, http.MethodPost, base+"/connect-keys", "JWT "+tok, nil, http.StatusCreated, &key); err != nil {
		return fmt.Errorf("generate Connect key: %w", err)
	}
	if err := call(ctx, c, http.MethodPost, base+"/api/v1/integrations/"+url.PathEscape(it.ID)+"/connect-key", "Bearer "+apiKey,
		map[string]any{"key": key.Key}, http.StatusOK, nil); err != nil {
		return fmt.Errorf("redeem Connect key: %w", err)
	}
	return nil
}

// call sends a JSON request and decodes the answer into out (nil: discard).
// An unexpected status is an error carrying the service's error body,
// which never holds a secret.
func call(ctx context.Context, c *http.Client, method, u, auth string, body any, want int, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
