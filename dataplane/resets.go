package dataplane

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"pvlink.dev/pvlink/flowtable"
)

// Who a load balancer's RSTs come from, as AWS/NetworkELB counts them:
// TCP_Client_Reset_Count (a consumer's RST, relayed to the target),
// TCP_Target_Reset_Count (a target's RST, relayed to the consumer) and
// TCP_ELB_Reset_Count (a RST the node made: a flow past its idle timeout,
// a target that failed its checks or was drained with termination, an
// endpoint cut off, a connection refused for want of a target or a port).
//
// The RSTs towards consumers are counted where the link writes them
// (noteReset), so that a RST counts only once it is sent: one of a flow
// whose target reset or refused it is the target's, every other one the
// node's. The relay counts the RSTs it makes towards targets: a consumer's
// relayed (clientResets), and the node's own when it cuts a flow (abort).
// Not counted: the RST a target's kernel gets from the node's kernel when
// it sends on a flow forgotten at its idle timeout (the node's socket is
// gone without a word, as on an NLB; the kernel answers for it).

// errConsumerReset ends the consumer-to-target direction when the
// consumer reset the connection.
var errConsumerReset = errors.New("the consumer reset the connection")

// consumerReset passes a consumer's RST on to the target: once, by
// whichever direction saw it first (the other finds the connection cut).
func (c *conn) consumerReset() {
	if c.cut.CompareAndSwap(false, true) {
		c.resetProvider()
		c.rt.svc.clientResets.Add(1)
	}
	c.ep.Abort()
	c.stopParked()
}

// isResetByPeer says whether a target's socket failed because the target
// reset the connection.
func isResetByPeer(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

// noteReset counts a RST the link writes towards a consumer for the load
// balancer of its flow (or, for a flow the node no longer has, of the
// listener port it comes from), by who made it.
func (e *eniState) noteReset(pkt *stack.PacketBuffer, th header.TCP) {
	var c *conn
	if consumer, eni := packetAddrs(pkt); e.flows != nil && consumer.IsValid() {
		key := flowtable.Key{Src: consumer, Dst: eni, SrcPort: th.DestinationPort(), DstPort: th.SourcePort(), Proto: uint8(header.TCPProtocolNumber)}
		if fl := e.flows.Lookup(key); fl != nil {
			c, _ = fl.Value.(*conn)
		}
	}
	var lb *lbCounters
	switch m := e.lbs.byPort.Load(); {
	case c != nil:
		lb = c.rt.svc
	case m != nil:
		lb = (*m)[th.SourcePort()]
	}
	if lb == nil {
		return // no listener there: the ENI's count only
	}
	lb.rstSent.Add(1)
	if c != nil && c.targetRST.Load() {
		lb.targetResets.Add(1)
	} else {
		lb.elbResets.Add(1)
	}
}

// packetAddrs are the destination and source of a packet the link writes,
// read from its network header as it is (gVisor's Network() boxes the
// header in an interface: an allocation per call); invalid when there is
// no such header.
func packetAddrs(pkt *stack.PacketBuffer) (to, from netip.Addr) {
	nh := pkt.NetworkHeader().Slice()
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		if len(nh) >= header.IPv4MinimumSize {
			ip := header.IPv4(nh)
			return netip.AddrFrom4(ip.DestinationAddress().As4()), netip.AddrFrom4(ip.SourceAddress().As4())
		}
	case header.IPv6ProtocolNumber:
		if len(nh) >= header.IPv6MinimumSize {
			ip := header.IPv6(nh)
			return netip.AddrFrom16(ip.DestinationAddress().As16()), netip.AddrFrom16(ip.SourceAddress().As16())
		}
	}
	return netip.Addr{}, netip.Addr{}
}
