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

func wireStack(t *testing.T, s *stack.Stack, addr string) wiredStack {
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

// TestSegmentsWaitForTheGoroutineThatDeliveredThem shows pvlink's change to
// gVisor's TCP dispatcher (third_party/gvisor): with inline processing on,
// a segment for an established endpoint is processed by whoever delivered
// it, when it calls ProcessQueued, and by no processor goroutine meanwhile;
// HandQueued gives it to the processors instead.
func TestSegmentsWaitForTheGoroutineThatDeliveredThem(t *testing.T) {
	srvStack := newStack()
	segments := inlineProcessing(srvStack)
	if segments == nil {
		if os.Getenv("CI") != "" {
			t.Fatal("this build's gVisor has no inline processing: build with -modfile=build/go.mod (make)")
		}
		t.Skip("gVisor as released: run with -modfile=build/go.mod (make test)")
	}
	srv := wireStack(t, srvStack, "198.18.0.1")
	cli := wireStack(t, stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	}), "198.18.0.2")

	var lwq, cwq waiter.Queue
	ln, terr := srv.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &lwq)
	if terr != nil {
		t.Fatal(terr)
	}
	defer ln.Close()
	if err := ln.Bind(tcpip.FullAddress{Port: 80}); err != nil {
		t.Fatal(err)
	}
	if err := ln.Listen(4); err != nil {
		t.Fatal(err)
	}
	client, terr := cli.s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &cwq)
	if terr != nil {
		t.Fatal(terr)
	}
	defer client.Close()
	if err := client.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(netip.MustParseAddr("198.18.0.1").As4()), Port: 80}); err != nil {
		if _, started := err.(*tcpip.ErrConnectStarted); !started {
			t.Fatal(err)
		}
	}
	// The handshake, each delivery processed as a read loop does.
	var server tcpip.Endpoint
	for deadline := time.Now().Add(5 * time.Second); server == nil; {
		if time.Now().After(deadline) {
			t.Fatal("no connection after 5 s of moving packets")
		}
		for moveOne(cli, srv) {
			segments.ProcessQueued()
		}
		for moveOne(srv, cli) {
		}
		server, _, _ = ln.Accept(nil)
		time.Sleep(time.Millisecond)
	}
	defer server.Close()

	send := func(s string) {
		t.Helper()
		if _, err := client.Write(bytes.NewReader([]byte(s)), tcpip.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pkt := cli.link.ReadContext(ctx)
		if pkt == nil {
			t.Fatalf("the client sent no segment for %q", s)
		}
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
		pkt.DecRef()
		srv.link.InjectInbound(ipv4.ProtocolNumber, in)
		in.DecRef()
	}
	read := func() (string, tcpip.Error) {
		var b bytes.Buffer
		_, err := server.Read(&b, tcpip.ReadOptions{})
		return b.String(), err
	}

	send("request")
	// Delivered, not processed: no processor goroutine takes it.
	time.Sleep(50 * time.Millisecond)
	if got, err := read(); err == nil {
		t.Fatalf("read %q before the deliverer processed the segment", got)
	} else if _, wait := err.(*tcpip.ErrWouldBlock); !wait {
		t.Fatal(err)
	}
	segments.ProcessQueued()
	// Processed by the time ProcessQueued returns.
	if got, err := read(); err != nil || got != "request" {
		t.Fatalf("after ProcessQueued: read %q, %v; want the request", got, err)
	}

	send("more")
	segments.HandQueued()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got, err := read()
		if err == nil {
			if got != "more" {
				t.Fatalf("read %q after HandQueued, want more", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gVisor's processors did not take the segment HandQueued gave them: %v", err)
		}
	}
}
