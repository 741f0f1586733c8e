package dataplane

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"pvlink.dev/pvlink/flowtable"
)

// dropReason says why the ingress filter refused a packet.
type dropReason uint8

const (
	dropOversize        dropReason = iota // larger than the endpoint's 8500-byte MTU
	dropMalformed                         // truncated or inconsistent headers
	dropICMP                              // ICMP/ICMPv6: an endpoint answers no ping
	dropProtocol                          // not TCP: PrivateLink carries TCP only
	dropNoRoute                           // not addressed to this ENI
	dropSecurityGroup                     // no security group rule allows it
	dropChecksum                          // IPv4 header or TCP checksum wrong
	dropNotAvailable                      // a SYN to an endpoint that is not available
	dropFault                             // the ENI's AZ is down by a fault (pvlink fault az-down)
	dropLBSecurityGroup                   // the load balancer's security groups, enforced on PrivateLink traffic, do not allow it
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"oversize", "malformed", "icmp", "protocol", "not_for_eni", "security_group", "bad_checksum", "not_available", "fault", "lb_security_group"}

// allowed reports whether a TCP packet from src to port matches a rule.
func allowed(rules []SGRule, src netip.Addr, port uint16) bool {
	for i := range rules {
		if rules[i].Allows(6, src, port) {
			return true
		}
	}
	return false
}

// ingress is the filter every packet from the consumer VPC passes before the
// netstack sees it. It works on the bytes in place with gVisor's header views
// and allocates nothing. It returns the network protocol and whether the
// packet may go on; a refused packet has been counted.
//
// Nothing here ever answers with ICMP: a VPC endpoint drops an oversize
// packet silently (no "fragmentation needed", no PMTUD) and ignores echo.
//
// A TCP segment of a known flow marks the flow active at now (unix
// nanoseconds), keepalives included, as on an NLB. It returns the network
// protocol and the length of the IP and TCP headers.
func (e *eniState) ingress(b []byte, now int64) (tcpip.NetworkProtocolNumber, int, bool) {
	return e.check(b, now, false)
}

// ingressGSO checks a TCP GSO frame from the consumer's kernel: the caller
// has applied the 8500-byte rule to its segments, and its TCP checksum is
// partial by design (the kernel leaves it to whoever segments), so it is
// not verified. Everything else is checked as for a packet.
func (e *eniState) ingressGSO(b []byte, now int64) (tcpip.NetworkProtocolNumber, int, bool) {
	return e.check(b, now, true)
}

func (e *eniState) check(b []byte, now int64, gso bool) (tcpip.NetworkProtocolNumber, int, bool) {
	if e.blackholed.Load() {
		e.dropped(dropFault) // an outage: the packet vanishes
		return 0, 0, false
	}
	if len(b) > endpointMTU && !gso {
		e.dropped(dropOversize)
		return 0, 0, false
	}
	if len(b) < 1 {
		e.dropped(dropMalformed)
		return 0, 0, false
	}
	var proto tcpip.TransportProtocolNumber
	var transport []byte
	var src, dst netip.Addr
	var srcT, dstT tcpip.Address
	var netProto tcpip.NetworkProtocolNumber
	switch header.IPVersion(b) {
	case header.IPv4Version:
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) {
			e.dropped(dropMalformed)
			return 0, 0, false
		}
		if !ip.IsChecksumValid() {
			e.dropped(dropChecksum)
			return 0, 0, false
		}
		if e.addr4.Len() == 0 || ip.DestinationAddress() != e.addr4 {
			e.dropped(dropNoRoute)
			return 0, 0, false
		}
		if ip.More() || ip.FragmentOffset() != 0 {
			// The consumer's kernel never fragments TCP here (DF, MSS
			// clamp); a fragment is someone writing raw packets.
			e.dropped(dropMalformed)
			return 0, 0, false
		}
		proto = ip.TransportProtocol()
		transport = b[ip.HeaderLength():ip.TotalLength()]
		netProto = header.IPv4ProtocolNumber
		srcT, dstT = ip.SourceAddress(), ip.DestinationAddress()
		src, dst = netip.AddrFrom4(srcT.As4()), netip.AddrFrom4(dstT.As4())
	case header.IPv6Version:
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) {
			e.dropped(dropMalformed)
			return 0, 0, false
		}
		if e.addr6.Len() == 0 || ip.DestinationAddress() != e.addr6 {
			e.dropped(dropNoRoute)
			return 0, 0, false
		}
		// Extension headers are not followed: a consumer's kernel sends
		// none on TCP, so one here is counted as an unknown protocol.
		proto = ip.TransportProtocol()
		transport = b[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
		netProto = header.IPv6ProtocolNumber
		srcT, dstT = ip.SourceAddress(), ip.DestinationAddress()
		src, dst = netip.AddrFrom16(srcT.As16()), netip.AddrFrom16(dstT.As16())
	default:
		e.dropped(dropMalformed)
		return 0, 0, false
	}
	switch proto {
	case header.TCPProtocolNumber:
		if len(transport) < header.TCPMinimumSize {
			e.dropped(dropMalformed)
			return 0, 0, false
		}
		tcp := header.TCP(transport)
		off := int(tcp.DataOffset())
		if off < header.TCPMinimumSize || off > len(transport) {
			e.dropped(dropMalformed)
			return 0, 0, false
		}
		// The TCP checksum is verified here, once, so that a corrupt
		// segment is counted against its ENI; the link endpoint then tells
		// gVisor not to verify it again (RX checksum offload).
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, srcT, dstT, uint16(len(transport)))
		if !gso && checksum.Checksum(transport, xsum) != 0xffff {
			e.dropped(dropChecksum)
			return 0, 0, false
		}
		// Security groups are stateful: a segment of a flow they let in
		// (a tracked connection) goes on whatever their rules have become
		// since; anything else must match a rule now.
		var fl *flowtable.Flow
		if e.flows != nil {
			fl = e.flows.Lookup(flowtable.Key{Src: src, Dst: dst, SrcPort: tcp.SourcePort(), DstPort: tcp.DestinationPort(), Proto: uint8(header.TCPProtocolNumber)})
		}
		if fl == nil {
			if rules := e.ingressRules.Load(); rules != nil && !allowed(*rules, src, tcp.DestinationPort()) {
				e.dropped(dropSecurityGroup)
				return 0, 0, false
			}
			if byPort := e.lbRules.Load(); byPort != nil {
				if rules, ok := (*byPort)[tcp.DestinationPort()]; ok && !allowed(rules, src, tcp.DestinationPort()) {
					e.dropped(dropLBSecurityGroup)
					return 0, 0, false
				}
			}
		}
		if tcp.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn && !e.available.Load() {
			// Only an available endpoint carries traffic; a SYN to one
			// that awaits acceptance (or was rejected) gets no answer.
			e.dropped(dropNotAvailable)
			return 0, 0, false
		}
		if tcp.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn {
			e.syns.Add(1)
		}
		if tcp.Flags().Contains(header.TCPFlagRst) {
			e.rstReceived.Add(1)
		}
		if fl != nil {
			fl.Touch(now)
			fl.SegmentsIn.Add(1)
		}
		return netProto, len(b) - len(transport) + off, true
	case header.ICMPv4ProtocolNumber, header.ICMPv6ProtocolNumber:
		e.dropped(dropICMP)
	default:
		e.dropped(dropProtocol)
	}
	return 0, 0, false
}
