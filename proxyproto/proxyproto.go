// Package proxyproto encodes and decodes PROXY protocol version 2 headers
// (HAProxy's specification) the way an AWS Network Load Balancer writes them
// for connections that arrive through a VPC endpoint: TCP over IPv4 or IPv6,
// the AWS TLV (0xEA) with the VPC endpoint id, a CRC32C TLV, and NOOP
// padding to 100 bytes.
//
// It imports the standard library only. The encoder writes into a caller's
// buffer and allocates nothing; the decoder never panics, bounds the header
// size, verifies a CRC32C when one is present and returns a typed error for
// each malformation.
package proxyproto

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
)

// Signature opens every version 2 header.
var Signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// Command is the low nibble of byte 13, with the version (2) in the high one.
type Command byte

const (
	// Local: the connection was made by the proxy itself (an NLB's health
	// check); the receiver uses the real connection's addresses.
	Local Command = 0x20
	// Proxy: the connection is relayed for the client in the header.
	Proxy Command = 0x21
)

// Family is byte 14: address family and transport.
type Family byte

const (
	Unspec Family = 0x00
	TCP4   Family = 0x11
	TCP6   Family = 0x21
)

// TLV types pvlink writes or reads.
const (
	TypeCRC32C = 0x03
	TypeNOOP   = 0x04
	TypeAWS    = 0xEA
	// AWSSubtypeVPCEndpointID is the first value byte of an AWS TLV that
	// carries the VPC endpoint id.
	AWSSubtypeVPCEndpointID = 0x01
)

const (
	// FixedLen is the signature, command, family and length: 16 bytes.
	FixedLen = 16
	// NLBLength is the total size of the headers an NLB sends through a
	// VPC endpoint: it pads them with a NOOP TLV to 100 bytes.
	NLBLength = 100
	// DefaultMaxLength bounds what Decode accepts by default. The format
	// allows 16+65535 bytes; no proxy sends more than a few hundred.
	DefaultMaxLength = 4096
	addrLen4         = 12
	addrLen6         = 36
	tlvHeaderLen     = 3
	crcTLVLen        = tlvHeaderLen + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TLV is a type-length-value field after the addresses. Value aliases the
// decoded buffer.
type TLV struct {
	Type  byte
	Value []byte
}

// Header is a PROXY protocol v2 header.
type Header struct {
	Command     Command
	Source      netip.AddrPort // the client (the consumer, through PrivateLink)
	Destination netip.AddrPort // the address the client connected to (the ENI)

	// VPCEndpointID, when set, is written as an AWS TLV (subtype 0x01).
	VPCEndpointID string
	// CRC32C, when set, adds a CRC32C TLV computed over the whole header.
	CRC32C bool
	// PadTo, when larger than the header, pads it to this size with a NOOP
	// TLV (a gap of 1 or 2 bytes cannot hold a TLV and is left unpadded).
	PadTo int

	// TLVs are further TLVs to write after the AWS one; on decode they are
	// every TLV that is not CRC32C, AWS or NOOP.
	TLVs []TLV

	// Decode only: the header's size on the wire, the family, whether a
	// CRC32C TLV was present, and whether it matched.
	Length int
	Family Family
	HasCRC bool
	CRCOK  bool
}

// NLB returns the header an NLB sends for a connection from src to the ENI
// at dst through endpoint vpceID: PROXY, CRC32C, AWS TLV, padded to 100.
func NLB(src, dst netip.AddrPort, vpceID string) Header {
	return Header{Command: Proxy, Source: src, Destination: dst, VPCEndpointID: vpceID, CRC32C: true, PadTo: NLBLength}
}

// Errors of Encode.
var (
	ErrMixedFamilies = errors.New("proxyproto: source and destination are of different address families")
	ErrBufferSize    = errors.New("proxyproto: buffer too small for the header")
	ErrTooLong       = errors.New("proxyproto: header longer than allowed")
	ErrNoAddress     = errors.New("proxyproto: a PROXY header needs a source and a destination")
)

// Len is the encoded size of h.
func (h *Header) Len() int {
	n := FixedLen + h.addrLen()
	if h.CRC32C {
		n += crcTLVLen
	}
	if h.VPCEndpointID != "" {
		n += tlvHeaderLen + 1 + len(h.VPCEndpointID)
	}
	for _, t := range h.TLVs {
		n += tlvHeaderLen + len(t.Value)
	}
	if h.PadTo-n >= tlvHeaderLen {
		n = h.PadTo
	}
	return n
}

func (h *Header) addrLen() int {
	if h.Command == Local && !h.Source.IsValid() {
		return 0
	}
	if h.Source.Addr().Unmap().Is4() {
		return addrLen4
	}
	return addrLen6
}

// Encode writes h into b and returns its length. It allocates nothing.
func (h *Header) Encode(b []byte) (int, error) {
	if h.Command == Proxy && (!h.Source.IsValid() || !h.Destination.IsValid()) {
		return 0, ErrNoAddress
	}
	n := h.Len()
	if n > FixedLen+0xFFFF {
		return 0, ErrTooLong
	}
	if len(b) < n {
		return 0, ErrBufferSize
	}
	b = b[:n]
	copy(b, Signature[:])
	b[12] = byte(h.Command)
	binary.BigEndian.PutUint16(b[14:16], uint16(n-FixedLen))
	off := FixedLen
	switch h.addrLen() {
	case 0:
		b[13] = byte(Unspec)
	case addrLen4:
		if !h.Destination.Addr().Unmap().Is4() {
			return 0, ErrMixedFamilies
		}
		b[13] = byte(TCP4)
		s, d := h.Source.Addr().Unmap().As4(), h.Destination.Addr().Unmap().As4()
		copy(b[off:], s[:])
		copy(b[off+4:], d[:])
		binary.BigEndian.PutUint16(b[off+8:], h.Source.Port())
		binary.BigEndian.PutUint16(b[off+10:], h.Destination.Port())
		off += addrLen4
	case addrLen6:
		if h.Destination.Addr().Unmap().Is4() {
			return 0, ErrMixedFamilies
		}
		b[13] = byte(TCP6)
		s, d := h.Source.Addr().As16(), h.Destination.Addr().As16()
		copy(b[off:], s[:])
		copy(b[off+16:], d[:])
		binary.BigEndian.PutUint16(b[off+32:], h.Source.Port())
		binary.BigEndian.PutUint16(b[off+34:], h.Destination.Port())
		off += addrLen6
	}
	crcAt := -1
	if h.CRC32C {
		crcAt = off + tlvHeaderLen
		off = putTLVHeader(b, off, TypeCRC32C, 4)
		clear(b[off : off+4])
		off += 4
	}
	if h.VPCEndpointID != "" {
		off = putTLVHeader(b, off, TypeAWS, 1+len(h.VPCEndpointID))
		b[off] = AWSSubtypeVPCEndpointID
		off += 1 + copy(b[off+1:], h.VPCEndpointID)
	}
	for _, t := range h.TLVs {
		off = putTLVHeader(b, off, t.Type, len(t.Value))
		off += copy(b[off:], t.Value)
	}
	if pad := n - off; pad >= tlvHeaderLen {
		off = putTLVHeader(b, off, TypeNOOP, pad-tlvHeaderLen)
		clear(b[off:n])
	}
	if crcAt >= 0 {
		binary.BigEndian.PutUint32(b[crcAt:], crc32.Checksum(b, castagnoli))
	}
	return n, nil
}

func putTLVHeader(b []byte, off int, typ byte, length int) int {
	b[off] = typ
	binary.BigEndian.PutUint16(b[off+1:], uint16(length))
	return off + tlvHeaderLen
}
