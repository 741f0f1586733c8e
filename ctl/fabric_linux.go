package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	nl6 "github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/dataplane"
	"pvlink.dev/pvlink/nsenter"
)

const (
	// linkMTU is the MTU of every link pvlink makes: EC2's jumbo frames.
	linkMTU = 9001
	// readyTimeout bounds how long `fabric up` waits for its processes.
	readyTimeout = 15 * time.Second
)

// UpOptions are the settings of `fabric up`.
type UpOptions struct {
	// Exe is the pvlink binary to run forwarders and targets with.
	Exe string
	// Progress receives one line per step; may be nil.
	Progress io.Writer
}

// ErrAlreadyUp is returned by Up for a fabric that has state.
var ErrAlreadyUp = errors.New("already up")

// Preflight checks what Up needs from the machine, before anything is made.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("pvlink needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces and TUN devices; run it with sudo")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return errors.New("/dev/net/tun is missing: load the tun module (modprobe tun) or give the container the device")
	}
	return nil
}

// Up creates the fabric of a validated topology and returns once traffic can
// flow. Every step is recorded before it is taken; if one fails, everything
// made so far is removed and the error names the step.
func Up(t *Topology, file string, o UpOptions) (*State, error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(statePath(t.Name)); err == nil {
		return nil, fmt.Errorf("fabric %s is %w (see `pvlink fabric status %s`; `pvlink fabric down %s` removes it)", t.Name, ErrAlreadyUp, t.Name, t.Name)
	}
	s := Plan(t)
	if abs, err := filepath.Abs(file); err == nil {
		s.File = abs
	}
	for _, v := range s.VPCs {
		if nsenter.Exists(v.Netns) {
			return nil, fmt.Errorf("network namespace %s already exists and is not part of a pvlink fabric: remove it (ip netns del %s) or rename VPC %s or fabric %s", v.Netns, v.Netns, v.Name, s.Name)
		}
	}
	if err := os.MkdirAll(Dir(s.Name), 0o755); err != nil {
		return nil, fmt.Errorf("create runtime folder %s: %w", Dir(s.Name), err)
	}
	if err := s.save(); err != nil {
		os.RemoveAll(Dir(s.Name))
		return nil, fmt.Errorf("write fabric state: %w", err)
	}
	u := &upper{s: s, o: o}
	if err := u.run(); err != nil {
		if derr := Down(s); derr != nil {
			err = errors.Join(err, fmt.Errorf("and cleaning up failed too: %w", derr))
		}
		return nil, err
	}
	return s, nil
}

type upper struct {
	s *State
	o UpOptions
}

func (u *upper) step(format string, args ...any) {
	if u.o.Progress != nil {
		fmt.Fprintf(u.o.Progress, format+"\n", args...)
	}
}

func (u *upper) run() error {
	s := u.s
	for _, v := range s.VPCs {
		u.step("create VPC %s (%s) as netns %s", v.Name, v.ID, v.Netns)
		s.Namespaces = append(s.Namespaces, v.Netns)
		if err := s.save(); err != nil {
			return err
		}
		if err := nsenter.Create(v.Netns); err != nil {
			return fmt.Errorf("create netns %s for VPC %s: %w", v.Netns, v.Name, err)
		}
		if err := u.vpcAddresses(v); err != nil {
			return fmt.Errorf("set up addresses in netns %s: %w", v.Netns, err)
		}
		if err := vpcSysctls(v.Netns); err != nil {
			return fmt.Errorf("set sysctls in netns %s: %w", v.Netns, err)
		}
	}
	for _, e := range s.Endpoints {
		for _, eni := range e.ENIs {
			u.step("create ENI %s of endpoint %s: TUN %s, %s in %s", eni.ID, e.ID, eni.Tun, eni.IP, eni.AZ)
			if err := u.createENI(eni); err != nil {
				return fmt.Errorf("create TUN %s for ENI %s in netns %s: %w", eni.Tun, eni.ID, eni.Netns, err)
			}
		}
	}
	for i := range s.Targets {
		if err := u.startTarget(&s.Targets[i]); err != nil {
			return err
		}
	}
	for _, az := range s.Zones() {
		if err := u.startForwarder(az); err != nil {
			return err
		}
	}
	if err := u.waitReady(); err != nil {
		return err
	}
	s.Phase = "up"
	return s.save()
}

// vpcSysctls widens a VPC's source port range so that a load-balancer node
// can hold the NLB's 55,000 connections to one target (the kernel's
// default range has 28,232 ports), and lets connect() reuse TIME_WAIT
// ports, as busy NLB nodes and clients do.
func vpcSysctls(ns string) error {
	return nsenter.Sysctls(ns, map[string]string{
		"net/ipv4/ip_local_port_range": "1024 65535",
		"net/ipv4/tcp_tw_reuse":        "1",
	})
}

func handleAt(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

// vpcAddresses brings up lo with every address the VPC itself holds (subnet
// hosts, load-balancer nodes, targets), each as a /32: a wider prefix on lo
// would make the whole subnet local, ENI addresses included. (lo rather than
// a dummy link: some kernels, Firecracker's among them, have no dummy.)
func (u *upper) vpcAddresses(v VPCState) error {
	nl, err := handleAt(v.Netns)
	if err != nil {
		return err
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	add := func(ip string, bits int) error {
		a := netip.MustParseAddr(ip)
		pfx := netip.PrefixFrom(a, a.BitLen())
		addr, err := netlink.ParseAddr(pfx.String())
		if err != nil {
			return err
		}
		addr.Flags = unix.IFA_F_NODAD // lo has no neighbours to ask
		if err := nl.AddrAdd(lo, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to lo: %w", pfx, err)
		}
		return nil
	}
	for _, sn := range v.Subnets {
		if err := add(sn.HostIP, 32); err != nil {
			return err
		}
		if sn.HostIPv6 != "" {
			if err := add(sn.HostIPv6, 128); err != nil {
				return err
			}
		}
	}
	for _, lb := range u.s.LoadBalancers {
		if lb.VPC != v.Name {
			continue
		}
		for _, n := range lb.Nodes {
			if err := add(n.IP, 32); err != nil {
				return err
			}
		}
	}
	for _, t := range u.s.Targets {
		// External targets get their address too: a test or a user's
		// server listens on it.
		if t.Netns == v.Netns {
			if err := add(t.IP, 32); err != nil {
				return err
			}
		}
	}
	return nil
}

// createENI makes the ENI's TUN: persistent (it outlives a forwarder
// restart), with a virtio-net header (so the kernel hands over GSO frames),
// MTU 9001, and a /32 route sending the ENI's address into it. The address
// is not assigned in the namespace: the forwarder's netstack owns it.
func (u *upper) createENI(eni ENIState) error {
	var link netlink.Link
	err := nsenter.Do(eni.Netns, func() error {
		t := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: eni.Tun, MTU: linkMTU},
			Mode:      netlink.TUNTAP_MODE_TUN,
			// The forwarder workers open their queues with exactly
			// these flags; a mismatch would make that open fail.
			Flags: netlink.TuntapFlag(dataplane.TUNFlags &^ unix.IFF_TUN),
		}
		if err := netlink.LinkAdd(t); err != nil {
			return err
		}
		link = t
		return nil
	})
	if err != nil {
		return err
	}
	nl, err := handleAt(eni.Netns)
	if err != nil {
		return err
	}
	defer nl.Close()
	l, err := nl.LinkByName(link.Attrs().Name)
	if err != nil {
		return err
	}
	if err := nl.LinkSetMTU(l, linkMTU); err != nil {
		return fmt.Errorf("set MTU %d: %w", linkMTU, err)
	}
	// No IPv6 link-local address: without one the consumer's kernel sends
	// no router or multicast-listener solicitations into the ENI, which
	// would only show up as dropped packets.
	if err := nl.LinkSetIP6AddrGenMode(l, nl6.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return fmt.Errorf("disable IPv6 link-local address: %w", err)
	}
	if err := nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	host4, host6 := u.hostIPs(eni.Netns, eni.Subnet)
	for _, pair := range [][2]string{{eni.IP, host4}, {eni.IPv6, host6}} {
		if pair[0] == "" {
			continue
		}
		a := netip.MustParseAddr(pair[0])
		dst := netip.PrefixFrom(a, a.BitLen())
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Src: netip.MustParseAddr(pair[1]).AsSlice(), Scope: netlink.SCOPE_LINK}
		if a.Is6() {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
		if err := nl.RouteAdd(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", dst, eni.Tun, err)
		}
	}
	return nil
}

func (u *upper) hostIPs(ns, subnet string) (string, string) {
	for _, v := range u.s.VPCs {
		for _, sn := range v.Subnets {
			if v.Netns == ns && sn.Name == subnet {
				return sn.HostIP, sn.HostIPv6
			}
		}
	}
	return "", ""
}

func (u *upper) startTarget(t *TargetState) error {
	if t.External {
		return nil
	}
	// One server per address: a target registered in two groups is
	// started once.
	for i := range u.s.Targets {
		o := &u.s.Targets[i]
		if o != t && o.IP == t.IP && o.Port == t.Port && o.Process != nil {
			return nil
		}
	}
	u.step("start target %s:%d (%s) in netns %s", t.IP, t.Port, t.AZ, t.Netns)
	log := filepath.Join(Dir(u.s.Name), fmt.Sprintf("target-%s-%d.log", t.IP, t.Port))
	args := []string{"target", "--netns", t.Netns, "--listen", netip.AddrPortFrom(netip.MustParseAddr(t.IP), uint16(t.Port)).String(),
		"--name", t.TargetGroup, "--az", t.AZ, "--ready-file", log + ".ready"}
	if tg := u.s.targetGroupState(t.TargetGroup); tg.ProxyProtocolV2 {
		args = append(args, "--proxy-protocol")
	}
	p, err := startProcess(u.o.Exe, args, log)
	if err != nil {
		return fmt.Errorf("start target %s:%d: %w", t.IP, t.Port, err)
	}
	t.Process = p
	return u.s.save()
}

func (s *State) targetGroupState(name string) TargetGroupState {
	for _, g := range s.TargetGroups {
		if g.Name == name {
			return g
		}
	}
	return TargetGroupState{}
}

// startForwarder starts the forwarder processes of an AZ: one per worker,
// all serving the same config.
func (u *upper) startForwarder(az string) error {
	dir := Dir(u.s.Name)
	config := filepath.Join(dir, "forwarder-"+az+".json")
	cfg := u.s.ForwarderConfig(az)
	if err := dataplane.WriteJSONFile(config, cfg); err != nil {
		return fmt.Errorf("write forwarder config for %s: %w", az, err)
	}
	workers := max(u.s.Workers, 1)
	for w := 0; w < workers; w++ {
		base := filepath.Join(dir, "forwarder-"+az)
		what := "forwarder for " + az
		if workers > 1 {
			base += fmt.Sprintf("-w%d", w)
			what += fmt.Sprintf(" (worker %d of %d)", w+1, workers)
		}
		fs := ForwarderState{AZ: az, Worker: w, Workers: workers, Config: config, StatusFile: base + ".status"}
		u.step("start %s (%d ENIs)", what, len(cfg.ENIs))
		p, err := startProcess(u.o.Exe, []string{"forwarder", "--config", fs.Config, "--status-file", fs.StatusFile, "--metrics", "127.0.0.1:0"}, base+".log")
		if err != nil {
			return fmt.Errorf("start %s: %w", what, err)
		}
		fs.Process = p
		u.s.Forwarders = append(u.s.Forwarders, fs)
		if err := u.s.save(); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits for every forwarder's status file and every target's
// ready file; a process that dies meanwhile fails the step with its log.
func (u *upper) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	type waitFor struct {
		what, file string
		p          *Process
	}
	var pending []waitFor
	for _, f := range u.s.Forwarders {
		pending = append(pending, waitFor{"forwarder " + f.Label(), f.StatusFile, f.Process})
	}
	for _, t := range u.s.Targets {
		if t.Process != nil {
			pending = append(pending, waitFor{fmt.Sprintf("target %s:%d", t.IP, t.Port), t.Process.Log + ".ready", t.Process})
		}
	}
	for _, w := range pending {
		for {
			if _, err := os.Stat(w.file); err == nil {
				break
			}
			if !w.p.Alive() {
				return fmt.Errorf("%s exited during start-up:\n%s", w.what, LogTail(w.p.Log, 5))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %s; its log says:\n%s", w.what, readyTimeout, LogTail(w.p.Log, 5))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Down removes everything a fabric's state records: processes first (they
// hold TUNs open), then namespaces (which take their links, TUNs and routes
// with them), then the runtime folder. It works on whatever is left, so it
// can be run after a crash, after a kill -9, or twice.
func Down(s *State) error {
	var errs []error
	var procs []*Process
	for _, f := range s.Forwarders {
		procs = append(procs, f.Process)
	}
	for _, t := range s.Targets {
		procs = append(procs, t.Process)
	}
	for _, p := range procs {
		if p == nil {
			continue
		}
		if err := p.stop(3 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range s.Namespaces {
		if !nsenter.Exists(ns) {
			continue
		}
		if err := nsenter.Delete(ns); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete netns %s: %w", ns, err))
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(Dir(s.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Fabrics lists the names of fabrics with state on this machine.
func Fabrics() []string {
	entries, _ := os.ReadDir(RunDir)
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(statePath(e.Name())); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// ForwarderStatus reads a forwarder's status file.
func ForwarderStatus(f ForwarderState) (*dataplane.Status, error) {
	data, err := os.ReadFile(f.StatusFile)
	if err != nil {
		return nil, err
	}
	var st dataplane.Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// ForwarderJSON reads one of a forwarder process's JSON documents (/stats,
// /flows, /targets, /counters) into v, from the address its status file
// gives.
func ForwarderJSON(f ForwarderState, path string, v any) error {
	st, err := ForwarderStatus(f)
	if err != nil {
		return fmt.Errorf("forwarder %s: %w", f.Label(), err)
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + st.Metrics + path)
	if err != nil {
		return fmt.Errorf("forwarder %s: %w", f.Label(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("forwarder %s %s: %s", f.Label(), path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("forwarder %s %s: %w", f.Label(), path, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
