package peer

import (
	"bytes"
	"hash/crc32"
	"io"
	"testing"
)

// TestTheStreamIsTheSameHoweverItIsRead: the client makes the stream twice
// (to send, and to check the echo), in reads of whatever size its copies
// ask for; the bytes must not depend on that.
func TestTheStreamIsTheSameHoweverItIsRead(t *testing.T) {
	const n = 3*streamBlock + 12345
	whole := make([]byte, n)
	newStream(7).Read(whole)
	var pieces bytes.Buffer
	s := newStream(7)
	for i := 1; pieces.Len() < n; i = i*7%1000 + 1 {
		b := make([]byte, min(i*97, n-pieces.Len()))
		s.Read(b)
		pieces.Write(b)
	}
	if !bytes.Equal(whole, pieces.Bytes()) {
		t.Fatal("the stream read in pieces differs from the stream read whole")
	}
	if bytes.Equal(whole[:streamBlock], whole[streamBlock:2*streamBlock]) {
		t.Fatal("two repetitions of the block are the same bytes")
	}
	other := make([]byte, 4096)
	newStream(8).Read(other)
	if bytes.Equal(whole[:4096], other) {
		t.Fatal("two seeds make the same stream")
	}
}

// TestTheEchoCheckFindsTheFirstDifference: a byte changed, two bytes
// swapped, a block repeated, and an echo cut short are each found at the
// right offset; the stream itself passes.
func TestTheEchoCheckFindsTheFirstDifference(t *testing.T) {
	const n = 2*streamBlock + 100
	sent := make([]byte, n)
	newStream(1).Read(sent)
	check := func(echo []byte) int64 {
		c := &echoCheck{want: io.LimitReader(newStream(1), n), sum: crc32.New(castagnoli), first: -1}
		for b := echo; len(b) > 0; {
			k := min(len(b), 65536)
			c.Write(b[:k])
			b = b[k:]
		}
		return c.first
	}
	if got := check(sent); got != -1 {
		t.Fatalf("the stream itself differs at %d", got)
	}
	changed := bytes.Clone(sent)
	changed[streamBlock+5] ^= 1
	swapped := bytes.Clone(sent)
	swapped[100], swapped[101] = swapped[101], swapped[100]
	repeated := append(bytes.Clone(sent[:streamBlock]), sent[:streamBlock]...)
	for _, c := range []struct {
		name string
		echo []byte
		want int64
	}{
		{"a changed byte", changed, streamBlock + 5},
		{"two bytes swapped", swapped, 100},
		{"the first block twice", repeated, streamBlock},
	} {
		if got := check(c.echo); got != c.want {
			t.Errorf("%s: first difference at %d, want %d", c.name, got, c.want)
		}
	}
}

func BenchmarkStream(b *testing.B) {
	buf := make([]byte, 256<<10)
	s := newStream(1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		s.Read(buf)
	}
}
