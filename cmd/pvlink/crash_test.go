package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
)

// TestCtldKilledAtRandomLosesNoAnsweredChange makes 1,000 changes while
// ctld is killed with SIGKILL at random moments and started again: every
// change answered with success is in the model afterwards, none that was
// refused is, the host matches the model and every forwarder runs the
// latest version.
func TestCtldKilledAtRandomLosesNoAnsweredChange(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	bin := fabrictest.Binary(t)
	const mutations = 1000

	stop := make(chan struct{})
	kills := 0
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(20+rand.IntN(150)) * time.Millisecond):
			}
			if p := ctl.DaemonProcess(f.Name); p != nil {
				if syscall.Kill(p.PID, syscall.SIGKILL) == nil {
					kills++
				}
			}
		}
	}()

	// Targets 198.19.1.100-149, external (no server to start): each change
	// registers one that is not registered, or deregisters one that is; a
	// deregistered one stays in the model, draining.
	registered := map[string]bool{}   // answered success: must be there
	deregistered := map[string]bool{} // answered success: must be draining
	refused := 0
	for i := 0; i < mutations; i++ {
		ip := fmt.Sprintf("198.19.1.%d", 100+i%50)
		verb := "register"
		if registered[ip] && !deregistered[ip] {
			verb = "deregister"
		} else if deregistered[ip] {
			verb = "register" // registered again
		}
		// Now and then a change that breaks a rule: it must leave no trace.
		bad := i%10 == 9
		target := ip
		if bad {
			target = fmt.Sprintf("198.19.9.%d", i%200) // in no subnet of the VPC
			verb = "register"
		}
		for {
			c, _, err := ctl.EnsureDaemon(f.Name, bin)
			if err != nil {
				continue // killed while starting
			}
			_, err = c.Target(verb, "web", target, true)
			var ae *ctl.APIError
			switch {
			case err == nil && !bad:
				if verb == "register" {
					registered[ip], deregistered[ip] = true, false
				} else {
					deregistered[ip] = true
				}
			case errors.As(err, &ae) && ae.Status == 400:
				if !bad {
					t.Fatalf("change %d (%s %s) refused: %v", i, verb, target, err)
				}
				refused++
			case err == nil && bad:
				t.Fatalf("change %d (register %s, outside the VPC) was accepted", i, target)
			default:
				// ctld died with the change in flight: its outcome is
				// unknown to the client, as with any lost answer. Find
				// out from the model, then go on.
				if !bad {
					s := resolveStatus(t, f.Name, bin)
					for _, tg := range s.Targets {
						if tg.IP == ip {
							registered[ip], deregistered[ip] = true, !tg.DeregisteredAt.IsZero()
						}
					}
				}
			}
			break
		}
	}
	close(stop)
	<-killerDone
	t.Logf("%d changes, %d refused as they should be, ctld killed %d times", mutations, refused, kills)
	if kills < 10 {
		t.Fatalf("ctld was killed only %d times", kills)
	}

	c, _, err := ctl.EnsureDaemon(f.Name, bin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(s.Version, 30*time.Second); err != nil {
		t.Fatalf("after the crashes the host does not run version %d: %v", s.Version, err)
	}
	s, _ = c.Status()
	inModel := map[string]bool{}
	for _, tg := range s.Targets {
		if strings.HasPrefix(tg.IP, "198.19.9.") {
			t.Errorf("a refused change is in the model: %s", tg.IP)
		}
		if !tg.DeregisteredAt.IsZero() != deregistered[tg.IP] && registered[tg.IP] {
			t.Errorf("target %s: draining = %v, but the last answered change says %v", tg.IP, !tg.DeregisteredAt.IsZero(), deregistered[tg.IP])
		}
		inModel[tg.IP] = true
	}
	for ip := range registered {
		if !inModel[ip] {
			t.Errorf("target %s was registered (answered success) and is not in the model", ip)
		}
	}
	// The host matches the model: namespaces, TUNs, processes, versions.
	for _, v := range s.VPCs {
		if !nsenter.Exists(v.Netns) {
			t.Errorf("namespace %s is missing", v.Netns)
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pvl-"+f.Name+"-") && e.Name() != s.VPCs[0].Netns && e.Name() != s.VPCs[1].Netns {
			t.Errorf("orphaned namespace %s", e.Name())
		}
	}
	for _, fw := range s.Forwarders {
		if !fw.Alive || fw.ConfigVersion != s.Version {
			t.Errorf("forwarder %s: alive %v, version %d, model %d", fw.Label(), fw.Alive, fw.ConfigVersion, s.Version)
		}
	}
	want := len(s.Forwarders) + 2 + 1 // forwarders, the two target servers, ctld
	if n := processesOf(f.Name); n != want {
		t.Errorf("%d processes of fabric %s run, want %d (forwarders, targets, ctld): orphans or missing", n, f.Name, want)
	}
	// (No probe: the 50 external targets have no server, and with none
	// healthy yet the group fails open onto them, as an NLB does.)
}

// resolveStatus reads the model, however often ctld dies meanwhile.
func resolveStatus(t *testing.T, name, bin string) *ctl.Report {
	t.Helper()
	for try := 0; try < 100; try++ {
		if s, err := statusOf(name, bin); err == nil {
			return s
		}
	}
	t.Fatal("could not read the model in 100 tries")
	return nil
}

func statusOf(name, bin string) (*ctl.Report, error) {
	c, _, err := ctl.EnsureDaemon(name, bin)
	if err != nil {
		return nil, err
	}
	return c.Status()
}

// processesOf counts live processes started with a pid file in the fabric's
// runtime folder.
func processesOf(name string) int {
	dir := ctl.Dir(name) + string(filepath.Separator)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.Contains(string(data), "--pid-file\x00"+dir) {
			stat, _ := os.ReadFile(strings.TrimSuffix(p, "cmdline") + "stat")
			if !strings.Contains(string(stat), ") Z ") {
				n++
			}
		}
	}
	return n
}
