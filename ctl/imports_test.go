package ctl

import (
	"os/exec"
	"strings"
	"testing"
)

// The control side speaks to forwarders in snapshot's types and must not
// link the data plane: ctld stays small, and an etcd- or API-only build of
// it never drags gVisor along.
func TestCtlDoesNotLinkTheDataPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "pvlink.dev/pvlink/ctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "pvlink.dev/pvlink/dataplane" || strings.HasPrefix(dep, "gvisor.dev/") {
			t.Errorf("ctl depends on %s", dep)
		}
	}
}
