package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel fixes it at 100 for every architecture simgate targets.
const clockTick = 10 * time.Millisecond

// memory is what /proc/PID/status says about a process's resident memory.
type memory struct {
	RSS int64 // VmRSS, bytes
	HWM int64 // VmHWM, the peak of VmRSS, bytes
}

// readMemory reads VmRSS and VmHWM of pid.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read memory of %d: %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return memory{}, fmt.Errorf("read memory of %d: %w", pid, err)
	}
	return m, nil
}

// parseStatus takes VmRSS and VmHWM from the text of /proc/PID/status.
func parseStatus(b []byte) (memory, error) {
	var m memory
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("%s: want \"<n> kB\", got %q", key, strings.TrimSpace(val))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return memory{}, fmt.Errorf("%s: bad size %q", key, f[0])
		}
		if key == "VmRSS" {
			m.RSS, haveRSS = kb*1024, true
		} else {
			m.HWM, haveHWM = kb*1024, true
		}
	}
	if err := sc.Err(); err != nil {
		return memory{}, err
	}
	if !haveRSS || !haveHWM {
		return memory{}, errors.New("no VmRSS and VmHWM lines (a kernel thread, or a zombie)")
	}
	return m, nil
}

// readCPU returns the CPU time (user + system) pid has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of %d: %w", pid, err)
	}
	d, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("read CPU time of %d: %w", pid, err)
	}
	return d, nil
}

// parseStat returns utime+stime from the text of /proc/PID/stat. The
// command name in parentheses may hold spaces and parentheses itself, so
// fields are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After the name: state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad tick count %q", s)
		}
		if n > (1<<62)/int64(clockTick) {
			return 0, fmt.Errorf("tick count %d out of range", n)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// readSchedCPU returns the time pid's live threads have run, in
// nanoseconds, from /proc/PID/task/*/schedstat: far finer than the 10 ms
// ticks of /proc/PID/stat, which an idle daemon may not move at all.
func readSchedCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return 0, fmt.Errorf("read run time of %d: %w", pid, err)
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("read run time of %d: no threads in /proc (schedstats off, or the process is gone)", pid)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("read run time of %d: %w", pid, err)
		}
		d, err := parseSchedstat(b)
		if err != nil {
			return 0, fmt.Errorf("read run time of %d: %s: %w", pid, t, err)
		}
		total += d
	}
	return total, nil
}

// parseSchedstat returns the first field of /proc/.../schedstat: time spent
// on the CPU, in nanoseconds.
func parseSchedstat(b []byte) (time.Duration, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, fmt.Errorf("%d fields, want 3", len(f))
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad run time %q", f[0])
	}
	return time.Duration(n), nil
}

// udpBound tells whether some socket is bound to UDP port on this host,
// from /proc/net/udp and /proc/net/udp6.
func udpBound(port int) (bool, error) {
	for _, p := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", p, err)
		}
		ports, err := parseNetUDP(b)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", p, err)
		}
		for _, q := range ports {
			if q == port {
				return true, nil
			}
		}
	}
	return false, nil
}

// parseNetUDP returns the local ports of the sockets in the text of
// /proc/net/udp (or udp6): a header line, then one socket per line with
// local_address as HEXADDR:HEXPORT in the second field.
func parseNetUDP(b []byte) ([]int, error) {
	var ports []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("local address %q has no port", f[1])
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("local address %q: bad port: %w", f[1], err)
		}
		ports = append(ports, int(p))
	}
	return ports, sc.Err()
}
