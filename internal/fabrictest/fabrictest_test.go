package fabrictest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pvlink.dev/pvlink/ctl"
)

type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

func TestARaceInAProcessLogFailsTheTest(t *testing.T) {
	old := ctl.RunDir
	ctl.RunDir = t.TempDir()
	defer func() { ctl.RunDir = old }()
	os.MkdirAll(ctl.Dir("f"), 0o755)
	os.WriteFile(filepath.Join(ctl.Dir("f"), "ctld.log"), []byte("level=INFO msg=ok\n"), 0o644)
	r := &recorder{TB: t}
	RaceReports(r, "f")
	if len(r.errors) != 0 {
		t.Fatalf("a clean log was reported: %v", r.errors)
	}
	os.WriteFile(filepath.Join(ctl.Dir("f"), "forwarder-use1-az1-w0-of-1.log"), []byte("==================\nWARNING: DATA RACE\nWrite at 0x00c000\n"), 0o644)
	RaceReports(r, "f")
	if len(r.errors) != 1 {
		t.Fatalf("a race in a forwarder's log gave %d errors", len(r.errors))
	}
}
