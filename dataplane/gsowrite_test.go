package dataplane

import (
	"os"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// BenchmarkWriteGSO is the link's write of one 64 KiB TCP segment with its
// virtio-net header, as gVisor hands it over under host GSO, to /dev/null
// (the TUN's place): the per-packet work of the download path.
func BenchmarkWriteGSO(b *testing.B) {
	l := devNullLink(b)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv4MinimumSize + header.TCPMinimumSize,
		Payload:            buffer.MakeWithData(make([]byte, gsoPayloadMax)),
	})
	defer pkt.DecRef()
	pkt.TransportHeader().Push(header.TCPMinimumSize)
	pkt.NetworkHeader().Push(header.IPv4MinimumSize)
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: 8420, L3HdrLen: header.IPv4MinimumSize}
	pkts := []*stack.PacketBuffer{pkt}
	b.ReportAllocs()
	b.SetBytes(int64(pkt.Size()))
	for b.Loop() {
		if n, err := l.writeGSO(pkts); n != 1 || err != nil {
			b.Fatal(n, err)
		}
	}
	if got := l.eni.maxWire.Load(); got != header.IPv4MinimumSize+header.TCPMinimumSize+8420 {
		b.Fatalf("largest wire packet %d", got)
	}
}

// BenchmarkWritePackets is the same segment through the link's whole write
// path, as gVisor calls it: the ACK holder's look at the segment, then the
// write. Its difference from BenchmarkWriteGSO is what the holder costs a
// packet that it does not hold.
func BenchmarkWritePackets(b *testing.B) {
	l := devNullLink(b)
	pkt := segment(consumerAP, header.TCPFlagAck|header.TCPFlagPsh, 1, gsoPayloadMax, false)
	defer pkt.DecRef()
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: 8420, L3HdrLen: header.IPv4MinimumSize}
	var list stack.PacketBufferList
	list.PushBack(pkt)
	b.ReportAllocs()
	b.SetBytes(int64(pkt.Size()))
	for b.Loop() {
		if n, err := l.WritePackets(list); n != 1 || err != nil {
			b.Fatal(n, err)
		}
	}
}

// devNullLink is a link that writes to /dev/null, the TUN's place.
func devNullLink(b *testing.B) *tunLink {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	rc, err := f.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	return &tunLink{eni: &eniState{}, gsoWrite: rc}
}
