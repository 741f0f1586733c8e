package dataplane

import (
	"context"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

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
// So a connection starts with smallHold each way, fixed, and each
// direction's buffer follows what the direction moves: every budgetEvery,
// one that moved at least four buffers' worth grows four times (up to the
// ceiling). A stream that keeps its buffer turning over reaches the ceiling
// in 300 ms; a peer that drains slowly keeps smallHold, and a burst (a
// target socket's kernel buffer filling at first) buys one step. A send
// buffer that moved less than one buffer's worth for shrinkAfter periods
// shrinks four times (down to smallHold): what it already holds drains,
// and nothing more is taken from the target meanwhile (the relay's writes
// block, and it stops reading). A receive buffer never shrinks (see
// resize). A slow consumer therefore pins about smallHold, a slow target
// about the receive buffer its connection reached (512 KiB after a first
// burst), plus the relay buffer a blocked write holds (64 KiB).
//
// Over all connections, the forwarder keeps to a memory budget, as the
// kernel keeps to tcp_mem: the Go runtime's memory limit (memoryBudget,
// plus eniHeap for each ENI, unless GOMEMLIMIT says otherwise), near which the collector works harder
// instead of letting garbage double the heap. Once live data passes three
// quarters of it, the forwarder is under pressure until live data is back
// under half of it: no buffer grows, and every send buffer shrinks each
// period towards smallHold, fast or not, so the relay's reads from the
// targets pause instead of memory growing; consumers' windows stop growing.
const (
	smallHold = 128 << 10
	// growAt: a direction that moved this many buffers' worth in a period
	// gets a buffer this many times larger.
	growAt = 4
	// shrinkAfter periods in a row of moving less than its buffer shrink
	// a direction's buffer: a fast stream's pause of a moment keeps it.
	shrinkAfter = 5
	// memoryBudget is what the forwarder's connections may hold: its
	// memory limit (debug.SetMemoryLimit) is this plus eniHeap for each
	// ENI it serves.
	memoryBudget = 256 << 20
	// eniHeap is what an ENI holds whatever its traffic. With 100 ENIs
	// open and no connection a forwarder's heap in use was 136-273 KiB
	// per ENI (TestManyIdleEndpointsLeaveTheForwarderUnderItsBudget, 5
	// runs, 2026-11-28), once the GSO path stopped keeping wireguard's
	// device and its GRO tables (2,450 KiB per ENI before). Left out of
	// the budget, 100 idle ENIs had kept a forwarder under pressure for
	// good.
	eniHeap     = 512 << 10
	budgetEvery = 100 * time.Millisecond
)

// manageMemoryLimit says whether the forwarder sets the runtime's memory
// limit (no GOMEMLIMIT), and sets it for the ENIs it serves now.
func (f *Forwarder) manageMemoryLimit(own bool) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.ownLimit = own
	f.enisMu.Lock()
	n := len(f.enis)
	f.enisMu.Unlock()
	f.setMemoryLimit(n)
}

// setMemoryLimit makes the runtime's memory limit memoryBudget plus
// eniHeap for each of enis ENIs, unless GOMEMLIMIT set it (it wins).
func (f *Forwarder) setMemoryLimit(enis int) {
	if f.ownLimit {
		debug.SetMemoryLimit(memoryBudget + int64(enis)*eniHeap)
	}
}

// holds is the budget's view of a connection: bytes moved each way when it
// last looked, and each direction's buffer size (0: smallHold). Only the
// budget's goroutine uses it.
type holds struct {
	lastIn, lastOut uint64
	tx, rx          int64
	txLow, rxLow    int // periods in a row each direction moved less than its buffer
}

// keepBudget sizes connection buffers every budgetEvery until ctx ends.
func (f *Forwarder) keepBudget(ctx context.Context) {
	tick := time.NewTicker(budgetEvery)
	defer tick.Stop()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f.resize(f.underPressure(sample))
		}
	}
}

// underPressure reports whether live heap is over the memory budget's high
// mark, or has not yet come back under its low mark.
func (f *Forwarder) underPressure(sample []metrics.Sample) bool {
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return false
	}
	metrics.Read(sample)
	live := int64(sample[0].Value.Uint64())
	switch on := f.pressure.Load(); {
	case !on && live > limit/4*3:
		f.pressure.Store(true)
		f.stats.memoryPressure.Add(1)
		f.log.Warn("memory budget: holding connections to small buffers", "live_heap_bytes", live, "limit_bytes", limit)
	case on && live < limit/2:
		f.pressure.Store(false)
		f.log.Info("memory budget: back under it", "live_heap_bytes", live, "limit_bytes", limit)
	}
	return f.pressure.Load()
}

// resize sizes each connection's buffers by what each direction moved over
// the last period.
func (f *Forwarder) resize(pressure bool) {
	var big, held int64
	defer func() { f.bigConns.Store(big); f.heldIn.Store(held) }()
	f.flows.Range(func(fl *flowtable.Flow) bool {
		c := fl.Value.(*conn)
		if !c.started.Load() || c.released.Load() {
			return true
		}
		h := &c.holds
		if n, err := c.ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption); err == nil {
			held += int64(n)
		}
		in, out := fl.BytesIn.Load(), fl.BytesOut.Load()
		ops := c.ep.SocketOptions()
		if size, ok := resized(h.tx, out-h.lastOut, tcpTXBufMax, &h.txLow, pressure); ok {
			h.tx = size
			ops.SetSendBufferSize(size, true)
		}
		// A receive buffer never shrinks: gVisor never takes back window
		// it has offered, and drops what arrives in it beyond a smaller
		// buffer, which left a fast upload waiting on retransmission
		// timeouts (0.01 Gbit/s) after its buffer had shrunk while idle.
		if size, ok := resized(h.rx, in-h.lastIn, tcpRXBufMax, &h.rxLow, pressure); ok && size > max(h.rx, smallHold) {
			h.rx = size
			ops.SetReceiveBufferSize(size, true)
		}
		h.lastIn, h.lastOut = in, out
		if h.tx > smallHold || h.rx > smallHold {
			big++
		}
		return true
	})
}

// resized is the next buffer size of a direction whose buffer is size (0:
// smallHold) and that moved moved bytes over the last period; low counts
// the periods in a row it moved less than its buffer. Under pressure it
// only shrinks. ok says it changed.
func resized(size int64, moved uint64, ceiling int64, low *int, pressure bool) (int64, bool) {
	size = max(size, smallHold)
	next := size
	switch {
	case pressure:
		next = max(size/growAt, smallHold)
	case moved >= uint64(growAt*size):
		next = min(size*growAt, ceiling)
		*low = 0
	case moved < uint64(size):
		if *low++; *low >= shrinkAfter {
			next = max(size/growAt, smallHold)
			*low = 0
		}
	default:
		*low = 0
	}
	return next, next != size
}

// holdSmall gives a new connection small buffers both ways.
func holdSmall(c *conn) {
	ops := c.ep.SocketOptions()
	ops.SetSendBufferSize(smallHold, true)
	ops.SetReceiveBufferSize(smallHold, true)
}
