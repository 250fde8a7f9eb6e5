package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Memory of the processes the bench starts, read from /proc (Linux).

// statusMiB is a "VmXXX:" line of /proc/pid/status in MiB, 0 when the
// process is gone.
func statusMiB(pid int, key string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// peakMiB is the process's peak resident memory (VmHWM) in MiB.
func peakMiB(pid int) float64 { return statusMiB(pid, "VmHWM") }

// resetPeak sets the process's peak resident memory to its current one
// (clear_refs 5, Linux ≥ 4.0), so the next peakMiB covers one phase.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// runPolled runs cmd and returns its peak resident memory in MiB, read
// from VmHWM every 50 ms while it runs. (The ru_maxrss wait4 returns does
// not do: Linux keeps the maximum of the memory before exec, which is the
// bench's own.)
func runPolled(cmd *exec.Cmd) (float64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	var peak float64
	for {
		select {
		case err := <-done:
			return peak, err
		case <-poll.C:
			peak = max(peak, peakMiB(cmd.Process.Pid))
		}
	}
}

// procStat is the parent and process group of pid, from /proc/pid/stat.
func procStat(pid int) (ppid, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// comm may hold spaces and parentheses: the fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // state ppid pgrp ...
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return ppid, pgrp, err1 == nil && err2 == nil
}

// pids lists the processes in /proc.
func pids() []int {
	ents, _ := filepath.Glob("/proc/[0-9]*")
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(filepath.Base(e)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// emulatorGroup finds the process group of the Firebase emulator: testenv
// starts it in a group of its own (Setpgid), so it is the one child of
// this process that leads its group; nats-server and the roles stay in
// ours. 0 when there is none.
func emulatorGroup() int {
	self := os.Getpid()
	for _, pid := range pids() {
		if ppid, pgrp, ok := procStat(pid); ok && ppid == self && pgrp == pid {
			return pid
		}
	}
	return 0
}

// groupRSSMiB is the resident memory of every process in group pgid
// (the emulator's CLI, its Node.js runtime and any helper), in MiB, and how
// many processes it holds.
func groupRSSMiB(pgid int) (mib float64, procs int) {
	for _, pid := range pids() {
		if _, pgrp, ok := procStat(pid); ok && pgrp == pgid {
			mib += statusMiB(pid, "VmRSS")
			procs++
		}
	}
	return mib, procs
}
