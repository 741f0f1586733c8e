package ctl_test

import (
	"os"
	"strings"
	"testing"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// TestUpThatFailsHalfwayRemovesWhatItMade runs fabric up with a "pvlink"
// that exits at once: the namespaces and TUNs are made, then the first
// process dies during start-up. Up must say which step failed and why, and
// leave nothing behind.
func TestUpThatFailsHalfwayRemovesWhatItMade(t *testing.T) {
	fabrictest.RequireRoot(t)
	data, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := fabrictest.Name()
	topo, err := ctl.ParseTopology("demo.yaml", []byte(strings.Replace(string(data), "name: demo", "name: "+name, 1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := ctl.LoadState(name); err == nil {
			ctl.Down(s)
		}
	})
	_, err = ctl.Up(topo, "demo.yaml", ctl.UpOptions{Exe: "/bin/false"})
	if err == nil {
		t.Fatal("fabric up with a binary that exits succeeded")
	}
	if !strings.Contains(err.Error(), "exited during start-up") {
		t.Errorf("error does not say which step failed: %v", err)
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pvl-"+name+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	if _, err := os.Stat(ctl.Dir(name)); err == nil {
		t.Errorf("runtime folder %s left behind", ctl.Dir(name))
	}
}
