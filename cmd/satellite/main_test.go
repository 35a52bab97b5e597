package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets a test run this binary as the satellite command itself
// (SATELLITE_TEST_MAIN=1), to see the real process exit status.
func TestMain(m *testing.M) {
	if os.Getenv("SATELLITE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const valid = `satellite: {tenant: ACME, api_key: sei_k3m9x2ab_supersecret, url: "https://sei.example.com/api"}
integrations:
  - id: '4711'
    url: 'https://jira.acme.internal'
    username: jdoe          # omitted for a personal access token
    application: jira
    api_key: hunter2-password  # password or personal access token
    metadata: {timezone: 'Europe/Berlin', sensitive_fields: [summary, description]}
jira: {allow_unsafe_ssl: false}
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "satellite.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := runCmd("validate", "--config", writeFile(t, valid))
	if code != exitOK || !strings.Contains(out, "is valid: 1 integration(s) for tenant ACME") || errOut != "" {
		t.Errorf("valid: %d %q %q", code, out, errOut)
	}

	for _, tc := range []struct {
		name, yml string
		want      []string
	}{
		{"malformed YAML", strings.Replace(valid, "url: 'https://jira.acme.internal'", "url: 'https://jira.acme.internal", 1),
			[]string{"satellite.yml:4: integrations[0].url: is not valid YAML"}},
		{"missing keys and a bad URL", strings.NewReplacer("    url: 'https://jira.acme.internal'\n", "", "url: \"https://sei.example.com/api\"", "url: sei.example.com").Replace(valid),
			[]string{"satellite.yml:1: satellite.url: must be an https or http URL", "satellite.yml:3: integrations[0].url: is required"}},
		{"placeholder", strings.Replace(valid, "sei_k3m9x2ab_supersecret", "<YOUR_API_KEY>", 1),
			[]string{"satellite.yml:1: satellite.api_key: is still the placeholder <YOUR_API_KEY>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd("validate", "--config", writeFile(t, tc.yml))
			if code != exitInvalid || out != "" {
				t.Errorf("exit %d, stdout %q", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, secret := range []string{"supersecret", "hunter2"} {
				if strings.Contains(errOut, secret) {
					t.Errorf("stderr shows a secret:\n%s", errOut)
				}
			}
		})
	}

	// Unknown keys warn; the file stays valid.
	code, _, errOut = runCmd("validate", "--config", writeFile(t, valid+"proxy: http://proxy:3128\n"))
	if code != exitOK || !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, ":10: proxy: is not a key") {
		t.Errorf("unknown key: %d %q", code, errOut)
	}
	// A missing file, a bad flag, an unknown command: status 2 too.
	if code, _, errOut := runCmd("validate", "--config", filepath.Join(t.TempDir(), "nope.yml")); code != exitInvalid || !strings.Contains(errOut, "does not exist") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
	if code, _, _ := runCmd("--no-such-flag"); code != exitInvalid {
		t.Errorf("bad flag: %d", code)
	}
	if code, _, _ := runCmd("frobnicate"); code != exitInvalid {
		t.Errorf("unknown command: %d", code)
	}
}

// TestExitStatus runs the command as a process: an invalid file exits 2
// whether it is validated or run, and names line and key.
func TestExitStatus(t *testing.T) {
	bad := writeFile(t, strings.Replace(valid, "application: jira", "application: jira\n    api_key: again", 1))
	for _, args := range [][]string{{"validate", "--config", bad}, {"--config", bad}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "SATELLITE_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInvalid {
			t.Fatalf("%v: %v, want exit status 2; stderr:\n%s", args, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), `satellite.yml:8: integrations[0].api_key: is not valid YAML: mapping key "api_key" already defined at [7:5]`) {
			t.Errorf("%v: stderr:\n%s", args, stderr.String())
		}
	}
	// A world-readable file is warned about.
	p := writeFile(t, valid)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd("validate", "--config", p); code != exitOK || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("readable file: %d %q", code, errOut)
	}
}

// TestRunOnce runs the command against a Jira and a service that refuse
// every call: it exits 1, logs JSON that names the problem and no secret,
// and keeps its database under --data-dir.
func TestRunOnce(t *testing.T) {
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-AUSERNAME", "anonymous")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errorMessages":["You are not authenticated."],"error":{"code":"unauthorized","message":"unauthorized"}}`))
	}))
	defer refuse.Close()
	yml := strings.NewReplacer("https://sei.example.com/api", refuse.URL+"/api", "https://jira.acme.internal", refuse.URL).Replace(valid)
	dataDir := filepath.Join(t.TempDir(), "data")
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", writeFile(t, yml), "--once"},
		func(k string) string { return map[string]string{"SATELLITE_DATA_DIR": dataDir}[k] }, io.Discard, &stderr)
	if code != exitFailed {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{`"level":"ERROR"`, "Jira refused the credentials: check username and api_key", "the SEI service refused the satellite's API key (401)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"supersecret", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("stderr shows a secret:\n%s", out)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "satellite.db")); err != nil {
		t.Errorf("database: %v", err)
	}
}
