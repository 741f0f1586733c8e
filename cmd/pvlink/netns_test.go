package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
)

// A user deletes an ENI's TUN (`ip link delete`), moves it to another
// namespace or changes its MTU, or deletes a VPC's namespace (`ip netns
// delete`, or only its mount: umount) beside the fabric: ctld makes it again with what the
// fabric had in it, and traffic through every ENI comes back. A TUN's: the
// kernel detached the forwarders' queues of the old one; they open the new
// one in place. A consumer VPC's: its ENIs' TUNs are made again
// and the forwarders, still running, open them there (the old TUNs live on
// in the namespace that lost its name, so nothing fails by itself). A
// provider VPC's: the targets ctld runs start again in it, and the
// forwarders dial there. A forwarder killed afterwards comes back with the
// TUN queue of the new namespace that ctld kept for it.
func TestADeletedTUNOrVPCNamespaceIsMadeAgainAndCarriesTrafficAgain(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	forwarders := func() []int {
		var pids []int
		for _, fw := range f.Status.Forwarders {
			pids = append(pids, fw.PID)
		}
		return pids
	}
	targets := func() []int {
		var pids []int
		for _, tg := range f.Status.Targets {
			pids = append(pids, tg.PID)
		}
		return pids
	}
	fwBefore, tgBefore := forwarders(), targets()
	everyENI := func(within time.Duration, after string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for _, eni := range f.Status.Endpoints[0].ENIs {
			for {
				c, err := exchange(t, f, eni.IP+":80", time.Second)
				if err == nil {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ENI %s in %s: no exchange %s within %s: %v", eni.IP, eni.AZ, after, within, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	everyENI(5*time.Second, "at the start")
	deleteNetns := func(vpc string) {
		t.Helper()
		ns := f.Netns(t, vpc)
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns delete %s: %v\n%s", ns, err, out)
		}
	}

	samePIDs := func(after string) {
		t.Helper()
		f.Refresh(t)
		if got := forwarders(); !slices.Equal(got, fwBefore) {
			t.Errorf("forwarders %v became %v %s: the ENIs should be reopened in place", fwBefore, got, after)
		}
	}
	eni := f.Status.Endpoints[0].ENIs[0]
	if out, err := exec.Command("ip", "-n", eni.Netns, "link", "delete", eni.Tun).CombinedOutput(); err != nil {
		t.Fatalf("ip link delete %s: %v\n%s", eni.Tun, err, out)
	}
	everyENI(10*time.Second, "after a TUN was deleted")
	samePIDs("after a TUN was deleted")

	// A TUN's MTU changed by hand goes back to EC2's 9001.
	if out, err := exec.Command("ip", "-n", eni.Netns, "link", "set", eni.Tun, "mtu", "1500").CombinedOutput(); err != nil {
		t.Fatalf("ip link set mtu: %v\n%s", err, out)
	}
	waitUntil(t, 10*time.Second, "the TUN's MTU back at 9001", func() bool { return linkMTU(t, eni.Netns, eni.Tun) == 9001 })

	// The route into an ENI's TUN and a load-balancer node's address,
	// removed by hand, come back.
	if out, err := exec.Command("ip", "-n", eni.Netns, "route", "del", eni.IP+"/32").CombinedOutput(); err != nil {
		t.Fatalf("ip route del: %v\n%s", err, out)
	}
	everyENI(10*time.Second, "after the route into a TUN was deleted")
	node := f.Status.LoadBalancers[0].Nodes[0].IP
	if out, err := exec.Command("ip", "-n", f.Netns(t, "provider"), "addr", "del", node+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v\n%s", err, out)
	}
	everyENI(10*time.Second, "after a load-balancer node's address was deleted")

	// A TUN moved to another namespace (ip link set netns) is made again
	// in the VPC's; the one moved goes once the forwarders have let go
	// of it, instead of staying where it was moved for good.
	elsewhere := fmt.Sprintf("pvl-elsewhere-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", elsewhere).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", elsewhere, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", elsewhere).Run() })
	if out, err := exec.Command("ip", "-n", eni.Netns, "link", "set", eni.Tun, "netns", elsewhere).CombinedOutput(); err != nil {
		t.Fatalf("ip link set netns: %v\n%s", err, out)
	}
	everyENI(10*time.Second, "after a TUN was moved to another namespace")
	samePIDs("after a TUN was moved to another namespace")
	waitUntil(t, 10*time.Second, "the moved TUN gone from "+elsewhere, func() bool {
		return exec.Command("ip", "-n", elsewhere, "link", "show", eni.Tun).Run() != nil
	})

	deleteNetns("consumer")
	everyENI(10*time.Second, "after the consumer's namespace was deleted")
	samePIDs("after the consumer's namespace was deleted")

	// Half of ip netns delete: the mount goes, its file stays and names
	// no namespace.
	if err := syscall.Unmount(nsenter.Path(f.Netns(t, "consumer")), syscall.MNT_DETACH); err != nil {
		t.Fatalf("unmount the consumer's namespace: %v", err)
	}
	everyENI(10*time.Second, "after the consumer's namespace was unmounted")
	samePIDs("after the consumer's namespace was unmounted")

	deleteNetns("provider")
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.Refresh(t)
		now := targets()
		if !slices.ContainsFunc(now, func(pid int) bool { return slices.Contains(tgBefore, pid) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets %v still run in the provider's old namespace (now %v)", tgBefore, now)
		}
		time.Sleep(100 * time.Millisecond)
	}
	everyENI(10*time.Second, "after the provider's namespace was deleted")

	if err := syscall.Kill(fwBefore[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for f.Refresh(t); f.Status.Forwarders[0].PID == fwBefore[0] || !f.Status.Forwarders[0].Alive; f.Refresh(t) {
		if time.Now().After(deadline) {
			t.Fatal("the killed forwarder was not started again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	everyENI(10*time.Second, "after a forwarder was killed and started again")
}

// linkMTU is a link's MTU in a namespace (0 if there is no such link).
func linkMTU(t *testing.T, ns, name string) int {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(name)
	if err != nil {
		return 0
	}
	return l.Attrs().MTU
}
