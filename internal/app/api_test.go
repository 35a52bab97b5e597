package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
)

func id(m map[string]any) string { s, _ := m["id"].(string); return s }

func fields(m map[string]any) map[string]any {
	e, _ := m["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

func TestIntegrationsAPI(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		_, other := h.newTenant("Globex")

		// Authentication.
		for name, k := range map[string]string{"missing": "", "wrong": key + "x", "garbage": "nope", "unknown prefix": "sei_zzzzzzzz_" + strings.Repeat("a", 27)} {
			if st, _ := h.api("GET", "/integrations", k, nil); st != 401 {
				t.Errorf("%s API key: %d", name, st)
			}
		}

		st, created := h.api("POST", "/integrations", key, map[string]any{"name": "Jira prod", "description": "main site", "tags": []string{"eng", "eng", "prod"},
			"timezone": "Europe/Berlin", "excluded_fields": []string{"summary", "customfield_10010"}})
		if st != 201 || id(created) == "" {
			t.Fatalf("create: %d %v", st, created)
		}
		if created["status"] != "pending" || created["type"] != "jira_connect_app" || created["timezone"] != "Europe/Berlin" {
			t.Errorf("created = %v", created)
		}
		if tags := created["tags"].([]any); len(tags) != 2 {
			t.Errorf("tags not deduplicated: %v", tags)
		}
		itID := id(created)

		// Validation: one entry per field.
		st, bad := h.api("POST", "/integrations", key, map[string]any{"name": "", "timezone": "Mars/Olympus", "excluded_fields": []string{"summary", "bad field!"}, "type": "jira_server"})
		if st != 400 {
			t.Fatalf("invalid create: %d", st)
		}
		for _, f := range []string{"name", "timezone", "excluded_fields", "type"} {
			if fields(bad)[f] == nil {
				t.Errorf("no message for %s: %v", f, bad)
			}
		}
		for name, body := range map[string]string{
			"unknown field":   `{"name":"x","colour":"blue"}`,
			"wrong type":      `{"name":["x"]}`,
			"malformed":       `{"name":`,
			"trailing data":   `{"name":"x"} {}`,
			"Local time zone": `{"name":"x","timezone":"Local"}`,
		} {
			if st, out := h.api("POST", "/integrations", key, body); st != 400 {
				t.Errorf("%s: %d %v", name, st, out)
			}
		}
		if st, out := h.api("POST", "/integrations", key, `{"name":"x","colour":"blue"}`); fields(out)["colour"] == nil {
			t.Errorf("unknown field not named: %d %v", st, out)
		}
		huge := `{"name":"x","description":"` + strings.Repeat("a", 1<<20) + `"}`
		if st, _ := h.api("POST", "/integrations", key, huge); st != 413 {
			t.Errorf("1 MiB body: %d", st)
		}
		if st, out := h.api("POST", "/integrations", key, map[string]any{"name": "Jira prod"}); st != 409 || fields(out)["name"] == nil {
			t.Errorf("duplicate name: %d %v", st, out)
		}
		// The same name in another tenant is fine.
		if st, _ := h.api("POST", "/integrations", other, map[string]any{"name": "Jira prod"}); st != 201 {
			t.Errorf("same name in another tenant: %d", st)
		}

		// Isolation: another tenant's integration is 404 on every route.
		for _, r := range [][2]string{{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"POST", "/connect-key"}, {"DELETE", "/connect-key"}, {"POST", "/validate"}, {"GET", "/monitoring"}} {
			var body any
			if r[0] == "PATCH" {
				body = map[string]any{"description": "mine now"}
			} else if r[1] == "/connect-key" && r[0] == "POST" {
				body = map[string]any{"key": "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"}
			}
			if st, out := h.api(r[0], "/integrations/"+itID+r[1], other, body); st != 404 {
				t.Errorf("%s %s by another tenant: %d %v", r[0], r[1], st, out)
			}
		}
		if st, got := h.api("GET", "/integrations/"+itID, key, nil); st != 200 || got["description"] != "main site" {
			t.Errorf("another tenant changed it: %v", got)
		}

		// PATCH keeps what it is not given.
		st, patched := h.api("PATCH", "/integrations/"+itID, key, map[string]any{"timezone": "America/New_York"})
		if st != 200 || patched["timezone"] != "America/New_York" || patched["description"] != "main site" {
			t.Errorf("patch: %d %v", st, patched)
		}
		if st, out := h.api("PATCH", "/integrations/"+itID, key, map[string]any{"timezone": "Nowhere/Special"}); st != 400 || fields(out)["timezone"] == nil {
			t.Errorf("bad patch: %d %v", st, out)
		}

		// Paging.
		for i := 0; i < 4; i++ {
			if st, _ := h.api("POST", "/integrations", key, map[string]any{"name": fmt.Sprintf("site %d", i)}); st != 201 {
				t.Fatal(st)
			}
		}
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			st, page := h.api("GET", "/integrations?limit=2&cursor="+url.QueryEscape(cursor), key, nil)
			if st != 200 {
				t.Fatalf("list: %d %v", st, page)
			}
			pages++
			for _, it := range page["items"].([]any) {
				seen[id(it.(map[string]any))] = true
			}
			cursor, _ = page["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		if len(seen) != 5 || pages != 3 {
			t.Errorf("paging saw %d integrations in %d pages, want 5 in 3", len(seen), pages)
		}
		for _, q := range []string{"limit=0", "limit=201", "limit=x", "cursor=!!!"} {
			if st, _ := h.api("GET", "/integrations?"+q, key, nil); st != 400 {
				t.Errorf("%s: %d", q, st)
			}
		}

		if st, _ := h.api("DELETE", "/integrations/"+itID, key, nil); st != 204 {
			t.Errorf("delete: %d", st)
		}
		if st, _ := h.api("GET", "/integrations/"+itID, key, nil); st != 404 {
			t.Errorf("after delete: %d", st)
		}

		// A revoked API key stops at once.
		newKey, _, err := h.app.Integrations.CreateAPIKey(context.Background(), mustTenant(t, h, key))
		if err != nil {
			t.Fatal(err)
		}
		remember(newKey)
		if st, _ := h.api("GET", "/integrations", newKey, nil); st != 200 {
			t.Errorf("new key: %d", st)
		}
		if _, err := h.app.Integrations.RevokeAPIKey(context.Background(), newKey[:12]); err != nil {
			t.Fatal(err)
		}
		if st, _ := h.api("GET", "/integrations", newKey, nil); st != 401 {
			t.Errorf("revoked key: %d", st)
		}

		// The OpenAPI document is served as JSON.
		resp, err := http.Get(h.base + "/api/v1/openapi.json")
		doc := h.expect(resp, err)(200)
		var d struct{ Paths map[string]any }
		if json.Unmarshal([]byte(doc), &d); d.Paths["/api/v1/integrations"] == nil {
			t.Errorf("openapi.json lacks /api/v1/integrations")
		}
	})
}

func mustTenant(t *testing.T, h *harness, key string) string {
	tenant, err := h.app.Integrations.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tenant
}

// TestConnectKeyFlow is the administrator's path through the API: install,
// generate a key on the page, redeem it, see it linked; and every way a key
// can be wrong.
func TestConnectKeyFlow(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		_, otherKey := h.newTenant("Globex")
		s := h.installed()
		remember(s.SharedSecret)
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Jira"})
		_, otherIt := h.api("POST", "/integrations", otherKey, map[string]any{"name": "Globex Jira"})

		// Unknown, malformed and wrong-shaped keys: one answer.
		_, unknown := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG"})
		_, malformed := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": "hello"})
		if fmt.Sprint(unknown["error"]) != fmt.Sprint(malformed["error"]) {
			t.Errorf("unknown and malformed keys answer differently:\n%v\n%v", unknown, malformed)
		}

		first := h.connectKey(s)
		second := h.connectKey(s) // revokes the first
		if st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": first}); st != 400 || fmt.Sprint(out["error"]) != fmt.Sprint(unknown["error"]) {
			t.Errorf("revoked key: %d %v", st, out)
		}
		// Pasted sloppily: lower case, spaces, O for 0.
		sloppy := strings.ReplaceAll(strings.ToLower(second), "-", " ")
		st, linked := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": " " + sloppy + " "})
		if st != 200 {
			t.Fatalf("redeem: %d %v", st, linked)
		}
		site, _ := linked["site"].(map[string]any)
		if site["client_key"] != s.ClientKey || linked["status"] != "pending" {
			t.Errorf("linked = %v", linked)
		}
		// Used: the same answer as unknown.
		if st, out := h.api("POST", "/integrations/"+id(otherIt)+"/connect-key", otherKey, map[string]any{"key": second}); st != 400 || fmt.Sprint(out["error"]) != fmt.Sprint(unknown["error"]) {
			t.Errorf("used key: %d %v", st, out)
		}
		// One integration per installation.
		third := h.connectKey(s)
		if st, _ := h.api("POST", "/integrations/"+id(otherIt)+"/connect-key", otherKey, map[string]any{"key": third}); st != 409 {
			t.Errorf("second link of one installation: %d", st)
		}
		// ...and the refused link did not burn the key.
		if st, _ := h.api("DELETE", "/integrations/"+id(it)+"/connect-key", key, nil); st != 200 {
			t.Errorf("unlink: %d", st)
		}
		if st, out := h.api("POST", "/integrations/"+id(otherIt)+"/connect-key", otherKey, map[string]any{"key": third}); st != 200 {
			t.Errorf("key after a refused link: %d %v", st, out)
		}
		if st, _ := h.api("DELETE", "/integrations/"+id(it)+"/connect-key", key, nil); st != 404 {
			t.Errorf("unlink of an unlinked integration: %d", st)
		}

		// Expiry, with the service's clock moved: 9:59 accepted, 10:01 refused.
		h.api("DELETE", "/integrations/"+id(otherIt)+"/connect-key", otherKey, nil)
		k := h.connectKey(s)
		h.skew.Store(int64(9*time.Minute + 59*time.Second))
		if st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": k}); st != 200 {
			t.Errorf("key at 9:59: %d %v", st, out)
		}
		h.skew.Store(0)
		h.api("DELETE", "/integrations/"+id(it)+"/connect-key", key, nil)
		k = h.connectKey(s)
		h.skew.Store(int64(10*time.Minute + time.Second))
		if st, _ := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": k}); st != 400 {
			t.Errorf("key at 10:01: %d", st)
		}
		h.skew.Store(0)

		// Uninstall: the linked integration shows it; a reinstall links again.
		k = h.connectKey(s)
		if st, _ := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": k}); st != 200 {
			t.Fatal("relink")
		}
		h.expect(s.Uninstall(ctx))(204)
		if _, got := h.api("GET", "/integrations/"+id(it), key, nil); got["status"] != "uninstalled" {
			t.Errorf("after uninstall: %v", got["status"])
		}
		h.expect(s.Reinstall(ctx))(204)
		remember(s.SharedSecret)
		k = h.connectKey(s)
		if st, out := h.api("POST", "/integrations/"+id(otherIt)+"/connect-key", otherKey, map[string]any{"key": k}); st != 200 || out["status"] != "pending" {
			t.Errorf("link after reinstall (moving from the uninstalled integration): %d %v", st, out)
		}
		if _, got := h.api("GET", "/integrations/"+id(it), key, nil); got["site"] != nil {
			t.Errorf("the old integration kept the link: %v", got["site"])
		}
	})
}

func TestConnectKeyGenerationRefusals(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		u := h.base + "/connect-keys"
		// A token with a real qsh (as on a page load), not a context token.
		tok, _ := s.Token(http.MethodPost, u, time.Now())
		h.expect(h.do(http.MethodPost, u, "JWT "+tok, nil))(401)
		page, _ := s.PageURL("sei-connect")
		pu, _ := url.Parse(page)
		h.expect(h.do(http.MethodPost, u, "JWT "+pu.Query().Get("jwt"), nil))(401)
		h.expect(h.do(http.MethodPost, u, "", nil))(401)
		// Disabled: refused with a reason.
		h.expect(s.Disable(ctx))(204)
		ctok, _ := s.ContextToken(time.Now())
		body := h.expect(h.do(http.MethodPost, u, "JWT "+ctok, nil))(403)
		if !strings.Contains(body, "disabled") {
			t.Errorf("disabled: %s", body)
		}
		h.expect(s.Enable(ctx))(204)
		// Uninstalled: the context token no longer verifies.
		h.expect(s.Uninstall(ctx))(204)
		ctok, _ = s.ContextToken(time.Now())
		h.expect(h.do(http.MethodPost, u, "JWT "+ctok, nil))(401)
	})
}

func TestConnectKeyRace(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", map[string]string{"_REDEEM_BURST": "1000"})
		s := h.installed()
		remember(s.SharedSecret)
		type team struct{ key, it string }
		var teams []team
		for i := 0; i < 50; i++ {
			_, k := h.newTenant(fmt.Sprintf("tenant %d", i))
			_, it := h.api("POST", "/integrations", k, map[string]any{"name": "Jira"})
			teams = append(teams, team{k, id(it)})
		}
		key := h.connectKey(s)
		var wg sync.WaitGroup
		statuses := make([]int, len(teams))
		start := make(chan struct{})
		for i, tm := range teams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i], _ = h.api("POST", "/integrations/"+tm.it+"/connect-key", tm.key, map[string]any{"key": key})
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, st := range statuses {
			switch st {
			case 200:
				won++
			case 400:
			default:
				t.Errorf("unexpected status %d", st)
			}
		}
		if won != 1 {
			t.Errorf("%d redemptions of one key succeeded, want exactly 1 (%v)", won, statuses)
		}
	})
}

func TestRedeemRateLimit(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Jira"})
		limited := 0
		var retry string
		for i := 0; i < 30; i++ {
			st, out := h.api("POST", "/integrations/"+id(it)+"/connect-key", key, map[string]any{"key": fmt.Sprintf("AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-%04d", i)})
			if st == 429 {
				limited++
				retry, _ = out["_retry_after"].(string)
			} else if st != 400 {
				t.Fatalf("attempt %d: %d", i, st)
			}
		}
		if limited != 20 || retry == "" || retry == "0" {
			t.Errorf("limited %d of 30 attempts (want 20 after a burst of 10), Retry-After %q", limited, retry)
		}
	})
}

// TestPageRejections: a person sees an error page, never a 500 or JSON.
func TestPageRejections(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		good, _ := s.PageURL("sei-connect")
		pu, _ := url.Parse(good)
		expired := h.atl.NewSite(h.jira) // a foreign site: unknown issuer
		foreign, _ := expired.PageURL("sei-connect")
		q := pu.Query()
		q.Del("jwt")
		missing := h.base + pu.Path + "?" + q.Encode()
		// An expired page token: signed 10 minutes ago (exp = iat+3min).
		old, _ := s.Token(http.MethodGet, missing, time.Now().Add(-10*time.Minute))
		q.Set("jwt", old)
		expiredURL := h.base + pu.Path + "?" + q.Encode()
		for name, u := range map[string]string{"missing": missing, "expired": expiredURL, "foreign": foreign} {
			resp, err := http.Get(u)
			body := h.expect(resp, err)(401)
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "opened inside Jira") {
				t.Errorf("%s: %s %s", name, resp.Header.Get("Content-Type"), body)
			}
		}
	})
}
