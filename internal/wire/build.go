package wire

import (
	"encoding/binary"
	"net/netip"
)

// checksum is the Internet checksum of b folded onto sum.
func checksum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xFFFF {
		sum = sum>>16 + sum&0xFFFF
	}
	return ^uint16(sum)
}

func pseudo(src, dst netip.Addr, proto uint8, length int) uint32 {
	s, d := src.AsSlice(), dst.AsSlice()
	sum := checksum(checksum(0, s), d)
	return sum + uint32(proto) + uint32(length)
}

// TCPPacket builds an IPv4 (with DF) or IPv6 TCP packet of total size bytes
// (payload zero-filled) with valid checksums.
func TCPPacket(src, dst netip.AddrPort, flags byte, size int) []byte {
	v6 := src.Addr().Is6()
	ipLen := 20
	if v6 {
		ipLen = 40
	}
	b := make([]byte, size)
	tcp := b[ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 1)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	if v6 {
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(size-40))
		b[6], b[7] = 6, 64
		copy(b[8:24], src.Addr().AsSlice())
		copy(b[24:40], dst.Addr().AsSlice())
	} else {
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(size))
		b[6] = 0x40 // DF
		b[8], b[9] = 64, 6
		copy(b[12:16], src.Addr().AsSlice())
		copy(b[16:20], dst.Addr().AsSlice())
		binary.BigEndian.PutUint16(b[10:], fold(checksum(0, b[:20])))
	}
	binary.BigEndian.PutUint16(tcp[16:], fold(checksum(pseudo(src.Addr(), dst.Addr(), 6, len(tcp)), tcp)))
	return b
}

// EchoRequest builds an ICMP (IPv4) or ICMPv6 echo request.
func EchoRequest(src, dst netip.Addr, seq uint16) []byte {
	if src.Is6() {
		b := make([]byte, 40+16)
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], 16)
		b[6], b[7] = 58, 64
		copy(b[8:24], src.AsSlice())
		copy(b[24:40], dst.AsSlice())
		icmp := b[40:]
		icmp[0] = 128
		binary.BigEndian.PutUint16(icmp[6:], seq)
		binary.BigEndian.PutUint16(icmp[2:], fold(checksum(pseudo(src, dst, 58, len(icmp)), icmp)))
		return b
	}
	b := make([]byte, 20+16)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 1
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(b[10:], fold(checksum(0, b[:20])))
	icmp := b[20:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint16(icmp[2:], fold(checksum(0, icmp)))
	return b
}
