package dataplane

import (
	"os/exec"
	"strings"
	"testing"
)

// The data plane takes its configuration as snapshot's types and links
// nothing of the control side, its tests and benchmarks included: the
// forwarder stays the small process ARCHITECTURE.md draws, and a test here
// never stands on ctl's behaviour.
func TestTheDataPlaneDoesNotLinkTheControlSide(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-deps", "pvlink.dev/pvlink/dataplane").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, side := range []string{"ctl", "bench", "cmd", "internal/fabrictest"} {
			if dep == "pvlink.dev/pvlink/"+side || strings.HasPrefix(dep, "pvlink.dev/pvlink/"+side+"/") {
				t.Errorf("dataplane (with its tests) depends on %s", dep)
			}
		}
	}
}
