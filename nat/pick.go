package nat

import (
	"encoding/binary"
	"net/netip"
)

// Flow is the 5-tuple of a TCP connection as the consumer opened it.
type Flow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Hash is a 64-bit FNV-1a of the 5-tuple; it allocates nothing.
func (f Flow) Hash() uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= prime
		}
	}
	s, d := f.Src.As16(), f.Dst.As16()
	mix(s[:])
	mix(d[:])
	var pp [5]byte
	binary.BigEndian.PutUint16(pp[0:], f.SrcPort)
	binary.BigEndian.PutUint16(pp[2:], f.DstPort)
	pp[4] = f.Proto
	mix(pp[:])
	return h
}

// Candidate is a target as target choice sees it.
type Candidate struct {
	Addr netip.AddrPort
	AZ   string
}

// Pick chooses a target for a flow by rendezvous (highest random weight)
// hashing over the candidates in zone (or all of them with crossZone), so
// that removing one target only moves the flows that were on it. It returns
// false when there is no candidate.
func Pick(cands []Candidate, zone string, crossZone bool, f Flow) (Candidate, bool) {
	fh := f.Hash()
	var best Candidate
	var bestW uint64
	found := false
	for _, c := range cands {
		if !crossZone && c.AZ != zone {
			continue
		}
		w := mix64(fh ^ addrPortHash(c.Addr))
		if !found || w > bestW {
			best, bestW, found = c, w, true
		}
	}
	return best, found
}

func addrPortHash(a netip.AddrPort) uint64 {
	b := a.Addr().As16()
	h := binary.BigEndian.Uint64(b[0:8])*31 + binary.BigEndian.Uint64(b[8:16])
	return h*65599 + uint64(a.Port())
}

// mix64 is the splitmix64 finaliser: it spreads close inputs far apart.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
