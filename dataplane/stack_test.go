package dataplane

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// wiredStack is a netstack on a channel link, for a test to move packets
// by hand.
type wiredStack struct {
	s    *stack.Stack
	link *channel.Endpoint
}

func wireStack(t testing.TB, s *stack.Stack, addr string) wiredStack {
	t.Helper()
	link := channel.New(256, 9000, "")
	if err := s.CreateNIC(1, link); err != nil {
		t.Fatal(err)
	}
	a := tcpip.AddrFrom4(netip.MustParseAddr(addr).As4())
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: a.WithPrefix()}, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	t.Cleanup(func() { link.Close(); s.Close() })
	return wiredStack{s, link}
}

// moveOne takes one packet from's link sent and delivers it to to's link,
// as a TUN read loop delivers a frame; it reports whether there was one.
func moveOne(from, to wiredStack) bool {
	pkt := from.link.Read()
	if pkt == nil {
		return false
	}
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
	pkt.DecRef()
	to.link.InjectInbound(ipv4.ProtocolNumber, in)
	in.DecRef()
	return true
}

// tcpPair is a connection between a client on a plain netstack and a
// server on a forwarder's (newStack, inline processing on), over channel
// links that a test moves packets across by hand.
type tcpPair struct {
	srv, cli       wiredStack
	segments       segmentProcessor
	client, server tcpip.Endpoint
	serverQueue    *waiter.Queue // the server endpoint's
}

// newTCPPair connects the pair; it skips (fails under CI) with a gVisor
// without pvlink's changes.
func newTCPPair(t testing.TB) *tcpPair {
	t.Helper()
	srvStack := newStack()
	segments := inlineProcessing(srvStack)
	if segments == nil {
		srvStack.Close()
		if os.Getenv("CI") != "" {
			t.Fatal("this build's gVisor has no inline processing: build with -modfile=build/go.mod (make)")
		}
		t.Skip("gVisor as released: run with -modfile=build/go.mod (make test)")
	}
	p := &tcpPair{segments: segments}
	p.srv = wireStack(t, srvStack, "198.18.0.1")
	p.cli = wireStack(t, stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	}), "198.18.0.2")

	var lwq, cwq waiter.Queue
	ln, terr := p.srv.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &lwq)
	if terr != nil {
		t.Fatal(terr)
	}
	t.Cleanup(ln.Close)
	if err := ln.Bind(tcpip.FullAddress{Port: 80}); err != nil {
		t.Fatal(err)
	}
	if err := ln.Listen(4); err != nil {
		t.Fatal(err)
	}
	if p.client, terr = p.cli.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &cwq); terr != nil {
		t.Fatal(terr)
	}
	t.Cleanup(p.client.Close)
	if err := p.client.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(netip.MustParseAddr("198.18.0.1").As4()), Port: 80}); err != nil {
		if _, started := err.(*tcpip.ErrConnectStarted); !started {
			t.Fatal(err)
		}
	}
	// The handshake, each delivery processed as a read loop does.
	for deadline := time.Now().Add(5 * time.Second); p.server == nil; {
		if time.Now().After(deadline) {
			t.Fatal("no connection after 5 s of moving packets")
		}
		for moveOne(p.cli, p.srv) {
			segments.ProcessQueued()
		}
		for moveOne(p.srv, p.cli) {
		}
		p.server, p.serverQueue, _ = ln.Accept(nil)
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(p.server.Close)
	return p
}

// send has the client write s and delivers its segment to the server's
// stack, unprocessed.
func (p *tcpPair) send(t testing.TB, s []byte) {
	t.Helper()
	if _, err := p.client.Write(bytes.NewReader(s), tcpip.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pkt := p.cli.link.ReadContext(ctx)
	if pkt == nil {
		t.Fatalf("the client sent no segment for %q", s)
	}
	in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
	pkt.DecRef()
	p.srv.link.InjectInbound(ipv4.ProtocolNumber, in)
	in.DecRef()
}

// read reads what the server's endpoint holds.
func (p *tcpPair) read(b *bytes.Buffer) tcpip.Error {
	b.Reset()
	_, err := p.server.Read(b, tcpip.ReadOptions{})
	return err
}

// TestSegmentsWaitForTheGoroutineThatDeliveredThem shows pvlink's change to
// gVisor's TCP dispatcher (third_party/gvisor): with inline processing on,
// a segment for an established endpoint is processed by whoever delivered
// it, when it calls ProcessQueued, and by no processor goroutine meanwhile;
// HandQueued gives it to the processors instead.
func TestSegmentsWaitForTheGoroutineThatDeliveredThem(t *testing.T) {
	p := newTCPPair(t)
	var b bytes.Buffer

	p.send(t, []byte("request"))
	// Delivered, not processed: no processor goroutine takes it.
	time.Sleep(50 * time.Millisecond)
	if err := p.read(&b); err == nil {
		t.Fatalf("read %q before the deliverer processed the segment", b.String())
	} else if _, wait := err.(*tcpip.ErrWouldBlock); !wait {
		t.Fatal(err)
	}
	p.segments.ProcessQueued()
	// Processed by the time ProcessQueued returns.
	if err := p.read(&b); err != nil || b.String() != "request" {
		t.Fatalf("after ProcessQueued: read %q, %v; want the request", b.String(), err)
	}

	p.send(t, []byte("more"))
	p.segments.HandQueued()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		err := p.read(&b)
		if err == nil {
			if b.String() != "more" {
				t.Fatalf("read %q after HandQueued, want more", b.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gVisor's processors did not take the segment HandQueued gave them: %v", err)
		}
	}
}

// BenchmarkShortSegmentProcessed is the way of a short consumer segment
// from its delivery to the stack until the reader its endpoint wakes has
// it, as the relay is woken: processed by the delivering goroutine
// (read-loop, as the forwarder's read loop does for requests and FINs), or
// by a processor goroutine woken for it (processors, inline processing
// off: every segment before c5e4acb). Each op also includes the client's
// write and moving the server's ACK back.
func BenchmarkShortSegmentProcessed(b *testing.B) {
	for _, inline := range []bool{false, true} {
		name := "processors"
		if inline {
			name = "read-loop"
		}
		b.Run(name, func(b *testing.B) {
			p := newTCPPair(b)
			p.segments.SetInlineProcessing(inline)
			msg := []byte("x")
			var got bytes.Buffer
			e, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
			p.serverQueue.EventRegister(&e)
			defer p.serverQueue.EventUnregister(&e)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p.send(b, msg)
				p.segments.ProcessQueued() // a no-op with inline off
				for p.read(&got) != nil {
					<-readable
				}
				for moveOne(p.srv, p.cli) {
				}
			}
		})
	}
}

// TestOnlyAnACKAloneIsAPureAck: the read loop hands pure ACKs to gVisor's
// processors with the bulk (stack.go), and processes every other short
// segment itself.
func TestOnlyAnACKAloneIsAPureAck(t *testing.T) {
	hlen := header.IPv4MinimumSize + header.TCPMinimumSize
	for _, tc := range []struct {
		name  string
		size  int
		flags header.TCPFlags
		want  bool
	}{
		{"ack", hlen, header.TCPFlagAck, true},
		{"ack with a payload", hlen + 5, header.TCPFlagAck | header.TCPFlagPsh, false},
		{"fin", hlen, header.TCPFlagAck | header.TCPFlagFin, false},
		{"rst", hlen, header.TCPFlagAck | header.TCPFlagRst, false},
		{"syn", hlen, header.TCPFlagSyn, false},
	} {
		pkt := ipv4Packet(tc.size, header.TCPProtocolNumber, eniAddr, tc.flags)
		if got := pureAck(pkt, hlen); got != tc.want {
			t.Errorf("%s: pureAck = %v, want %v", tc.name, got, tc.want)
		}
	}
}
