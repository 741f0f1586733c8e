package main

import (
	"os/exec"
	"strings"
	"testing"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// `make build` stamps the commit into the binary, so `pvlink version` in a
// bug report says which code ran, whatever GOFLAGS says of -buildvcs.
func TestVersionNamesTheCommitItWasBuiltFrom(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not a git checkout: the binary carries no commit")
	}
	out, err := fabrictest.Run(t, "version")
	if err != nil {
		t.Fatalf("pvlink version: %v: %s", err, out)
	}
	if rev := strings.TrimSpace(string(head)); !strings.Contains(out, "revision "+rev) {
		t.Fatalf("pvlink version says %q, want revision %s (the checkout's HEAD)", strings.TrimSpace(out), rev)
	}
}

// `make build` builds gVisor with pvlink's changes (third_party/gvisor); a
// binary built without them would move downloads slower and say so.
func TestVersionSaysTheBinaryHasPvlinksGVisor(t *testing.T) {
	out, err := fabrictest.Run(t, "version")
	if err != nil {
		t.Fatalf("pvlink version: %v: %s", err, out)
	}
	if !strings.Contains(out, "with pvlink's changes (third_party/gvisor)") {
		t.Fatalf("pvlink version says %q: the binary under test was built without third_party/gvisor's changes (build it with make)", strings.TrimSpace(out))
	}
}
