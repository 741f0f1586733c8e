package ctl

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"pvlink.dev/pvlink/ctl/dns"
	"pvlink.dev/pvlink/nsenter"
)

// ctld serves the fabric's DNS itself: the public server on loopback, and
// a resolver in each VPC's namespace at the VPC's base address + 2, as AWS
// places the Amazon-provided resolver. Each pass of the daemon hands them
// the model's names as they are now, and the forwarders' health, so an AZ
// whose forwarder is down leaves the regional answers within a pass.

// netnsEtc is where `ip netns exec` finds a namespace's own /etc files.
var netnsEtc = "/etc/netns"

type vpcResolver struct {
	r      *dns.Resolver
	ino    uint64 // the namespace the sockets were made in
	cancel context.CancelFunc
}

type dnsServers struct {
	mu        sync.Mutex
	public    *dns.Public
	publicURL string // host:port on loopback
	stopPub   context.CancelFunc
	vpcs      map[string]*vpcResolver // by namespace
}

// LinkLocalResolver is the Amazon-provided DNS server's other address,
// the same in every VPC; a VPC's resolver answers there too.
var LinkLocalResolver = netip.MustParseAddr("169.254.169.253")

// ResolverAddr is the address of a VPC's resolver: its base + 2.
func ResolverAddr(cidr string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Masked().Addr().Next().Next(), nil
}

func netnsIno(ns string) (uint64, bool) {
	fi, err := os.Stat(filepath.Join("/run/netns", ns))
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ino, true
}

// update makes the DNS servers serve m, healthy saying which AZs carry
// traffic. It returns the first error; the next pass tries again.
func (d *dnsServers) update(ctx context.Context, m *State, healthy func(az string) bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.public == nil {
		pc, ln, err := dns.ListenPair("127.0.0.1")
		if err != nil {
			return fmt.Errorf("public DNS server: %w", err)
		}
		d.public, d.publicURL = dns.NewPublic(), pc.LocalAddr().String()
		var pctx context.Context
		pctx, d.stopPub = context.WithCancel(ctx)
		go dns.Serve(pctx, pc, ln, d.public)
	}
	pub := m.PublicRecords(healthy)
	d.public.Set(pub)
	var errs []error
	want := map[string]bool{}
	for _, v := range m.VPCs {
		want[v.Netns] = true
		ino, ok := netnsIno(v.Netns)
		if !ok {
			continue // the realizer makes it first
		}
		vr := d.vpcs[v.Netns]
		if vr != nil && vr.ino != ino {
			vr.cancel() // the namespace was made again: new sockets
			vr = nil
		}
		if vr == nil {
			var err error
			if vr, err = listenResolver(ctx, v, ino); err != nil {
				errs = append(errs, err)
				continue
			}
			d.vpcs[v.Netns] = vr
		}
		vr.r.Set(m.VPCRecords(v.ID, healthy), d.publicURL, pub.Zones)
		if err := writeResolvConf(v); err != nil {
			errs = append(errs, err)
		}
	}
	for ns, vr := range d.vpcs {
		if !want[ns] {
			vr.cancel()
			delete(d.vpcs, ns)
			os.RemoveAll(filepath.Join(netnsEtc, ns))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// listenResolver opens a VPC resolver's sockets inside its namespace: at
// its base + 2 and at 169.254.169.253, UDP and TCP each.
func listenResolver(ctx context.Context, v VPCState, ino uint64) (*vpcResolver, error) {
	addr, err := ResolverAddr(v.CIDR)
	if err != nil {
		return nil, err
	}
	type pair struct {
		pc net.PacketConn
		ln net.Listener
	}
	var pairs []pair
	closeAll := func() {
		for _, p := range pairs {
			p.pc.Close()
			p.ln.Close()
		}
	}
	for _, a := range []netip.Addr{addr, LinkLocalResolver} {
		hostPort := netip.AddrPortFrom(a, 53).String()
		err = nsenter.Do(v.Netns, func() error {
			pc, err := net.ListenPacket("udp", hostPort)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", hostPort)
			if err != nil {
				pc.Close()
				return err
			}
			pairs = append(pairs, pair{pc, ln})
			return nil
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("resolver of VPC %s at %s: %w", v.Name, hostPort, err)
		}
	}
	vr := &vpcResolver{r: dns.NewResolver(), ino: ino}
	var rctx context.Context
	rctx, vr.cancel = context.WithCancel(ctx)
	for _, p := range pairs {
		go dns.Serve(rctx, p.pc, p.ln, vr.r)
	}
	return vr, nil
}

// writeResolvConf points `ip netns exec NS ...` at the VPC's resolver.
func writeResolvConf(v VPCState) error {
	addr, err := ResolverAddr(v.CIDR)
	if err != nil {
		return err
	}
	dir := filepath.Join(netnsEtc, v.Netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	content := fmt.Sprintf("# written by pvlink ctld: the resolver of VPC %s (%s)\nnameserver %s\noptions timeout:1 attempts:2\n", v.Name, v.ID, addr)
	path := filepath.Join(dir, "resolv.conf")
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// close stops every server and removes the resolv.conf files.
func (d *dnsServers) close(m *State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ns, vr := range d.vpcs {
		vr.cancel()
		os.RemoveAll(filepath.Join(netnsEtc, ns))
	}
	d.vpcs = map[string]*vpcResolver{}
	if d.stopPub != nil {
		d.stopPub()
	}
}
