package dataplane

import (
	"bytes"
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

// BenchmarkWritePacket is the same segment through the link's whole write
// path, as gVisor's NIC hands it over (the link's queueing discipline):
// the ACK holder's look at the segment, then the write. Its difference
// from BenchmarkWriteGSO is what the holder costs a packet that it does
// not hold.
func BenchmarkWritePacket(b *testing.B) {
	l := devNullLink(b)
	pkt := segment(consumerAP, header.TCPFlagAck|header.TCPFlagPsh, 1, gsoPayloadMax, false)
	defer pkt.DecRef()
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: 8420, L3HdrLen: header.IPv4MinimumSize}
	q := linkQDisc{l}
	b.ReportAllocs()
	b.SetBytes(int64(pkt.Size()))
	for b.Loop() {
		if err := q.WritePacket(pkt); err != nil {
			b.Fatal(err)
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

// TestAppendViewsIsThePacketsBytes checks the writev vector against the
// packet's own account of its bytes (AsSlices), for packets whose headers
// leave reserved room in front and whose payload spans several views.
func TestAppendViewsIsThePacketsBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reserve  int   // header room; headers fill all of it or part
		payloads []int // the payload's views
	}{
		{"pure ACK, headers fill their room", header.IPv4MinimumSize + header.TCPMinimumSize, nil},
		{"room left in front", 128, []int{1}},
		{"one large view", 96, []int{gsoPayloadMax}},
		{"several views", 60, []int{3, 8420, 1, 65536}},
		{"an empty view among them", 60, []int{10, 0, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var payload buffer.Buffer
			for i, n := range tc.payloads {
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(i*31 + j)
				}
				payload.Append(buffer.NewViewWithData(b))
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{ReserveHeaderBytes: tc.reserve, Payload: payload})
			defer pkt.DecRef()
			th := pkt.TransportHeader().Push(header.TCPMinimumSize)
			for i := range th {
				th[i] = 0xa0 + byte(i)
			}
			nh := pkt.NetworkHeader().Push(header.IPv4MinimumSize)
			for i := range nh {
				nh[i] = 0x40 + byte(i)
			}
			want := bytes.Join(pkt.AsSlices(), nil)
			iov := appendViews([][]byte{{0xff}}, pkt)
			if !bytes.Equal(iov[0], []byte{0xff}) {
				t.Fatalf("the vector's first entry changed: %x", iov[0])
			}
			if got := bytes.Join(iov[1:], nil); !bytes.Equal(got, want) {
				t.Fatalf("vector of %d bytes, want the packet's %d (first %x, want %x)", len(got), len(want), got[:min(len(got), 8)], want[:min(len(want), 8)])
			}
		})
	}
}
