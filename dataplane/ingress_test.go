package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"pvlink.dev/pvlink/flowtable"
)

var (
	eniAddr    = tcpip.AddrFrom4([4]byte{198, 18, 1, 10})
	clientAddr = tcpip.AddrFrom4([4]byte{198, 18, 1, 4})
)

// ipv4Packet builds an IPv4 packet of total size n carrying proto, with a
// TCP header (flags) when proto is TCP.
func ipv4Packet(n int, proto tcpip.TransportProtocolNumber, dst tcpip.Address, flags header.TCPFlags) []byte {
	b := make([]byte, n)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(n), TTL: 64, Protocol: uint8(proto),
		SrcAddr: clientAddr, DstAddr: dst, Flags: header.IPv4FlagDontFragment,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	if proto == header.TCPProtocolNumber && n >= header.IPv4MinimumSize+header.TCPMinimumSize {
		tcp := header.TCP(b[header.IPv4MinimumSize:])
		tcp.Encode(&header.TCPFields{
			SrcPort: 40000, DstPort: 80, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535,
		})
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, clientAddr, dst, uint16(len(tcp)))
		tcp.SetChecksum(^checksum.Checksum(tcp, xsum))
	}
	return b
}

// refreshIPv4Checksum recomputes the header checksum after a test edits it.
func refreshIPv4Checksum(b []byte) []byte {
	ip := header.IPv4(b)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	return b
}

func TestIngressFilter(t *testing.T) {
	tcp := header.TCPProtocolNumber
	truncatedTCP := ipv4Packet(header.IPv4MinimumSize+10, tcp, eniAddr, 0)
	badIHL := ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn)
	badIHL[0] = 0x44 // header length 16 bytes: below the minimum
	badLength := refreshIPv4Checksum(ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn))
	header.IPv4(badLength).SetTotalLength(200)
	refreshIPv4Checksum(badLength)
	fragment := ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn)
	header.IPv4(fragment).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	refreshIPv4Checksum(fragment)
	badTCPSum := ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn)
	badTCPSum[30] ^= 0xFF
	badIPSum := ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn)
	badIPSum[8]-- // TTL changed, checksum not

	tests := []struct {
		name    string
		pkt     []byte
		pass    bool
		reason  dropReason
		rstSeen bool
	}{
		{"TCP SYN to the ENI goes on", ipv4Packet(60, tcp, eniAddr, header.TCPFlagSyn), true, 0, false},
		{"an 8500-byte packet goes on", ipv4Packet(8500, tcp, eniAddr, header.TCPFlagAck), true, 0, false},
		{"an 8501-byte packet is dropped", ipv4Packet(8501, tcp, eniAddr, header.TCPFlagAck), false, dropOversize, false},
		{"a 9000-byte packet is dropped", ipv4Packet(9000, tcp, eniAddr, header.TCPFlagAck), false, dropOversize, false},
		{"RST goes on and is counted", ipv4Packet(40, tcp, eniAddr, header.TCPFlagRst), true, 0, true},
		{"ICMP echo gets no answer", ipv4Packet(84, header.ICMPv4ProtocolNumber, eniAddr, 0), false, dropICMP, false},
		{"UDP is not carried", ipv4Packet(60, header.UDPProtocolNumber, eniAddr, 0), false, dropProtocol, false},
		{"another destination is dropped", ipv4Packet(60, tcp, tcpip.AddrFrom4([4]byte{198, 18, 1, 11}), header.TCPFlagSyn), false, dropNoRoute, false},
		{"empty packet", []byte{}, false, dropMalformed, false},
		{"unknown IP version", []byte{0x50, 0, 0, 0}, false, dropMalformed, false},
		{"truncated TCP header", truncatedTCP, false, dropMalformed, false},
		{"IPv4 header length below 20", badIHL, false, dropMalformed, false},
		{"IPv4 total length beyond the packet", badLength, false, dropMalformed, false},
		{"fragment", fragment, false, dropMalformed, false},
		{"bad TCP checksum", badTCPSum, false, dropChecksum, false},
		{"bad IPv4 header checksum", badIPSum, false, dropChecksum, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := live(&eniState{addr4: eniAddr})
			_, _, ok := e.ingress(tc.pkt, 0)
			if ok != tc.pass {
				t.Fatalf("pass = %v, want %v", ok, tc.pass)
			}
			if !tc.pass {
				if got := e.drops[tc.reason].Load(); got != 1 || e.packetsDropped() != 1 {
					t.Errorf("drops[%s] = %d, total %d; want 1 and 1", dropReasonNames[tc.reason], got, e.packetsDropped())
				}
			} else if e.packetsDropped() != 0 {
				t.Errorf("a packet that went on was counted as dropped")
			}
			if got := e.rstReceived.Load() == 1; got != tc.rstSeen {
				t.Errorf("RstPacketsReceived counted = %v, want %v", got, tc.rstSeen)
			}
		})
	}
}

func TestIngressFilterAllocatesNothing(t *testing.T) {
	e := live(&eniState{addr4: eniAddr})
	// A load balancer's security groups on the port, as a snapshot with
	// them enforced gives: their lookup allocates nothing either.
	e.lbRules.Store(&map[uint16][]SGRule{80: {{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix("198.18.0.0/15")}}})
	pkts := [][]byte{
		ipv4Packet(1500, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck),
		ipv4Packet(9000, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck),
		ipv4Packet(84, header.ICMPv4ProtocolNumber, eniAddr, 0),
	}
	if n := testing.AllocsPerRun(1000, func() {
		for _, p := range pkts {
			e.ingress(p, 0)
		}
	}); n != 0 {
		t.Errorf("ingress allocates %.1f times per run", n)
	}
}

func BenchmarkIngressTCP(b *testing.B) {
	e := live(&eniState{addr4: eniAddr})
	p := ipv4Packet(8500, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		e.ingress(p, 0)
	}
}

// BenchmarkIngressSYN is a consumer's SYN (a new connection: no flow to
// find) through the filter of an ENI without security groups, and of one
// with its VPC's default group (one rule: the VPC's range), which every
// endpoint has unless it names others.
func BenchmarkIngressSYN(b *testing.B) {
	for _, tc := range []struct {
		name  string
		rules []SGRule
	}{
		{"no-groups", nil},
		{"default-group", []SGRule{{Proto: 0, FromPort: 0, ToPort: 65535, Source: netip.MustParsePrefix("198.18.0.0/16")}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := live(&eniState{addr4: eniAddr})
			if tc.rules != nil {
				e.ingressRules.Store(&tc.rules)
			}
			p := ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := e.ingress(p, 0); !ok {
					b.Fatal("the SYN was dropped")
				}
			}
		})
	}
}

// FuzzIngress feeds arbitrary bytes to the filter of an ENI with a flow
// table and security group rules: it must never panic, and a packet it
// refuses is counted exactly once.
func FuzzIngress(f *testing.F) {
	f.Add(ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn))
	f.Add(ipv4Packet(84, header.ICMPv4ProtocolNumber, eniAddr, 0))
	f.Add([]byte{0x60, 0, 0, 0, 0, 20, 6, 64})
	e := live(&eniState{addr4: eniAddr, addr6: tcpip.AddrFrom16([16]byte{0xfd, 0, 0, 0x18, 15: 0x10}), flows: flowtable.New(16)})
	rules := []SGRule{{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix("198.18.0.0/15")}}
	e.ingressRules.Store(&rules)
	f.Fuzz(func(t *testing.T, b []byte) {
		before := e.packetsDropped()
		_, _, ok := e.ingress(b, 1)
		after := e.packetsDropped()
		if ok && after != before || !ok && after != before+1 {
			t.Fatalf("pass=%v, drops %d -> %d", ok, before, after)
		}
	})
}

// BenchmarkIngressTCPOfAFlow is a segment of an open flow: the filter
// also finds the flow in the table and marks it active.
func BenchmarkIngressTCPOfAFlow(b *testing.B) {
	tb := flowtable.New(1 << 16)
	e := live(&eniState{addr4: eniAddr, flows: tb})
	p := ipv4Packet(8500, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck)
	k := flowtable.Key{Src: netip.AddrFrom4(clientAddr.As4()), Dst: netip.AddrFrom4(eniAddr.As4()), SrcPort: 40000, DstPort: 80, Proto: 6}
	tb.Insert(flowtable.NewFlow(k, nil, 0, time.Now()))
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, _, ok := e.ingress(p, 1); !ok {
			b.Fatal("dropped")
		}
	}
	if tb.Lookup(k).SegmentsIn.Load() == 0 {
		b.Fatal("the flow was not marked")
	}
}

// live marks a test ENI's endpoint available, as a snapshot would.
func live(e *eniState) *eniState {
	e.available.Store(true)
	return e
}

func TestSYNToAnEndpointThatIsNotAvailableIsDroppedAndCounted(t *testing.T) {
	e := &eniState{addr4: eniAddr} // pendingAcceptance: not available
	if _, _, ok := e.ingress(ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn), 0); ok {
		t.Fatal("a SYN to an endpoint awaiting acceptance went on")
	}
	if got := e.drops[dropNotAvailable].Load(); got != 1 {
		t.Fatalf("not_available drops = %d, want 1", got)
	}
	// Segments of connections opened before (they get their RST from the
	// netstack) and SYN-ACKs are not this filter's business.
	if _, _, ok := e.ingress(ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck), 0); !ok {
		t.Fatal("an ACK was dropped as not available")
	}
	e.available.Store(true)
	if _, _, ok := e.ingress(ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn), 0); !ok {
		t.Fatal("a SYN to an available endpoint was dropped")
	}
}

// The load balancer's security groups, enforced on PrivateLink traffic,
// filter what reaches its listeners by the consumer's address, after the
// ENI's own; a port whose load balancer has none is not filtered.
func TestALoadBalancersSecurityGroupsFilterItsListenersPorts(t *testing.T) {
	cfg := &Config{LoadBalancers: map[string]LoadBalancer{
		"guarded": {Name: "guarded", SecurityGroups: []string{"sg-1"}, Ingress: []SGRule{{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix("10.0.0.0/8")}}},
		"open":    {Name: "open"},
	}}
	eni := ENI{Listeners: []Listener{{Port: 80, LoadBalancer: "guarded"}, {Port: 443, LoadBalancer: "open"}}}
	e := live(&eniState{addr4: eniAddr})
	e.lbRules.Store(lbIngress(eni, cfg))
	to := func(port uint16) []byte {
		p := ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn)
		tcp := header.TCP(p[header.IPv4MinimumSize:])
		tcp.SetDestinationPort(port)
		tcp.SetChecksum(0)
		tcp.SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, clientAddr, eniAddr, uint16(len(tcp)))))
		return p
	}
	if _, _, ok := e.ingress(to(80), 0); ok {
		t.Fatal("a SYN from 198.18.1.4 passed a load balancer that allows 10.0.0.0/8 only")
	}
	if got := e.drops[dropLBSecurityGroup].Load(); got != 1 || e.packetsDropped() != 1 {
		t.Fatalf("lb_security_group drops %d, all %d; want 1 and 1", got, e.packetsDropped())
	}
	if _, _, ok := e.ingress(to(443), 0); !ok {
		t.Fatal("a SYN to the listener of a load balancer without security groups was dropped")
	}
	cfg.LoadBalancers["guarded"] = LoadBalancer{Name: "guarded", SecurityGroups: []string{"sg-1"}, Ingress: []SGRule{{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix("198.18.0.0/16")}}}
	e.lbRules.Store(lbIngress(eni, cfg))
	if _, _, ok := e.ingress(to(80), 0); !ok {
		t.Fatal("a SYN the load balancer's rule allows was dropped")
	}
	// Enforcement off (no groups in the snapshot): nothing filtered.
	cfg.LoadBalancers["guarded"] = LoadBalancer{Name: "guarded"}
	if lbIngress(eni, cfg) != nil {
		t.Fatal("rules for load balancers without enforced security groups")
	}
}

// Security groups are stateful: a segment of a flow already open goes on
// after a rule change would refuse it, the ENI's groups and the load
// balancer's alike; a new connection from the same source is refused.
func TestASecurityGroupChangeLeavesTrackedFlowsAlone(t *testing.T) {
	tb := flowtable.New(16)
	e := live(&eniState{addr4: eniAddr, flows: tb})
	open := flowtable.Key{Src: netip.AddrFrom4(clientAddr.As4()), Dst: netip.AddrFrom4(eniAddr.As4()), SrcPort: 40000, DstPort: 80, Proto: 6}
	tb.Insert(flowtable.NewFlow(open, nil, 0, time.Now()))
	nobody := []SGRule{{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix("10.0.0.0/8")}}
	e.ingressRules.Store(&nobody)
	e.lbRules.Store(&map[uint16][]SGRule{80: nobody})
	if _, _, ok := e.ingress(ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagAck), 1); !ok {
		t.Fatal("a segment of a tracked flow was dropped after the rules changed")
	}
	other := ipv4Packet(60, header.TCPProtocolNumber, eniAddr, header.TCPFlagSyn)
	tcp := header.TCP(other[header.IPv4MinimumSize:])
	tcp.SetSourcePort(40001)
	tcp.SetChecksum(0)
	tcp.SetChecksum(^checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, clientAddr, eniAddr, uint16(len(tcp)))))
	if _, _, ok := e.ingress(other, 1); ok || e.drops[dropSecurityGroup].Load() != 1 {
		t.Fatalf("a new connection the rules refuse: passed %v, security_group drops %d", ok, e.drops[dropSecurityGroup].Load())
	}
	e.ingressRules.Store(nil) // the load balancer's groups alone
	if _, _, ok := e.ingress(other, 1); ok || e.drops[dropLBSecurityGroup].Load() != 1 {
		t.Fatalf("a new connection the load balancer's rules refuse: passed %v, lb_security_group drops %d", ok, e.drops[dropLBSecurityGroup].Load())
	}
}
