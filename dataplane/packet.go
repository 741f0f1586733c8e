package dataplane

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// connKey names a connection as one packet of it does: addresses,
// protocol and ports, as the packet carries them (a reply's are swapped).
type connKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

// reversed is the key the other direction's packets carry.
func (k connKey) reversed() connKey {
	return connKey{src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, proto: k.proto}
}

// splitPacket reads an IP packet's addresses, protocol and (for TCP and
// UDP, when b holds them) ports, and returns what follows the IP header.
func splitPacket(b []byte) (k connKey, transport []byte, ok bool) {
	if len(b) < 1 {
		return k, nil, false
	}
	switch header.IPVersion(b) {
	case header.IPv4Version:
		if len(b) < header.IPv4MinimumSize {
			return k, nil, false
		}
		ip := header.IPv4(b)
		hl := int(ip.HeaderLength())
		if hl < header.IPv4MinimumSize || hl > len(b) {
			return k, nil, false
		}
		k.src, k.dst = netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
		k.proto = ip.Protocol()
		transport = b[hl:]
	case header.IPv6Version:
		if len(b) < header.IPv6MinimumSize {
			return k, nil, false
		}
		ip := header.IPv6(b)
		k.src, k.dst = netip.AddrFrom16(ip.SourceAddress().As16()), netip.AddrFrom16(ip.DestinationAddress().As16())
		k.proto = ip.NextHeader()
		transport = b[header.IPv6MinimumSize:]
	default:
		return k, nil, false
	}
	switch k.proto {
	case uint8(header.TCPProtocolNumber):
		if len(transport) >= header.TCPMinimumSize {
			t := header.TCP(transport)
			k.sport, k.dport = t.SourcePort(), t.DestinationPort()
		}
	case uint8(header.UDPProtocolNumber):
		if len(transport) >= header.UDPMinimumSize {
			u := header.UDP(transport)
			k.sport, k.dport = u.SourcePort(), u.DestinationPort()
		}
	}
	return k, transport, true
}
