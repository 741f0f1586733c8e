package peer

import (
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
}

const streamBlock = 1 << 20 // a multiple of 8

func newStream(seed uint64) *stream {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	block := make([]byte, streamBlock)
	rand.NewChaCha8(s).Read(block)
	return &stream{block: block}
}

func (s *stream) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		off := int(s.pos % streamBlock)
		m := min(len(p), streamBlock-off)
		xorWord(p[:m], s.block[off:off+m], repetitionKey(uint64(s.pos/streamBlock)), off)
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

// xorWord sets dst to src XOR the repeating little-endian key, src's first
// byte lying at offset off of the key's 8-byte period.
func xorWord(dst, src []byte, key uint64, off int) {
	var k [8]byte
	binary.LittleEndian.PutUint64(k[:], key)
	i := 0
	for ; i < len(src) && (off+i)%8 != 0; i++ {
		dst[i] = src[i] ^ k[(off+i)%8]
	}
	for ; i+8 <= len(src); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:])^key)
	}
	for ; i < len(src); i++ {
		dst[i] = src[i] ^ k[(off+i)%8]
	}
}
