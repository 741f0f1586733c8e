package dataplane

import (
	"context"
	"time"

	"pvlink.dev/pvlink/flowtable"
)

// The memory budget.
//
// What a connection holds in the forwarder is what gVisor buffers for it:
// bytes from the target not yet taken by the consumer (send buffer) and
// bytes from the consumer not yet taken by the target (receive buffer).
// gVisor lets both grow to megabytes (auto-tuning, up to tcpTXBufMax and
// tcpRXBufMax), which is what a fast stream needs and what a slow peer
// turns into memory pinned for as long as it takes to drain.
//
// So a connection starts with smallHold each way, fixed, and only one seen
// moving at least fastRate gets the large buffers; one that slows down
// again goes back to smallHold (what it already holds drains, nothing more
// is taken from the faster side meanwhile: the relay's writes block, and
// it stops reading). A slow peer therefore pins at most smallHold each way,
// plus the relay buffer a blocked write holds (64 KiB).
//
// Over all connections, the forwarder keeps to memoryBudget as the Go
// runtime's memory limit: the collector works harder as it nears, instead
// of letting garbage double the heap.
const (
	smallHold = 128 << 10
	// fastRate is the rate (bytes/s) above which a direction gets large
	// buffers: smallHold/2 drained in 20 ms, about 52 Mbit/s.
	fastRate = smallHold / 2 * 50
	// memoryBudget is the forwarder's memory limit (debug.SetMemoryLimit).
	memoryBudget = 256 << 20
	budgetEvery  = 100 * time.Millisecond
)

// holds is the budget's view of a connection: bytes moved each way when it
// last looked, and which directions have large buffers. Only the budget's
// goroutine uses it.
type holds struct {
	lastIn, lastOut uint64
	bigTX, bigRX    bool
}

// keepBudget sizes connection buffers every budgetEvery until ctx ends.
func (f *Forwarder) keepBudget(ctx context.Context) {
	tick := time.NewTicker(budgetEvery)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			f.resize(now.Sub(last))
			last = now
		}
	}
}

// resize gives each connection's directions large or small buffers by how
// fast they moved over the last dt.
func (f *Forwarder) resize(dt time.Duration) {
	var big int64
	defer func() { f.bigConns.Store(big) }()
	f.flows.Range(func(fl *flowtable.Flow) bool {
		c := fl.Value.(*conn)
		if !c.started.Load() || c.released.Load() {
			return true
		}
		h := &c.holds
		in, out := fl.BytesIn.Load(), fl.BytesOut.Load()
		ops := c.ep.SocketOptions()
		if big := float64(out-h.lastOut)/dt.Seconds() >= fastRate; big != h.bigTX {
			h.bigTX = big
			ops.SetSendBufferSize(holdFor(big, tcpTXBufMax), true)
		}
		if big := float64(in-h.lastIn)/dt.Seconds() >= fastRate; big != h.bigRX {
			h.bigRX = big
			ops.SetReceiveBufferSize(holdFor(big, tcpRXBufMax), true)
		}
		h.lastIn, h.lastOut = in, out
		if h.bigTX || h.bigRX {
			big++
		}
		return true
	})
}

func holdFor(big bool, large int64) int64 {
	if big {
		return large
	}
	return smallHold
}

// holdSmall gives a new connection small buffers both ways.
func holdSmall(c *conn) {
	ops := c.ep.SocketOptions()
	ops.SetSendBufferSize(smallHold, true)
	ops.SetReceiveBufferSize(smallHold, true)
}
