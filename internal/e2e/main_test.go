package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// connectBin is the cmd/connect binary built for this test binary ("" under
// -short, when no test needs it).
var connectBin string

// raceService builds the service with the race detector (E2E_RACE=1). Off
// by default: a race-built service syncs about six times slower (77s
// instead of 14s for 5,000 issues, measured), which would push these
// tests past their time budget; the service's code runs under -race in
// internal/app's in-process tests. A race it reports fails the test.
var raceService = os.Getenv("E2E_RACE") == "1"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "e2e-connect-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		began := time.Now()
		bin, err := build(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building cmd/connect:", err)
			return 1
		}
		connectBin = bin
		if testing.Verbose() {
			fmt.Printf("e2e: built cmd/connect (race=%v) in %v\n", raceService, time.Since(began).Round(time.Millisecond))
		}
		return m.Run()
	}()
	os.Exit(code)
}

// build compiles cmd/connect into dir (with -race if raceService).
// `go test` puts its own Go's bin first on PATH, so "go" is the same
// toolchain; the build cache makes it quick after the first time.
func build(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "connect")
	args := []string{"build", "-o", bin}
	if raceService {
		args = append(args, "-race")
	}
	args = append(args, "github.com/sei-io/jira-connect/cmd/connect")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = filepath.Join("..", "..") // the module root, from internal/e2e
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}

// needBinary skips the test under -short, where nothing was built.
func needBinary(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: fault tests of the built binary take minutes; skipped with -short")
	}
	if connectBin == "" {
		t.Fatal("e2e: cmd/connect was not built")
	}
}
