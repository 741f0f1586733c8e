package dataplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/proxyproto"
	"pvlink.dev/pvlink/snapshot"
)

// A whole forwarder in one namespace of its own: an ENI's TUN, the load
// balancer node's and the target's addresses on lo, a request/response
// target behind proxy protocol v2, and the consumer's kernel
// connecting to the ENI through the TUN. What the connection measurement
// of pvlink bench does to a fabric, one connection at a time, with no
// other process and no scheduler between them: the forwarder's handshake
// path (the SYN through gVisor's forwarder to handleTCP, the dial, the
// SYN-ACK), the relay of a request and its answer, and both closes.
var (
	benchENI    = netip.MustParseAddr("198.18.1.10")
	benchNode   = netip.MustParseAddr("198.19.1.5")
	benchTarget = netip.MustParseAddr("198.19.1.10")
)

const benchPort = 8080

// requireRoot skips a benchmark that needs root (a namespace, a TUN), or
// fails it under CI.
func requireRoot(b *testing.B) {
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		b.Fatal("this benchmark needs root (a network namespace, a TUN): CI must run it as root")
	}
	b.Skip("needs root (a network namespace, a TUN); run as root, or set CI=true to make this a failure")
}

// benchForwarder builds the namespace and a running forwarder serving port
// 80 of the ENI with one target; both go when b ends.
func benchForwarder(b *testing.B) (netns string) {
	requireRoot(b)
	netns = fmt.Sprintf("pvl-connbench-%d", os.Getpid())
	if err := nsenter.Create(netns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nsenter.Delete(netns) })
	const tunName = "eni-bench"
	err := nsenter.Do(netns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		for _, a := range []netip.Addr{benchNode, benchTarget} {
			if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(a.AsSlice())}); err != nil {
				return err
			}
		}
		// The TUN as ctld makes an ENI's (ensureENI).
		if err := netlink.LinkAdd(&netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: tunName, MTU: 9001},
			Mode:      netlink.TUNTAP_MODE_TUN,
			Flags:     netlink.TuntapFlag(snapshot.TUNFlags &^ unix.IFF_TUN),
		}); err != nil {
			return err
		}
		tun, err := netlink.LinkByName(tunName)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(tun); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: tun.Attrs().Index, Dst: netlink.NewIPNet(benchENI.AsSlice())})
	})
	if err != nil {
		b.Fatal(err)
	}

	// The target: it reads the proxy protocol header, then echoes until
	// the consumer's end, as pvlink bench's request/response target does.
	// Its own, not peer.Target (a report line and a 16 KiB buffer per
	// connection: 562-569 us of CPU per connection here against 467-520,
	// the forwarder's share smaller) nor bench's (the data plane does not
	// import the control side, tests included:
	// TestTheDataPlaneDoesNotLinkTheControlSide).
	var ln net.Listener
	if err := nsenter.Do(netns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(benchTarget, benchPort).String())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echoAfterHeader(c)
		}
	}()

	cfg := &Config{
		Fabric: "bench", Region: "us-east-1", AZ: "use1-az1",
		ENIs: []ENI{{
			ID: "eni-bench", Tun: tunName, Netns: netns, IPv4: benchENI,
			EndpointID: "vpce-bench", ServiceID: "vpce-svc-bench", ServiceName: "com.amazonaws.vpce.us-east-1.vpce-svc-bench",
			State:     snapshot.StateAvailable,
			Listeners: []snapshot.Listener{{Port: 80, LoadBalancer: "lb", TargetGroup: "tg"}},
		}},
		LoadBalancers: map[string]snapshot.LoadBalancer{"lb": {Name: "lb", Netns: netns, NodeIP: benchNode}},
		TargetGroups: map[string]snapshot.TargetGroup{"tg": {
			Name: "tg", ProxyProtocolV2: true,
			Targets: []snapshot.Target{{IP: benchTarget, Port: benchPort, AZ: "use1-az1"}},
		}},
	}
	f, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		f.Close()
		<-done
	})
	return netns
}

// BenchmarkConnection: a consumer connects to the ENI, sends a byte,
// reads the target's answer and closes; the next begins once the target
// has seen that end. Besides the time per connection it reports the CPU
// the whole process (forwarder, consumer and target, their kernel work
// included) spent on each, from getrusage: the figure to compare across
// changes, as it does not count the time a core sat idle. Run it with
// -cpu 1, as a forwarder worker runs (GOMAXPROCS 1): with two Ps the
// runtime spins a thread looking for work between the steps of each
// connection, and that spinning is counted too.
func BenchmarkConnection(b *testing.B) {
	netns := benchForwarder(b)
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return nsenter.DialTCP(ctx, netns, addr) }
	addr := netip.AddrPortFrom(benchENI, 80).String()
	ctx := context.Background()
	exchange := func() {
		c, err := dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		var buf [1]byte
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	// The forwarder's goroutines, pools and stacks warm.
	for range 200 {
		exchange()
	}
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		exchange()
	}
	b.StopTimer()
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	user := time.Duration(after.Utime.Nano() - before.Utime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/conn")
	b.ReportMetric(float64(user.Microseconds())/float64(b.N), "user-µs/conn")
}

// echoAfterHeader is the benchmark's target for one connection: the proxy
// protocol header read, each byte echoed until the consumer's end.
func echoAfterHeader(c net.Conn) {
	defer c.Close()
	if _, err := (proxyproto.Decoder{}).Read(c); err != nil {
		return
	}
	var buf [1]byte
	for {
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return
		}
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
	}
}
