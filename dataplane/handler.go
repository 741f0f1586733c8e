package dataplane

import (
	"context"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
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
func (f *Forwarder) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	c := f.current.Load()
	routes := c.enis[id.LocalAddress]
	if routes == nil {
		f.stats.noRoute.Add(1)
		r.Complete(true)
		return
	}
	e := routes.state
	if !e.available.Load() {
		// The ingress filter drops these; one that raced a state change
		// is dropped here the same way: no answer.
		f.stats.notAvailable.Add(1)
		r.Complete(false)
		return
	}
	rt := routes.listeners[id.LocalPort]
	if rt == nil {
		f.stats.noListener.Add(1)
		r.Complete(true)
		return
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
		r.Complete(true)
		return
	}
	if !rt.group.Acquire(target) {
		r.Complete(true) // PortAllocationErrorCount, counted by the group
		return
	}
	cn := &conn{f: f, eni: e, group: rt.group, target: target}
	fl := flowtable.NewFlow(key, cn, rt.idle, time.Now())
	cn.fl = fl
	if err := f.flows.Insert(fl); err != nil {
		rt.group.Release(target)
		f.stats.flowTableFull.Add(1)
		r.Complete(true)
		return
	}
	// undo gives back what a connection that never starts holds.
	undo := func() {
		f.flows.DeleteFlow(fl)
		rt.group.Release(target)
	}

	sock, err := f.dialTarget(context.Background(), rt.lb, target.Addr)
	if err != nil {
		undo()
		f.stats.dialErrors.Add(1)
		f.log.Debug("dial target", "err", err)
		r.Complete(true)
		return
	}
	pconn := sock.file
	cn.provider, cn.providerRaw, cn.providerFD, cn.node = sock.file, sock.raw, sock.fd, sock.local
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		undo()
		f.stats.endpointErrors.Add(1)
		f.log.Debug("netstack endpoint", "err", terr)
		r.Complete(true)
		pconn.Close()
		return
	}
	r.Complete(false)
	cn.ep, cn.wq = ep, &wq
	e.newConns.Add(1)
	e.active.Add(1) // given back by release

	// Proxy protocol v2: the target's only way to learn the consumer and
	// the endpoint. The header is the one an NLB writes (CRC32C, AWS TLV,
	// padded to 100 bytes), sent once, before any consumer byte.
	var pp *proxyproto.Header
	if rt.tg.ProxyProtocolV2 {
		h := proxyproto.NLB(netip.AddrPortFrom(key.Src, key.SrcPort), netip.AddrPortFrom(key.Dst, key.DstPort), routes.eni.EndpointID)
		if rt.tg.ProxyProtocolV2Placement == PlacementFirstAck {
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
