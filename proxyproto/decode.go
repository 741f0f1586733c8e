package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
)

// Errors of Decode, one per malformation; test them with errors.Is.
var (
	ErrNoSignature   = errors.New("proxyproto: no PROXY protocol v2 signature")
	ErrTruncated     = errors.New("proxyproto: header truncated")
	ErrVersion       = errors.New("proxyproto: not protocol version 2")
	ErrCommand       = errors.New("proxyproto: unknown command")
	ErrFamily        = errors.New("proxyproto: unsupported address family or transport")
	ErrAddressLength = errors.New("proxyproto: header too short for its addresses")
	ErrTLV           = errors.New("proxyproto: TLV runs past the end of the header")
	ErrCRCLength     = errors.New("proxyproto: CRC32C TLV is not 4 bytes")
	ErrCRCMismatch   = errors.New("proxyproto: CRC32C does not match")
	ErrAWSTLV        = errors.New("proxyproto: malformed AWS TLV")
)

// Decoder decodes headers; its zero value accepts DefaultMaxLength bytes.
type Decoder struct {
	// MaxLength bounds the total header size (0 = DefaultMaxLength).
	MaxLength int
}

// Decode parses the header at the start of b and returns it with its
// length. TLV values alias b. A CRC mismatch returns the header with the
// error ErrCRCMismatch, so a caller may log what it was sent.
func Decode(b []byte) (Header, int, error) { return Decoder{}.Decode(b) }

// Decode is the package function with the decoder's bound.
func (d Decoder) Decode(b []byte) (Header, int, error) {
	var h Header
	n, err := d.length(b)
	if err != nil {
		return h, 0, err
	}
	if len(b) < n {
		return h, 0, fmt.Errorf("%w: have %d of %d bytes", ErrTruncated, len(b), n)
	}
	b = b[:n]
	h.Length = n
	switch b[12] {
	case byte(Local), byte(Proxy):
		h.Command = Command(b[12])
	default:
		if b[12]>>4 != 2 {
			return h, 0, fmt.Errorf("%w (version %d)", ErrVersion, b[12]>>4)
		}
		return h, 0, fmt.Errorf("%w 0x%x", ErrCommand, b[12]&0x0F)
	}
	h.Family = Family(b[13])
	off := FixedLen
	switch h.Family {
	case Unspec:
	case TCP4:
		if n < off+addrLen4 {
			return h, 0, ErrAddressLength
		}
		a := b[off:]
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:]))
		off += addrLen4
	case TCP6:
		if n < off+addrLen6 {
			return h, 0, ErrAddressLength
		}
		a := b[off:]
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])), binary.BigEndian.Uint16(a[32:]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])), binary.BigEndian.Uint16(a[34:]))
		off += addrLen6
	default:
		if h.Command == Local {
			// A receiver must ignore the addresses of a LOCAL header,
			// whatever their family (HAProxy's spec, 2.2).
			off = n
			break
		}
		return h, 0, fmt.Errorf("%w 0x%02x", ErrFamily, b[13])
	}
	if h.Command == Local {
		h.Source, h.Destination = netip.AddrPort{}, netip.AddrPort{}
	}
	crcAt := -1
	for off < n {
		if n-off < tlvHeaderLen {
			return h, 0, ErrTLV
		}
		typ := b[off]
		l := int(binary.BigEndian.Uint16(b[off+1:]))
		off += tlvHeaderLen
		if n-off < l {
			return h, 0, ErrTLV
		}
		v := b[off : off+l]
		switch typ {
		case TypeCRC32C:
			if l != 4 {
				return h, 0, ErrCRCLength
			}
			h.HasCRC, crcAt = true, off
		case TypeNOOP:
		case TypeAWS:
			if l < 1 {
				return h, 0, ErrAWSTLV
			}
			if v[0] == AWSSubtypeVPCEndpointID {
				h.VPCEndpointID = string(v[1:])
			} else {
				h.TLVs = append(h.TLVs, TLV{Type: typ, Value: v})
			}
		default:
			h.TLVs = append(h.TLVs, TLV{Type: typ, Value: v})
		}
		off += l
	}
	if crcAt >= 0 {
		want := binary.BigEndian.Uint32(b[crcAt:])
		c := crc32.Update(0, castagnoli, b[:crcAt])
		c = crc32.Update(c, castagnoli, zero4[:])
		c = crc32.Update(c, castagnoli, b[crcAt+4:])
		h.CRCOK = c == want
		if !h.CRCOK {
			return h, n, ErrCRCMismatch
		}
	}
	return h, n, nil
}

var zero4 [4]byte

// length checks the fixed part and returns the total header length.
func (d Decoder) length(b []byte) (int, error) {
	if len(b) < FixedLen {
		if !bytes.HasPrefix(Signature[:], b[:min(len(b), len(Signature))]) {
			return 0, ErrNoSignature
		}
		return 0, fmt.Errorf("%w: have %d of %d bytes", ErrTruncated, len(b), FixedLen)
	}
	if !bytes.Equal(b[:12], Signature[:]) {
		return 0, ErrNoSignature
	}
	n := FixedLen + int(binary.BigEndian.Uint16(b[14:16]))
	limit := d.MaxLength
	if limit <= 0 {
		limit = DefaultMaxLength
	}
	if n > limit {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLong, n, limit)
	}
	return n, nil
}

// Read reads exactly one header from r (nothing after it) and decodes it.
// The returned header owns its bytes.
func (d Decoder) Read(r io.Reader) (Header, error) {
	var fixed [FixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, fmt.Errorf("%w: %v", ErrTruncated, err)
		}
		return Header{}, err
	}
	n, err := d.length(fixed[:])
	if err != nil {
		return Header{}, err
	}
	buf := make([]byte, n)
	copy(buf, fixed[:])
	if _, err := io.ReadFull(r, buf[FixedLen:]); err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	h, _, err := d.Decode(buf)
	return h, err
}
