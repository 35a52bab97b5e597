package config_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sei-io/jira-connect/internal/satellite/config"
)

// published is the example of SEI's documentation, verbatim.
const published = `satellite: {tenant: ACME, api_key: KEY, url: "https://sei.example.com/api"}
integrations:
  - id: '4711'
    url: 'https://jira.acme.internal'
    username: jdoe          # omitted for a personal access token
    application: jira
    api_key: SECRET         # password or personal access token
    metadata: {timezone: 'Europe/Berlin', sensitive_fields: [summary, description]}
jira: {allow_unsafe_ssl: false}
`

func TestPublishedFormat(t *testing.T) {
	c, warns, err := config.Parse("satellite.yml", []byte(published))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := &config.Config{Path: "satellite.yml",
		Satellite: config.Satellite{Tenant: "ACME", APIKey: "KEY", URL: "https://sei.example.com/api"},
		Integrations: []config.Integration{{ID: "4711", URL: "https://jira.acme.internal", Application: "jira", Auth: config.AuthBasic,
			Username: "jdoe", APIKey: "SECRET", Timezone: "Europe/Berlin", SensitiveFields: []string{"summary", "description"}, Line: 3}},
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

func TestAuthenticationVariants(t *testing.T) {
	pat := `satellite: {tenant: ACME, api_key: KEY, url: "https://sei.example.com/api"}
integrations:
  - id: 4711
    url: https://jira.acme.internal/jira/
    application: jira
    api_key: NjU0MTIzNDU2Nzg5
`
	c, _, err := config.Parse("satellite.yml", []byte(pat))
	if err != nil {
		t.Fatal(err)
	}
	it := c.Integrations[0]
	if it.ID != "4711" || it.Auth != config.AuthPAT || it.Username != "" || it.APIKey.Reveal() != "NjU0MTIzNDU2Nzg5" ||
		it.URL != "https://jira.acme.internal/jira" || it.Timezone != "UTC" || c.Jira.AllowUnsafeSSL {
		t.Errorf("pat: %+v", it)
	}

	adfs := `satellite:
  tenant: ACME
  api_key: KEY
  url: https://sei.example.com/api
integrations:
  - id: '4711'
    url: 'https://jira.acme.internal'
    application: jira
    authentication: adfs
    adfs_url: 'https://adfs.acme.internal/adfs/oauth2/token'
    adfs_client_id: sei-satellite
    adfs_resource: 'https://jira.acme.internal'
    adfs_username: 'ACME\jdoe'
    adfs_password: 'p@ss: word'
    metadata: {timezone: 'America/New_York', sensitive_fields: []}
jira: {allow_unsafe_ssl: true}
`
	c, warns, err := config.Parse("satellite.yml", []byte(adfs))
	if err != nil {
		t.Fatal(err)
	}
	it = c.Integrations[0]
	want := config.ADFS{URL: "https://adfs.acme.internal/adfs/oauth2/token", ClientID: "sei-satellite", Resource: "https://jira.acme.internal",
		Username: `ACME\jdoe`, Password: "p@ss: word"}
	if it.Auth != config.AuthADFS || it.ADFS != want || it.APIKey != "" || it.Timezone != "America/New_York" || !c.Jira.AllowUnsafeSSL {
		t.Errorf("adfs: %+v", it)
	}
	if len(warns) != 1 || warns[0].Key != "jira.allow_unsafe_ssl" || warns[0].Line != 16 {
		t.Errorf("warnings: %v", warns)
	}
}

// TestInvalid: every problem of a file at once, each with its line and key.
func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		want      []string // problems, in order
	}{
		{"malformed quote", "satellite:\n  tenant: ACME\n  api_key: \"unterminated\n  url: https://x/api\n",
			[]string{`satellite.yml:3: satellite.api_key: is not valid YAML: could not find end character of double-quoted text`}},
		{"malformed indentation", "satellite: {tenant: A, api_key: K, url: 'https://x/api'}\nintegrations:\n  - id: '1'\n   url: https://j\n",
			[]string{`satellite.yml:4: integrations[0].url: is not valid YAML: value is not allowed in this context`}},
		{"malformed flow", "satellite: {tenant: A, api_key: K, url: 'https://x/api'\n",
			[]string{`satellite.yml:1: satellite: is not valid YAML:`}},
		{"duplicate key", "satellite: {tenant: A, api_key: K, url: 'https://x/api'}\nsatellite: {}\n",
			[]string{`satellite.yml:2: satellite: is not valid YAML: mapping key "satellite" already defined at [1:1]`}},
		{"empty", "# nothing yet\n", []string{`satellite.yml: is empty`}},
		{"not a mapping", "- a\n- b\n", []string{`satellite.yml:1: the file: must be a mapping of keys (key: value), not a list`}},
		{"missing sections", "jira: {allow_unsafe_ssl: false}\n", []string{
			`satellite.yml:1: satellite: is required`,
			`satellite.yml:1: integrations: is required`}},
		{"missing keys", `satellite: {tenant: ACME}
integrations:
  - url: 'https://jira.acme.internal'
    username: jdoe
`, []string{
			`satellite.yml:1: satellite.api_key: is required`,
			`satellite.yml:1: satellite.url: is required`,
			`satellite.yml:3: integrations[0].id: is required`,
			`satellite.yml:3: integrations[0].api_key: is required: the password of jdoe`}},
		{"bad URLs", `satellite: {tenant: ACME, api_key: KEY, url: "sei.example.com/api"}
integrations:
  - id: '4711'
    url: 'ftp://jira.acme.internal'
    api_key: T
  - id: '4712'
    url: 'https://jdoe:pw@jira.acme.internal'
    api_key: T
`, []string{
			`satellite.yml:1: satellite.url: must be an https or http URL`,
			`satellite.yml:4: integrations[0].url: must be an https or http URL`,
			`satellite.yml:7: integrations[1].url: must not carry a user name or password`}},
		{"placeholders and types", `satellite: {tenant: ACME, api_key: <YOUR_API_KEY>, url: "https://sei.example.com/api"}
integrations:
  - id: '4711'
    url: 'https://jira.acme.internal'
    application: confluence
    api_key: <PERSONAL_ACCESS_TOKEN>
    metadata: {timezone: Mars/Olympus, sensitive_fields: summary}
  - id: '4711'
    url: [a, b]
    username: jdoe
    api_key: pw
jira: {allow_unsafe_ssl: "yes"}
`, []string{
			`satellite.yml:1: satellite.api_key: is still the placeholder <YOUR_API_KEY>`,
			`satellite.yml:5: integrations[0].application: must be jira`,
			`satellite.yml:6: integrations[0].api_key: is still the placeholder <PERSONAL_ACCESS_TOKEN>`,
			`satellite.yml:7: integrations[0].metadata.timezone: must be an IANA time zone`,
			`satellite.yml:7: integrations[0].metadata.sensitive_fields: must be a list`,
			`satellite.yml:8: integrations[1].id: repeats the id of integrations[0]`,
			`satellite.yml:9: integrations[1].url: must be a single value, not a list`,
			`satellite.yml:12: jira.allow_unsafe_ssl: must be true or false`}},
		{"adfs mixed up", `satellite: {tenant: ACME, api_key: KEY, url: "https://sei.example.com/api"}
integrations:
  - id: '4711'
    url: 'https://jira.acme.internal'
    authentication: adfs
    username: jdoe
    adfs_url: 'https://adfs.acme.internal'
    adfs_client_id: sei
  - id: '4712'
    url: 'https://jira.acme.internal'
    api_key: T
    adfs_password: x
  - id: '4713'
    url: 'https://jira.acme.internal'
    authentication: kerberos
`, []string{
			`satellite.yml:3: integrations[0].adfs_resource: is required`,
			`satellite.yml:3: integrations[0].adfs_username: is required`,
			`satellite.yml:3: integrations[0].adfs_password: is required`,
			`satellite.yml:6: integrations[0].username: is not used with authentication adfs`,
			`satellite.yml:12: integrations[1].adfs_password: is not used with authentication pat`,
			`satellite.yml:15: integrations[2].authentication: must be adfs`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := config.Parse("satellite.yml", []byte(tc.yml))
			if !config.IsInvalid(err) {
				t.Fatalf("err = %v, want an invalid file", err)
			}
			probs := err.(*config.Error).Problems
			if len(probs) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", len(probs), len(tc.want), err)
			}
			for i, want := range tc.want {
				if i < len(probs) && !strings.HasPrefix(probs[i].String(), want) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, probs[i], want)
				}
			}
		})
	}
}

// TestUnknownKeys are warned about with the key they likely meant; the
// file stays valid.
func TestUnknownKeys(t *testing.T) {
	yml := strings.Replace(published, "    application: jira\n", "    application: jira\n    apikey: typo\n    project_filter: ACME\n", 1) +
		"proxy: http://proxy:3128\n"
	c, warns, err := config.Parse("satellite.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range warns {
		got = append(got, w.String())
	}
	want := []string{
		"satellite.yml:7: integrations[0].apikey: is not a key of satellite.yml here: ignored (did you mean api_key?)",
		"satellite.yml:8: integrations[0].project_filter: is not a key of satellite.yml here: ignored",
		"satellite.yml:12: proxy: is not a key of satellite.yml here: ignored",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got)\n%s", d)
	}
	if c.Integrations[0].APIKey.Reveal() != "SECRET" {
		t.Errorf("api_key %q", c.Integrations[0].APIKey.Reveal())
	}
}

// TestSecretsNeverPrint: a Config reaching fmt, slog or JSON by mistake
// shows no secret.
func TestSecretsNeverPrint(t *testing.T) {
	yml := strings.NewReplacer("api_key: KEY", "api_key: sei_k3m9x2ab_topsecret", "api_key: SECRET", "api_key: hunter2-password").Replace(published)
	c, _, err := config.Parse("satellite.yml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v %s %q %x", c, c, c, c.Satellite.APIKey, c.Integrations[0].APIKey, c.Integrations[0].APIKey)
	raw, _ := json.Marshal(c)
	b.Write(raw)
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("config", "config", c, "satellite", c.Satellite, "integration", c.Integrations[0], "key", c.Satellite.APIKey)
	for _, s := range []string{"topsecret", "hunter2"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("a secret printed:\n%s", b.String())
		}
	}
	if !strings.Contains(b.String(), "[redacted]") {
		t.Errorf("no redaction marker:\n%s", b.String())
	}
	if got := c.Secrets(); len(got) != 2 {
		t.Errorf("Secrets() has %d values", len(got))
	}
	// An invalid file's errors name the key, never the value.
	bad := strings.Replace(yml, "url: 'https://jira.acme.internal'", "url: 'https://jira.acme.internal'\n    api_key: again", 1)
	_, _, err = config.Parse("satellite.yml", []byte(bad))
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "again") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, _, err := config.Load(filepath.Join(dir, "satellite.yml"))
	if !config.IsInvalid(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "satellite.yml")
	if err := os.WriteFile(p, []byte(published), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := config.Load(p)
	if err != nil || c.Path != p || c.Integration("4711") == nil || c.Integration("nope") != nil {
		t.Errorf("load: %v %+v", err, c)
	}
}

// FuzzParse: no input panics the reader, every failure is an invalid
// file with located problems, and a valid file has what the agent needs.
func FuzzParse(f *testing.F) {
	f.Add(published)
	f.Add(strings.Replace(published, "'4711'", "'4711", 1))
	f.Add("satellite: &s {tenant: A, api_key: K, url: 'https://x/api'}\nintegrations: [{id: 1, url: 'http://j', api_key: T, <<: {username: u}}]\njira: *s\n")
	f.Add("integrations:\n- id: x\n  url: https://j\n  authentication: adfs\n  adfs_url: https://a\n")
	f.Add("{\n")
	f.Fuzz(func(t *testing.T, yml string) {
		c, _, err := config.Parse("satellite.yml", []byte(yml))
		if err != nil {
			if !config.IsInvalid(err) || len(err.(*config.Error).Problems) == 0 {
				t.Fatalf("err %T %v", err, err)
			}
			return
		}
		if c.Satellite.URL == "" || c.Satellite.APIKey == "" || len(c.Integrations) == 0 {
			t.Fatalf("valid without essentials: %+v", c)
		}
		for _, it := range c.Integrations {
			if it.ID == "" || it.URL == "" || it.Auth == "" || (it.Auth == config.AuthADFS) != (it.ADFS.Password != "") {
				t.Fatalf("valid integration without essentials: %+v", it)
			}
		}
	})
}
