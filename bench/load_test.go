package bench

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestLatencyPacesItsRequests: the requests follow the ticks of the rate
// and never catch up. Every tenth answer here is held for three intervals;
// a loop that catches up (as the one paced by Go's sleeps did, which also
// sent every other request straight after the answer to the one before,
// its millisecond sleeps running late) sends the ticks it missed back to
// back and so makes about one request per tick in all, while a loop that
// waits for the next tick loses the ticks a held answer spans. Counting
// requests rather than timing the gaps between them keeps the test true on
// a loaded machine, where a late wake-up followed by a prompt one leaves a
// short gap whichever loop sent it.
func TestLatencyPacesItsRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const (
		rate     = 1000
		interval = time.Second / rate
		d        = 300 * time.Millisecond
		every    = 10
		hold     = 5 * interval
	)
	var requests atomic.Int64
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
			if requests.Add(1)%every == 0 {
				time.Sleep(hold)
			}
			c.Write(b[:])
		}
	}()
	start := time.Now()
	p50, p99, p999, err := Latency(context.Background(), DialFrom(""), ln.Addr().String(), rate, d)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !(p50 > 0 && p50 <= p99 && p99 <= p999) {
		t.Errorf("percentiles p50 %v, p99 %v, p99.9 %v µs: want 0 < p50 <= p99 <= p99.9", p50, p99, p999)
	}
	if p99 < float64(hold.Microseconds()) {
		t.Errorf("p99 %v µs: the held answers (%v) are not among the samples", p99, hold)
	}
	n := requests.Load()
	ticks := int64(took / interval)
	// A held answer spans five ticks, of which a paced loop uses two (the
	// one it was sent on, and the last, already expired when the answer
	// comes): at most every requests per every+3 ticks, about 230 of 300.
	limit := ticks * every / (every + 3)
	t.Logf("%d requests in %v (%d ticks), every %dth answer held %v; a loop that caught up would send about %d", n, took.Round(time.Millisecond), ticks, every, hold, ticks)
	if n < 30 {
		t.Fatalf("%d requests in %v at %d a second", n, took, rate)
	}
	if n > limit {
		t.Errorf("%d requests in %d ticks with every %dth answer held for %v: the loop caught up on the ticks it missed (a paced loop sends at most %d)", n, ticks, every, hold, limit)
	}
}
