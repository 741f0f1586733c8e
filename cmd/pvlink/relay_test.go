package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/proxyproto"
	"pvlink.dev/pvlink/snapshot"
)

// Many short exchanges, each ending with the target's last bytes and its
// FIN close together: every one must deliver the whole echo and then the
// EOF. (The relay parks a direction after a short read; a FIN whose wake-up
// merged with the bytes before it must not be left unread.)
func TestShortExchangesAllEndWithTheirEOF(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(f.Status.Endpoints[0].Ports[0])).String()
	const total, parallel = 400, 16
	var wg sync.WaitGroup
	errs := make(chan error, total)
	next := make(chan int, total)
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := &peer.Client{Addr: addr, Bytes: int64(1 + i*37%5000), Timeout: 10 * time.Second, Dial: fabrictest.DialFrom(consumer)}
				res, err := c.Run(context.Background())
				if err == nil && !res.Intact {
					err = fmt.Errorf("echo not intact: sent %d, echoed %d", res.Sent, res.Echoed)
				}
				if err != nil {
					errs <- fmt.Errorf("exchange %d: %w", i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d exchanges failed", n, total)
	}
	// Every flow ended and was released.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st snapshot.Stats
		f.GetJSON(t, eni.AZ, "/stats", &st)
		if st.Flows == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flows still open after every exchange ended", st.Flows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A target that speaks first (SMTP, FTP, MySQL): its bytes reach the
// consumer before the consumer sends anything, on every one of many
// connections. The target writes as soon as it accepts, so its bytes often
// wait in the provider socket before the relay starts watching it; that
// first wake-up must not be lost.
func TestTargetThatSpeaksFirstReachesEveryConsumer(t *testing.T) {
	f := fabrictest.Up(t, proxyTopology(t))
	ln := listenIn(t, f.Netns(t, "provider"), "198.19.1.20:9000")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 ready\r\n"))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	dial := fabrictest.DialFrom(f.Netns(t, "consumer"))
	addr := f.Status.Endpoints[0].ENIs[0].IP + ":81"
	const total, parallel = 300, 16
	var failed sync.Map
	var wg sync.WaitGroup
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += parallel {
				c, err := dial(context.Background(), "tcp", addr)
				if err != nil {
					failed.Store(i, err)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if banner, err := bufio.NewReader(c).ReadString('\n'); err != nil || banner != "220 ready\r\n" {
					failed.Store(i, fmt.Errorf("banner %q, %v", banner, err))
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	n := 0
	failed.Range(func(k, v any) bool {
		if n++; n <= 5 {
			t.Errorf("connection %d: %v", k, v)
		}
		return true
	})
	if n > 0 {
		t.Fatalf("%d of %d consumers did not get the target's banner", n, total)
	}
}

// An idle connection holds no goroutine in the forwarder: both relay
// directions park on registrations, not on blocked reads.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(f.Status.Endpoints[0].Ports[0])).String()
	var before snapshot.Stats
	f.GetJSON(t, eni.AZ, "/stats", &before)
	const n = 200
	openIdle(t, consumer, addr, n)
	time.Sleep(500 * time.Millisecond)
	var after snapshot.Stats
	f.GetJSON(t, eni.AZ, "/stats", &after)
	if after.Flows != n {
		t.Fatalf("%d flows, want %d", after.Flows, n)
	}
	// The relay's pool keeps workers for a while after a burst (more of
	// them on a loaded machine, where tasks overlap); waiting for work, they
	// belong to no connection. A worker held by a connection is busy.
	held := func(s snapshot.Stats) int { return s.Runtime.Goroutines - s.Runtime.IdleWorkers }
	extra := held(after) - held(before)
	t.Logf("%d idle connections: %d more goroutines not idle in the pool (%d idle there), stacks %d -> %d KiB",
		n, extra, after.Runtime.IdleWorkers, before.Runtime.StackBytes>>10, after.Runtime.StackBytes>>10)
	if extra > n/10 {
		t.Errorf("%d idle connections hold %d goroutines", n, extra)
	}
}

// openIdle opens n connections from the consumer namespace, sends a byte on
// each (which brings the proxy header out) and leaves them idle; they are
// closed when the test ends.
func openIdle(t *testing.T, consumer, addr string, n int) {
	t.Helper()
	dial := fabrictest.DialFrom(consumer)
	for i := 0; i < n; i++ {
		c, err := dial(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
}

// The node's connections to targets carry no TCP keepalives: an NLB sends
// none, and a user watching an idle flow on the target side (tcpdump, the
// idle timeout) must see nothing until the flow's timeout. The kernel's
// socket diagnostics show which timer each provider socket has armed.
func TestProviderSocketsSendNoKeepalives(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	eni := f.Status.Endpoints[0].ENIs[0]
	addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(f.Status.Endpoints[0].Ports[0])).String()
	const n = 5
	openIdle(t, f.Netns(t, "consumer"), addr, n)
	node := netip.MustParseAddr(nodeIP(t, f.Status, eni.AZ))
	var socks []*netlink.Socket
	waitUntil(t, 5*time.Second, "the node's sockets to the target", func() bool {
		socks = nil
		err := nsenter.Do(f.Netns(t, "provider"), func() (err error) {
			all, err := netlink.SocketDiagTCP(unix.AF_INET)
			for _, s := range all {
				if a, ok := netip.AddrFromSlice(s.ID.Source.To4()); ok && a == node && s.State == netlink.TCP_ESTABLISHED {
					socks = append(socks, s)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(socks) >= n
	})
	const keepaliveTimer = 2 // inet_diag's idiag_timer
	for _, s := range socks {
		if s.Timer == keepaliveTimer {
			t.Errorf("node socket %s:%d -> %s:%d has its keepalive timer armed", s.ID.Source, s.ID.SourcePort, s.ID.Destination, s.ID.DestinationPort)
		}
	}
}

// TestAConsumerReusingItsPortRightAfterTheTargetClosedConnects: when the
// target ends a connection first, the forwarder's side of it closes first
// too; a consumer that then opens a new connection from the same source
// port (as busy clients do, their ports cycling) must connect at once, as
// through an NLB, which keeps no TIME_WAIT for a flow.
func TestAConsumerReusingItsPortRightAfterTheTargetClosedConnects(t *testing.T) {
	f := fabrictest.Up(t, proxyTopology(t))
	provider, consumer := f.Netns(t, "provider"), f.Netns(t, "consumer")
	// The target behind port 82 (early) closes each connection right after
	// its header: the target ends it first.
	ln := listenIn(t, provider, "198.19.1.21:9001")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the proxy header first: closing with it unread would
			// be a RST, not the FIN this test is about.
			(proxyproto.Decoder{}).Read(c)
			c.Write([]byte("bye\n"))
			c.Close()
		}
	}()
	eni := f.Status.Endpoints[0].ENIs[0]
	local := &net.TCPAddr{IP: net.ParseIP(f.Status.VPCs[1].Subnets[0].HostIP), Port: 40123}
	dial := func() error {
		var c net.Conn
		err := nsenter.Do(consumer, func() (err error) {
			d := &net.Dialer{LocalAddr: local, Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
			}}
			c, err = d.Dial("tcp", net.JoinHostPort(eni.IP, "82"))
			return err
		})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = io.ReadAll(c) // until the target's close reaches us
		return err
	}
	for i := 0; i < 3; i++ {
		time.Sleep(100 * time.Millisecond) // the consumer's side of the last one ends
		start := time.Now()
		if err := dial(); err != nil {
			t.Fatalf("connection %d from port %d: %v after %s", i+1, local.Port, err, time.Since(start).Round(time.Millisecond))
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("connection %d from port %d took %s (a SYN retransmission: the old flow held the port)", i+1, local.Port, took.Round(time.Millisecond))
		}
	}
}

// TestASixtySecondSoakLosesNothingAndGrowsNothing runs `pvlink bench
// soak` for a minute (docs/performance.md quotes a 10-minute run): mixed new
// connections, uploads and downloads, slow readers, resets, idle flows
// timing out and a target deregistered and registered again; no byte
// lost, no unexpected error, no RSS, descriptor or goroutine growth after
// the warm-up, no flow left.
func TestASixtySecondSoakLosesNothingAndGrowsNothing(t *testing.T) {
	fabrictest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, fabrictest.Binary(t), "bench", "soak", "--duration", "60s").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the soak failed: %v", err)
	}
}
