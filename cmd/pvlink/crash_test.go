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

	"github.com/vishvananda/netlink"

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

// killCtldAtRandom kills the fabric's ctld every 20-170 ms until stop is
// closed; the returned function waits for it and says how often it killed.
func killCtldAtRandom(name string, stop <-chan struct{}) func() int {
	done := make(chan int)
	go func() {
		kills := 0
		for {
			select {
			case <-stop:
				done <- kills
				return
			case <-time.After(time.Duration(20+rand.IntN(150)) * time.Millisecond):
			}
			if p := ctl.DaemonProcess(name); p != nil && syscall.Kill(p.PID, syscall.SIGKILL) == nil {
				kills++
			}
		}
	}()
	return func() int { return <-done }
}

// TestCtldKilledWhileItMakesAndRemovesNamespacesLeavesTheHostMatching
// applies, 60 times, a topology with or without a third VPC and a second
// endpoint (a namespace and a TUN to make or remove), while ctld is killed
// at random: afterwards the namespaces, TUNs and processes are exactly the
// model's.
func TestCtldKilledWhileItMakesAndRemovesNamespacesLeavesTheHostMatching(t *testing.T) {
	base := demoTopology(t)
	f := fabrictest.Up(t, base)
	bin := fabrictest.Binary(t)
	bigger := strings.Replace(base, "\ntarget_groups:", `  - name: extra
    cidr: 198.20.0.0/16
    subnets:
      - {name: extra-az1, availability_zone: use1-az1, cidr: 198.20.1.0/24}

target_groups:`, 1) + `  - name: web2
    vpc: consumer
    service: web
    subnet_configurations:
      - {subnet: consumer-az1, ipv4: 198.18.1.20}
`
	topologies := [2][]byte{[]byte(strings.ReplaceAll(base, "NAME", f.Name)), []byte(strings.ReplaceAll(bigger, "NAME", f.Name))}
	stop := make(chan struct{})
	kills := killCtldAtRandom(f.Name, stop)
	for i := 0; i < 60; i++ {
		for {
			c, _, err := ctl.EnsureDaemon(f.Name, bin)
			if err != nil {
				continue
			}
			if _, err := c.Apply(topologies[(i+1)%2], f.File, false); err != nil {
				var ae *ctl.APIError
				if errors.As(err, &ae) && ae.Status/100 == 4 {
					t.Fatalf("apply %d refused: %v", i, err)
				}
				continue // the answer was lost: apply it again (it is idempotent)
			}
			// Let the host start to follow before the next change.
			time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
			break
		}
	}
	close(stop)
	n := kills()
	s := resolveStatus(t, f.Name, bin)
	c := ctl.Connect(f.Name)
	if err := c.Wait(s.Version, 30*time.Second); err != nil {
		t.Fatalf("after %d kills the host does not run version %d: %v", n, s.Version, err)
	}
	s = resolveStatus(t, f.Name, bin)
	t.Logf("60 applies, ctld killed %d times; model at version %d with %d VPCs", n, s.Version, len(s.VPCs))
	if n < 5 {
		t.Fatalf("ctld was killed only %d times", n)
	}
	// The churn reached the host: ctld's log (all its lives) shows the
	// third VPC's namespace made and removed.
	log, _ := os.ReadFile(filepath.Join(ctl.Dir(f.Name), "ctld.log"))
	made, removed := strings.Count(string(log), "create VPC\" vpc=extra"), strings.Count(string(log), "remove netns\" netns=pvl-"+f.Name+"-extra")
	t.Logf("the extra VPC's namespace was made %d and removed %d times", made, removed)
	if made == 0 || removed == 0 {
		t.Fatalf("the extra namespace was made %d and removed %d times: the test did not exercise the host", made, removed)
	}
	// The first apply adds, the last (the 60th) removes: the base topology's
	// two VPCs and one endpoint remain.
	if len(s.VPCs) != 2 || len(s.Endpoints) != 1 {
		t.Fatalf("model has %d VPCs and %d endpoints, want the base topology's 2 and 1", len(s.VPCs), len(s.Endpoints))
	}
	want := map[string]bool{}
	for _, v := range s.VPCs {
		want[v.Netns] = true
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pvl-"+f.Name+"-") && !want[e.Name()] {
			t.Errorf("orphaned namespace %s", e.Name())
		}
		delete(want, e.Name())
	}
	for ns := range want {
		t.Errorf("missing namespace %s", ns)
	}
	wantTUN := map[string]bool{}
	for _, e := range s.Endpoints {
		for _, eni := range e.ENIs {
			wantTUN[eni.Tun] = true
		}
	}
	for _, name := range tunsIn(t, f.Netns(t, "consumer")) {
		if !wantTUN[name] {
			t.Errorf("orphaned TUN %s", name)
		}
		delete(wantTUN, name)
	}
	for name := range wantTUN {
		t.Errorf("missing TUN %s", name)
	}
	if got, want := processesOf(f.Name), len(s.Forwarders)+2+1; got != want {
		t.Errorf("%d processes of the fabric run, want %d", got, want)
	}
	for _, fw := range s.Forwarders {
		if !fw.Alive || fw.ConfigVersion != s.Version {
			t.Errorf("forwarder %s: alive %v, version %d, model %d", fw.Label(), fw.Alive, fw.ConfigVersion, s.Version)
		}
	}
	probeAll(t, f)
}

// tunsIn lists the TUN devices of a namespace.
func tunsIn(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	err := nsenter.Do(ns, func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == "tuntap" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
