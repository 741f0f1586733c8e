package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a process ctld started. Every such process is given a pid file
// (`--pid-file`), which the process itself locks and writes as it starts
// and holds locked until it exits: a ctld that restarts finds each of them
// again, whatever moment it died at, and a second process started for the
// same pid file (by a ctld that died before the first had written it)
// exits at once instead of running beside the first.
type Process struct {
	PID     int    `json:"pid"`
	PIDFile string `json:"pid_file"`
	Log     string `json:"log"`
}

// startProcess starts a detached pvlink process (its own session, so it
// outlives ctld and a closed terminal) with output to a log file and env
// added to ctld's environment.
func startProcess(exe string, args []string, pidFile, logPath string, env ...string) (*Process, error) {
	return startProcessWith(exe, args, pidFile, logPath, nil, env...)
}

// startProcessWith is startProcess giving the child files too, as its
// descriptors 3, 4, ...
func startProcessWith(exe string, args []string, pidFile, logPath string, files []*os.File, env ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, append([]string{"--pid-file", pidFile}, args...)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = files
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Reap it in the background should it die while we still run; once we
	// exit, init adopts it.
	go cmd.Wait()
	return &Process{PID: cmd.Process.Pid, PIDFile: pidFile, Log: logPath}, nil
}

// findProcess reads a pid file: the process is there if it is alive and is
// the one the file was given to.
func findProcess(pidFile, logPath string) *Process {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return nil
	}
	p := &Process{PID: pid, PIDFile: pidFile, Log: logPath}
	if !p.Alive() {
		return nil
	}
	return p
}

// LockPIDFile is what a process started with --pid-file does first: lock
// the file and write its pid into it. The returned file holds the lock and
// must stay open for the life of the process (the kernel releases the lock
// when the process ends, however it ends).
func LockPIDFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("pid file %s is held by a running process: this one is not needed", path)
		}
		return nil, fmt.Errorf("lock pid file %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Alive reports whether the process is still the one started with this
// pid file: running (not a zombie) with the pid file on its command line.
func (p *Process) Alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || len(stat) < i+3 || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	return err == nil && bytes.Contains(cmdline, []byte("\x00"+p.PIDFile+"\x00"))
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
			os.Remove(p.PIDFile)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.kill(); err != nil {
		return err
	}
	os.Remove(p.PIDFile)
	return nil
}

// kill ends a process we started at once (SIGKILL, which also ends one
// that is stopped) and waits until it is gone.
func (p *Process) kill() error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", p.PID, err)
	}
	for i := 0; i < 100 && p.Alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Alive() {
		return fmt.Errorf("pid %d did not exit after SIGKILL", p.PID)
	}
	return nil
}

// State is the process's state letter from /proc (R running, S sleeping,
// T stopped by a signal, ...), or "?".
func (p *Process) State() string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat")
	if i := bytes.LastIndexByte(stat, ')'); err == nil && i >= 0 && len(stat) > i+2 {
		return string(stat[i+2])
	}
	return "?"
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

// forwarderEnv is what a forwarder's environment adds to ctld's: GODEBUG
// with schedtrace set to its largest period (NoDeepSleepGODEBUG).
//
// A forwarder runs one scheduler thread and goes idle between packets.
// Each time it does, the Go runtime's monitor thread (sysmon) parks in a
// deep sleep, and the first system call after the next packet must wake it
// (a futex wake, then the monitor polling every 20 µs for a while): two of
// these per request/response round trip, on the critical path and on cores
// the consumer and the target share. `pvlink bench --paths pvlink
// --duration 3s`, two workers, two rounds each: latency p50 84 and 84 µs
// without, 66 and 67 µs with.
func forwarderEnv() []string {
	env, _ := NoDeepSleepGODEBUG()
	return []string{env}
}

// NoDeepSleepGODEBUG returns the GODEBUG environment entry that keeps the
// Go runtime's monitor thread out of its deep sleep, added to the
// process's own GODEBUG, and whether the process runs without it. The
// runtime skips that sleep only while a scheduler trace is on; with the
// trace's largest period (24.8 days) the monitor just polls, backing off
// to every 10 ms when idle, and the trace prints at most once per period
// (once at start on a host up for longer than that) and on a fatal error.
func NoDeepSleepGODEBUG() (env string, missing bool) {
	const noDeepSleep = "schedtrace=2147483647"
	v := os.Getenv("GODEBUG")
	switch {
	case v == "":
		return "GODEBUG=" + noDeepSleep, true
	case strings.Contains(v, noDeepSleep):
		return "GODEBUG=" + v, false
	}
	return "GODEBUG=" + v + "," + noDeepSleep, true
}
