package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/proxyproto"
)

// handleTCP is called by gVisor's TCP forwarder, in a goroutine of its own,
// for every SYN to an ENI. Like an NLB node it chooses a target, holds a
// flow for it, connects to the target and completes the consumer's
// handshake only once the target accepted, so a consumer never sees an
// established connection to nowhere. Every refusal is a RST, counted.
//
// The handshake with the consumer is bounded by handshakeTimeout, and when
// too many of them are half open on one ENI its SYNs are answered with SYN
// cookies instead (synflood.go).
func (f *Forwarder) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	c := f.current.Load()
	if routes := c.enis[id.LocalAddress]; routes != nil {
		e := routes.state
		defer e.halfOpen.Add(-1)
		if n := e.halfOpen.Add(1); n >= synFloodThreshold {
			f.startCookies(routes, n)
		}
	}
	cn, refusal := f.admit(c, id)
	if refusal != refuseNone {
		r.Complete(refusal == refuseRST)
		return
	}
	sock, err := f.dial(cn)
	if err != nil {
		// A target that refused: a RST, as an NLB answers. One whose AZ
		// is down: no answer at all; the consumer's SYN vanished.
		r.Complete(!errors.Is(err, errTargetDown))
		cn.undo()
		return
	}
	// gVisor's forwarder waits for the consumer's ACK for as long as it
	// retransmits the SYN-ACK (about 127 s); a spoofed SYN would hold its
	// slot, its goroutine and a target connection all that time. The
	// sweeper wakes the wait once handshakeTimeout has passed (within its
	// round of at most a second), which makes gVisor give up on a
	// handshake not yet done: no timer per connection.
	cn.handshakeUntil.Store(int64(monoNow() + handshakeTimeout))
	ep, terr := r.CreateEndpoint(&cn.queue)
	cn.handshakeUntil.Store(0)
	if terr != nil {
		cn.undo()
		sock.file.Close()
		if cn.handshakeTimeout.Load() {
			f.stats.handshakeTimeouts.Add(1)
		} else {
			f.stats.endpointErrors.Add(1)
			f.log.Debug("netstack endpoint", "err", terr)
		}
		r.Complete(true)
		return
	}
	r.Complete(false)
	f.begin(cn, sock, ep, &cn.queue)
}

// giveUpHandshake wakes gVisor's wait for the consumer's ACK of the
// handshake once its deadline has passed (now is monoNow's): gVisor then
// gives up on it. A wake-up that crosses the handshake's end is a spurious
// writable event for the relay, which looks again.
func (c *conn) giveUpHandshake(now time.Duration) {
	if until := c.handshakeUntil.Load(); until != 0 && int64(now) >= until && c.handshakeTimeout.CompareAndSwap(false, true) {
		c.queue.Notify(waiter.WritableEvents)
	}
}

// refusal says how admit refused a connection.
type refusal uint8

const (
	refuseNone refusal = iota
	refuseRST          // answered with a RST
	refuseDrop         // no answer at all
)

// admit does what comes before the target is dialed: it finds the ENI and
// listener of a connection to id, chooses its target and holds a flow and
// a connection slot for it. Every refusal is counted.
func (f *Forwarder) admit(c *compiled, id stack.TransportEndpointID) (*conn, refusal) {
	routes := c.enis[id.LocalAddress]
	if routes == nil {
		f.stats.noRoute.Add(1)
		return nil, refuseRST
	}
	e := routes.state
	if !e.available.Load() {
		// The ingress filter drops these; one that raced a state change
		// is dropped here the same way: no answer.
		f.stats.notAvailable.Add(1)
		return nil, refuseDrop
	}
	rt := routes.listeners[id.LocalPort]
	if rt == nil {
		f.stats.noListener.Add(1)
		return nil, refuseRST
	}
	src, _ := netip.AddrFromSlice(id.RemoteAddress.AsSlice())
	dst, _ := netip.AddrFromSlice(id.LocalAddress.AsSlice())
	key := flowtable.Key{
		Src:     src,
		Dst:     dst,
		SrcPort: id.RemotePort,
		DstPort: id.LocalPort,
		Proto:   uint8(header.TCPProtocolNumber),
	}
	target, ok := rt.group.Pick(key)
	if !ok {
		f.stats.noTarget.Add(1)
		return nil, refuseRST
	}
	if !rt.group.Acquire(target) {
		// PortAllocationErrorCount: the group counts it by target group,
		// the load balancer's counters by ENI.
		rt.svc.portErrors.Add(1)
		return nil, refuseRST
	}
	cn := &conn{f: f, eni: e, group: rt.group, target: target, routes: routes, rt: rt}
	fl := flowtable.NewFlow(key, cn, rt.idle, time.Now())
	cn.fl = fl
	if err := f.flows.Insert(fl); err != nil {
		rt.group.Release(target)
		f.stats.flowTableFull.Add(1)
		return nil, refuseRST
	}
	return cn, refuseNone
}

// dial connects a connection admit let in to its target; a failure is
// counted. The caller answers the consumer, then gives back what admit
// took (undo): while the flow is still there, the link sees the RST that
// answers a target's refusal as the target's, relayed.
func (f *Forwarder) dial(cn *conn) (providerSocket, error) {
	sock, err := f.dialTarget(context.Background(), cn.rt.lb, cn.target.Addr)
	if err != nil {
		f.stats.dialErrors.Add(1)
		f.log.Debug("dial target", "err", err)
		cn.targetRST.Store(errors.Is(err, unix.ECONNREFUSED)) // the target's RST
	}
	return sock, err
}

// undo gives back what admit took for a connection that never starts.
func (c *conn) undo() {
	c.f.flows.DeleteFlow(c.fl)
	c.group.Release(c.target)
}

// begin starts the relay of a connection whose target accepted and whose
// consumer completed the handshake.
func (f *Forwarder) begin(cn *conn, sock providerSocket, ep tcpip.Endpoint, wq *waiter.Queue) {
	pconn := sock.file
	cn.provider, cn.providerRaw, cn.providerFD = sock.file, sock.raw, sock.fd
	cn.ep, cn.wq = ep, wq
	holdSmall(cn)
	e := cn.eni
	e.newConns.Add(1)
	e.active.Add(1) // given back by release
	cn.rt.svc.newConns.Add(1)
	cn.rt.svc.active.Add(1)

	// Proxy protocol v2: the target's only way to learn the consumer and
	// the endpoint. The header is the one an NLB writes (CRC32C, AWS TLV,
	// padded to 100 bytes), sent once, before any consumer byte.
	var pp *proxyproto.Header
	if cn.rt.tg.ProxyProtocolV2 {
		k := cn.fl.Key
		h := proxyproto.NLB(netip.AddrPortFrom(k.Src, k.SrcPort), netip.AddrPortFrom(k.Dst, k.DstPort), cn.routes.eni.EndpointID)
		if cn.rt.tg.ProxyProtocolV2Placement == PlacementFirstAck {
			if err := writeHeader(pconn, &h); err != nil {
				cn.reset.Store(true) // the relay ends at once
			}
		} else {
			pp = &h
		}
	}
	// The relay runs from here on its own, whatever happened meanwhile
	// (a reset of the target while we dialed is in cn.reset): it releases
	// the flow when both directions are done.
	cn.start(pp)
}
