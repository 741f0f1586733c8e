package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pvlink.dev/pvlink/bench/peer"
	"pvlink.dev/pvlink/dataplane"
	"pvlink.dev/pvlink/internal/fabrictest"
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
		var st dataplane.Stats
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

// An idle connection holds no goroutine in the forwarder: both relay
// directions park on registrations, not on blocked reads.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(f.Status.Endpoints[0].Ports[0])).String()
	var before dataplane.Stats
	f.GetJSON(t, eni.AZ, "/stats", &before)
	const n = 200
	openIdle(t, consumer, addr, n)
	time.Sleep(500 * time.Millisecond)
	var after dataplane.Stats
	f.GetJSON(t, eni.AZ, "/stats", &after)
	if after.Flows != n {
		t.Fatalf("%d flows, want %d", after.Flows, n)
	}
	extra := after.Runtime.Goroutines - before.Runtime.Goroutines
	t.Logf("%d idle connections: %d more goroutines, stacks %d -> %d KiB", n, extra, before.Runtime.StackBytes>>10, after.Runtime.StackBytes>>10)
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
