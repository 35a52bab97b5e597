package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is CPU time used so far by this process, the server,
// PostgreSQL and the whole machine.
type cpuSample struct {
	at     time.Time
	self   time.Duration
	server time.Duration
	pg     time.Duration
	hasSrv bool
	hasPG  bool
	// Whole machine from /proc/stat: busy (user, nice, system, irq,
	// softirq, steal) and steal alone.
	busy, steal time.Duration
	hasMachine  bool
}

// CPUUse is the CPU each side used during the measured phase, in cores
// (1.0 = one core busy the whole time).
type CPUUse struct {
	ServerCores   *float64 `json:"server_cores,omitempty"`
	LoadgenCores  float64  `json:"loadgen_cores"`
	PostgresCores *float64 `json:"postgres_cores,omitempty"`
	// MachineCores is every CPU's busy time; OtherCores what is left after
	// the server, loadgen and PostgreSQL (kernel threads, and any other
	// process: a run where it is high was disturbed). StealCores is time
	// the hypervisor gave to other guests.
	MachineCores *float64 `json:"machine_cores,omitempty"`
	OtherCores   *float64 `json:"other_cores,omitempty"`
	StealCores   *float64 `json:"steal_cores,omitempty"`
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat reads a process's parent and CPU times from /proc/PID/stat:
// its own (utime + stime) and that of its waited-for children (cutime +
// cstime).
func procStat(pid int) (ppid int, own, children time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// Fields after the parenthesised command name, which may hold spaces:
	// state is field 3 in proc(5)'s numbering, ppid 4, utime 14, stime 15,
	// cutime 16, cstime 17.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	var v [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} {
		if v[k], err = strconv.ParseInt(f[idx], 10, 64); err != nil {
			return 0, 0, 0, false
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return int(v[0]), tick(v[1] + v[2]), tick(v[3] + v[4]), true
}

// postgresCPU is the CPU of a PostgreSQL server: the postmaster, its live
// children (backends, walwriter, ...) and the children that have exited
// (which the postmaster reaps, so they are in its cutime/cstime).
func postgresCPU(postmaster int) (time.Duration, bool) {
	_, own, reaped, ok := procStat(postmaster)
	if !ok {
		return 0, false
	}
	total := own + reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if ppid, own, _, ok := procStat(pid); ok && ppid == postmaster {
			total += own
		}
	}
	return total, true
}

func sampleCPU(serverPID, pgPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if serverPID > 0 {
		_, s.server, _, s.hasSrv = procStat(serverPID)
	}
	if pgPID > 0 {
		s.pg, s.hasPG = postgresCPU(pgPID)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(line); len(f) > 8 && f[0] == "cpu" {
			var v [8]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
			// user nice system idle iowait irq softirq steal
			busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
			s.busy = time.Duration(busy) * time.Second / clockTicks
			s.steal = time.Duration(v[7]) * time.Second / clockTicks
			s.hasMachine = true
		}
	}
	return s
}

func (s cpuSample) sub(start cpuSample, fallback time.Duration) CPUUse {
	wall := s.at.Sub(start.at)
	if wall <= 0 {
		wall = fallback
	}
	cores := func(d time.Duration) *float64 {
		c := d.Seconds() / wall.Seconds()
		return &c
	}
	u := CPUUse{LoadgenCores: *cores(s.self - start.self)}
	if s.hasSrv && start.hasSrv {
		u.ServerCores = cores(s.server - start.server)
	}
	if s.hasPG && start.hasPG {
		u.PostgresCores = cores(s.pg - start.pg)
	}
	if s.hasMachine && start.hasMachine {
		u.MachineCores, u.StealCores = cores(s.busy-start.busy), cores(s.steal-start.steal)
		if u.ServerCores != nil {
			o := *u.MachineCores - *u.ServerCores - u.LoadgenCores
			if u.PostgresCores != nil {
				o -= *u.PostgresCores
			}
			o = max(0, o)
			u.OtherCores = &o
		}
	}
	return u
}

// readPostmasterPID reads the first line of PostgreSQL's postmaster.pid.
func readPostmasterPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: no pid on its first line", path)
	}
	return pid, nil
}
