package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// synFlood sends n SYNs from random addresses of from to dst:port, from
// inside netns, through a raw socket, spread evenly over d. It stops by
// itself after n SYNs or d plus a second, whichever comes first, and
// returns how many it sent.
func synFlood(t *testing.T, netns string, from netip.Prefix, dst netip.Addr, port uint16, n int, d time.Duration) int {
	t.Helper()
	var fd int
	if err := nsenter.Do(netns, func() (err error) {
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Addr: dst.As4()}
	dstT := tcpip.AddrFrom4(dst.As4())
	base := binary.BigEndian.Uint32(from.Masked().Addr().AsSlice())
	size := uint32(1) << (32 - from.Bits())
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	start := time.Now()
	sent := 0
	for i := 0; i < n; i++ {
		if i%100 == 0 {
			if ahead := time.Duration(i)*d/time.Duration(n) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			if time.Since(start) > d+time.Second {
				break
			}
		}
		var s [4]byte
		binary.BigEndian.PutUint32(s[:], base+1+rand.Uint32N(size-2))
		srcT := tcpip.AddrFrom4(s)
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: srcT, DstAddr: dstT, ID: uint16(i)})
		ip.SetChecksum(^ip.CalculateChecksum())
		tcp := header.TCP(b[header.IPv4MinimumSize:])
		tcp.Encode(&header.TCPFields{SrcPort: uint16(1024 + rand.IntN(60000)), DstPort: port, SeqNum: rand.Uint32(),
			DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 64240})
		tcp.SetChecksum(^tcp.CalculateChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, srcT, dstT, header.TCPMinimumSize)))
		if err := syscall.Sendto(fd, b, 0, to); err != nil {
			t.Errorf("send SYN %d: %v", i, err)
			break
		}
		sent++
	}
	return sent
}

// rssOf is a process's resident set in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	return procStatus(t, pid, "VmRSS") << 10
}

// procStatus is the number a field of /proc/PID/status gives (VmRSS in
// KiB, Threads).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s for pid %d", field, pid)
	return 0
}

// TestASynFloodLosesNoLegitimateClient: 50,000 SYNs from spoofed consumer
// VPC addresses at one ENI over about 6 s, while a client makes 200
// connections, one every 50 ms, during the flood and after it. At least
// 199 connect and echo within 1 s each (the forwarder answers the flood
// with SYN cookies), the half-open handshakes from before the cookies are
// given up and counted, and the forwarder's goroutines, flows and RSS come
// back to where they were (RSS within 8 MiB).
func TestASynFloodLosesNoLegitimateClient(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    health_check: {enabled: false}"))
	provider, consumer := f.Netns(t, "provider"), f.Netns(t, "consumer")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	eni := netip.MustParseAddr(f.Status.Endpoints[0].ENIs[0].IP)
	var pid int
	for _, fw := range f.Status.Forwarders {
		if fw.AZ == "use1-az1" {
			pid = fw.PID
		}
	}
	for i := 0; i < 20; i++ {
		c, _, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatalf("before the flood: %v", err)
		}
		c.Close()
	}
	a.closeConns()
	b.closeConns()
	time.Sleep(time.Second)
	base := statsOf(t, f)
	baseRSS := rssOf(t, pid)

	// rssSlack is how far above its baseline the forwarder's RSS may stay
	// once the flood is over and its memory handed back.
	const clients, flood, rssSlack = 200, 50000, 8 << 20
	type attempt struct {
		took time.Duration
		err  error
	}
	results := make([]attempt, clients)
	var wg sync.WaitGroup
	var sent int
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent = synFlood(t, consumer, netip.MustParsePrefix("198.18.128.0/17"), eni, 80, flood, 6*time.Second)
	}()
	dial := fabrictest.DialFrom(consumer)
	var peakRSS int64
	tick := time.NewTicker(50 * time.Millisecond)
	for i := 0; i < clients; i++ {
		<-tick.C
		if i%10 == 0 {
			peakRSS = max(peakRSS, rssOf(t, pid))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			results[i].err = func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				c, err := dial(ctx, "tcp", eni.String()+":80")
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(start.Add(time.Second))
				if _, err := c.Write([]byte("ping\n")); err != nil {
					return err
				}
				if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
					return fmt.Errorf("echo %q: %v", line, err)
				}
				return nil
			}()
			results[i].took = time.Since(start)
		}()
	}
	tick.Stop()
	wg.Wait()
	a.closeConns()
	b.closeConns()

	failed := 0
	var took []time.Duration
	for i, r := range results {
		if r.err != nil {
			failed++
			t.Logf("connection %d (at %d ms): %v after %v", i+1, i*50, r.err, r.took.Round(time.Millisecond))
		}
		took = append(took, r.took)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	during := statsOf(t, f)
	t.Logf("%d SYNs sent; %d/%d connections failed; connect+echo p50 %v, max %v; peak RSS %.1f MiB (baseline %.1f)",
		sent, failed, clients, took[len(took)/2].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond),
		float64(peakRSS)/(1<<20), float64(baseRSS)/(1<<20))
	t.Logf("cookie modes %d, cookie connections %d, handshake timeouts %d, netstack endpoint errors %d, netstack %v",
		during.CookieModes-base.CookieModes, during.CookieConns-base.CookieConns, during.HandshakeTimeouts-base.HandshakeTimeouts,
		during.EndpointErrors-base.EndpointErrors, during.Netstack)
	if sent < flood {
		t.Errorf("only %d of %d SYNs were sent", sent, flood)
	}
	if failed > 1 {
		t.Errorf("%d of %d connections failed or took over 1 s during and after the flood, want at most 1", failed, clients)
	}
	if during.CookieModes == base.CookieModes {
		t.Error("the ENI never answered with SYN cookies")
	}
	if during.HandshakeTimeouts == base.HandshakeTimeouts {
		t.Error("no half-open handshake was given up")
	}
	if during.Netstack["listen_overflow_syn_cookies"] < flood/2 {
		t.Errorf("%d SYN cookies sent for %d SYNs", during.Netstack["listen_overflow_syn_cookies"], flood)
	}

	// After the flood: cookies off, the half-open handshakes given up, the
	// relay's spare workers gone, memory back.
	var after snapshot.Stats
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after = statsOf(t, f)
		if len(after.CookieENIs) == 0 && after.Runtime.Goroutines <= base.Runtime.Goroutines+4 && after.Flows <= base.Flows &&
			rssOf(t, pid) <= baseRSS+rssSlack {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("60 s after the flood: cookies on %v, %d goroutines (%d before), %d flows (%d before), RSS %.1f MiB (%.1f before)",
				after.CookieENIs, after.Runtime.Goroutines, base.Runtime.Goroutines, after.Flows, base.Flows,
				float64(rssOf(t, pid))/(1<<20), float64(baseRSS)/(1<<20))
		}
	}
	t.Logf("goroutines %d before, %d after; RSS %.1f MiB before, %.1f after; heap in use %.1f MiB before, %.1f after; handshake timeouts %d",
		base.Runtime.Goroutines, after.Runtime.Goroutines, float64(baseRSS)/(1<<20), float64(rssOf(t, pid))/(1<<20),
		float64(base.Runtime.HeapInuseBytes)/(1<<20), float64(after.Runtime.HeapInuseBytes)/(1<<20), after.HandshakeTimeouts-base.HandshakeTimeouts)
	if m := f.Metrics(t, "use1-az1"); !strings.Contains(m, `pvlink_forwarder_dropped_syns_total{az="use1-az1",reason="handshake_timeout"}`) {
		t.Error("no pvlink_forwarder_dropped_syns_total by reason in the metrics")
	}
	// And the endpoint serves as before, by stateful handshakes.
	c, _, err := roundTrip(t, f, a, b)
	if err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	c.Close()
}
