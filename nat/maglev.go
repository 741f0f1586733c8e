package nat

import (
	"encoding/binary"
	"net/netip"

	"pvlink.dev/pvlink/flowtable"
)

// MaglevSize is the lookup table size: a prime much larger than any target
// group, so each target's share differs from the others' by at most one
// entry in 65537 (Maglev paper, Eisenbud et al., NSDI 2016).
const MaglevSize = 65537

// Maglev is an immutable lookup table from flow hash to target index.
type Maglev struct {
	table []uint16
	n     int
}

// NewMaglev fills the table for n targets named by keys (their IP:port).
// Each target walks its own permutation of the table, and targets take
// turns claiming their next free entry.
func NewMaglev(keys []netip.AddrPort) *Maglev {
	n := len(keys)
	m := &Maglev{n: n}
	if n == 0 {
		return m
	}
	m.table = make([]uint16, MaglevSize)
	filled := make([]bool, MaglevSize)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, k := range keys {
		h1, h2 := keyHashes(k)
		offset[i] = h1 % MaglevSize
		skip[i] = h2%(MaglevSize-1) + 1
	}
	for placed := 0; ; {
		for i := 0; i < n; i++ {
			c := (offset[i] + next[i]*skip[i]) % MaglevSize
			for filled[c] {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % MaglevSize
			}
			m.table[c] = uint16(i)
			filled[c] = true
			next[i]++
			placed++
			if placed == MaglevSize {
				return m
			}
		}
	}
}

// Lookup returns the index of the target for a flow hash, or -1.
func (m *Maglev) Lookup(h uint64) int {
	if m.n == 0 {
		return -1
	}
	return int(m.table[h%MaglevSize])
}

// Shares counts the table entries of each target.
func (m *Maglev) Shares() []int {
	out := make([]int, m.n)
	for _, i := range m.table {
		out[i]++
	}
	return out
}

func keyHashes(k netip.AddrPort) (uint64, uint64) {
	a := k.Addr().As16()
	x := binary.BigEndian.Uint64(a[0:8])
	y := binary.BigEndian.Uint64(a[8:16]) ^ uint64(k.Port())<<48
	return mix64(x ^ mix64(y)), mix64(y ^ 0x9E3779B97F4A7C15 ^ mix64(x+1))
}

// FlowHash hashes a 5-tuple for target choice. It is independent of the
// flow table's seeded hash, and stable across forwarders and restarts, like
// an NLB's flow hash.
func FlowHash(k flowtable.Key) uint64 {
	s, d := k.Src.As16(), k.Dst.As16()
	h := mix64(binary.BigEndian.Uint64(s[0:8]) ^ 0x243F6A8885A308D3)
	h = mix64(h ^ binary.BigEndian.Uint64(s[8:16]))
	h = mix64(h ^ binary.BigEndian.Uint64(d[0:8]))
	h = mix64(h ^ binary.BigEndian.Uint64(d[8:16]))
	return mix64(h ^ (uint64(k.SrcPort)<<24 | uint64(k.DstPort)<<8 | uint64(k.Proto)))
}

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
