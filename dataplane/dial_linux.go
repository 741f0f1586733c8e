package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/nsenter"
)

const (
	// providerMSS is the MSS the forwarder offers targets: the provider
	// side of a PrivateLink connection carries the same 8500-byte packets.
	providerMSS = endpointMTU - 40
	// dialTimeout bounds a connect to a target; an NLB gives up on a
	// target that does not answer the handshake in about this long.
	dialTimeout = 10 * time.Second
	// providerCC is the congestion control of the node's sockets to
	// targets, whatever the provider namespace's default. With BBR (the
	// default here) the socket took the provider namespace's loopback
	// reordering for loss: 7,221 fast retransmits in 2 s of one upload,
	// nearly all undone by DSACK, each a round in recovery; 917-2,043 per
	// 512 MB-1 GB in TestUploadsResendNothingToTheTarget, 0-269 with Reno.
	// (BBR paces, so much of what it sends leaves from a timer, on
	// whichever CPU it fires, and a loopback packet is queued on the
	// sending CPU's backlog: two CPUs, two queues.) Reno is also what
	// gVisor's side of the connection uses towards the consumer.
	providerCC = "reno"
)

// dialTarget opens a kernel TCP connection to target from the load
// balancer's node address and returns it. Only the socket is created
// inside the provider VPC's namespace (a socket keeps the namespace it was
// born in): the connect and the wait for it happen on any thread. Dialing
// inside the namespace, as net.Dialer would, parks a goroutine locked to
// its thread for the whole handshake, and every such park and wake-up
// moves the scheduler's one P between threads.
func (f *Forwarder) dialTarget(ctx context.Context, lb LoadBalancer, target netip.AddrPort) (providerSocket, error) {
	fail := func(err error) (providerSocket, error) {
		return providerSocket{}, fmt.Errorf("connect %s -> %s in netns %s: %w", lb.NodeIP, target, lb.Netns, err)
	}
	if !lb.NodeIP.Is4() || !target.Addr().Is4() {
		return fail(errors.New("the provider side is IPv4"))
	}
	if f.targetDown(target) || !lb.EgressAllows(target) {
		// Its AZ is down, or the load balancer's outbound rules do not
		// let the SYN out: it would vanish; the connect times out.
		t := time.NewTimer(dialTimeout)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return fail(errTargetDown)
	}
	fd, err := f.providerSocketFD(lb.Netns)
	if errors.Is(err, errNoNamespace) {
		return providerSocket{}, err
	}
	if err != nil {
		return fail(err)
	}
	// The MSS a PrivateLink node offers; no Nagle (as the net package
	// sets for its connections); Reno, as gVisor's side of the connection
	// uses (see providerCC); the source port chosen at connect(), per
	// destination, not at bind(): a node then has the whole port range for
	// each target, and TIME_WAIT ports can be reused.
	err = errors.Join(
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, providerMSS),
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1),
		unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, providerCC),
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1),
		unix.Bind(fd, &unix.SockaddrInet4{Addr: lb.NodeIP.As4()}))
	if err != nil {
		unix.Close(fd)
		return fail(err)
	}
	// A non-blocking descriptor becomes a pollable os.File as it is: the
	// close that waits for any operation under way, without what
	// net.FileConn adds per connection (a dup, flag and address queries,
	// and TCP keepalives, which an NLB node does not send to its
	// targets). The connect and the relay's waits for room wait on Go's
	// netpoller; the relay's waits for bytes on the forwarder's own set
	// (the poller), which the socket joins when the relay starts. With
	// the socket in the forwarder's set alone, the data path was measured
	// slower (3 alternating rounds of pvlink bench: 1-stream download
	// 13.2-15.2 against 15.4-17.7 Gbit/s, p50 65.1-77.7 against 60.8-68.6
	// us, connections 5,445-6,473 against 5,900-6,289 per s).
	file := os.NewFile(uintptr(fd), "provider")
	raw, err := file.SyscallConn()
	if err == nil {
		err = nsenter.Connect(ctx, file, raw, fd, &unix.SockaddrInet4{Addr: target.Addr().As4(), Port: int(target.Port())}, dialTimeout)
	}
	if err != nil {
		file.Close()
		return fail(err)
	}
	return providerSocket{file: file, raw: raw, fd: fd}, nil
}

// providerSocket is a node's connected socket to a target. Its local
// address (the node's IP and the port the kernel chose at connect) is
// asked for only when someone lists the flows (localAddr), not per
// connection.
type providerSocket struct {
	file *os.File
	raw  syscall.RawConn // file's, taken once
	fd   int             // its place in the poller
}

// localAddr is the node's address and port of a provider socket, or
// false once it is closed. syscall's Getsockname, not x/sys/unix's: the
// latter asks the socket's protocol too (SO_PROTOCOL, for L2TP), a second
// system call.
func localAddr(raw syscall.RawConn) (netip.AddrPort, bool) {
	var local netip.AddrPort
	err := raw.Control(func(fd uintptr) {
		if sa, err := syscall.Getsockname(int(fd)); err == nil {
			if in4, ok := sa.(*syscall.SockaddrInet4); ok {
				local = netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
			}
		}
	})
	return local, err == nil && local.IsValid()
}

// providerNamespace is an open provider namespace and sockets made in it
// that no connection has taken yet.
type providerNamespace struct {
	h     netns.NsHandle
	spare []int
}

// socketBatch is how many sockets a trip into a provider namespace makes:
// entering and leaving it are two setns(2) calls, once per batch instead
// of once per connection.
const socketBatch = 16

// providerSocketFD returns a new non-blocking TCP socket of the provider
// namespace name (a socket keeps the namespace it was made in), from the
// namespace's spares, making a batch when there are none.
func (f *Forwarder) providerSocketFD(name string) (int, error) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	ns, ok := f.providerNS[name]
	if !ok {
		h, err := netns.GetFromName(name)
		if err != nil {
			return -1, fmt.Errorf("%w: open netns %s: %v", errNoNamespace, name, err)
		}
		ns = &providerNamespace{h: h}
		f.providerNS[name] = ns
	}
	if len(ns.spare) == 0 {
		err := nsenter.DoHandle(ns.h, func() error {
			for range socketBatch {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
				if err != nil {
					return err
				}
				ns.spare = append(ns.spare, fd)
			}
			return nil
		})
		if len(ns.spare) == 0 {
			return -1, err
		}
	}
	fd := ns.spare[len(ns.spare)-1]
	ns.spare = ns.spare[:len(ns.spare)-1]
	return fd, nil
}

// forgetMovedNamespaces drops the handle (and spare sockets) of every
// provider namespace that was made again under its name since it was
// opened: the next dial opens the new one. Connections already made stay
// in the old one until they end.
func (f *Forwarder) forgetMovedNamespaces() (moved []string) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	for name, ns := range f.providerNS {
		was, err := nsenter.HandleInode(ns.h)
		if err != nil {
			continue
		}
		if now, err := nsenter.Inode(name); err != nil || now == was {
			continue
		}
		for _, fd := range ns.spare {
			unix.Close(fd)
		}
		ns.h.Close()
		delete(f.providerNS, name)
		moved = append(moved, name)
	}
	return moved
}

// closeNamespaces closes the provider namespaces' handles and spare sockets.
func (f *Forwarder) closeNamespaces() {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	for name, ns := range f.providerNS {
		for _, fd := range ns.spare {
			unix.Close(fd)
		}
		ns.h.Close()
		delete(f.providerNS, name)
	}
}

// errTargetDown is a dial to a target whose AZ a fault took down.
var errTargetDown = errors.New("no answer: the target's AZ is down")

// targetDown reports whether a fault took the target's AZ down.
func (f *Forwarder) targetDown(t netip.AddrPort) bool {
	m := f.deadTargets.Load()
	return m != nil && (*m)[t]
}

// blackholeTargets records the targets a snapshot marks as down.
func (f *Forwarder) blackholeTargets(cfg *Config) {
	var dead map[netip.AddrPort]bool
	for _, tg := range cfg.TargetGroups {
		for _, t := range tg.Targets {
			if t.Blackholed {
				if dead == nil {
					dead = map[netip.AddrPort]bool{}
				}
				dead[netip.AddrPortFrom(t.IP, t.Port)] = true
			}
		}
	}
	var was map[netip.AddrPort]bool
	if old := f.deadTargets.Load(); old != nil {
		was = *old
	}
	if dead == nil {
		f.deadTargets.Store(nil)
	} else {
		f.deadTargets.Store(&dead)
	}
	// Flows to a target whose AZ is back carry on where they stopped.
	var back []netip.AddrPort
	for t := range was {
		if !dead[t] {
			back = append(back, t)
		}
	}
	if len(back) == 0 {
		return
	}
	f.flows.Range(func(fl *flowtable.Flow) bool {
		if c, ok := fl.Value.(*conn); ok && c.started.Load() && slices.Contains(back, c.target.Addr) {
			c.wakeC2P()
			c.wakeP2C(false)
		}
		return true
	})
}
