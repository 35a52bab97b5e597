package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/jirasim"
)

// simulator is the Jira site under test, in this process or in a child
// jirasim process.
type simulator struct {
	baseURL, clientKey, sharedSecret string

	// in-process
	atl  *jirasim.Atlassian
	site *jirasim.Site

	// separate process
	cmd      *exec.Cmd
	srv      *http.Server
	done     chan struct{} // closed when the child has exited
	mu       sync.Mutex
	lastLine string // the child's "stopping after N requests (M answered 429)"
	stopped  bool
	childRSS int64
	childCPU time.Duration // at finish
}

func startSimulator(ctx context.Context, o *options, spec jirasim.GenSpec, stderr io.Writer) (*simulator, error) {
	if o.jirasimBin == "" {
		return startInProcess(o, spec)
	}
	return startChild(ctx, o, spec, stderr)
}

func startInProcess(o *options, spec jirasim.GenSpec) (*simulator, error) {
	atl, err := jirasim.New()
	if err != nil {
		return nil, err
	}
	site := atl.NewSite(&jirasim.App{Key: appKey, Raw: map[string]any{"name": "SEI for Jira"}})
	if err := site.Generate(o.seed, spec); err != nil {
		site.Close()
		atl.Close()
		return nil, err
	}
	if o.simPrebuild {
		site.Prebuild()
	}
	site.SetLatency(o.latency)
	if o.rate > 0 {
		site.SetRateLimit(o.rate, o.burst)
	}
	return &simulator{baseURL: site.BaseURL, clientKey: site.ClientKey, sharedSecret: site.SharedSecret, atl: atl, site: site}, nil
}

// startChild runs jirasim with -app pointing at a minimal descriptor served
// here: jirasim fetches it, generates the site and posts the signed
// "installed" callback, whose payload carries the shared secret.
func startChild(ctx context.Context, o *options, spec jirasim.GenSpec, stderr io.Writer) (*simulator, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + l.Addr().String()
	installed := make(chan map[string]any, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /atlassian-connect.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"key": appKey, "name": "SEI for Jira (ingestbench)", "baseUrl": base,
			"lifecycle": map[string]string{"installed": "/installed"}})
	})
	mux.HandleFunc("POST /installed", func(w http.ResponseWriter, r *http.Request) {
		// The simulator is our own child: its RS256 signature is not
		// what is measured here, so it is not verified.
		var p map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case installed <- p:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s := &simulator{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() { _ = s.srv.Serve(l) }()

	args := []string{"-addr", "127.0.0.1:0", "-keys-addr", "127.0.0.1:0", "-app", base + "/atlassian-connect.json",
		"-seed", strconv.FormatInt(o.seed, 10), "-now", spec.Now.Format(time.RFC3339),
		"-issues", strconv.Itoa(spec.Issues), "-projects", strconv.Itoa(spec.Projects), "-users", strconv.Itoa(spec.Users),
		"-email-share", fmt.Sprint(spec.EmailShare), "-transitions", strconv.Itoa(spec.TransitionsPerIssue),
		"-comments", strconv.Itoa(spec.CommentsPerIssue), "-long-tail", fmt.Sprint(spec.LongTailShare),
		"-custom-fields", strconv.Itoa(spec.CustomFields), "-description-bytes", strconv.Itoa(spec.DescriptionBytes),
		"-latency", o.latency.String(), "-rate", fmt.Sprint(o.rate), "-burst", strconv.Itoa(o.burst)}
	if o.simCPUProfile != "" {
		args = append(args, "-cpuprofile", o.simCPUProfile)
	}
	if o.simPrebuild {
		args = append(args, "-prebuild")
	}
	s.cmd = exec.Command(o.jirasimBin, args...)
	s.cmd.Stderr = stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		_ = s.srv.Close()
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		_ = s.srv.Close()
		return nil, fmt.Errorf("start %s: %w", o.jirasimBin, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(stderr, "  [jirasim]", line)
			s.mu.Lock()
			s.lastLine = line
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
		close(s.done)
	}()
	select {
	case p := <-installed:
		s.clientKey, _ = p["clientKey"].(string)
		s.sharedSecret, _ = p["sharedSecret"].(string)
		s.baseURL, _ = p["baseUrl"].(string)
		if s.clientKey == "" || s.sharedSecret == "" || s.baseURL == "" {
			s.close()
			return nil, errors.New("jirasim's install payload lacks clientKey, sharedSecret or baseUrl")
		}
		return s, nil
	case <-s.done:
		s.close()
		return nil, errors.New("jirasim exited before installing")
	case <-time.After(15 * time.Minute):
		s.close()
		return nil, errors.New("jirasim did not install within 15 minutes")
	case <-ctx.Done():
		s.close()
		return nil, ctx.Err()
	}
}

// finish ends the simulator's part after the sync: for a child, its peak
// RSS is read and it is stopped, printing its request counts.
func (s *simulator) finish() {
	if s.cmd == nil || s.stopped {
		return
	}
	s.stopped = true
	s.childRSS = peakRSS(strconv.Itoa(s.cmd.Process.Pid))
	s.childCPU = processCPU(s.cmd.Process.Pid)
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *simulator) close() {
	if s.site != nil {
		s.site.Close()
		s.atl.Close()
	}
	if s.cmd != nil {
		if !s.stopped {
			s.stopped = true
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				_ = s.cmd.Process.Kill()
			}
		}
		_ = s.srv.Close()
	}
}

// cpu is the CPU time the child has used so far; 0 in process.
func (s *simulator) cpu() time.Duration {
	if s.cmd == nil {
		return 0
	}
	if s.stopped {
		return s.childCPU
	}
	return processCPU(s.cmd.Process.Pid)
}

// peakRSS is the child's VmHWM; 0 in process (it is in ours).
func (s *simulator) peakRSS() int64 {
	s.finish()
	return s.childRSS
}

var stoppingLine = regexp.MustCompile(`after (\d+) requests \((\d+) answered 429\)`)

// totalRequests is how many requests reached the site (-1 if unknown).
func (s *simulator) totalRequests() int {
	if s.site != nil {
		return s.site.TotalRequests()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := stoppingLine.FindStringSubmatch(s.lastLine); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return -1
}

// rateLimited is how many 429s the site sent (-1 if unknown).
func (s *simulator) rateLimited() int {
	if s.site != nil {
		return s.site.RateLimited()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := stoppingLine.FindStringSubmatch(s.lastLine); m != nil {
		n, _ := strconv.Atoi(m[2])
		return n
	}
	return -1
}

// requestCounts is requests by API path (nil if unknown).
func (s *simulator) requestCounts() map[string]int {
	if s.site == nil {
		return nil
	}
	return s.site.RequestCounts()
}

// groundTruth is what the site shows; for a child process the site is
// generated again here from the same seed and spec (deterministic).
func (s *simulator) groundTruth(_ context.Context, o *options, spec jirasim.GenSpec) (*jirasim.GroundTruth, error) {
	if s.site != nil {
		return s.site.GroundTruth(), nil
	}
	atl, err := jirasim.New()
	if err != nil {
		return nil, err
	}
	defer atl.Close()
	site := atl.NewSite(&jirasim.App{Key: appKey})
	defer site.Close()
	if err := site.Generate(o.seed, spec); err != nil {
		return nil, err
	}
	return site.GroundTruth(), nil
}

// peakRSS reads VmHWM (bytes) from /proc/<pid>/status; 0 when unknown.
func peakRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
