package bench

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestLatencyPacesItsRequests: at 1000 requests a second, the requests
// reach the server about a millisecond apart, not in bursts of two (a
// sleep's millisecond granularity once sent every other request straight
// after the answer to the one before), and the percentiles come back in
// order.
func TestLatencyPacesItsRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var arrivals []time.Time
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var b [1]byte
		for {
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
			c.Write(b[:])
		}
	}()
	const rate = 1000
	p50, p99, p999, err := Latency(context.Background(), DialFrom(""), ln.Addr().String(), rate, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !(p50 > 0 && p50 <= p99 && p99 <= p999) {
		t.Errorf("percentiles p50 %v, p99 %v, p99.9 %v µs: want 0 < p50 <= p99 <= p99.9", p50, p99, p999)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(arrivals); n < 100 || n > 310 {
		t.Fatalf("%d requests in 300 ms at %d a second", n, rate)
	}
	close := 0
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i].Sub(arrivals[i-1]) < time.Second/rate/4 {
			close++
		}
	}
	t.Logf("%d of %d requests less than a quarter interval after the one before", close, len(arrivals))
	// A late tick can leave one short gap after it; bursts leave many.
	if close > len(arrivals)/20 {
		t.Errorf("%d of %d requests came less than a quarter interval after the one before", close, len(arrivals))
	}
}
