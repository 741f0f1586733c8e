package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// pacedTarget is a target for the memory tests: each connection's first
// line says what it does: "send" writes as fast as it can, "read" reads
// as fast as it can, "slowread" reads 100 KB/s. It stops when the
// connection ends or the test does.
func pacedTarget(t *testing.T, ns, addr string) {
	ln := listenIn(t, ns, addr)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				mode, err := r.ReadString('\n')
				if err != nil {
					return
				}
				pace(r, c, mode[:len(mode)-1])
			}()
		}
	}()
}

// pace is one side of a memory test's connection: "send" writes until the
// connection fails, "read" reads until it ends, "slowread" reads 10 KB
// every 100 ms. Nothing runs past two minutes.
func pace(r io.Reader, w io.Writer, mode string) {
	end := time.Now().Add(2 * time.Minute)
	buf := make([]byte, 64<<10)
	for time.Now().Before(end) {
		switch mode {
		case "send":
			if _, err := w.Write(buf); err != nil {
				return
			}
		case "read":
			if _, err := r.Read(buf); err != nil {
				return
			}
		case "slowread":
			if _, err := io.ReadFull(r, buf[:10<<10]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestSlowPeersHoldBoundedMemory: 200 connections whose consumers read
// 100 KB/s while their targets send as fast as they can, for 20 s. The
// forwarder's RSS stays under memoryBound (200 slow connections at up to
// 6 MiB each would be 1.2 GB), and a fast download on another connection
// keeps at least half the throughput it had alone.
func TestSlowPeersHoldBoundedMemory(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    health_check: {enabled: false}"))
	provider, consumer := f.Netns(t, "provider"), f.Netns(t, "consumer")
	pacedTarget(t, provider, "198.19.1.20:9000")
	pacedTarget(t, provider, "198.19.1.21:9000")
	eni := f.Status.Endpoints[0].ENIs[0].IP + ":80"
	var pid int
	for _, fw := range f.Status.Forwarders {
		if fw.AZ == "use1-az1" {
			pid = fw.PID
		}
	}
	dial := fabrictest.DialFrom(consumer)
	open := func(targetMode string) net.Conn {
		c, err := dial(context.Background(), "tcp", eni)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(targetMode + "\n")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// rate is what one connection moves the given way in d, in bytes/s.
	rate := func(c net.Conn, mode string, d time.Duration) float64 {
		var n atomic.Int64
		buf := make([]byte, 256<<10)
		c.SetDeadline(time.Now().Add(d))
		start := time.Now()
		for {
			var k int
			var err error
			if mode == "read" {
				k, err = c.Read(buf)
			} else {
				k, err = c.Write(buf)
			}
			n.Add(int64(k))
			if err != nil {
				break
			}
		}
		c.SetDeadline(time.Time{})
		return float64(n.Load()) / time.Since(start).Seconds()
	}

	const slow, spell = 200, 20 * time.Second
	for _, tc := range []struct {
		name                   string
		targetSlow, targetFast string // what the targets do
		consumerSlow           string // what the slow consumers do
		fastMode               string // what the fast consumer does
	}{
		{"slow consumers, targets sending", "send", "send", "slowread", "read"},
		// Slow targets with consumers sending flat out are not bounded yet:
		// 200 of them held 0.8-1.6 MiB each in gVisor's receive path (TUN
		// read chunks) and slowed a fast upload beside them to 0.3-0.6 of
		// its solo rate (README, known limits).
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast := open(tc.targetFast)
			solo := rate(fast, tc.fastMode, 3*time.Second)
			base := rssOf(t, pid)
			ctx, stop := context.WithTimeout(context.Background(), spell)
			defer stop()
			var wg sync.WaitGroup
			for i := 0; i < slow; i++ {
				c := open(tc.targetSlow)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					go func() { <-ctx.Done(); c.SetDeadline(time.Now()) }()
					pace(c, c, tc.consumerSlow)
				}()
			}
			var peak int64
			var withLoad float64
			for i := 0; ctx.Err() == nil; i++ {
				if i == 10 {
					withLoad = rate(fast, tc.fastMode, 3*time.Second)
				} else {
					time.Sleep(time.Second)
				}
				peak = max(peak, rssOf(t, pid))
			}
			wg.Wait()
			fast.Close()
			t.Logf("%s: forwarder RSS %.0f MiB before, peak %.0f MiB with %d slow connections (%.0f KiB each); fast transfer %.2f Gbit/s alone, %.2f Gbit/s beside them",
				tc.name, float64(base)/(1<<20), float64(peak)/(1<<20), slow, float64(peak-base)/slow/1024, solo*8/1e9, withLoad*8/1e9)
			if peak > memoryBound {
				t.Errorf("forwarder RSS peaked at %.0f MiB, over the %d MiB bound", float64(peak)/(1<<20), memoryBound>>20)
			}
			if withLoad < solo/2 {
				t.Errorf("the fast transfer fell from %.2f to %.2f Gbit/s beside the slow connections, under half", solo*8/1e9, withLoad*8/1e9)
			}
		})
	}
}

// memoryBound is the forwarder RSS TestSlowPeersHoldBoundedMemory allows:
// a slow connection holds at most 128 KiB each way in gVisor, plus a 64 KiB
// relay buffer and the collector's headroom (measured: 110-134 MiB peak).
const memoryBound = 160 << 20
