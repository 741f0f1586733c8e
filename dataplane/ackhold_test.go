package dataplane

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ackLink is a link whose TUN writes land, one message each, in a
// seqpacket socket the test reads.
type ackLink struct {
	*tunLink
	read int
}

func newAckLink(t *testing.T) *ackLink {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	unix.SetNonblock(fds[1], true)
	w := os.NewFile(uintptr(fds[0]), "tun")
	t.Cleanup(func() { w.Close(); unix.Close(fds[1]) })
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return &ackLink{tunLink: &tunLink{eni: &eniState{}, gsoWrite: rc}, read: fds[1]}
}

var (
	consumerAP = netip.MustParseAddrPort("198.18.0.10:40000")
	otherAP    = netip.MustParseAddrPort("198.18.0.11:40001")
	eniAP      = netip.MustParseAddrPort("198.18.1.10:80")
)

// segment builds what gVisor would hand the link: a TCP segment from the
// ENI to peer.
func segment(peer netip.AddrPort, flags header.TCPFlags, ack uint32, payload int, sack bool) *stack.PacketBuffer {
	opts := []byte{}
	if sack {
		opts = []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionSACK, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv4MinimumSize + header.TCPMinimumSize + len(opts),
		Payload:            buffer.MakeWithData(make([]byte, payload)),
	})
	th := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize + len(opts)))
	th.Encode(&header.TCPFields{SrcPort: eniAP.Port(), DstPort: peer.Port(), SeqNum: 1000, AckNum: ack,
		DataOffset: uint8(header.TCPMinimumSize + len(opts)), Flags: flags, WindowSize: 1000})
	copy(th[header.TCPMinimumSize:], opts)
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), Protocol: uint8(header.TCPProtocolNumber), TTL: 64,
		SrcAddr: tcpip.AddrFrom4(eniAP.Addr().As4()), DstAddr: tcpip.AddrFrom4(peer.Addr().As4())})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	return pkt
}

// hint is the read loop seeing a consumer segment of payload bytes (or a
// FIN) that ends at end.
func (l *ackLink) hint(peer netip.AddrPort, end uint32, payload int, fin bool) {
	l.hints.noteShort(inbound(peer, end, payload, fin), header.IPv4MinimumSize+header.TCPMinimumSize)
}

// inbound is a consumer segment of payload bytes (or a FIN) that ends at
// end, as the read loop sees it.
func inbound(peer netip.AddrPort, end uint32, payload int, fin bool) []byte {
	flags := header.TCPFlagAck | header.TCPFlagPsh
	seq := end - uint32(payload)
	if fin {
		flags = header.TCPFlagAck | header.TCPFlagFin
		seq--
	}
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+payload)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), Protocol: uint8(header.TCPProtocolNumber), TTL: 64,
		SrcAddr: tcpip.AddrFrom4(peer.Addr().As4()), DstAddr: tcpip.AddrFrom4(eniAP.Addr().As4())})
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{SrcPort: peer.Port(), DstPort: eniAP.Port(),
		SeqNum: seq, AckNum: 1000, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 1000})
	return b
}

// send hands the link segments as gVisor's NIC does, through its queueing
// discipline, one call each.
func (l *ackLink) send(t *testing.T, pkts ...*stack.PacketBuffer) {
	t.Helper()
	q := linkQDisc{l.tunLink}
	for _, p := range pkts {
		if err := q.WritePacket(p); err != nil {
			t.Fatalf("WritePacket: %v", err)
		}
		p.DecRef()
	}
}

// written is what reached the TUN since the last call: "ack N", "data N",
// "fin N", "rst N", "sack N", in order.
func (l *ackLink) written(t *testing.T) string {
	t.Helper()
	var out []string
	buf := make([]byte, 1<<17)
	for {
		n, err := unix.Read(l.read, buf) // non-blocking: EAGAIN when all is read
		if err != nil {
			break
		}
		th := header.TCP(buf[virtioNetHdrLen+header.IPv4MinimumSize : n])
		kind := "ack"
		switch {
		case th.Flags()&header.TCPFlagFin != 0:
			kind = "fin"
		case th.Flags()&header.TCPFlagRst != 0:
			kind = "rst"
		case n > virtioNetHdrLen+header.IPv4MinimumSize+int(th.DataOffset()):
			kind = "data"
		case hasSACK(th):
			kind = "sack"
		}
		peer := ""
		if th.DestinationPort() == otherAP.Port() {
			peer = "other "
		}
		out = append(out, fmt.Sprintf("%s%s %d", peer, kind, th.AckNumber()))
	}
	return strings.Join(out, ", ")
}

func TestAnACKOfAShortSegmentWaitsForTheAnswerToCarryIt(t *testing.T) {
	l := newAckLink(t)
	ack := header.TCPFlagAck
	l.hint(consumerAP, 101, 100, false)
	l.send(t, segment(consumerAP, ack, 101, 0, false))
	if got := l.written(t); got != "" {
		t.Fatalf("the request's ACK went out at once: %s", got)
	}
	// Another connection's packets go by; the held ACK stays held.
	l.send(t, segment(otherAP, ack|header.TCPFlagPsh, 7, 10, false))
	l.send(t, segment(consumerAP, ack|header.TCPFlagPsh, 101, 50, false))
	if got, want := l.written(t), "other data 7, data 101"; got != want {
		t.Fatalf("written %q, want %q", got, want)
	}
	if got := l.eni.acksCarried.Load(); got != 1 {
		t.Errorf("acks carried %d, want 1", got)
	}
	// Nothing is held: the timer is stopped, not left to wake the
	// forwarder for nothing.
	if l.ackTimer.Stop() {
		t.Error("the ACK timer is still armed with nothing held")
	}
	// The consumer's FIN: its ACK rides on the forwarder's FIN.
	l.hint(consumerAP, 102, 0, true)
	l.send(t, segment(consumerAP, ack, 102, 0, false), segment(consumerAP, ack|header.TCPFlagFin, 102, 0, false))
	if got, want := l.written(t), "fin 102"; got != want {
		t.Fatalf("written %q, want %q", got, want)
	}
}

func TestWhatAnACKHolderNeverHoldsOrDrops(t *testing.T) {
	ack := header.TCPFlagAck
	type hint struct {
		end     uint32
		payload int
	}
	for _, c := range []struct {
		name  string
		hints []hint
		send  []*stack.PacketBuffer
		want  string
	}{
		{"an ACK of a full segment", []hint{{8461, 8460}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 8461, 0, false)}, "ack 8461"},
		{"an ACK of no noted segment", []hint{{100, 99}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 50, 0, false)}, "ack 50"},
		{"an ACK of another connection's noted segment", []hint{{101, 100}},
			[]*stack.PacketBuffer{segment(otherAP, ack, 101, 0, false)}, "other ack 101"},
		{"an ACK with SACK blocks", []hint{{101, 100}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 101, 0, true)}, "sack 101"},
		{"a second ACK of the same (duplicate or window update)", []hint{{101, 100}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 101, 0, false), segment(consumerAP, ack, 101, 0, false)}, "ack 101, ack 101"},
		{"a second ACK that acknowledges more goes out at once, alone", []hint{{101, 100}, {201, 100}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 101, 0, false), segment(consumerAP, ack, 201, 0, false)}, "ack 201"},
		{"a RST goes out after the held ACK", []hint{{101, 100}},
			[]*stack.PacketBuffer{segment(consumerAP, ack, 101, 0, false), segment(consumerAP, ack|header.TCPFlagRst, 101, 0, false)}, "ack 101, rst 101"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newAckLink(t)
			for _, h := range c.hints {
				l.hint(consumerAP, h.end, h.payload, false)
			}
			l.send(t, c.send...)
			if got := l.written(t); got != c.want {
				t.Fatalf("written %q, want %q", got, c.want)
			}
		})
	}
	t.Run("nothing comes: the ACK goes out within the bound", func(t *testing.T) {
		l := newAckLink(t)
		l.hint(consumerAP, 101, 100, false)
		sent := time.Now()
		l.send(t, segment(consumerAP, ack, 101, 0, false))
		var got string
		for got == "" && time.Since(sent) < 5*time.Second {
			time.Sleep(50 * time.Microsecond)
			got = l.written(t)
		}
		if got != "ack 101" {
			t.Fatalf("written %q, want the held ACK", got)
		}
		// ackHoldData when busy; an idle process's timers fire on a 1 ms
		// tick.
		t.Logf("held for %v (bound %v)", time.Since(sent), ackHoldData)
		if l.holding != 0 {
			t.Errorf("%d still held", l.holding)
		}
	})
}

// Each held ACK has a deadline of its own: a timer armed for one does not
// take the others out early, and the ACK of a FIN waits longer than the
// ACK of a request. (A late timer may send several at once: each only once
// its own time is up.)
func TestEachHeldACKWaitsItsOwnTime(t *testing.T) {
	l := newAckLink(t)
	ack := header.TCPFlagAck
	third := netip.MustParseAddrPort("198.18.0.12:40002")
	held := map[string]time.Time{}
	bound := map[string]time.Duration{"other ack 11": ackHoldFin, "ack 101": ackHoldData, "ack 201": ackHoldData}
	l.hint(otherAP, 11, 0, true) // the other connection's FIN
	held["other ack 11"] = time.Now()
	l.send(t, segment(otherAP, ack, 11, 0, false))
	l.hint(consumerAP, 101, 100, false)
	held["ack 101"] = time.Now()
	l.send(t, segment(consumerAP, ack, 101, 0, false))
	// Half a request's bound later, a third connection's request is held.
	time.Sleep(ackHoldData / 2)
	l.hint(third, 201, 100, false)
	held["ack 201"] = time.Now()
	l.send(t, segment(third, ack, 201, 0, false))

	out := map[string]time.Time{}
	for end := time.Now().Add(5 * time.Second); len(out) < len(held) && time.Now().Before(end); time.Sleep(20 * time.Microsecond) {
		got := l.written(t)
		if got == "" {
			continue
		}
		for _, w := range strings.Split(got, ", ") {
			if _, ok := held[w]; !ok {
				t.Fatalf("written %q", w)
			}
			out[w] = time.Now()
		}
	}
	for w, at := range held {
		sent, ok := out[w]
		if !ok {
			t.Fatalf("%s never went out", w)
		}
		if d := sent.Sub(at); d < bound[w]-ackFlushSlack {
			t.Errorf("%s went out after %v, before its bound %v", w, d, bound[w])
		} else {
			t.Logf("%s held %v (bound %v)", w, d.Round(time.Microsecond), bound[w])
		}
	}
	if l.holding != 0 {
		t.Errorf("%d still held", l.holding)
	}
}

// BenchmarkNoteShort is what the read loop adds to each short consumer
// segment for the ACK holder: read its connection and end, note them.
func BenchmarkNoteShort(b *testing.B) {
	l := &ackLink{tunLink: &tunLink{eni: &eniState{}}}
	pkt := inbound(consumerAP, 101, 100, false)
	b.ReportAllocs()
	for b.Loop() {
		l.hints.noteShort(pkt, header.IPv4MinimumSize+header.TCPMinimumSize)
	}
}

// BenchmarkHeldAckCarried is one request/response exchange as the link
// sees it: the request's ACK held (hint, hold, timer armed), then the
// answer written and the ACK dropped. The answer's write alone is
// BenchmarkWritePacket's work for a small segment.
func BenchmarkHeldAckCarried(b *testing.B) {
	l := &ackLink{tunLink: devNullLink(b)}
	ack := segment(consumerAP, header.TCPFlagAck, 101, 0, false)
	answer := segment(consumerAP, header.TCPFlagAck|header.TCPFlagPsh, 101, 1, false)
	defer ack.DecRef()
	defer answer.DecRef()
	q := linkQDisc{l.tunLink}
	request := inbound(consumerAP, 101, 100, false)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		l.hints.noteShort(request, header.IPv4MinimumSize+header.TCPMinimumSize)
		q.WritePacket(ack)
		q.WritePacket(answer)
		n++
	}
	// A pause longer than ackHoldData between the two writes lets the
	// timer send an ACK instead; nearly all must be carried.
	if got := l.eni.acksCarried.Load(); got < uint64(n)*99/100 {
		b.Fatalf("%d ACKs carried in %d exchanges", got, n)
	}
}
