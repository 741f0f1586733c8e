package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	nl6 "github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/ctl/store"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

const (
	// linkMTU is the MTU of every link pvlink makes: EC2's jumbo frames.
	linkMTU = 9001
	// readyTimeout bounds how long a started forwarder may take to answer
	// on its control socket.
	readyTimeout = 15 * time.Second
)

// Preflight checks what a fabric needs from the machine, before anything is
// made.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("pvlink needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces and TUN devices; run it with sudo")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return errors.New("/dev/net/tun is missing: load the tun module (modprobe tun) or give the container the device")
	}
	return nil
}

// realizer makes the host match the model: namespaces, addresses, TUNs and
// routes, target servers and forwarder processes. It is level-triggered: it
// compares what the model wants with what it finds, and the same pass runs
// at start-up, after a crash, after each change and on a timer (which is
// how a forwarder that died is noticed and started again). Each pass first
// adds what is missing, then pushes snapshots, and only then removes what
// is no longer wanted, so a forwarder never loses a TUN it still serves.
type realizer struct {
	fabric string
	dir    string // runtime folder
	exe    string
	log    *slog.Logger
	st     store.Store

	// mu guards the outcome of the last pass.
	mu        sync.Mutex
	applied   uint64 // the model version every forwarder reported
	ready     bool   // every target server listens
	lastErr   error
	restarts  map[string]int  // processes started again after dying, by key
	healthy   map[string]bool // AZs whose forwarders answered in the last pass
	pass      map[string]passStatus
	queues    map[string]map[string]heldQueue // forwarders' TUN queues, by key and TUN (queues_linux.go)
	queueErrs map[string]string               // the last failure to copy one, by key
	silent    map[string]time.Time            // forwarders not answering, since when, by key

	// The last pass that looked inside the namespaces (addresses, TUNs,
	// routes): when, for which model version, and whether it found
	// everything as the model has it. Only the pass's goroutine uses them.
	hostAt      time.Time
	hostVersion uint64
	hostClean   bool
}

// hostEvery is how often a pass looks inside the namespaces when nothing
// asked for it: a TUN, route or address removed by hand comes back within
// it. Looking on every pass (every 250 ms) had ctld at 28% of a core with
// a fabric of 100 endpoints sitting idle.
const hostEvery = time.Second

// azHealthy reports whether an AZ's forwarders answered in the last pass.
func (r *realizer) azHealthy(az string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthy[az]
}

// ForwarderKey names a forwarder process: its AZ, worker and worker count.
func forwarderKey(az string, worker, workers int) string {
	return fmt.Sprintf("forwarder-%s-w%d-of-%d", az, worker, workers)
}

func (r *realizer) procPath(key, ext string) string { return filepath.Join(r.dir, key+ext) }

// desiredForwarders lists the forwarder processes the model wants.
func desiredForwarders(m *State) []ForwarderState {
	var out []ForwarderState
	workers := max(m.Workers, 1)
	for _, az := range m.ForwarderZones() {
		for w := 0; w < workers; w++ {
			out = append(out, ForwarderState{AZ: az, Worker: w, Workers: workers})
		}
	}
	return out
}

type targetServer struct {
	key  string
	t    TargetState
	args []string
}

// desiredTargets lists the target servers pvlink runs: one per address, even
// when it is registered in several groups.
func desiredTargets(m *State) []targetServer {
	seen := map[string]bool{}
	var out []targetServer
	for _, t := range m.Targets {
		if t.External {
			continue
		}
		key := fmt.Sprintf("target-%s-%d", t.IP, t.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		args := []string{"target", "serve", "--netns", t.Netns, "--listen", netip.AddrPortFrom(netip.MustParseAddr(t.IP), uint16(t.Port)).String(),
			"--name", t.TargetGroup, "--az", t.AZ}
		if m.targetGroupState(t.TargetGroup).ProxyProtocolV2 {
			args = append(args, "--proxy-protocol")
		}
		out = append(out, targetServer{key: key, t: t, args: args})
	}
	return out
}

func (s *State) targetGroupState(name string) TargetGroupState {
	for _, g := range s.TargetGroups {
		if g.Name == name {
			return g
		}
	}
	return TargetGroupState{}
}

// reconcile runs one pass for model m (an empty model: the fabric is being
// removed). It returns the first error; the next pass tries again.
func (r *realizer) reconcile(m *State) error {
	r.mu.Lock()
	r.pass = map[string]passStatus{}
	r.mu.Unlock()
	var errs []error
	step := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	nsNames := map[string]bool{}
	for _, v := range m.VPCs {
		nsNames[v.Netns] = true
	}
	// 1. What is missing: namespaces, addresses, TUNs, routes.
	created, err := r.ensureNamespaces(m)
	if err != nil {
		r.finish(m, err)
		return err
	}
	// The namespaces' insides are looked at when the model changed, a
	// namespace was made, the last look failed, or hostEvery has passed;
	// the processes on every pass.
	now := time.Now()
	host := created || !r.hostClean || m.Version != r.hostVersion || now.Sub(r.hostAt) >= hostEvery
	hostFailed := false
	hostStep := func(err error) {
		hostFailed = hostFailed || err != nil
		step(err)
	}
	nl := netlinks{}
	defer nl.close()
	if host {
		for _, v := range m.VPCs {
			hostStep(r.ensureAddresses(m, v, nl))
		}
		for _, e := range m.Endpoints {
			for _, eni := range e.ENIs {
				if err := ensureENI(m, eni, nl); err != nil {
					hostStep(fmt.Errorf("ENI %s of endpoint %s (TUN %s in netns %s): %w", eni.ID, e.ID, eni.Tun, eni.Netns, err))
				}
			}
		}
	}
	// 2. Processes: targets, then forwarders (which get the snapshot).
	wantTargets := map[string]bool{}
	for _, ts := range desiredTargets(m) {
		wantTargets[ts.key] = true
		step(r.ensureTarget(ts))
	}
	wantFwd := map[string]bool{}
	for _, f := range desiredForwarders(m) {
		key := forwarderKey(f.AZ, f.Worker, f.Workers)
		wantFwd[key] = true
		step(r.ensureForwarder(m, f, key))
	}
	// 3. What is no longer wanted: processes, TUNs, namespaces.
	step(r.removeProcesses(func(key string) bool { return wantTargets[key] || wantFwd[key] || key == "ctld" }))
	if host {
		for ns := range nsNames {
			hostStep(removeStaleTUNs(m, ns, nl))
		}
		r.hostAt, r.hostVersion, r.hostClean = now, m.Version, !hostFailed
	}
	nl.close()
	step(r.removeNamespaces(m))
	err = errors.Join(errs...)
	r.finish(m, err)
	return err
}

// finish records the outcome of a pass.
func (r *realizer) finish(m *State, err error) {
	applied := m.Version
	ready := true
	healthy := map[string]bool{}
	for _, f := range desiredForwarders(m) {
		st, serr := r.statusOf(forwarderKey(f.AZ, f.Worker, f.Workers))
		if serr != nil || st.ConfigVersion != m.Version {
			applied = 0
		}
		if _, seen := healthy[f.AZ]; !seen {
			healthy[f.AZ] = true
		}
		// An AZ carries traffic while every worker of its forwarder
		// answers.
		healthy[f.AZ] = healthy[f.AZ] && serr == nil
	}
	for _, ts := range desiredTargets(m) {
		if _, err := os.Stat(r.procPath(ts.key, ".ready")); err != nil {
			ready = false
		}
	}
	r.mu.Lock()
	r.applied, r.ready, r.lastErr, r.healthy = applied, ready, err, healthy
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("host does not match the model yet", "version", m.Version, "err", err)
	}
}

// outcome is the last pass's result.
func (r *realizer) outcome() (applied uint64, ready bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, r.ready, r.lastErr
}

// recordedNamespaces reads the namespaces this fabric has made.
func (r *realizer) recordedNamespaces() ([]string, error) {
	var out []string
	err := r.st.View(func(tx store.ReadTx) error {
		if data, ok := tx.Get(keyHostNamespaces); ok {
			return json.Unmarshal(data, &out)
		}
		return nil
	})
	return out, err
}

func (r *realizer) recordNamespaces(names []string) error {
	sort.Strings(names)
	names = slices.Compact(names)
	_, err := r.st.Update(func(tx store.Tx) error {
		if len(names) == 0 {
			return tx.Delete(keyHostNamespaces)
		}
		data, err := json.Marshal(names)
		if err != nil {
			return err
		}
		return tx.Put(keyHostNamespaces, data)
	})
	return err
}

// ensureNamespaces creates the VPCs' namespaces that are missing, each
// recorded in the store before it is made.
// It reports whether it made any.
func (r *realizer) ensureNamespaces(m *State) (bool, error) {
	var missing []string
	for _, v := range m.VPCs {
		if !nsenter.Exists(v.Netns) {
			missing = append(missing, v.Netns)
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	recorded, err := r.recordedNamespaces()
	if err != nil {
		return false, err
	}
	if err := r.recordNamespaces(append(recorded, missing...)); err != nil {
		return false, fmt.Errorf("record namespaces: %w", err)
	}
	for _, v := range m.VPCs {
		if nsenter.Exists(v.Netns) {
			continue
		}
		r.log.Info("create VPC", "vpc", v.Name, "id", v.ID, "netns", v.Netns)
		if err := nsenter.Create(v.Netns); err != nil {
			return true, fmt.Errorf("create netns %s for VPC %s: %w", v.Netns, v.Name, err)
		}
		if err := vpcSysctls(v.Netns); err != nil {
			return true, fmt.Errorf("set sysctls in netns %s: %w", v.Netns, err)
		}
	}
	return true, nil
}

// removeNamespaces deletes the namespaces this fabric made that the model
// no longer has.
func (r *realizer) removeNamespaces(m *State) error {
	recorded, err := r.recordedNamespaces()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, v := range m.VPCs {
		want[v.Netns] = true
	}
	var keep []string
	var errs []error
	for _, ns := range recorded {
		if want[ns] {
			keep = append(keep, ns)
			continue
		}
		r.log.Info("remove netns", "netns", ns)
		if err := nsenter.Delete(ns); err != nil {
			errs = append(errs, err)
			keep = append(keep, ns)
		}
	}
	if len(keep) != len(recorded) {
		errs = append(errs, r.recordNamespaces(keep))
	}
	return errors.Join(errs...)
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

// netlinks is what one pass knows of each namespace through netlink: a
// handle, opened when the pass first needs it and closed when the pass
// ends, and the namespace's links and routes, each listed once. The pass
// runs every 250 ms: a handle per step (three netlink sockets, each made
// inside the namespace) and a lookup per ENI had ctld at 16% of a core
// while a fabric of 30 endpoints sat idle. What the pass itself adds is
// not in the lists; the steps that read them only need what was there.
type netlinks map[string]*nsNetlink

type nsNetlink struct {
	h      *netlink.Handle
	links  []netlink.Link
	listed bool
	routes map[int][]netlink.Route // by family
}

// at is the pass's netlink view of namespace ns.
func (hs netlinks) at(ns string) (*nsNetlink, error) {
	if n := hs[ns]; n != nil {
		return n, nil
	}
	h, err := handleAt(ns)
	if err != nil {
		return nil, err
	}
	n := &nsNetlink{h: h, routes: map[int][]netlink.Route{}}
	hs[ns] = n
	return n, nil
}

func (hs netlinks) close() {
	for ns, n := range hs {
		n.h.Close()
		delete(hs, ns)
	}
}

// allLinks is the namespace's links as the pass first listed them.
func (n *nsNetlink) allLinks() ([]netlink.Link, error) {
	if !n.listed {
		links, err := n.h.LinkList()
		if err != nil {
			return nil, err
		}
		n.links, n.listed = links, true
	}
	return n.links, nil
}

// link is the namespace's link called name, if the pass's list has it.
func (n *nsNetlink) link(name string) (netlink.Link, bool, error) {
	links, err := n.allLinks()
	if err != nil {
		return nil, false, err
	}
	for _, l := range links {
		if l.Attrs().Name == name {
			return l, true, nil
		}
	}
	return nil, false, nil
}

// hasRoute reports whether link l already has route want (its
// destination, preferred source and scope): a pass then reads the route
// instead of writing it again, which would tell every routing listener of
// the namespace about a change that is none.
func (n *nsNetlink) hasRoute(l netlink.Link, want *netlink.Route) bool {
	family := netlink.FAMILY_V4
	if want.Dst.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	routes, ok := n.routes[family]
	if !ok {
		var err error
		if routes, err = n.h.RouteList(nil, family); err != nil {
			return false
		}
		n.routes[family] = routes
	}
	for _, r := range routes {
		if r.LinkIndex == l.Attrs().Index && r.Dst != nil && r.Dst.String() == want.Dst.String() &&
			r.Src.Equal(want.Src) && r.Scope == want.Scope {
			return true
		}
	}
	return false
}

// handleAt is a netlink handle in namespace ns, for links, addresses and
// routes only (NETLINK_ROUTE: no XFRM or netfilter socket beside it).
func handleAt(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
}

// vpcHostAddrs are the addresses a VPC's namespace itself holds: subnet
// hosts, load-balancer nodes and targets.
func vpcHostAddrs(m *State, v VPCState) map[netip.Addr]bool {
	want := map[netip.Addr]bool{}
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			want[a] = true
		}
	}
	if a, err := ResolverAddr(v.CIDR); err == nil {
		add(a.String()) // the VPC's resolver listens here
	}
	add(LinkLocalResolver.String()) // and here
	for _, sn := range v.Subnets {
		add(sn.HostIP)
		add(sn.HostIPv6)
	}
	for _, lb := range m.LoadBalancers {
		if lb.VPC == v.Name {
			for _, n := range lb.Nodes {
				add(n.IP)
			}
		}
	}
	for _, t := range m.Targets {
		// External targets get their address too: a test or a user's
		// server listens on it.
		if t.Netns == v.Netns {
			add(t.IP)
		}
	}
	return want
}

// ensureAddresses makes lo hold exactly the VPC's own addresses, each as a
// /32 (/128): a wider prefix on lo would make the whole subnet local, ENI
// addresses included. (lo rather than a dummy link: some kernels,
// Firecracker's among them, have no dummy.)
func (r *realizer) ensureAddresses(m *State, v VPCState, hs netlinks) error {
	n, err := hs.at(v.Netns)
	if err != nil {
		return err
	}
	nl := n.h
	lo, ok, err := n.link("lo")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("netns %s has no lo", v.Netns)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := nl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring up lo in %s: %w", v.Netns, err)
		}
	}
	want := vpcHostAddrs(m, v)
	have, err := nl.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range have {
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if ip.IsLoopback() {
			continue
		}
		if want[ip] {
			delete(want, ip)
			continue
		}
		if err := nl.AddrDel(lo, &a); err != nil {
			return fmt.Errorf("remove %s from lo in %s: %w", ip, v.Netns, err)
		}
	}
	for a := range want {
		addr, err := netlink.ParseAddr(netip.PrefixFrom(a, a.BitLen()).String())
		if err != nil {
			return err
		}
		addr.Flags = unix.IFA_F_NODAD // lo has no neighbours to ask
		if err := nl.AddrAdd(lo, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to lo in %s: %w", a, v.Netns, err)
		}
	}
	return nil
}

// ensureENI makes the ENI's TUN if it is missing: persistent (it outlives a
// forwarder restart), multi-queue with a virtio-net header (so the kernel
// hands over GSO frames), MTU 9001, and a /32 route sending the ENI's
// address into it. The address is not assigned in the namespace: the
// forwarder's netstack owns it.
func ensureENI(m *State, eni ENIState, hs netlinks) error {
	n, err := hs.at(eni.Netns)
	if err != nil {
		return err
	}
	nl := n.h
	l, ok, err := n.link(eni.Tun)
	if err != nil {
		return err
	}
	if !ok {
		err = nsenter.Do(eni.Netns, func() error {
			return netlink.LinkAdd(&netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: eni.Tun, MTU: linkMTU},
				Mode:      netlink.TUNTAP_MODE_TUN,
				// The forwarder workers open their queues with exactly
				// these flags; a mismatch would make that open fail.
				Flags: netlink.TuntapFlag(snapshot.TUNFlags &^ unix.IFF_TUN),
			})
		})
		if err != nil {
			return err
		}
		if l, err = nl.LinkByName(eni.Tun); err != nil {
			return err
		}
		if err := nl.LinkSetMTU(l, linkMTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", linkMTU, err)
		}
		// No IPv6 link-local address: without one the consumer's kernel
		// sends no router or multicast-listener solicitations into the
		// ENI, which would only show up as dropped packets.
		if err := nl.LinkSetIP6AddrGenMode(l, nl6.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return fmt.Errorf("disable IPv6 link-local address: %w", err)
		}
	} else if l.Type() != "tuntap" {
		return fmt.Errorf("netns %s has a %s link called %s; pvlink needs that name for a TUN", eni.Netns, l.Type(), eni.Tun)
	} else if l.Attrs().MTU != linkMTU { // a user's ip link set mtu
		if err := nl.LinkSetMTU(l, linkMTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", linkMTU, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring up: %w", err)
		}
	}
	host4, host6 := hostIPs(m, eni.Netns, eni.Subnet)
	for _, pair := range [][2]string{{eni.IP, host4}, {eni.IPv6, host6}} {
		if pair[0] == "" {
			continue
		}
		a := netip.MustParseAddr(pair[0])
		dst := netip.PrefixFrom(a, a.BitLen())
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Src: netip.MustParseAddr(pair[1]).AsSlice(), Scope: netlink.SCOPE_LINK}
		if a.Is6() {
			rt.Scope = netlink.SCOPE_UNIVERSE
		}
		if n.hasRoute(l, rt) {
			continue
		}
		if err := nl.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %s via %s: %w", dst, eni.Tun, err)
		}
	}
	return nil
}

// removeStaleTUNs deletes the ENI TUNs in a namespace that no ENI of the
// model has any more (their forwarders have already let go of them).
func removeStaleTUNs(m *State, ns string, hs netlinks) error {
	if !nsenter.Exists(ns) {
		return nil
	}
	want := map[string]bool{}
	for _, e := range m.Endpoints {
		for _, eni := range e.ENIs {
			want[eni.Tun] = true
		}
	}
	n, err := hs.at(ns)
	if err != nil {
		return err
	}
	nl := n.h
	links, err := n.allLinks()
	if err != nil {
		return err
	}
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() == "tuntap" && strings.HasPrefix(name, "eni-") && !want[name] {
			if err := nl.LinkDel(l); err != nil {
				return fmt.Errorf("remove TUN %s from %s: %w", name, ns, err)
			}
		}
	}
	return nil
}

func hostIPs(m *State, ns, subnet string) (string, string) {
	for _, v := range m.VPCs {
		for _, sn := range v.Subnets {
			if v.Netns == ns && sn.Name == subnet {
				return sn.HostIP, sn.HostIPv6
			}
		}
	}
	return "", ""
}

// ensureTarget starts a target server that is not running.
func (r *realizer) ensureTarget(ts targetServer) error {
	pidFile, log := r.procPath(ts.key, ".pid"), r.procPath(ts.key, ".log")
	if p := findProcess(pidFile, log); p != nil {
		if !r.targetInOldNamespace(ts) {
			return nil
		}
		// Its VPC's namespace was deleted by hand and made again: the
		// target listens in the old one, which lives on without its name.
		r.log.Warn("the target's namespace was made again: starting it there", "target", fmt.Sprintf("%s:%d", ts.t.IP, ts.t.Port), "netns", ts.t.Netns)
		if err := p.stop(3 * time.Second); err != nil {
			return fmt.Errorf("stop target %s:%d: %w", ts.t.IP, ts.t.Port, err)
		}
		os.Remove(r.procPath(ts.key, ".ready")) // the old one's, if it could not
	}
	r.noteStart(ts.key)
	r.log.Info("start target", "target", fmt.Sprintf("%s:%d", ts.t.IP, ts.t.Port), "az", ts.t.AZ, "netns", ts.t.Netns)
	args := append(append([]string{}, ts.args...), "--ready-file", r.procPath(ts.key, ".ready"))
	if _, err := startProcess(r.exe, args, pidFile, log); err != nil {
		return fmt.Errorf("start target %s:%d: %w", ts.t.IP, ts.t.Port, err)
	}
	return nil
}

// targetInOldNamespace reports whether a running target listens in
// another namespace than the one its VPC's name now stands for (its ready
// file says where it listens; a target still starting has none yet).
func (r *realizer) targetInOldNamespace(ts targetServer) bool {
	if ts.t.Netns == "" {
		return false
	}
	var ready snapshot.TargetReady
	data, err := os.ReadFile(r.procPath(ts.key, ".ready"))
	if err != nil || json.Unmarshal(data, &ready) != nil || ready.NetnsInode == 0 {
		return false
	}
	now, err := nsenter.Inode(ts.t.Netns)
	return err == nil && now != ready.NetnsInode
}

// noteStart counts a process started again after it had run before.
func (r *realizer) noteStart(key string) {
	if _, err := os.Stat(r.procPath(key, ".log")); err != nil {
		return // first start
	}
	r.mu.Lock()
	r.restarts[key]++
	n := r.restarts[key]
	r.mu.Unlock()
	r.log.Warn("process restarted", "process", key, "restarts", n, "log", r.procPath(key, ".log"))
}

// statusOf is a forwarder's status as this pass saw it (asked once per
// pass: a wedged forwarder costs one timeout, not two).
func (r *realizer) statusOf(key string) (*snapshot.Status, error) {
	r.mu.Lock()
	st, ok := r.pass[key]
	r.mu.Unlock()
	if ok {
		return st.st, st.err
	}
	s, err := forwarderStatus(r.procPath(key, ".sock"))
	r.mu.Lock()
	r.pass[key] = passStatus{s, err}
	r.mu.Unlock()
	return s, err
}

type passStatus struct {
	st  *snapshot.Status
	err error
}

// ensureForwarder starts a forwarder that is not running (with the latest
// snapshot) and pushes the latest snapshot to one that runs an older one.
func (r *realizer) ensureForwarder(m *State, f ForwarderState, key string) error {
	sock, pidFile, log := r.procPath(key, ".sock"), r.procPath(key, ".pid"), r.procPath(key, ".log")
	cfg := m.ForwarderConfig(f.AZ)
	label := f.Label()
	p := findProcess(pidFile, log)
	if p == nil {
		config := r.procPath(key, ".json")
		if err := snapshot.WriteJSONFile(config, cfg); err != nil {
			return fmt.Errorf("write snapshot of forwarder %s: %w", label, err)
		}
		r.noteStart(key)
		r.log.Info("start forwarder", "forwarder", label, "enis", len(cfg.ENIs), "version", cfg.Version)
		var err error
		files, queueArgs := r.queuesFor(key)
		args := append([]string{"forwarder", "--config", config, "--control", sock, "--metrics", "127.0.0.1:0"}, queueArgs...)
		p, err = startProcessWith(r.exe, args, pidFile, log, files, forwarderEnv()...)
		for _, f := range files {
			f.Close() // the child has its own
		}
		if err != nil {
			r.giveUpQueues(key, label)
			return fmt.Errorf("start forwarder %s: %w", label, err)
		}
		start := time.Now()
		deadline := start.Add(readyTimeout)
		for {
			if _, err := forwarderStatus(sock); err == nil {
				break
			}
			// Until it has exec'd, the child does not show its pid file.
			if time.Since(start) > 200*time.Millisecond && !p.Alive() {
				r.giveUpQueues(key, label)
				return fmt.Errorf("forwarder %s exited during start-up:\n%s", label, LogTail(log, 5))
			}
			if time.Now().After(deadline) {
				r.giveUpQueues(key, label)
				return fmt.Errorf("forwarder %s not ready after %s; its log says:\n%s", label, readyTimeout, LogTail(log, 5))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st, err := r.statusOf(key)
	if err != nil {
		if unanswered(err) && r.killWedged(key, label, p) {
			return fmt.Errorf("forwarder %s answered nothing for %s: killed, to be started again", label, wedgedAfter)
		}
		return fmt.Errorf("forwarder %s: %w", label, err)
	}
	r.noteAnswer(key)
	r.holdQueues(key, st.PID, st.TUNQueues)
	if st.ConfigVersion == cfg.Version {
		return nil
	}
	if err := pushSnapshot(sock, cfg, false); err != nil {
		return fmt.Errorf("forwarder %s refused version %d: %w", label, cfg.Version, err)
	}
	// The snapshot may have closed a queue (an ENI gone or changed): take
	// copies afresh, so that none is held in the TUN for nobody.
	r.releaseQueues(key)
	now, err := forwarderStatus(sock)
	if err == nil {
		r.holdQueues(key, now.PID, now.TUNQueues)
	} else {
		now = &snapshot.Status{PID: st.PID, AZ: st.AZ, Metrics: st.Metrics, ConfigVersion: cfg.Version, Started: st.Started}
	}
	r.mu.Lock()
	r.pass[key] = passStatus{now, nil}
	r.mu.Unlock()
	r.log.Info("snapshot applied", "forwarder", label, "version", cfg.Version)
	return nil
}

// wedgedAfter: a forwarder that has answered nothing on its control socket
// for this long (deadlocked, or stopped by a signal) carries no traffic and
// takes no snapshot. It is killed, and the next pass starts it again on the
// queues ctld keeps, as one that died. (A forwarder that answers at all
// does so well within the half second each pass waits, under load too.)
const wedgedAfter = 10 * time.Second

// noteAnswer records that a forwarder answered.
func (r *realizer) noteAnswer(key string) {
	r.mu.Lock()
	delete(r.silent, key)
	r.mu.Unlock()
}

// unanswered says a status request failed on the forwarder's side: it
// timed out, or nobody listens on (or is left of) its control socket. A
// failure of ctld's own (out of descriptors, say) is not the forwarder's
// and kills nothing.
func unanswered(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// killWedged notes that a running forwarder did not answer, and kills it
// once it has answered nothing for wedgedAfter.
func (r *realizer) killWedged(key, label string, p *Process) bool {
	r.mu.Lock()
	since, seen := r.silent[key]
	if !seen {
		r.silent[key] = time.Now()
	}
	r.mu.Unlock()
	if !seen || time.Since(since) < wedgedAfter {
		return false
	}
	r.log.Warn("forwarder answers nothing: killing it, to start it again", "forwarder", label, "pid", p.PID,
		"silent_for", time.Since(since).Round(time.Second).String(), "state", p.State())
	if err := p.kill(); err != nil {
		r.log.Warn("kill wedged forwarder", "forwarder", label, "err", err)
		return false
	}
	r.noteAnswer(key) // the one started next begins with a clean slate
	return true
}

// removeProcesses stops every process of the fabric's folder that keep does
// not want.
func (r *realizer) removeProcesses(keep func(key string) bool) error {
	files, _ := filepath.Glob(filepath.Join(r.dir, "*.pid"))
	var errs []error
	for _, pf := range files {
		key := strings.TrimSuffix(filepath.Base(pf), ".pid")
		if keep(key) {
			continue
		}
		r.releaseQueues(key) // its queues leave the TUN with it
		r.noteAnswer(key)
		if p := findProcess(pf, r.procPath(key, ".log")); p != nil {
			r.log.Info("stop process", "process", key, "pid", p.PID)
			if err := p.stop(3 * time.Second); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for _, ext := range []string{".pid", ".sock", ".json", ".ready"} {
			os.Remove(r.procPath(key, ext))
		}
	}
	return errors.Join(errs...)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
