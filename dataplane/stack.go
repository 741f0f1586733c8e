package dataplane

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

const (
	// maxInFlightSYNs bounds connection requests the TCP forwarder handles
	// at once (each is a goroutine dialing a target); beyond it SYNs are
	// dropped and the consumer retransmits, as under a SYN flood.
	maxInFlightSYNs = 1024

	// Receive and send buffer ranges. gVisor grows a connection's buffer
	// from the default towards the maximum as it measures the flow
	// (moderate receive buffer); a high ceiling is what lets one stream
	// fill a jumbo-frame path. Tailscale uses the same 8 MiB / 6 MiB
	// ceilings for the same reason (wgengine/netstack/netstack_tcpbuf_default.go).
	tcpRXBufMax = 8 << 20
	tcpTXBufMax = 6 << 20
)

// segmentProcessor is the TCP protocol of the gVisor pvlink builds
// (third_party/gvisor): it can process segments in the goroutine that
// delivered them instead of waking one of its processor goroutines for
// them. A forwarder's TUN read loop processes each frame it delivers that
// is neither a GSO frame nor a pure ACK (ProcessQueued): a request or a FIN
// goes from the TUN read to the relay's wake-up without a hand-off between
// goroutines. GSO frames and pure ACKs go to the processors (HandQueued),
// as every frame did before, so that an upload's frames and a download's
// ACKs are taken a batch at a time while the read loop goes back to the
// TUN; but a pure ACK that ends a handshake is processed at once there
// too. With gVisor as released the processors take everything.
type segmentProcessor interface {
	SetInlineProcessing(on bool)
	ProcessQueued()
	HandQueued()
}

// inlineProcessing turns on s's processing of segments in the goroutine
// that delivers them, and returns what that goroutine calls after each
// delivery; nil when s's gVisor cannot.
func inlineProcessing(s *stack.Stack) segmentProcessor {
	p, ok := s.TransportProtocolInstance(tcp.ProtocolNumber).(segmentProcessor)
	if !ok {
		return nil
	}
	p.SetInlineProcessing(true)
	return p
}

// newStack builds the netstack of a forwarder: IPv4, IPv6 and TCP only
// (PrivateLink carries TCP only; no UDP or ICMP protocol is registered, so
// the stack can never answer a ping or send an ICMP error).
func newStack() *stack.Stack {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	// SACK lets a loss on the consumer side be repaired without resending
	// the whole window.
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	// Loss is found by duplicate ACKs and SACK (RFC 6675), not by RACK.
	// gVisor's RACK declared segments lost that the consumer had received
	// (its kernel saw nothing out of order and answered each resend with a
	// DSACK): 20 to 70 spurious recoveries each 0.6 s of an 8-stream
	// download, each one halving the window, after which sends went out
	// ACK-clocked in smaller frames. Nothing reorders packets between the
	// forwarder and the consumer's kernel, so RACK's reordering tolerance
	// buys nothing here. TestParallelDownloadsResendNothing.
	recovery := tcpip.TCPRecovery(0)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &recovery)
	// A connection starts with small buffers, so that the window its
	// SYN-ACK offers is small too; the memory budget gives the large ones
	// to connections that move fast (budget.go).
	rx := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: smallHold, Max: tcpRXBufMax}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rx)
	tx := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: smallHold, Max: tcpTXBufMax}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &tx)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate)
	// No TIME_WAIT. When the target ends a connection first, the
	// forwarder's side closes first and gVisor would keep the 4-tuple in
	// TIME_WAIT for 60 s, answering a new SYN from the same consumer port
	// with nothing (gVisor hands such a SYN on only to a listener, and the
	// forwarder has none): a busy consumer whose ports cycle saw connects
	// time out (20 of 7,934 in a 60 s soak). An NLB keeps no TIME_WAIT for
	// a flow either; a late segment of the old connection finds no
	// endpoint and gets a RST, as after the idle timeout.
	tw := tcpip.TCPTimeWaitTimeoutOption(0)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw)
	// The only listeners are the SYN flood defence's, and they exist to
	// keep no state for a SYN (synflood.go). The forwarder's own
	// handshakes are not listeners and do not use cookies.
	cookies := tcpip.TCPAlwaysUseSynCookies(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &cookies)
	return s
}
