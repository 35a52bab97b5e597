package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
)

// cpuSample is CPU time spent so far: by this process, by the machine's
// postgres processes (a local server's backends, exited ones included
// through the postmaster's children times), and by the whole machine.
type cpuSample struct {
	self, postgres, machineBusy, machineTotal time.Duration
}

func sampleCPU(postmaster int) cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if postmaster > 0 {
		s.postgres = postgresCPU(postmaster)
	}
	s.machineBusy, s.machineTotal = machineCPU()
	return s
}

// clockTick is USER_HZ, 100 on Linux.
const clockTick = 100

// postgresCPU sums utime+stime+cutime+cstime of a local PostgreSQL
// server: the postmaster and its children.
func postgresCPU(postmaster int) time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		pid, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "/proc/"), "/stat"))
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); pid != postmaster && ppid != postmaster {
			continue
		}
		// Fields after the name: state is f[0], ppid f[1]; utime,
		// stime, cutime, cstime are fields 14-17 of the line, f[11:15].
		for _, x := range f[11:15] {
			n, _ := strconv.ParseInt(x, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// machineCPU reads the busy and total CPU time of all cores from /proc/stat.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, x := range f[1:] {
		n, _ := strconv.ParseInt(x, 10, 64)
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTick, time.Duration(sum) * time.Second / clockTick
}

// postmasterPID finds the local PostgreSQL server behind db: the parent
// of our backend. 0 when it is not on this machine (or not PostgreSQL).
func postmasterPID(ctx context.Context, db *store.DB) int {
	if db.Dialect() != store.DialectPostgres {
		return 0
	}
	var backend int
	if err := db.Gorm.WithContext(ctx).Raw("SELECT pg_backend_pid()").Scan(&backend).Error; err != nil || backend == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(backend) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// processCPU is a process's utime+stime from /proc/<pid>/stat.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTick
}
