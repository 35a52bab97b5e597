package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/integrations"
	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// Types of integration, as the API names them.
const (
	typeCloud = "jira_cloud_api_token"
	typeDC    = "jira_datacenter"
)

// cloudHosts lets the harness accept the simulator (127.0.0.1) and a real
// Atlassian domain as Jira Cloud sites.
var cloudHosts = map[string]string{"JIRA_HOST_ALLOWLIST": "127.0.0.1,*.atlassian.net"}

// fieldsOf returns the field names of a 400's error, sorted.
func fieldsOf(out map[string]any) []string {
	e, _ := out["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	var names []string
	for k := range f {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestConnectionTypesBadInput: every way to get an API-token or Data
// Center integration wrong is a 400 that names the field, and a secret in
// the request is never echoed.
func TestConnectionTypesBadInput(t *testing.T) {
	h := start(t, storetest.Open(t, "sqlite"), "", cloudHosts)
	_, key := h.newTenant("Acme")
	const secret = "s3cret-never-echoed-9f2k"
	remember(secret)
	cloud := func(url string, auth map[string]any) map[string]any {
		return map[string]any{"name": "Acme Cloud", "type": typeCloud, "url": url, "authentication": auth}
	}
	dc := func(url string, auth map[string]any) map[string]any {
		return map[string]any{"name": "Acme DC", "type": typeDC, "url": url, "authentication": auth}
	}
	goodCloudAuth := map[string]any{"email": "ada@acme.com", "api_token": secret}
	adfs := func(override map[string]any) map[string]any {
		a := map[string]any{"method": "adfs", "adfs_url": "https://adfs.acme.com/adfs/oauth2/token", "client_id": "sei",
			"resource": "https://jira.acme.internal", "username": "ACME\\jdoe", "password": secret}
		for k, v := range override {
			a[k] = v
		}
		return a
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not a certificate")})
	cases := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"cloud site over http", cloud("http://acme.atlassian.net", goodCloudAuth), []string{"url"}},
		{"cloud site that is not Atlassian's", cloud("https://jira.acme.com", goodCloudAuth), []string{"url"}},
		{"cloud site with a context path", cloud("https://acme.atlassian.net/jira", goodCloudAuth), []string{"url"}},
		{"cloud site without url", cloud("", goodCloudAuth), []string{"url"}},
		{"url with credentials in it", cloud("https://ada:pw@acme.atlassian.net", goodCloudAuth), []string{"url"}},
		{"not a url", cloud("acme.atlassian.net", goodCloudAuth), []string{"url"}},
		{"cloud without email", cloud("https://acme.atlassian.net", map[string]any{"api_token": secret}), []string{"authentication.email"}},
		{"cloud with a bad email", cloud("https://acme.atlassian.net", map[string]any{"email": "ada", "api_token": secret}), []string{"authentication.email"}},
		{"cloud without api token", cloud("https://acme.atlassian.net", map[string]any{"email": "ada@acme.com"}), []string{"authentication.api_token"}},
		{"cloud without authentication", cloud("https://acme.atlassian.net", nil), []string{"authentication.api_token", "authentication.email"}},
		{"personal access token to cloud", cloud("https://acme.atlassian.net", map[string]any{"email": "ada@acme.com", "token": secret}),
			[]string{"authentication.api_token", "authentication.token"}},
		{"pat method to cloud", cloud("https://acme.atlassian.net", map[string]any{"method": "pat", "token": secret}),
			[]string{"authentication.method", "authentication.token"}},
		{"password to cloud", cloud("https://acme.atlassian.net", map[string]any{"email": "ada@acme.com", "api_token": secret, "password": secret}),
			[]string{"authentication.password"}},
		{"cloud through a satellite", map[string]any{"name": "x", "type": typeCloud, "connection": "satellite", "url": "https://acme.atlassian.net",
			"authentication": goodCloudAuth}, []string{"connection"}},
		{"tls options for cloud", map[string]any{"name": "x", "type": typeCloud, "url": "https://acme.atlassian.net", "authentication": goodCloudAuth,
			"tls": map[string]any{"allow_unsafe_ssl": true}}, []string{"tls"}},
		{"api token to data center", dc("https://jira.acme.internal", map[string]any{"method": "pat", "api_token": secret}),
			[]string{"authentication.api_token", "authentication.token"}},
		{"email to data center", dc("https://jira.acme.internal", map[string]any{"method": "basic", "email": "jdoe@acme.com", "username": "jdoe", "password": secret}),
			[]string{"authentication.email"}},
		{"data center without method", dc("https://jira.acme.internal", map[string]any{"token": secret}), []string{"authentication.method"}},
		{"data center with an unknown method", dc("https://jira.acme.internal", map[string]any{"method": "oauth", "token": secret}), []string{"authentication.method"}},
		{"pat without token", dc("https://jira.acme.internal", map[string]any{"method": "pat"}), []string{"authentication.token"}},
		{"pat with a username", dc("https://jira.acme.internal", map[string]any{"method": "pat", "token": secret, "username": "jdoe"}), []string{"authentication.username"}},
		{"basic without username and password", dc("https://jira.acme.internal", map[string]any{"method": "basic"}),
			[]string{"authentication.password", "authentication.username"}},
		{"basic without password", dc("https://jira.acme.internal", map[string]any{"method": "basic", "username": "jdoe"}), []string{"authentication.password"}},
		{"basic username with a colon", dc("https://jira.acme.internal", map[string]any{"method": "basic", "username": "j:doe", "password": secret}),
			[]string{"authentication.username"}},
		{"password with a line break", dc("https://jira.acme.internal", map[string]any{"method": "basic", "username": "jdoe", "password": "a\nb"}),
			[]string{"authentication.password"}},
		{"adfs without its fields", dc("https://jira.acme.internal", map[string]any{"method": "adfs"}),
			[]string{"authentication.adfs_url", "authentication.client_id", "authentication.password", "authentication.resource", "authentication.username"}},
		{"adfs without password", dc("https://jira.acme.internal", adfs(map[string]any{"password": nil})), []string{"authentication.password"}},
		{"adfs over http", dc("https://jira.acme.internal", adfs(map[string]any{"adfs_url": "http://adfs.acme.com/adfs/oauth2/token"})),
			[]string{"authentication.adfs_url"}},
		{"data center without url", dc("", map[string]any{"method": "pat", "token": secret}), []string{"url"}},
		{"data center over http from the cloud", dc("http://jira.acme.internal", map[string]any{"method": "pat", "token": secret}), []string{"url"}},
		{"unknown connection", map[string]any{"name": "x", "type": typeDC, "connection": "vpn", "url": "https://jira.acme.internal",
			"authentication": map[string]any{"method": "pat", "token": secret}}, []string{"connection"}},
		{"satellite given the password", map[string]any{"name": "x", "type": typeDC, "connection": "satellite", "url": "http://jira.acme.internal",
			"authentication": map[string]any{"method": "basic", "username": "jdoe", "password": secret}}, []string{"authentication.password"}},
		{"bad CA certificate", map[string]any{"name": "x", "type": typeDC, "url": "https://jira.acme.internal",
			"authentication": map[string]any{"method": "pat", "token": secret}, "tls": map[string]any{"ca_certificate": string(cert)}},
			[]string{"tls.ca_certificate"}},
		{"connect app with a url", map[string]any{"name": "x", "url": "https://acme.atlassian.net"}, []string{"url"}},
		{"unknown type", map[string]any{"name": "x", "type": "jira_server"}, []string{"type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if a, ok := c.body["authentication"].(map[string]any); ok {
				for k, v := range a {
					if v == nil {
						delete(a, k)
					}
				}
			}
			st, out := h.api("POST", "/integrations", key, c.body)
			if st != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %v", st, out)
			}
			if got := fieldsOf(out); !slices.Equal(got, c.fields) {
				t.Errorf("fields %v, want %v: %v", got, c.fields, out)
			}
			if strings.Contains(fmt.Sprint(out), secret) {
				t.Errorf("the answer echoes the secret: %v", out)
			}
		})
	}

	// PATCH checks the same way, and keeps the stored secret when none is
	// given.
	st, it := h.api("POST", "/integrations", key, cloud("https://acme.atlassian.net", goodCloudAuth))
	if st != 201 {
		t.Fatalf("create: %d %v", st, it)
	}
	path := "/integrations/" + id(it)
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"url": "http://acme.atlassian.net"}, "url"},
		{map[string]any{"authentication": map[string]any{"token": secret}}, "authentication.token"},
		{map[string]any{"authentication": map[string]any{"api_token": ""}}, "authentication.api_token"},
		{map[string]any{"type": typeDC}, "type"},
	} {
		st, out := h.api("PATCH", path, key, c.body)
		if st != 400 || !slices.Contains(fieldsOf(out), c.field) {
			t.Errorf("PATCH %v: %d %v, want 400 naming %s", c.body, st, out, c.field)
		}
	}
	if st, out := h.api("PATCH", path, key, map[string]any{"authentication": map[string]any{"email": "grace@acme.com"}}); st != 200 {
		t.Errorf("PATCH email keeping the token: %d %v", st, out)
	}
	// The PUT of re-authentication wants the secret itself.
	if st, out := h.api("PUT", path+"/authentication", key, map[string]any{"email": "ada@acme.com"}); st != 400 || !slices.Equal(fieldsOf(out), []string{"api_token"}) {
		t.Errorf("PUT without the token: %d %v", st, out)
	}
	if st, out := h.api("PUT", path+"/authentication", key, map[string]any{"token": secret, "api_token": secret}); st != 400 || !slices.Equal(fieldsOf(out), []string{"token"}) {
		t.Errorf("PUT with a PAT: %d %v", st, out)
	}
	// Connect app integrations have no credentials to replace.
	_, capp := h.api("POST", "/integrations", key, map[string]any{"name": "Connect"})
	if st, out := h.api("PUT", "/integrations/"+id(capp)+"/authentication", key, map[string]any{"api_token": secret}); st != 409 {
		t.Errorf("PUT on a Connect app integration: %d %v", st, out)
	}
}

// TestCredentialsSealedNeverReturned: the secret is sealed at rest, bound
// to its row, and the API shows only that it is set and since when.
func TestCredentialsSealedNeverReturned(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", cloudHosts)
		_, key := h.newTenant("Acme")
		const password = "correct horse battery staple"
		remember(password)
		st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme DC", "type": typeDC, "url": "https://jira.acme.internal/jira/",
			"authentication": map[string]any{"method": "basic", "username": "jdoe", "password": password}})
		if st != 201 {
			t.Fatalf("create: %d %v", st, it)
		}
		check := func(what string, it map[string]any) {
			t.Helper()
			if strings.Contains(fmt.Sprint(it), password) {
				t.Errorf("%s shows the password: %v", what, it)
			}
			a, _ := it["authentication"].(map[string]any)
			creds, _ := a["credentials"].(map[string]any)
			pw, _ := creds["password"].(map[string]any)
			if a["method"] != "basic" || a["username"] != "jdoe" || pw["set"] != true || pw["set_at"] == nil {
				t.Errorf("%s authentication: %v", what, a)
			}
			if it["url"] != "https://jira.acme.internal/jira" || it["connection"] != "cloud" || it["status"] != "pending" {
				t.Errorf("%s: %v", what, it)
			}
		}
		check("create", it)
		if it["status_reason"] != "not_validated" {
			t.Errorf("status reason %v", it["status_reason"])
		}
		_, got := h.api("GET", "/integrations/"+id(it), key, nil)
		check("get", got)
		_, page := h.api("GET", "/integrations", key, nil)
		check("list", page["items"].([]any)[0].(map[string]any))

		row, err := db.GetIntegrationByID(context.Background(), id(it))
		if err != nil {
			t.Fatal(err)
		}
		if row.Credentials == nil || !strings.HasPrefix(*row.Credentials, "v1.") || strings.Contains(*row.Credentials, password) ||
			strings.Contains(row.Settings, password) {
			t.Fatalf("stored credentials %v, settings %s", row.Credentials, row.Settings)
		}
		// Bound to the row: copied to another integration, they do not open.
		other := *row
		other.ID = "another-integration"
		if _, err := h.app.Integrations.Authenticator(&other, integrations.Settings{Auth: integrations.AuthSettings{Method: "basic"}}); err == nil {
			t.Error("credentials copied to another row decrypted")
		}
		a, err := h.app.Integrations.Authenticator(row, mustSettings(t, row))
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := a.(jira.Basic); !ok || b.Username != "jdoe" || b.Password != password {
			t.Errorf("authenticator %v", a)
		}
	})
}

func mustSettings(t *testing.T, it *store.Integration) integrations.Settings {
	t.Helper()
	st, err := integrations.ParseSettings(it)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// validationOf returns the names and statuses of a validation's checks.
func validationOf(out map[string]any) (bool, map[string]map[string]any) {
	v, _ := out["validation"].(map[string]any)
	checks := map[string]map[string]any{}
	list, _ := v["checks"].([]any)
	for _, c := range list {
		m := c.(map[string]any)
		checks[m["name"].(string)] = m
	}
	return v["ok"] == true, checks
}

func statusOf(out map[string]any) string {
	it, _ := out["integration"].(map[string]any)
	s, _ := it["status"].(string)
	return s
}

// TestValidateCloudAPIToken validates a Jira Cloud site by email and API
// token against the simulator, then a revoked token, then the repair by
// re-authentication.
func TestValidateCloudAPIToken(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", cloudHosts)
		s := jirasim.NewCloudSite()
		t.Cleanup(s.Close)
		const tok1, tok2 = "ATATT3xFfGF0-first-token-value", "ATATT3xFfGF0-second-token-value"
		remember(tok1, tok2)
		s.AddBasicUser("557058:ada", "Ada Lovelace", "ada@acme.com", tok1)
		s.AddIssue(jirasim.Issue("10001", "ACME-1", map[string]any{"summary": "first"}))
		_, key := h.newTenant("Acme")
		st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Cloud", "type": typeCloud, "url": s.BaseURL,
			"timezone": "Europe/Berlin", "authentication": map[string]any{"email": "ada@acme.com", "api_token": tok1}})
		if st != 201 {
			t.Fatalf("create: %d %v", st, it)
		}
		path := "/integrations/" + id(it)

		st, out := h.api("POST", path+"/validate", key, nil)
		ok, checks := validationOf(out)
		if st != 200 || !ok || statusOf(out) != "connected" {
			t.Fatalf("validate: %d %v", st, out)
		}
		for _, name := range []string{"url", "site_reachable", "tls", "credentials", "search_issues"} {
			if checks[name]["status"] != "pass" {
				t.Errorf("%s: %v", name, checks[name])
			}
		}
		if msg := checks["credentials"]["message"].(string); !strings.Contains(msg, "Ada Lovelace") || !strings.Contains(msg, "this integration's: Europe/Berlin") {
			t.Errorf("credentials message: %s", msg)
		}

		// A revoked token: the credentials check says so plainly.
		s.RevokeAPIToken("ada@acme.com")
		_, out = h.api("POST", path+"/validate", key, nil)
		ok, checks = validationOf(out)
		if msg, _ := checks["credentials"]["message"].(string); ok || checks["credentials"]["status"] != "fail" || !strings.Contains(msg, "401") ||
			!strings.Contains(msg, "API token") || checks["search_issues"]["status"] != "skipped" || statusOf(out) != "failing" {
			t.Fatalf("revoked token: %v", out)
		}
		if checks["site_reachable"]["status"] != "pass" {
			t.Errorf("a refused token is not an unreachable site: %v", checks["site_reachable"])
		}

		// A new token, still unknown to Jira: replaced, validated, refused.
		_, out = h.api("PUT", path+"/authentication", key, map[string]any{"api_token": tok2})
		if ok, _ := validationOf(out); ok || statusOf(out) != "failing" {
			t.Fatalf("re-authentication with an unknown token: %v", out)
		}
		// Known now: the integration works again at once.
		s.AddBasicUser("557058:ada", "Ada Lovelace", "ada@acme.com", tok2)
		before := time.Now().UTC().Add(-time.Second)
		st, out = h.api("PUT", path+"/authentication", key, map[string]any{"api_token": tok2})
		if ok, _ := validationOf(out); st != 200 || !ok || statusOf(out) != "connected" {
			t.Fatalf("re-authentication: %d %v", st, out)
		}
		creds := out["integration"].(map[string]any)["authentication"].(map[string]any)["credentials"].(map[string]any)["api_token"].(map[string]any)
		if at, _ := time.Parse(time.RFC3339, creds["set_at"].(string)); at.Before(before.Truncate(time.Second)) {
			t.Errorf("set_at %v not renewed", creds["set_at"])
		}
	})
}

// dcSite is a Data Center simulator over TLS with one user, and the PEM
// of its self-signed certificate.
func dcSite(t *testing.T) (*jirasim.Site, string) {
	t.Helper()
	s := jirasim.NewDataCenterSite(jirasim.WithTLS())
	t.Cleanup(s.Close)
	s.TimeZone = "America/New_York"
	s.AddDCUser("jdoe", "Jane Doe", "jdoe@acme.com")
	s.AddIssue(jirasim.Issue("10001", "ACME-1", map[string]any{"summary": "first"}))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Server.Certificate().Raw})
	return s, string(ca)
}

// TestValidateDataCenter validates a Data Center site by each way it goes
// wrong: the certificate (unknown authority, other host, expired), the
// network (refused, DNS), the credentials (wrong password, revoked PAT).
func TestValidateDataCenter(t *testing.T) {
	h := start(t, storetest.Open(t, "sqlite"), "", nil)
	s, ca := dcSite(t)
	pat := s.IssuePAT("jdoe")
	const password = "jdoe-password-1"
	remember(pat, password)
	s.SetPassword("jdoe", password)
	_, key := h.newTenant("Acme")
	st, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme DC", "type": typeDC, "url": s.BaseURL,
		"timezone": "Europe/Berlin", "authentication": map[string]any{"method": "pat", "token": pat}, "tls": map[string]any{"ca_certificate": ca}})
	if st != 201 {
		t.Fatalf("create: %d %v", st, it)
	}
	path := "/integrations/" + id(it)
	validate := func(t *testing.T, patch map[string]any) (bool, map[string]map[string]any, map[string]any) {
		t.Helper()
		if patch != nil {
			if st, out := h.api("PATCH", path, key, patch); st != 200 {
				t.Fatalf("PATCH %v: %d %v", patch, st, out)
			}
		}
		_, out := h.api("POST", path+"/validate", key, nil)
		ok, checks := validationOf(out)
		return ok, checks, out
	}

	t.Run("valid", func(t *testing.T) {
		ok, checks, out := validate(t, nil)
		if !ok || statusOf(out) != "connected" {
			t.Fatalf("validate: %v", out)
		}
		msg := checks["credentials"]["message"].(string)
		if !strings.Contains(msg, "Jane Doe (jdoe)") || !strings.Contains(msg, "America/New_York") || !strings.Contains(msg, "Europe/Berlin") {
			t.Errorf("credentials message: %s", msg)
		}
		if !strings.Contains(checks["tls"]["message"].(string), "valid and trusted") || !strings.Contains(checks["search_issues"]["message"].(string), "1 visible") {
			t.Errorf("checks: %v", checks)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		ok, checks, out := validate(t, map[string]any{"tls": map[string]any{"ca_certificate": ""}})
		if msg, _ := checks["tls"]["message"].(string); ok || !strings.Contains(msg, "does not trust") || !strings.Contains(msg, "tls.ca_certificate") ||
			checks["site_reachable"]["status"] != "pass" || checks["credentials"]["status"] != "skipped" || statusOf(out) != "failing" {
			t.Fatalf("self-signed: %v", out)
		}
	})
	t.Run("allow unsafe ssl", func(t *testing.T) {
		ok, checks, out := validate(t, map[string]any{"tls": map[string]any{"allow_unsafe_ssl": true}})
		if !ok || !strings.Contains(checks["tls"]["message"].(string), "verification is off") {
			t.Fatalf("allow_unsafe_ssl: %v", out)
		}
	})
	t.Run("hostname mismatch", func(t *testing.T) {
		u := strings.Replace(s.BaseURL, "127.0.0.1", "localhost", 1)
		ok, checks, out := validate(t, map[string]any{"url": u, "tls": map[string]any{"allow_unsafe_ssl": false, "ca_certificate": ca}})
		if msg, _ := checks["tls"]["message"].(string); ok || !strings.Contains(msg, "not localhost") || !strings.Contains(msg, "127.0.0.1") {
			t.Fatalf("hostname: %v", out)
		}
	})
	t.Run("expired", func(t *testing.T) {
		srv, pemCert := expiredTLSServer(t)
		ok, checks, out := validate(t, map[string]any{"url": srv.URL, "tls": map[string]any{"ca_certificate": pemCert}})
		if msg, _ := checks["tls"]["message"].(string); ok || !strings.Contains(msg, "expired") || !strings.Contains(msg, "renew") {
			t.Fatalf("expired: %v", out)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		ok, checks, out := validate(t, map[string]any{"url": "https://" + addr, "tls": map[string]any{"ca_certificate": ca}})
		if msg, _ := checks["site_reachable"]["message"].(string); ok || !strings.Contains(msg, "refused the connection") || checks["tls"]["status"] != "skipped" {
			t.Fatalf("refused: %v", out)
		}
	})
	t.Run("host does not resolve", func(t *testing.T) {
		ok, checks, out := validate(t, map[string]any{"url": "https://jira.acme.invalid"})
		if msg, _ := checks["site_reachable"]["message"].(string); ok || !strings.Contains(msg, "does not resolve") || !strings.Contains(msg, "satellite") {
			t.Fatalf("DNS: %v", out)
		}
	})
	t.Run("not a jira", func(t *testing.T) {
		ok, checks, out := validate(t, map[string]any{"url": s.BaseURL + "/nothing-here", "tls": map[string]any{"ca_certificate": ca}})
		if msg, _ := checks["site_reachable"]["message"].(string); ok || !strings.Contains(msg, "no Jira REST API") {
			t.Fatalf("404: %v", out)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		ok, checks, out := validate(t, map[string]any{"url": s.BaseURL,
			"authentication": map[string]any{"method": "basic", "username": "jdoe", "password": "not-the-password"}})
		if msg, _ := checks["credentials"]["message"].(string); ok || !strings.Contains(msg, "username and password of jdoe") || !strings.Contains(msg, "401") {
			t.Fatalf("wrong password: %v", out)
		}
		if ok, _, out := validate(t, map[string]any{"authentication": map[string]any{"password": password}}); !ok {
			t.Fatalf("right password: %v", out)
		}
	})
	t.Run("revoked pat", func(t *testing.T) {
		if ok, _, out := validate(t, map[string]any{"authentication": map[string]any{"method": "pat", "token": pat}}); !ok {
			t.Fatalf("pat: %v", out)
		}
		s.RevokePAT(pat)
		ok, checks, out := validate(t, nil)
		if msg, _ := checks["credentials"]["message"].(string); ok || !strings.Contains(msg, "personal access token") || statusOf(out) != "failing" {
			t.Fatalf("revoked: %v", out)
		}
		// An expired session on an endpoint that shows anonymous users
		// nothing: a 404, which is about the credentials, not the data.
		s.SetAnonymousStatus(http.StatusNotFound)
		ok, checks, out = validate(t, nil)
		if msg, _ := checks["credentials"]["message"].(string); ok || !strings.Contains(msg, "anonymous") {
			t.Fatalf("anonymous 404: %v", out)
		}
		s.SetAnonymousStatus(http.StatusUnauthorized)
		pat2 := s.IssuePAT("jdoe")
		remember(pat2)
		st, out := h.api("PUT", path+"/authentication", key, map[string]any{"method": "pat", "token": pat2})
		if ok, _ := validationOf(out); st != 200 || !ok || statusOf(out) != "connected" {
			t.Fatalf("re-authentication: %d %v", st, out)
		}
	})
	t.Run("adfs", func(t *testing.T) {
		const adfsPassword = "adfs-password-1"
		remember(adfsPassword)
		s.EnableADFS(jirasim.ADFSConfig{ClientID: "sei", Resource: "https://jira.acme.internal"})
		s.SetADFSPassword("jdoe", adfsPassword)
		auth := map[string]any{"method": "adfs", "adfs_url": s.ADFSURL(), "client_id": "sei", "resource": "https://jira.acme.internal",
			"username": "jdoe", "password": adfsPassword}
		if ok, _, out := validate(t, map[string]any{"authentication": auth}); !ok {
			t.Fatalf("adfs: %v", out)
		}
		// ADFS refusing the grant: a wrong password, then an unknown
		// relying party.
		ok, checks, out := validate(t, map[string]any{"authentication": map[string]any{"password": "wrong"}})
		if msg, _ := checks["credentials"]["message"].(string); ok || !strings.Contains(msg, "ADFS refused to sign in jdoe") || !strings.Contains(msg, "invalid_grant") {
			t.Fatalf("wrong ADFS password: %v", out)
		}
		ok, checks, out = validate(t, map[string]any{"authentication": map[string]any{"password": adfsPassword, "resource": "urn:other"}})
		if msg, _ := checks["credentials"]["message"].(string); ok || !strings.Contains(msg, "invalid_resource") {
			t.Fatalf("unknown resource: %v", out)
		}
	})
}

// expiredTLSServer serves https with a certificate for 127.0.0.1 that
// expired yesterday, and returns the certificate's PEM.
func expiredTLSServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jira.acme.internal"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fakeSyncer stands in for the ingest engine: it runs during, then fails
// with err.
type fakeSyncer struct {
	during func()
	err    error
	calls  int
}

func (f *fakeSyncer) Sync(context.Context, string, string) error {
	f.calls++
	if f.during != nil {
		f.during()
	}
	return f.err
}

// TestCredentialsRejectedMarksFailing: a sync that meets rejected
// credentials marks the integration failing / credentials_rejected (shown
// by monitoring) and is not retried; a re-authentication that raced it is
// not undone; a satellite's integration is never synced by the service.
func TestCredentialsRejectedMarksFailing(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB) {
		h := start(t, db, "", cloudHosts)
		_, key := h.newTenant("Acme")
		const tok = "ATATT3xFfGF0-guard-token"
		remember(tok)
		_, it := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Cloud", "type": typeCloud, "url": "https://acme.atlassian.net",
			"authentication": map[string]any{"email": "ada@acme.com", "api_token": tok}})
		itID := id(it)
		connected := func() {
			t.Helper()
			if err := db.Gorm.Model(&store.Integration{}).Where("id = ?", itID).Updates(map[string]any{"status": "connected", "status_reason": "validated"}).Error; err != nil {
				t.Fatal(err)
			}
		}
		connected()
		rejected := &jira.Error{Status: http.StatusUnauthorized, Method: "POST", Path: "/rest/api/3/search/jql", Messages: []string{"Client must be authenticated"}}
		g := &syncGuard{syncer: &fakeSyncer{err: fmt.Errorf("partition ACME: %w", rejected)}, db: db, ints: h.app.Integrations}
		err := g.Sync(context.Background(), itID, "incremental")
		if err == nil || !errors.Is(err, jira.ErrCredentialsRejected) {
			t.Fatalf("guard returned %v", err)
		}
		_, m := h.api("GET", "/integrations/"+itID+"/monitoring", key, nil)
		if m["status"] != "failing" || m["status_reason"] != "credentials_rejected" || !strings.Contains(m["status_message"].(string), "re-authenticate") {
			t.Fatalf("monitoring: %v", m)
		}

		// Other failures leave the status alone (they are retried).
		connected()
		g.syncer = &fakeSyncer{err: &jira.Error{Status: http.StatusServiceUnavailable, Method: "GET", Path: "/rest/api/3/field"}}
		if err := g.Sync(context.Background(), itID, "incremental"); err == nil {
			t.Fatal("no error")
		}
		if _, m := h.api("GET", "/integrations/"+itID, key, nil); m["status"] != "connected" {
			t.Errorf("a 503 changed the status: %v", m)
		}

		// Re-authenticated while the sync ran with the old token: the
		// rejection of the old token does not undo it.
		g.syncer = &fakeSyncer{err: rejected, during: func() {
			if st, out := h.api("PATCH", "/integrations/"+itID, key, map[string]any{"authentication": map[string]any{"api_token": tok + "-new"}}); st != 200 {
				t.Errorf("PATCH: %d %v", st, out)
			}
		}}
		remember(tok + "-new")
		// The job runs again soon (River snoozes it) with the new token.
		if err := g.Sync(context.Background(), itID, "incremental"); apperr.CodeOf(err) != apperr.Unavailable || apperr.As(err).RetryAfter <= 0 {
			t.Errorf("guard after a raced re-authentication: %v", err)
		}
		if _, m := h.api("GET", "/integrations/"+itID, key, nil); m["status_reason"] == "credentials_rejected" {
			t.Errorf("a stale rejection marked re-authenticated credentials: %v", m)
		}

		// A satellite ingests its own integration.
		_, sat := h.api("POST", "/integrations", key, map[string]any{"name": "Acme Sat", "type": typeDC, "connection": "satellite",
			"url": "https://jira.acme.internal", "authentication": map[string]any{"method": "pat"}})
		f := &fakeSyncer{err: rejected}
		g.syncer = f
		if err := g.Sync(context.Background(), id(sat), "incremental"); err != nil || f.calls != 0 {
			t.Errorf("satellite integration synced: %v, %d calls", err, f.calls)
		}
	})
}
