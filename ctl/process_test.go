package ctl

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestASecondProcessForOnePIDFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "forwarder.pid")
	first, err := LockPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockPIDFile(path); err == nil || !strings.Contains(err.Error(), "held by a running process") {
		t.Fatalf("a second lock of a held pid file: %v", err)
	}
	first.Close() // the first process ends
	again, err := LockPIDFile(path)
	if err != nil {
		t.Fatalf("the pid file of a process that ended: %v", err)
	}
	again.Close()
}
