package ctl_test

import (
	"os"
	"strings"
	"testing"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// TestUpWhoseDaemonCannotStartLeavesNothing runs fabric up with a "pvlink"
// that exits at once, so ctld never answers: Up must say so and leave
// neither a namespace nor a folder behind.
func TestUpWhoseDaemonCannotStartLeavesNothing(t *testing.T) {
	fabrictest.RequireRoot(t)
	data, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := fabrictest.Name()
	topo := []byte(strings.Replace(string(data), "name: demo", "name: "+name, 1))
	_, _, err = ctl.Up("/bin/false", topo, "demo.yaml")
	if err == nil {
		t.Fatal("fabric up with a binary that exits succeeded")
	}
	if !strings.Contains(err.Error(), "exited at start") {
		t.Errorf("error does not say what failed: %v", err)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pvl-"+name+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	for _, dir := range []string{ctl.Dir(name), ctl.StoreDir(name)} {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("folder %s left behind", dir)
		}
	}
}
