package dataplane

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// payloadEndpoint stands in for the consumer's endpoint as gVisor's Write
// treats a payload: it takes min(Len, room) bytes, read in views of at most
// 64 KiB, each read until full, and drops them all if a read fails. It
// tells the bytes that came straight from the target's socket from those
// that came through the relay's buffer.
type payloadEndpoint struct {
	tcpip.Endpoint
	room     int
	got      bytes.Buffer
	direct   int  // bytes read from a providerPayload
	buffered int  // bytes read from the relay's buffer
	smallest int  // the smallest Len a providerPayload started with
	midway   bool // the last providerPayload has bytes left
	shut     chan struct{}
	ops      tcpip.SocketOptions
}

func (e *payloadEndpoint) SocketOptions() *tcpip.SocketOptions { return &e.ops }

func (e *payloadEndpoint) Write(p tcpip.Payloader, _ tcpip.WriteOptions) (int64, tcpip.Error) {
	n := min(p.Len(), e.room)
	b := make([]byte, n)
	for at := 0; at < n; at += 64 << 10 {
		if _, err := io.ReadFull(p, b[at:min(at+64<<10, n)]); err != nil {
			return 0, &tcpip.ErrBadBuffer{}
		}
	}
	if pp, ok := p.(*providerPayload); ok {
		e.direct += n
		if start := pp.left + n; !e.midway && (e.smallest == 0 || start < e.smallest) {
			e.smallest = start
		}
		e.midway = pp.left > 0
	} else {
		e.buffered += n
	}
	e.got.Write(b)
	return int64(n), nil
}

func (e *payloadEndpoint) Shutdown(tcpip.ShutdownFlags) tcpip.Error {
	close(e.shut)
	return nil
}

func (e *payloadEndpoint) Abort() {}
func (e *payloadEndpoint) Close() {}

// A target that sends in bulk has its bytes read straight into the
// endpoint's views once a read has brought bulkMin of them; the first read,
// and any that finds fewer queued, go through the relay's buffer. Every byte
// arrives once, in order, and the target's FIN after them.
func TestBulkBytesGoFromTheTargetsSocketIntoTheEndpoint(t *testing.T) {
	ep := &payloadEndpoint{room: 48 << 10, shut: make(chan struct{})}
	ep.ops.SetSendBufferSize(tcpTXBufMax, false)
	c, peer := relayConn(t, ep, 0, false)
	c.live.Store(2)
	c.c2p.Store(dirParked)
	c.p2c.Store(dirParked)

	want := make([]byte, 4<<20)
	for i := range want {
		want[i] = byte(rand.Uint32())
	}
	sent := make(chan error, 1)
	go func() {
		// A few writes of every size, then the FIN.
		b, err := want, error(nil)
		for len(b) > 0 && err == nil {
			var n int
			n, err = unix.Write(peer, b[:min(len(b), 1+rand.IntN(300<<10))])
			b = b[max(n, 0):]
		}
		unix.Shutdown(peer, unix.SHUT_WR)
		sent <- err
	}()
	c.wakeP2C(false)
	select {
	case <-ep.shut:
	case <-time.After(10 * time.Second):
		t.Fatalf("no FIN after 10 s; %d of %d bytes arrived", ep.got.Len(), len(want))
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ep.got.Bytes(), want) {
		t.Fatalf("%d of %d bytes arrived, the first difference at %d", ep.got.Len(), len(want), firstDiff(ep.got.Bytes(), want))
	}
	if ep.direct == 0 {
		t.Fatalf("no byte came straight from the socket (%d through the buffer)", ep.buffered)
	}
	if ep.buffered == 0 {
		t.Fatalf("the first read did not go through the buffer")
	}
	if ep.smallest < bulkMin {
		t.Fatalf("a direct read of %d bytes, under bulkMin (%d)", ep.smallest, bulkMin)
	}
	t.Logf("%d bytes straight from the socket, %d through the buffer", ep.direct, ep.buffered)
}

// A read that brings less than SIOCINQ promised ends the payload with an
// error (gVisor then drops the Write's bytes, and the relay ends the
// connection), never with a short count, which gVisor would wait on.
func TestAShortQueuedReadIsAnError(t *testing.T) {
	c, peer := relayConn(t, &payloadEndpoint{}, 0, false)
	if _, err := unix.Write(peer, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	p := &c.pp
	p.init(c.providerRaw)
	if err := c.providerRaw.Read(p.inqFn); err != nil || p.inqErr != nil || p.inq != 10 {
		t.Fatalf("SIOCINQ: %d, %v, %v; want 10", p.inq, err, p.inqErr)
	}
	p.left = 20 // more than the socket holds, as a skipped urgent byte would make it
	b := make([]byte, 20)
	if n, err := p.Read(b); n != 10 || !errors.Is(err, errShortQueuedRead) {
		t.Fatalf("read %d, %v; want 10, errShortQueuedRead", n, err)
	}
	if n, err := p.Read(b); n != 0 || !errors.Is(err, errShortQueuedRead) {
		t.Fatalf("read again: %d, %v; want 0, errShortQueuedRead", n, err)
	}
	if n, err := p.Read(nil); n != 0 || err == nil {
		t.Fatalf("gVisor's probe after the failure: %d, %v; want the error", n, err)
	}
}
