package ctl

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startProcess starts a detached pvlink process (its own session, so it
// outlives `fabric up` and a closed terminal) with output to a log file.
func startProcess(exe string, args []string, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{PID: cmd.Process.Pid, Log: logPath}
	p.StartTicks, _ = startTicks(p.PID)
	// Reap it in the background should it die while we still run; once we
	// exit, init adopts it.
	go cmd.Wait()
	return p, nil
}

// startTicks reads a process's start time, in clock ticks since boot.
func startTicks(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if fields[0] == "Z" {
		return 0, os.ErrNotExist // a zombie is already gone
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// Alive reports whether the recorded process is still the one we started.
func (p *Process) Alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	t, err := startTicks(p.PID)
	return err == nil && t == p.StartTicks
}

// stop ends a process we started: SIGTERM, then SIGKILL after grace. A
// process that is gone, or whose PID now belongs to someone else, is left
// alone.
func (p *Process) stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop pid %d: %w", p.PID, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Alive() {
		syscall.Kill(p.PID, syscall.SIGKILL)
		for i := 0; i < 100 && p.Alive(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p.Alive() {
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.PID)
	}
	return nil
}

// LogTail returns the last lines of a log, to explain a process that died.
func LogTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
