package descriptor

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	jiraconnect "github.com/sei-io/jira-connect"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden pins the rendered descriptor: any change to what Jira sees is a
// reviewed change to testdata/descriptor.golden.json (go test -update).
func TestGolden(t *testing.T) {
	d, err := Render(jiraconnect.Descriptor, Params{BaseURL: "https://sei.example.com/jira", Key: "io.sei.jira-connect", Name: "SEI for Jira"})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "descriptor.golden.json")
	if *update {
		if err := os.WriteFile(golden, d.JSON, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.JSON, want) {
		t.Errorf("rendered descriptor differs from %s; run go test ./internal/descriptor -update and review the diff", golden)
	}
}

// TestContract checks what Atlassian requires of the descriptor, independent
// of formatting.
func TestContract(t *testing.T) {
	d, err := Render(jiraconnect.Descriptor, Params{BaseURL: "https://sei.example.com", Key: "k", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Key            string
		BaseURL        string `json:"baseUrl"`
		Authentication struct{ Type string }
		Scopes         []string
		APIMigrations  map[string]bool `json:"apiMigrations"`
		Lifecycle      map[string]string
	}
	if err := json.Unmarshal(d.JSON, &v); err != nil {
		t.Fatal(err)
	}
	if v.Key != "k" || v.BaseURL != "https://sei.example.com" || v.Authentication.Type != "jwt" {
		t.Errorf("key/baseUrl/auth = %q %q %q", v.Key, v.BaseURL, v.Authentication.Type)
	}
	if len(v.Scopes) != 2 || v.Scopes[0] != "READ" || v.Scopes[1] != "ACCESS_EMAIL_ADDRESSES" {
		t.Errorf("scopes = %v", v.Scopes)
	}
	for _, m := range []string{"signed-install", "context-qsh", "gdpr"} {
		if !v.APIMigrations[m] {
			t.Errorf("apiMigrations.%s not true", m)
		}
	}
	for _, ev := range []string{"jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created", "comment_updated", "comment_deleted"} {
		if d.Webhooks[ev] == "" {
			t.Errorf("no webhook for %s", ev)
		}
	}
	if d.Pages["sei-connect"] == "" || d.Pages["sei-configure"] == "" {
		t.Errorf("pages = %v", d.Pages)
	}
}

// TestEscaping shows values cannot break out of their JSON strings.
func TestEscaping(t *testing.T) {
	d, err := Render(jiraconnect.Descriptor, Params{BaseURL: `https://x.example.com`, Key: "k", Name: `a "quoted" \ name`})
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Name string }
	if err := json.Unmarshal(d.JSON, &v); err != nil || v.Name != `a "quoted" \ name` {
		t.Errorf("name = %q, err %v", v.Name, err)
	}
}
