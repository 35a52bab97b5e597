package app

import (
	"strings"
	"testing"

	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

// checkOf returns the named check of a validation answer.
func checkOf(t *testing.T, out map[string]any, name string) map[string]any {
	t.Helper()
	v, _ := out["validation"].(map[string]any)
	checks, _ := v["checks"].([]any)
	for _, c := range checks {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no check %s in %v", name, out)
	return nil
}

// TestValidateConnection runs Validate Connection against the Jira
// simulator: all checks pass, then each kind of failure in turn.
func TestValidateConnection(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		_, key := h.newTenant("Acme")
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Jira"})
		path := "/integrations/" + id(it)

		// Not linked: the first check says what to do; the rest are skipped.
		st, out := h.api("POST", path+"/validate", key, nil)
		if st != 200 || checkOf(t, out, "installation")["status"] != "fail" || checkOf(t, out, "site_reachable")["status"] != "skipped" {
			t.Fatalf("unlinked: %d %v", st, out)
		}
		if msg := checkOf(t, out, "installation")["message"].(string); !strings.Contains(msg, "Connect key") {
			t.Errorf("unlinked message: %s", msg)
		}

		s := h.installed()
		remember(s.SharedSecret)
		s.AddIssue(jirasim.Issue("10001", "ACME-1", map[string]any{"summary": "first"}))
		if st, out := h.api("POST", path+"/connect-key", key, map[string]any{"key": h.connectKey(s)}); st != 200 {
			t.Fatalf("link: %d %v", st, out)
		}

		st, out = h.api("POST", path+"/validate", key, nil)
		integ, _ := out["integration"].(map[string]any)
		if st != 200 || out["validation"].(map[string]any)["ok"] != true || integ["status"] != "connected" {
			t.Fatalf("valid site: %d %v", st, out)
		}
		for _, c := range []string{"installation", "site_reachable", "search_issues", "read_emails"} {
			if checkOf(t, out, c)["status"] != "pass" {
				t.Errorf("%s: %v", c, checkOf(t, out, c))
			}
		}
		if _, m := h.api("GET", path+"/monitoring", key, nil); m["status"] != "connected" || m["last_validation"] == nil || m["installation"] == nil {
			t.Errorf("monitoring: %v", m)
		}

		cases := []struct {
			fault  jirasim.RESTFault
			check  string
			phrase string
		}{
			{jirasim.RESTFaultUnreachable, "site_reachable", "could not be reached"},
			{jirasim.RESTFaultUnauthorized, "site_reachable", "401"},
			{jirasim.RESTFaultSearchForbidden, "search_issues", "Browse Projects"},
			{jirasim.RESTFaultEmailForbidden, "read_emails", "approval"},
			{jirasim.RESTFaultEmailNotApproved, "read_emails", "approval"},
		}
		for _, c := range cases {
			s.SetFault(c.fault)
			st, out := h.api("POST", path+"/validate", key, nil)
			s.SetFault(jirasim.RESTFaultNone)
			ch := checkOf(t, out, c.check)
			integ, _ := out["integration"].(map[string]any)
			if st != 200 || ch["status"] != "fail" || !strings.Contains(ch["message"].(string), c.phrase) || integ["status"] != "failing" {
				t.Errorf("fault %d: %d check %v status %v", c.fault, st, ch, integ["status"])
			}
			if strings.Contains(ch["message"].(string), "JWT ") || strings.Contains(ch["message"].(string), "jwt=") {
				t.Errorf("a check message carries a token: %s", ch["message"])
			}
		}
		if _, m := h.api("GET", path+"/monitoring", key, nil); m["status"] != "failing" || m["status_reason"] != "validation_failed" {
			t.Errorf("monitoring after a failure: %v", m)
		}

		// Disabled in Jira: the integration follows, and validation says why.
		h.expect(s.Disable(ctx))(204)
		if _, got := h.api("GET", path, key, nil); got["status"] != "failing" || got["status_reason"] != "app_disabled" {
			t.Errorf("after disable: %v", got)
		}
		_, out = h.api("POST", path+"/validate", key, nil)
		if msg := checkOf(t, out, "installation")["message"].(string); !strings.Contains(msg, "disabled") {
			t.Errorf("disabled: %s", msg)
		}
		h.expect(s.Enable(ctx))(204)
		if _, out := h.api("POST", path+"/validate", key, nil); out["integration"].(map[string]any)["status"] != "connected" {
			t.Errorf("after enable and validate: %v", out["integration"])
		}
	})
}
