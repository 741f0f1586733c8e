package dataplane

import (
	"io"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// The relay's wake-ups, run by the code the forwarder runs (wakeP2C,
// wakeC2P, the runner, the pumps, the provider socket's reads and writes,
// writeConsumer) with a socket pair as the target's connection and, in
// place of gVisor's endpoint, one that hands over bytes without a
// netstack: what is measured is the relay's own cost per wake-up.

// benchEndpoint stands in for the consumer's gVisor endpoint.
type benchEndpoint struct {
	tcpip.Endpoint // the relay calls nothing else on these paths
	sink           []byte
	wrote          chan int
	pending        []byte       // room for the consumer's bytes, for Read
	avail          atomic.Int64 // how many of them are not yet taken
	ops            tcpip.SocketOptions
}

func (e *benchEndpoint) SocketOptions() *tcpip.SocketOptions { return &e.ops }

func (e *benchEndpoint) Write(p tcpip.Payloader, _ tcpip.WriteOptions) (int64, tcpip.Error) {
	if t, ok := p.(interface{ TakeBuffer(int) buffer.Buffer }); ok {
		// As pvlink's gVisor does: the views themselves, no copy.
		b := t.TakeBuffer(p.Len())
		n := int(b.Size())
		b.Release()
		e.wrote <- n
		return int64(n), nil
	}
	n, _ := io.ReadFull(p, e.sink[:p.Len()])
	e.wrote <- n
	return int64(n), nil
}

// Read hands over the consumer's bytes not yet taken, as one view; a peek
// leaves them, a read takes what the writer accepted.
func (e *benchEndpoint) Read(w io.Writer, o tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	avail := int(e.avail.Load())
	if avail == 0 {
		return tcpip.ReadResult{}, &tcpip.ErrWouldBlock{}
	}
	n, _ := w.Write(e.pending[:avail])
	if !o.Peek {
		e.avail.Add(-int64(n))
	}
	return tcpip.ReadResult{Count: n, Total: n}, nil
}

func (e *benchEndpoint) GetSockOptInt(opt tcpip.SockOptInt) (int, tcpip.Error) {
	if opt == tcpip.ReceiveQueueSizeOption {
		return int(e.avail.Load()), nil
	}
	return 0, nil
}

func (e *benchEndpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	if e.avail.Load() > 0 {
		return mask & waiter.EventIn
	}
	return 0
}

func (e *benchEndpoint) ModerateRecvBuf(int) {}

// The ends of a connection, which the relay reaches when the benchmark's
// cleanup closes the sockets under a direction still running: nothing to
// end on a stand-in.
func (e *benchEndpoint) Abort()                                   {}
func (e *benchEndpoint) Close()                                   {}
func (e *benchEndpoint) Shutdown(tcpip.ShutdownFlags) tcpip.Error { return nil }

// benchConn is a relayed connection over a socket pair; peer is the
// target's end (blocking).
func benchConn(b *testing.B) (*conn, *benchEndpoint, int) {
	ep := &benchEndpoint{sink: make([]byte, maxReadChunks*gsoPayloadMax), wrote: make(chan int, 1), pending: make([]byte, 64<<10)}
	c, peer := relayConn(b, ep, 0, false)
	c.live.Store(2)
	c.c2p.Store(dirParked)
	c.p2c.Store(dirParked)
	return c, ep, peer
}

// BenchmarkRelayWakeUp: bytes arrive on one side, the relay is woken,
// hands the direction to a pooled goroutine, moves them, and parks.
func BenchmarkRelayWakeUp(b *testing.B) {
	b.Run("target-to-consumer", func(b *testing.B) {
		c, ep, peer := benchConn(b)
		msg := make([]byte, 1024)
		b.ReportAllocs()
		for b.Loop() {
			unix.Write(peer, msg)
			c.wakeP2C(false)
			<-ep.wrote
		}
	})
	b.Run("target-to-consumer-bulk", func(b *testing.B) {
		// 128 KiB per wake-up, read into gVisor views (payload.go) and
		// handed over as they are, as pvlink's gVisor takes them.
		c, ep, peer := benchConn(b)
		ep.ops.SetSendBufferSize(tcpTXBufMax, false) // reads of up to eight frames
		msg := make([]byte, 128<<10)
		unix.Write(peer, msg) // the first read goes through the relay's buffer
		c.wakeP2C(false)
		<-ep.wrote
		b.ReportAllocs()
		for b.Loop() {
			unix.Write(peer, msg)
			c.wakeP2C(false)
			for got := 0; got < len(msg); {
				got += <-ep.wrote
			}
		}
		if !c.bulk {
			b.Fatal("the reads did not go into views")
		}
	})
	b.Run("consumer-to-target", func(b *testing.B) {
		c, ep, peer := benchConn(b)
		buf := make([]byte, 4096)
		const msg = 1024 // the consumer's bytes of each wake-up
		b.ReportAllocs()
		for b.Loop() {
			ep.avail.Add(msg)
			c.wakeC2P()
			for got := 0; got < msg; {
				n, err := unix.Read(peer, buf)
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
		}
	})
}

// BenchmarkRelaySetup is what making a connection's relay functions costs,
// once per connection (initRelay).
func BenchmarkRelaySetup(b *testing.B) {
	c := &conn{}
	b.ReportAllocs()
	for b.Loop() {
		c.initRelay()
	}
}

// BenchmarkPollerAdd is a provider socket joining the forwarder's epoll set
// as its relay starts, once per connection (taken out again each time, so
// that it can join again: two system calls per iteration).
func BenchmarkPollerAdd(b *testing.B) {
	c, _, _ := benchConn(b)
	p := c.f.poller
	b.ReportAllocs()
	for b.Loop() {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.providerFD, nil)
		if err := p.add(c); err != nil {
			b.Fatal(err)
		}
	}
}
