package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/internal/wire"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// dualstackTopology is the demo with IPv6 in the consumer VPC and a
// dualstack endpoint (ipType: ipv4, ipv6 or dualstack).
func dualstackTopology(t *testing.T, ipType string) string {
	s := demoTopology(t)
	s = strings.Replace(s, "  - name: consumer\n    account: consumer\n    cidr: 198.18.0.0/16\n", "  - name: consumer\n    account: consumer\n    cidr: 198.18.0.0/16\n    ipv6_cidr: fd00:18::/56\n", 1)
	s = strings.Replace(s, "cidr: 198.18.1.0/24}", "cidr: 198.18.1.0/24, ipv6_cidr: 'fd00:18:0:1::/64'}", 1)
	s = strings.Replace(s, "cidr: 198.18.2.0/24}", "cidr: 198.18.2.0/24, ipv6_cidr: 'fd00:18:0:2::/64'}", 1)
	s = strings.Replace(s, "    ip_address_type: ipv4\n", "    ip_address_type: "+ipType+"\n", 1)
	if ipType == "ipv6" {
		s = strings.Replace(s, "{subnet: consumer-az1, ipv4: 198.18.1.10}", "{subnet: consumer-az1, ipv6: 'fd00:18:0:1::10'}", 1)
		s = strings.Replace(s, "{subnet: consumer-az2, ipv4: 198.18.2.10}", "{subnet: consumer-az2, ipv6: 'fd00:18:0:2::10'}", 1)
	}
	// A service offers IPv6 only on dualstack load balancers.
	s = strings.Replace(s, "  - name: web-nlb\n    vpc: provider\n", "  - name: web-nlb\n    vpc: provider\n    ip_address_type: dualstack\n", 1)
	return strings.Replace(s, "    allowed_principals:", "    supported_ip_address_types: [ipv4, ipv6]\n    allowed_principals:", 1)
}

func eniCounters(t *testing.T, f *fabrictest.Fabric, eni ctl.ENIState) snapshot.ENICounters {
	t.Helper()
	for _, c := range f.Counters(t, eni.AZ) {
		if c.ENI == eni.ID {
			return c
		}
	}
	t.Fatalf("no counters for %s", eni.ID)
	return snapshot.ENICounters{}
}

func dropsFor(t *testing.T, f *fabrictest.Fabric, eni ctl.ENIState, reason string) int {
	t.Helper()
	for _, line := range strings.Split(f.Metrics(t, eni.AZ), "\n") {
		if strings.HasPrefix(line, "pvlink_ingress_dropped_packets_total{") && strings.Contains(line, `eni="`+eni.ID+`"`) && strings.Contains(line, `reason="`+reason+`"`) {
			var n float64
			fields := strings.Fields(line)
			if _, err := fmt.Sscan(fields[len(fields)-1], &n); err == nil {
				return int(n)
			}
		}
	}
	t.Fatalf("no %s drop counter for %s", reason, eni.ID)
	return 0
}

func TestSYNACKFromAnENIOffersMSS8460ForIPv4And8440ForIPv6(t *testing.T) {
	f := fabrictest.Up(t, dualstackTopology(t, "dualstack"))
	consumer, provider := f.Netns(t, "consumer"), f.Netns(t, "provider")
	eni := f.Status.Endpoints[0].ENIs[0]
	onTUN, err := wire.Listen(consumer, eni.Tun)
	if err != nil {
		t.Fatal(err)
	}
	defer onTUN.Close()
	onLo, err := wire.Listen(provider, "lo")
	if err != nil {
		t.Fatal(err)
	}
	defer onLo.Close()
	node := netip.MustParseAddr(nodeIP(t, f.Status, eni.AZ))

	for _, tc := range []struct {
		ip                string
		clientMSS, eniMSS int
	}{
		{eni.IP, 9001 - 40, 8460},   // 8961: what a 9001-MTU client offers over IPv4
		{eni.IPv6, 9001 - 60, 8440}, // 8941 over IPv6
	} {
		addr := net.JoinHostPort(tc.ip, "80")
		c := &peer.Client{Addr: addr, Timeout: 10 * time.Second, Dial: fabrictest.DialFrom(consumer)}
		res, err := c.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		local := netip.MustParseAddrPort(res.Local)
		eniAddr := netip.MustParseAddrPort(addr)
		syn, ok := onTUN.Wait(2*time.Second, func(p wire.Packet) bool {
			s, ok := wire.ParseTCP(p.Data)
			return ok && p.Outgoing && s.Src == local && s.Flags&(wire.SYN|wire.ACK) == wire.SYN
		})
		if !ok {
			t.Fatalf("%s: no SYN captured on %s", addr, eni.Tun)
		}
		synAck, ok := onTUN.Wait(2*time.Second, func(p wire.Packet) bool {
			s, ok := wire.ParseTCP(p.Data)
			return ok && !p.Outgoing && s.Src == eniAddr && s.Dst == local && s.Flags&(wire.SYN|wire.ACK) == wire.SYN|wire.ACK
		})
		if !ok {
			t.Fatalf("%s: no SYN-ACK captured", addr)
		}
		s, _ := wire.ParseTCP(syn.Data)
		sa, _ := wire.ParseTCP(synAck.Data)
		t.Logf("%s: client offered MSS %d, the ENI answered MSS %d", addr, s.MSS, sa.MSS)
		if s.MSS != tc.clientMSS {
			t.Errorf("client offered %d, want %d (is the TUN's MTU 9001?)", s.MSS, tc.clientMSS)
		}
		if sa.MSS != tc.eniMSS {
			t.Errorf("SYN-ACK offers MSS %d, want %d", sa.MSS, tc.eniMSS)
		}
	}
	// The forwarder's SYNs to targets offer no more than 8460.
	synToTarget, ok := onLo.Wait(2*time.Second, func(p wire.Packet) bool {
		s, ok := wire.ParseTCP(p.Data)
		return ok && s.Src.Addr() == node && s.Flags&(wire.SYN|wire.ACK) == wire.SYN
	})
	if !ok {
		t.Fatal("no SYN from the load-balancer node captured in the provider VPC")
	}
	s, _ := wire.ParseTCP(synToTarget.Data)
	t.Logf("node %s -> target %s: SYN offers MSS %d", s.Src, s.Dst, s.MSS)
	if s.MSS == 0 || s.MSS > 8460 {
		t.Errorf("provider-side SYN offers MSS %d, want at most 8460", s.MSS)
	}
}

func TestOversizePacketsAreDroppedCountedAndNeverAnsweredWithICMP(t *testing.T) {
	f := fabrictest.Up(t, dualstackTopology(t, "dualstack"))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	var host4, host6 string
	for _, v := range f.Status.VPCs {
		for _, sn := range v.Subnets {
			if sn.Name == eni.Subnet {
				host4, host6 = sn.HostIP, sn.HostIPv6
			}
		}
	}
	capture, err := wire.Listen(consumer, eni.Tun)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	inject, err := wire.NewInjector(consumer, eni.Tun)
	if err != nil {
		t.Fatal(err)
	}
	defer inject.Close()

	before := eniCounters(t, f, eni).PacketsDropped
	const each = 5
	for i := 0; i < each; i++ {
		v4 := wire.TCPPacket(netip.MustParseAddrPort(host4+":40000"), netip.MustParseAddrPort(eni.IP+":80"), wire.ACK, 9000)
		v6 := wire.TCPPacket(netip.AddrPortFrom(netip.MustParseAddr(host6), 40000), netip.AddrPortFrom(netip.MustParseAddr(eni.IPv6), 80), wire.ACK, 9000)
		if len(v4) != 9000 || v4[6]&0x40 == 0 {
			t.Fatal("test packet is not 9000 bytes with DF")
		}
		for _, p := range [][]byte{v4, v6} {
			if err := inject.Send(p); err != nil {
				t.Fatalf("inject a 9000-byte packet: %v", err)
			}
		}
	}
	// Within 2 s nothing comes back: no "fragmentation needed", no "packet
	// too big", nothing at all.
	if p, ok := capture.Wait(2*time.Second, func(p wire.Packet) bool { return !p.Outgoing }); ok {
		t.Errorf("the ENI answered an oversize packet (ICMP error: %v): % x", wire.IsICMPError(p.Data), p.Data[:min(len(p.Data), 48)])
	}
	after := eniCounters(t, f, eni).PacketsDropped
	if after-before != 2*each {
		t.Errorf("PacketsDropped rose by %d, want exactly %d", after-before, 2*each)
	}
	if n := dropsFor(t, f, eni, "oversize"); n != 2*each {
		t.Errorf("oversize drops = %d, want %d", n, 2*each)
	}
}

// ping sends count echo requests from inside ns to addr with the kernel's
// raw ICMP socket and returns the number of replies.
func ping(t *testing.T, ns string, addr netip.Addr, count int) int {
	t.Helper()
	network, typ := "ip4:icmp", byte(8)
	if addr.Is6() {
		network, typ = "ip6:ipv6-icmp", 128
	}
	var conn net.PacketConn
	if err := nsenter.Do(ns, func() (err error) { conn, err = net.ListenPacket(network, ""); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for seq := 0; seq < count; seq++ {
		msg := make([]byte, 16)
		msg[0] = typ
		binary.BigEndian.PutUint16(msg[4:], 0x5056)
		binary.BigEndian.PutUint16(msg[6:], uint16(seq))
		if !addr.Is6() {
			var sum uint32
			for i := 0; i < len(msg); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(msg[i:]))
			}
			for sum > 0xFFFF {
				sum = sum>>16 + sum&0xFFFF
			}
			binary.BigEndian.PutUint16(msg[2:], ^uint16(sum))
		} // the kernel fills in the ICMPv6 checksum
		if _, err := conn.WriteTo(msg, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
			t.Fatalf("ping %s: %v", addr, err)
		}
	}
	replies := 0
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return replies
		}
		if n > 0 && (buf[0] == 0 || buf[0] == 129) && from.String() == addr.String() {
			replies++
		}
	}
}

func TestPingGetsNoAnswerAndAClosedPortGetsRST(t *testing.T) {
	f := fabrictest.Up(t, dualstackTopology(t, "dualstack"))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	for _, ip := range []string{eni.IP, eni.IPv6} {
		addr := netip.MustParseAddr(ip)
		before := dropsFor(t, f, eni, "icmp")
		if n := ping(t, consumer, addr, 3); n != 0 {
			t.Errorf("ping %s: %d of 3 answered, want 100%% loss", addr, n)
		}
		if got := dropsFor(t, f, eni, "icmp") - before; got != 3 {
			t.Errorf("ping %s: %d echo requests counted as dropped, want 3", addr, got)
		}
		// A port with no listener is refused with a RST, as an NLB node does.
		_, err := fabrictest.DialFrom(consumer)(context.Background(), "tcp", net.JoinHostPort(ip, "81"))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect to %s port 81 (no listener): %v, want connection refused", ip, err)
		}
	}
}

func TestIPv6OnlyAndDualstackEndpointsCarryTraffic(t *testing.T) {
	for _, typ := range []string{"ipv6", "dualstack"} {
		t.Run(typ, func(t *testing.T) {
			f := fabrictest.Up(t, dualstackTopology(t, typ))
			for _, eni := range f.Status.Endpoints[0].ENIs {
				if typ == "ipv6" && eni.IP != "" {
					t.Fatalf("an ipv6 endpoint's ENI has IPv4 address %s", eni.IP)
				}
				for _, ip := range []string{eni.IP, eni.IPv6} {
					if ip == "" {
						continue
					}
					c := &peer.Client{Addr: net.JoinHostPort(ip, "80"), Bytes: 4 << 20, Timeout: 20 * time.Second, Dial: fabrictest.DialFrom(f.Netns(t, "consumer"))}
					res, err := c.Run(context.Background())
					if err != nil || !res.Intact {
						t.Fatalf("%s: %v %+v", ip, err, res)
					}
				}
			}
			if out, err := fabrictest.Run(t, "fabric", "probe", f.Name); err != nil {
				t.Fatalf("probe: %v\n%s", err, out)
			}
		})
	}
}

// securityGroupTopology is the demo with a security group on the endpoint
// that lets in 198.18.1.4 on port 80 only.
func securityGroupTopology(t *testing.T) string {
	topo := strings.Replace(demoTopology(t), "    ip_address_type: ipv4\n", "    ip_address_type: ipv4\n    security_groups: [web-clients]\n", 1)
	return topo + `
security_groups:
  - name: web-clients
    vpc: consumer
    ingress:
      - {ip_protocol: tcp, from_port: 80, to_port: 80, cidr_ipv4: 198.18.1.4/32}
`
}

func TestSecurityGroupLetsInOnlyItsSourceAndPort(t *testing.T) {
	topo := strings.Replace(securityGroupTopology(t), "      - {protocol: TCP, port: 80, target_group: web}\n", "      - {protocol: TCP, port: 80, target_group: web}\n      - {protocol: TCP, port: 81, target_group: web}\n", 1)
	f := fabrictest.Up(t, topo)
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0] // use1-az1: 198.18.1.10
	dialFrom := func(src, dst string) error {
		var conn net.Conn
		err := nsenter.Do(consumer, func() (err error) {
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			conn, err = d.Dial("tcp", dst)
			return err
		})
		if conn != nil {
			conn.Close()
		}
		return err
	}
	if err := dialFrom("198.18.1.4", eni.IP+":80"); err != nil {
		t.Fatalf("the allowed source on the allowed port: %v", err)
	}
	before := dropsFor(t, f, eni, "security_group")
	if err := dialFrom("198.18.2.4", eni.IP+":80"); err == nil {
		t.Error("a source outside the rule connected")
	}
	afterSource := dropsFor(t, f, eni, "security_group")
	if err := dialFrom("198.18.1.4", eni.IP+":81"); err == nil {
		t.Error("the allowed source connected to a port outside the rule")
	}
	afterPort := dropsFor(t, f, eni, "security_group")
	if afterSource <= before || afterPort <= afterSource {
		t.Errorf("security group drops: %d, then %d, then %d; want each refusal counted", before, afterSource, afterPort)
	}
	if c := eniCounters(t, f, eni); c.PacketsDropped < uint64(afterPort) {
		t.Errorf("PacketsDropped %d does not include the %d security group drops", c.PacketsDropped, afterPort)
	}
}

func TestNothingInTheProviderVPCCanReachTheConsumer(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	provider := f.Netns(t, "provider")
	var addrs []string
	for _, v := range f.Status.VPCs {
		if v.Name == "consumer" {
			for _, sn := range v.Subnets {
				addrs = append(addrs, sn.HostIP)
			}
		}
	}
	for _, e := range f.Status.Endpoints {
		for _, eni := range e.ENIs {
			addrs = append(addrs, eni.IP)
		}
	}
	for _, a := range addrs {
		for _, port := range []string{"80", "22", "8080"} {
			var conn net.Conn
			err := nsenter.Do(provider, func() (err error) {
				d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(f.Status.Targets[0].IP)}}
				conn, err = d.Dial("tcp", net.JoinHostPort(a, port))
				return err
			})
			if err == nil {
				conn.Close()
				t.Errorf("a target reached %s:%s in the consumer VPC", a, port)
			}
		}
	}
}

func TestRandomPacketsIntoALiveENIDoNotStopATransfer(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	inject, err := wire.NewInjector(consumer, eni.Tun)
	if err != nil {
		t.Fatal(err)
	}
	defer inject.Close()
	done := make(chan error, 1)
	go func() {
		c := &peer.Client{Addr: eni.IP + ":80", Bytes: 100 << 20, Timeout: 120 * time.Second, Dial: fabrictest.DialFrom(consumer)}
		res, err := c.Run(context.Background())
		if err == nil && !res.Intact {
			err = errors.New("echo differs")
		}
		done <- err
	}()
	const count = 100000
	buf := make([]byte, 1600)
	sent := 0
	for i := 0; i < count; i++ {
		rand.Read(buf[:2])
		n := 1 + int(binary.BigEndian.Uint16(buf)%1500)
		rand.Read(buf[:n])
		if i%2 == 0 && n >= 20 {
			// Half of them look like IPv4 to the ENI, to get past the
			// first checks and exercise the rest.
			buf[0] = 0x45
			copy(buf[16:20], netip.MustParseAddr(eni.IP).AsSlice())
		}
		if inject.Send(buf[:n]) == nil {
			sent++
		}
		if i%500 == 499 {
			time.Sleep(time.Millisecond) // let the forwarder keep up
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the transfer during the noise: %v", err)
	}
	f.Refresh(t)
	for _, fw := range f.Status.Forwarders {
		if !fw.Alive {
			t.Fatalf("forwarder %s died", fw.AZ)
		}
	}
	// What the TUN's queue could not take never reached the forwarder.
	var lost uint64
	nsenter.Do(consumer, func() error {
		l, err := netlink.LinkByName(eni.Tun)
		if err == nil && l.Attrs().Statistics != nil {
			lost = l.Attrs().Statistics.TxDropped
		}
		return err
	})
	delivered := uint64(sent) - lost
	c := eniCounters(t, f, eni)
	t.Logf("%d random packets injected, %d reached the forwarder (the TUN queue dropped %d); %d dropped and counted", sent, delivered, lost, c.PacketsDropped)
	// Each one is dropped and counted, save the odd one whose random bytes
	// make a well-formed TCP segment with a valid checksum.
	if sent < count*9/10 || c.PacketsDropped < delivered*99/100 {
		t.Errorf("delivered %d, PacketsDropped %d: not all counted", delivered, c.PacketsDropped)
	}
}

// TestGSOFrameIsJudgedByItsWirePackets sends the ENI TCP GSO frames, as a
// consumer's kernel with TSO does: a frame whose segments would be 9040-byte
// packets is dropped, one count per packet it stands for; a 30 KB frame of
// 8040-byte packets is not dropped, though it is far over 8500 bytes whole.
func TestGSOFrameIsJudgedByItsWirePackets(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	var host string
	for _, v := range f.Status.VPCs {
		for _, sn := range v.Subnets {
			if sn.Name == eni.Subnet {
				host = sn.HostIP
			}
		}
	}
	inject, err := wire.NewGSOInjector(consumer, eni.Tun)
	if err != nil {
		t.Fatal(err)
	}
	defer inject.Close()
	frame := wire.TCPPacket(netip.MustParseAddrPort(host+":40000"), netip.MustParseAddrPort(eni.IP+":80"), wire.ACK, 30000)

	before := eniCounters(t, f, eni)
	if err := inject.SendGSO(frame, 9000); err != nil {
		t.Fatalf("send a GSO frame: %v", err)
	}
	var after snapshot.ENICounters
	waitUntil(t, 2*time.Second, "the frame to be counted", func() bool {
		after = eniCounters(t, f, eni)
		return after.TunReads > before.TunReads
	})
	// 29,960 bytes of payload in 9000-byte segments: 4 packets of up to 9040.
	if got := after.PacketsDropped - before.PacketsDropped; got != 4 {
		t.Errorf("a GSO frame of 9040-byte packets: PacketsDropped rose by %d, want 4", got)
	}
	if after.TunReads != before.TunReads+1 {
		t.Errorf("the frame took %d reads, want 1 (it reached the forwarder whole)", after.TunReads-before.TunReads)
	}

	before = after
	if err := inject.SendGSO(frame, 8000); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Second, "the second frame to be counted", func() bool {
		after = eniCounters(t, f, eni)
		return after.TunReads > before.TunReads
	})
	if got := after.PacketsDropped - before.PacketsDropped; got != 0 {
		t.Errorf("a GSO frame of 8040-byte packets was dropped (%d)", got)
	}
	if got := after.TunPackets - before.TunPackets; got != 4 {
		t.Errorf("the frame stood for %d packets, want 4", got)
	}
}

// TestDownloadsLeaveAsSegmentationFramesOfWirePackets: a target sends
// 256 MB to a consumer. The forwarder writes it to the TUN as TCP GSO
// frames (far fewer writes than the packets they stand for), each standing
// for packets of at most 8500 bytes (headers plus segment size), and the
// consumer's kernel, which cuts them, sees segments of at most MSS 8460.
func TestDownloadsLeaveAsSegmentationFramesOfWirePackets(t *testing.T) {
	p := newSlowPeers(t)
	eni := p.f.Status.Endpoints[0].ENIs[0]
	before := eniCounters(t, p.f, eni)
	c := p.open(t, "send")
	defer c.Close()
	const want = 256 << 20
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := io.CopyN(io.Discard, c, want); err != nil {
		t.Fatalf("download: %v", err)
	}
	took := time.Since(start)
	info, err := tcpInfo(c)
	if err != nil {
		t.Fatal(err)
	}
	after := eniCounters(t, p.f, eni)
	writes, packets := after.TunWrites-before.TunWrites, after.TunWritePackets-before.TunWritePackets
	t.Logf("256 MB in %v (%.2f Gbit/s): %d TUN writes standing for %d packets, largest wire packet %d bytes, consumer's rcv_mss %d",
		took.Round(time.Millisecond), float64(want)*8/took.Seconds()/1e9, writes, packets, after.LargestWirePacket, info.Rcv_mss)
	if after.LargestWirePacket > 8500 || after.LargestWirePacket < 8000 {
		t.Errorf("largest packet a write stood for: %d bytes, want full segments of at most 8500", after.LargestWirePacket)
	}
	if packets < 4*writes {
		t.Errorf("%d writes stood for %d packets: the download did not leave in segmentation frames", writes, packets)
	}
	if info.Rcv_mss > 8460 {
		t.Errorf("the consumer's kernel saw segments of %d bytes, over MSS 8460", info.Rcv_mss)
	}
}

// TestParallelDownloadsResendNothing: eight targets send 128 MB each to
// one consumer at once, through one forwarder. Nothing between the
// forwarder and the consumer's kernel loses or reorders a packet, so the
// consumer side's TCP must resend nothing it had already delivered: no
// spurious loss recovery, no segment acknowledged twice (DSACK).
func TestParallelDownloadsResendNothing(t *testing.T) {
	p := newSlowPeers(t)
	eni := p.f.Status.Endpoints[0].ENIs[0]
	var before, after snapshot.Stats
	p.f.GetJSON(t, eni.AZ, "/stats", &before)
	const streams, each = 8, 128 << 20
	errs := make(chan error, streams)
	start := time.Now()
	for range streams {
		c := p.open(t, "send")
		go func() {
			c.SetDeadline(time.Now().Add(60 * time.Second))
			_, err := io.CopyN(io.Discard, c, each)
			c.Close()
			errs <- err
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatalf("download: %v", err)
		}
	}
	took := time.Since(start)
	p.f.GetJSON(t, eni.AZ, "/stats", &after)
	d := func(k string) uint64 { return after.Netstack[k] - before.Netstack[k] }
	t.Logf("%d x %d MB in %v (%.2f Gbit/s): %d retransmits, %d SACK recoveries (%d spurious), %d timeouts, %d segments DSACKed",
		streams, each>>20, took.Round(time.Millisecond), float64(streams*each)*8/took.Seconds()/1e9,
		d("retransmits"), d("sack_recoveries"), d("spurious_recoveries"), d("retransmit_timeouts"), d("segments_dsack_acked"))
	if d("spurious_recoveries") != 0 || d("segments_dsack_acked") != 0 {
		t.Errorf("the forwarder resent what the consumer had: %d spurious recoveries, %d segments acknowledged twice",
			d("spurious_recoveries"), d("segments_dsack_acked"))
	}
}

// One upload reaches the target without resends: the forwarder's socket to
// the target, over the provider namespace's loopback, does not take the
// loopback's reordering for loss (dataplane's providerCC). In an upload
// only the forwarder sends data in the provider namespace, so the
// namespace's retransmitted segments are the forwarder's. (With BBR's
// pacing it resent 917-1,212 segments per 512 MB; with Reno 0 in most
// runs, 269 in one.)
func TestUploadsResendNothingToTheTarget(t *testing.T) {
	p := newSlowPeers(t)
	provider := p.f.Netns(t, "provider")
	before := retransmittedSegments(t, provider)
	c := p.open(t, "read")
	c.SetDeadline(time.Now().Add(60 * time.Second))
	const size = 1 << 30
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("upload after %d bytes: %v", sent, err)
		}
	}
	// The target closes once it has read everything up to the FIN.
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("waiting for the target to finish reading: %v", err)
	}
	took := time.Since(start)
	resent := retransmittedSegments(t, provider) - before
	segments := size / 8448
	t.Logf("%d MB in %v (%.2f Gbit/s): %d of about %d segments resent to the target",
		size>>20, took.Round(time.Millisecond), float64(size)*8/took.Seconds()/1e9, resent, segments)
	if resent > uint64(segments/100) {
		t.Errorf("the forwarder resent %d segments to the target over loopback, more than 1%% of %d", resent, segments)
	}
}

// retransmittedSegments is the TCP RetransSegs count of network namespace ns.
func retransmittedSegments(t *testing.T, ns string) uint64 {
	t.Helper()
	var snmp []byte
	err := nsenter.Do(ns, func() (err error) {
		// The calling thread's namespace: /proc/net is the process's.
		snmp, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(snmp), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RetransSegs" && i < len(f) {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	t.Fatalf("no Tcp RetransSegs in namespace %s", ns)
	return 0
}

// tcpInfo is a connection's TCP_INFO.
func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return nil, err
	}
	return info, ierr
}

// TestTheAnswerCarriesTheACKOfTheRequest: in request/response exchanges
// (one byte each way, as `pvlink bench` measures latency), the ACK gVisor
// makes for each request is held back and the answer carries it, so an
// exchange costs one write to the TUN, not two; the consumer's FIN gets
// its ACK on the forwarder's FIN. The consumer's kernel sees every byte.
//
// The ACK is held for at most a millisecond (ackHoldData): an answer that
// takes longer, as on a loaded machine, rightly finds it gone. So the
// test holds the forwarder to the exchanges the consumer saw answered
// within 900 µs, each of which must carry its ACK, and allows a second
// write to each slower one.
func TestTheAnswerCarriesTheACKOfTheRequest(t *testing.T) {
	p := newSlowPeers(t)
	eni := p.f.Status.Endpoints[0].ENIs[0]
	c := p.open(t, "echo")
	c.(*net.TCPConn).SetNoDelay(true)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	exchange := func(i int) {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != byte(i) {
			t.Fatalf("answer %d: %v %v", i, b[0], err)
		}
	}
	exchange(0)
	const n = 200
	const quick = 900 * time.Microsecond // inside the 1 ms hold
	before := eniCounters(t, p.f, eni)
	fast := 0
	for i := 1; i <= n; i++ {
		start := time.Now()
		exchange(i)
		if time.Since(start) < quick {
			fast++
		}
		time.Sleep(time.Millisecond)
	}
	after := eniCounters(t, p.f, eni)
	writes, carried := after.TunWrites-before.TunWrites, after.AcksCarried-before.AcksCarried
	t.Logf("%d exchanges, %d answered within %s: %d TUN writes, %d ACKs carried by the answer", n, fast, quick, writes, carried)
	if fast < n/4 {
		t.Fatalf("only %d of %d exchanges were answered within %s: the machine is too slow for this test to say anything", fast, n, quick)
	}
	if carried < uint64(fast)*9/10 {
		t.Errorf("only %d of %d requests' ACKs rode on the answer (%d were answered within the hold)", carried, n, fast)
	}
	if slow := n - fast; writes > uint64(n+slow+n/10) {
		t.Errorf("%d TUN writes for %d exchanges (%d answered after %s), want about one each and at most two for a slow one", writes, n, slow, quick)
	}
}
