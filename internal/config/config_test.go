package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL.String() != "http://localhost:8080" || c.BasePath != "" || c.ListenAddr != ":8080" {
		t.Errorf("defaults: base %s path %q listen %s", c.BaseURL, c.BasePath, c.ListenAddr)
	}
	if c.DatabaseURL != "sqlite:data/connect.db" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if c.InstallKeysURL != "https://connect-install-keys.atlassian.com" {
		t.Errorf("InstallKeysURL = %q", c.InstallKeysURL)
	}
	if !c.JiraHosts.Allows("acme.atlassian.net") || c.JiraHosts.Allows("127.0.0.1") {
		t.Errorf("default allowlist wrong: %v", c.JiraHosts)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{
		"BASE_URL":            "http://sei.example.com",
		"LISTEN_ADDR":         "8080",
		"APP_ENV":             "production",
		"JIRA_HOST_ALLOWLIST": "evil*.net",
		"LOG_LEVEL":           "loud",
		"SHUTDOWN_TIMEOUT":    "soon",
	}))
	if err == nil {
		t.Fatal("want error")
	}
	for _, name := range []string{"BASE_URL", "LISTEN_ADDR", "JIRA_HOST_ALLOWLIST", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "ENCRYPTION_KEYS"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not mention %s:\n%v", name, err)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://sei.example.com":         true,
		"https://sei.example.com/app/":    true,
		"http://127.0.0.1:9000":           true,
		"http://localhost:8080":           true,
		"http://[::1]:8080":               true,
		"http://sei.example.com":          false,
		"ftp://sei.example.com":           false,
		"https://user:pw@sei.example.com": false,
		"https://sei.example.com/?a=b":    false,
		"sei.example.com":                 false,
	} {
		u, err := ParsePublicURL(raw)
		if (err == nil) != ok {
			t.Errorf("%s: err = %v, want ok=%v", raw, err, ok)
		}
		if err == nil && strings.HasSuffix(u.String(), "/") {
			t.Errorf("%s: trailing slash kept: %s", raw, u)
		}
	}
}

func TestHostAllowlist(t *testing.T) {
	al, err := ParseHostAllowlist("*.atlassian.net, *.jira.com ,127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"acme.atlassian.net":      true,
		"a.b.atlassian.net":       true,
		"ACME.Atlassian.NET":      true,
		"acme.atlassian.net.":     true,
		"atlassian.net":           false,
		"evilatlassian.net":       false,
		"acme.atlassian.net.evil": false,
		".atlassian.net":          false,
		"127.0.0.1":               true,
		"127.0.0.2":               false,
		"x.jira.com":              true,
		"":                        false,
	} {
		if got := al.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
	for _, bad := range []string{"*", "evil*.net", "*.a*.net", "https://x.net", "", " , "} {
		if _, err := ParseHostAllowlist(bad); err == nil {
			t.Errorf("ParseHostAllowlist(%q) accepted", bad)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(f, []byte("k1:abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"ENCRYPTION_KEYS_FILE": f}))
	if err != nil {
		t.Fatal(err)
	}
	if c.EncryptionKeys != "k1:abc" {
		t.Errorf("EncryptionKeys = %q", c.EncryptionKeys)
	}
	_, err = Load(env(map[string]string{"ENCRYPTION_KEYS_FILE": f, "ENCRYPTION_KEYS": "x"}))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both set: %v", err)
	}
	_, err = Load(env(map[string]string{"DATABASE_URL_FILE": "/nonexistent/db"}))
	if err == nil {
		t.Error("missing file accepted")
	}
}

func TestRedactedDatabaseURL(t *testing.T) {
	c := &Config{DatabaseURL: "postgres://sei:hunter2@db:5432/sei"}
	if got := c.RedactedDatabaseURL(); strings.Contains(got, "hunter2") {
		t.Errorf("password leaked: %s", got)
	}
	c.DatabaseURL = "host=db password=hunter2"
	if got := c.RedactedDatabaseURL(); strings.Contains(got, "hunter2") {
		t.Errorf("password leaked: %s", got)
	}
}

// TestREADMETable keeps the README's configuration table in step with Vars.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(b), "| `"+v.Name+"`") {
			t.Errorf("README configuration table lacks %s", v.Name)
		}
	}
}
