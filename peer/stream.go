package peer

import (
	"crypto/subtle"
	"encoding/binary"
	"math/rand/v2"
)

// stream is an endless seeded pseudo-random byte stream that costs far
// less than the transfer it feeds: a 1 MiB block of ChaCha8 output made
// once, repeated, each repetition XORed with a 64-bit word of its own, so
// that a byte out of place (within a block or from another repetition) is
// a byte that differs. Making it runs at memory speed, so the client can
// make it twice (to send, and to compare the echo with).
type stream struct {
	block []byte
	pos   int64
	// pad is the current repetition's key, repeated, for XORing a
	// block's bytes with crypto/subtle's vector code (a word at a time it
	// ran at 7 GB/s, and the client makes the stream twice).
	pad    []byte
	padRep int64 // the repetition pad holds, -1 for none
}

const (
	streamBlock = 1 << 20 // a multiple of 8
	padLen      = 64 << 10
)

func newStream(seed uint64) *stream {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	block := make([]byte, streamBlock)
	rand.NewChaCha8(s).Read(block)
	return &stream{block: block, pad: make([]byte, padLen+8), padRep: -1}
}

func (s *stream) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		off := int(s.pos % streamBlock)
		if rep := s.pos / streamBlock; rep != s.padRep {
			binary.LittleEndian.PutUint64(s.pad, repetitionKey(uint64(rep)))
			for i := 8; i < len(s.pad); i *= 2 {
				copy(s.pad[i:], s.pad[:i])
			}
			s.padRep = rep
		}
		// The key's byte at block offset off is pad[off%8].
		m := min(len(p), streamBlock-off, padLen)
		subtle.XORBytes(p[:m], s.block[off:off+m], s.pad[off%8:off%8+m])
		p = p[m:]
		s.pos += int64(m)
	}
	return n, nil
}

// repetitionKey is repetition r's word (a SplitMix64 step).
func repetitionKey(r uint64) uint64 {
	z := (r + 1) * 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
