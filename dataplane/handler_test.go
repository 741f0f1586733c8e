package dataplane

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/waiter"
)

// TestTheSweepGivesUpAHandshakeOnceItsDeadlinePassed checks what stands in
// for a timer per handshake: the sweeper's look at a connection wakes the
// wait on its consumer endpoint's queue once the deadline has passed, and
// only then, once.
func TestTheSweepGivesUpAHandshakeOnceItsDeadlinePassed(t *testing.T) {
	c := &conn{}
	woken := 0
	e := waiter.NewFunctionEntry(waiter.WritableEvents, func(waiter.EventMask) { woken++ })
	c.queue.EventRegister(&e)
	defer c.queue.EventUnregister(&e)

	start := monoNow()
	c.giveUpHandshake(start + time.Hour)
	if woken != 0 || c.handshakeTimeout.Load() {
		t.Fatalf("a connection in no handshake was woken (%d) or marked timed out", woken)
	}
	c.handshakeUntil.Store(int64(start + handshakeTimeout))
	c.giveUpHandshake(start + handshakeTimeout - time.Millisecond)
	if woken != 0 || c.handshakeTimeout.Load() {
		t.Fatalf("woken %d times before the deadline", woken)
	}
	c.giveUpHandshake(start + handshakeTimeout)
	if woken != 1 || !c.handshakeTimeout.Load() {
		t.Fatalf("woken %d times at the deadline (timed out: %v), want once", woken, c.handshakeTimeout.Load())
	}
	c.giveUpHandshake(start + 2*handshakeTimeout)
	if woken != 1 {
		t.Fatalf("woken %d times by a later sweep, want once", woken)
	}
}
