package dataplane

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"pvlink.dev/pvlink/flowtable"
)

// resetENI is an ENI with one flow (consumerAP to eniAP) of a connection
// through load balancer lb, whose listener port is eniAP's.
func resetENI() (*eniState, *conn, *lbCounters) {
	lb := &lbCounters{name: "web"}
	e := &eniState{flows: flowtable.New(16)}
	byPort := map[uint16]*lbCounters{eniAP.Port(): lb}
	e.lbs.byPort.Store(&byPort)
	c := &conn{rt: &route{svc: lb}}
	k := flowtable.Key{Src: consumerAP.Addr(), Dst: eniAP.Addr(), SrcPort: consumerAP.Port(), DstPort: eniAP.Port(), Proto: uint8(header.TCPProtocolNumber)}
	e.flows.Insert(flowtable.NewFlow(k, c, time.Minute, time.Now()))
	return e, c, lb
}

// TestTheLinkCountsEachRSTItWritesByWhoMadeIt: a RST of a flow whose target
// reset it is the target's; one of a flow without that mark, or of a flow
// the node no longer has (its listener port says whose), is the node's; a
// segment without RST is no one's.
func TestTheLinkCountsEachRSTItWritesByWhoMadeIt(t *testing.T) {
	e, c, lb := resetENI()
	e.noteSent(segment(consumerAP, header.TCPFlagAck, 1, 10, false))
	e.noteSent(segment(consumerAP, header.TCPFlagRst|header.TCPFlagAck, 1, 0, false))
	c.targetRST.Store(true)
	e.noteSent(segment(consumerAP, header.TCPFlagRst|header.TCPFlagAck, 1, 0, false))
	e.noteSent(segment(otherAP, header.TCPFlagRst|header.TCPFlagAck, 1, 0, false)) // no flow
	if got, want := [3]uint64{lb.targetResets.Load(), lb.elbResets.Load(), lb.rstSent.Load()}, [3]uint64{1, 2, 3}; got != want {
		t.Errorf("target, load balancer, all RSTs: %v, want %v", got, want)
	}
	if n := e.rstSent.Load(); n != 3 {
		t.Errorf("the ENI's RSTs sent: %d, want 3", n)
	}
}

// BenchmarkNoteSent is what the link adds to each packet it writes towards
// a consumer (no capture, no flow log): a segment without RST, and a RST,
// which is looked up in the flow table to say whose it is.
func BenchmarkNoteSent(b *testing.B) {
	for _, tc := range []struct {
		name  string
		flags header.TCPFlags
	}{{"ack", header.TCPFlagAck}, {"rst", header.TCPFlagRst | header.TCPFlagAck}} {
		b.Run(tc.name, func(b *testing.B) {
			e, _, _ := resetENI()
			pkt := segment(consumerAP, tc.flags, 1, 0, false)
			b.ReportAllocs()
			for b.Loop() {
				e.noteSent(pkt)
			}
		})
	}
}
