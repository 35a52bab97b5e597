package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
)

var ctx = context.Background()

// TestLifecycle walks one site through Jira's whole lifecycle on each
// database: install, webhook, page, disable, enable, reinstall, uninstall.
func TestLifecycle(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		for _, basePath := range []string{"", "/sei/connect"} {
			t.Run("base="+basePath, func(t *testing.T) {
				h := start(t, db, basePath, nil)
				s := h.installed()
				remember(s.SharedSecret)

				in := h.installation(s.ClientKey)
				if in.State != "installed" || in.BaseURL != s.BaseURL || in.ProductType != "jira" || in.InstallationID == "" {
					t.Errorf("stored installation = %+v", in)
				}
				if in.SharedSecret == nil || strings.Contains(*in.SharedSecret, s.SharedSecret) {
					t.Fatalf("shared secret not sealed at rest")
				}

				h.expect(s.Webhook(ctx, "jira:issue_updated", map[string]any{"webhookEvent": "jira:issue_updated"}))(http.StatusNoContent)
				h.expect(s.Webhook(ctx, "comment_created", map[string]any{"webhookEvent": "comment_created"}))(http.StatusNoContent)

				page, err := s.PageURL("sei-connect")
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.Get(page)
				body := h.expect(resp, err)(http.StatusOK)
				if !strings.Contains(body, s.BaseURL) || !strings.Contains(body, "connect-cdn.atl-paas.net/all.js") {
					t.Errorf("page body lacks site or all.js:\n%s", body)
				}
				if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
					t.Errorf("Referrer-Policy = %q", got)
				}
				if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors") {
					t.Errorf("CSP = %q", got)
				}

				h.expect(s.Disable(ctx))(http.StatusNoContent)
				if st := h.installation(s.ClientKey).State; st != "disabled" {
					t.Errorf("after disable: %s", st)
				}
				h.expect(s.Enable(ctx))(http.StatusNoContent)
				if st := h.installation(s.ClientKey).State; st != "enabled" {
					t.Errorf("after enable: %s", st)
				}

				// A reinstall rotates the secret: the old one stops at once.
				oldSecret := s.SharedSecret
				h.expect(s.Reinstall(ctx))(http.StatusNoContent)
				remember(s.SharedSecret)
				h.expect(h.webhookSignedWith(s, oldSecret, h.base))(http.StatusUnauthorized)
				h.expect(s.Webhook(ctx, "jira:issue_created", issueEvent("jira:issue_created")))(http.StatusNoContent)

				h.expect(s.Uninstall(ctx))(http.StatusNoContent)
				in = h.installation(s.ClientKey)
				if in.State != "uninstalled" || in.SharedSecret != nil || in.UninstalledAt == nil || in.PurgeAfter == nil {
					t.Errorf("after uninstall: %+v", in)
				}
				if d := in.PurgeAfter.Sub(*in.UninstalledAt); d != 720*time.Hour {
					t.Errorf("retention = %v, want 720h", d)
				}
				h.expect(s.Webhook(ctx, "jira:issue_created", issueEvent("jira:issue_created")))(http.StatusUnauthorized)
				h.expect(s.Uninstall(ctx))(http.StatusNoContent) // idempotent

				// Jira's last, unsigned disabled after the uninstall.
				payload, _ := json.Marshal(s.InstallPayload("disabled"))
				h.expect(h.do(http.MethodPost, h.base+"/lifecycle/disabled", "", payload))(http.StatusNoContent)
				if st := h.installation(s.ClientKey).State; st != "uninstalled" {
					t.Errorf("unsigned disabled changed state to %s", st)
				}
				// but an unsigned disabled for a live installation is refused.
				live := h.installed()
				payload, _ = json.Marshal(live.InstallPayload("disabled"))
				h.expect(h.do(http.MethodPost, h.base+"/lifecycle/disabled", "", payload))(http.StatusUnauthorized)
				if st := h.installation(live.ClientKey).State; st != "installed" {
					t.Errorf("unsigned disabled changed a live installation to %s", st)
				}

				// A reinstall after uninstall with the same clientKey works.
				h.expect(s.Reinstall(ctx))(http.StatusNoContent)
				remember(s.SharedSecret)
				h.expect(s.Webhook(ctx, "jira:issue_deleted", issueEvent("jira:issue_deleted")))(http.StatusNoContent)
			})
		}
	})
}

// installCase is one bad signed-install attempt.
type installCase struct {
	name  string
	token func(h *harness, s *jirasim.Site, url string) string // "" sends no Authorization
	fault jirasim.Fault
	body  func(s *jirasim.Site) []byte
	want  int
	// noFetch asserts the keys server was not asked.
	noFetch bool
}

func installClaims(h *harness, s *jirasim.Site, url string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": s.ClientKey, "aud": []string{h.base}, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"qsh": qsh(http.MethodPost, url, h.base)}
}

func rs256(h *harness, kid string, claims map[string]any) string {
	tok, err := atlassianjwt.SignRS256(kid, h.atl.Signer, claims)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// TestInstallRejections: every bad install is refused and stores nothing.
func TestInstallRejections(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	longKid := strings.Repeat("k", 300)
	cases := []installCase{
		{name: "unsigned", token: func(*harness, *jirasim.Site, string) string { return "" }, want: 401},
		{name: "signed by another RSA key", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			tok, _ := atlassianjwt.SignRS256(h.atl.Kid, otherKey, installClaims(h, s, u))
			return tok
		}},
		{name: "HS256 keyed with the install-keys PEM", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			pem := jirasim.PublicPEM(&h.atl.Signer.PublicKey)
			return rawToken(map[string]any{"alg": "HS256", "kid": h.atl.Kid, "typ": "JWT"}, installClaims(h, s, u), func(in string) []byte {
				m := hmac.New(sha256.New, pem)
				m.Write([]byte(in))
				return m.Sum(nil)
			})
		}},
		{name: "alg none", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rawToken(map[string]any{"alg": "none", "kid": h.atl.Kid}, installClaims(h, s, u), nil)
		}},
		{name: "iss is not the clientKey", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "iss", "someone-else"))
		}},
		{name: "aud foreign", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "aud", []string{"https://evil.example.com"}))
		}},
		{name: "aud prefixed by BASE_URL", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "aud", []string{h.base + ".evil.com"}))
		}},
		{name: "exp missing", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "exp", nil))
		}},
		{name: "exp zero", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "exp", 0))
		}},
		{name: "exp a string", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "exp", "9999999999"))
		}},
		{name: "exp past", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "exp", time.Now().Add(-time.Hour).Unix()))
		}},
		{name: "qsh of another method", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "qsh", qsh(http.MethodGet, u, h.base)))
		}},
		{name: "qsh of another path", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "qsh", qsh(http.MethodPost, h.base+"/lifecycle/enabled", h.base)))
		}},
		{name: "qsh of another query", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "qsh", qsh(http.MethodPost, u+"?a=b", h.base)))
		}},
		{name: "context-qsh on a lifecycle route", want: 401, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, h.atl.Kid, with(installClaims(h, s, u), "qsh", atlassianjwt.ContextQSH))
		}},
		{name: "kid with ../", want: 401, noFetch: true, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, "../"+h.atl.Kid, installClaims(h, s, u))
		}},
		{name: "kid with %2F", want: 401, noFetch: true, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, "a%2F"+h.atl.Kid, installClaims(h, s, u))
		}},
		{name: "kid a URL", want: 401, noFetch: true, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, "https://evil.example.com/key", installClaims(h, s, u))
		}},
		{name: "kid over 256 characters", want: 401, noFetch: true, token: func(h *harness, s *jirasim.Site, u string) string {
			return rs256(h, longKid, installClaims(h, s, u))
		}},
		{name: "keys server 404", want: 401, fault: jirasim.FaultNotFound},
		{name: "keys server 500", want: 401, fault: jirasim.FaultError},
		{name: "keys server slow", want: 401, fault: jirasim.FaultSlow},
		{name: "keys server huge body", want: 401, fault: jirasim.FaultHuge},
		{name: "malformed JSON body", want: 400, body: func(*jirasim.Site) []byte { return []byte(`{"clientKey": `) }},
		{name: "body is not an object", want: 400, body: func(*jirasim.Site) []byte { return []byte(`[1,2]`) }},
		{name: "baseUrl host not allowed", want: 400, body: func(s *jirasim.Site) []byte {
			p := s.InstallPayload("installed")
			p["baseUrl"] = "https://evil.example.com"
			b, _ := json.Marshal(p)
			return b
		}},
		{name: "another app's key", want: 400, body: func(s *jirasim.Site) []byte {
			p := s.InstallPayload("installed")
			p["key"] = "com.other.app"
			b, _ := json.Marshal(p)
			return b
		}},
		{name: "no shared secret", want: 400, body: func(s *jirasim.Site) []byte {
			p := s.InstallPayload("installed")
			delete(p, "sharedSecret")
			b, _ := json.Marshal(p)
			return b
		}},
	}
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		u := h.base + "/lifecycle/installed"
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				h.t = t
				s := h.site()
				remember(s.SharedSecret)
				tok := ""
				if c.token != nil {
					tok = c.token(h, s, u)
				} else if c.fault != jirasim.FaultNone {
					// A kid the service has not cached, so the fault is met.
					tok = rs256(h, "fresh-"+strings.ReplaceAll(c.name, " ", "-"), installClaims(h, s, u))
				} else {
					tok = rs256(h, h.atl.Kid, installClaims(h, s, u))
				}
				body, _ := json.Marshal(s.InstallPayload("installed"))
				if c.body != nil {
					body = c.body(s)
				}
				auth := ""
				if tok != "" {
					auth = "JWT " + tok
				}
				h.atl.SetFault(c.fault)
				defer h.atl.SetFault(jirasim.FaultNone)
				fetches := h.atl.Fetches.Load()
				before := h.countInstallations()
				began := time.Now()
				resp, err := h.do(http.MethodPost, u, auth, body)
				got := h.expect(resp, err)(c.want)
				if d := time.Since(began); d > 2*time.Second {
					t.Errorf("took %v", d)
				}
				if c.want == 401 && !strings.Contains(got, `"code":"unauthorized"`) {
					t.Errorf("body = %s", got)
				}
				if c.noFetch && h.atl.Fetches.Load() != fetches {
					t.Errorf("keys server was asked for a rejected kid")
				}
				if h.countInstallations() != before {
					t.Errorf("a rejected install stored something")
				}
			})
		}
	})
}

// TestForgedUninstall: an uninstall not signed by Atlassian erases nothing.
func TestForgedUninstall(t *testing.T) {
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", nil)
		s := h.installed()
		remember(s.SharedSecret)
		u := h.base + "/lifecycle/uninstalled"
		body, _ := json.Marshal(s.InstallPayload("uninstalled"))
		for name, auth := range map[string]string{
			"unsigned":     "",
			"other key":    "JWT " + func() string { t, _ := atlassianjwt.SignRS256(h.atl.Kid, otherKey, installClaims(h, s, u)); return t }(),
			"shared HS256": "JWT " + func() string { t, _ := s.Token(http.MethodPost, u, time.Now()); return t }(),
		} {
			h.expect(h.do(http.MethodPost, u, auth, body))(http.StatusUnauthorized)
			in := h.installation(s.ClientKey)
			if in.State != "installed" || in.SharedSecret == nil {
				t.Errorf("%s: forged uninstall changed the installation: %+v", name, in)
			}
		}
		h.expect(s.Webhook(ctx, "jira:issue_created", issueEvent("jira:issue_created")))(http.StatusNoContent)
	})
}
