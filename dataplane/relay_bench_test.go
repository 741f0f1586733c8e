package dataplane

import (
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/nat"
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
	pending        []byte // the consumer's bytes, for Read
	readable       atomic.Bool
}

func (e *benchEndpoint) Write(p tcpip.Payloader, _ tcpip.WriteOptions) (int64, tcpip.Error) {
	n, _ := io.ReadFull(p, e.sink[:p.Len()])
	e.wrote <- n
	return int64(n), nil
}

func (e *benchEndpoint) Read(w io.Writer, _ tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	if !e.readable.Swap(false) {
		return tcpip.ReadResult{}, &tcpip.ErrWouldBlock{}
	}
	n, _ := w.Write(e.pending)
	return tcpip.ReadResult{Count: n, Total: n}, nil
}

func (e *benchEndpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	if e.readable.Load() {
		return mask & waiter.EventIn
	}
	return 0
}

func (e *benchEndpoint) ModerateRecvBuf(int) {}

// benchConn is a relayed connection over a socket pair; peer is the
// target's end (blocking).
func benchConn(b *testing.B) (*conn, *benchEndpoint, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	provider := os.NewFile(uintptr(fds[0]), "provider")
	raw, err := provider.SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { provider.Close(); unix.Close(fds[1]) })
	ep := &benchEndpoint{sink: make([]byte, relayBufSize), wrote: make(chan int, 1), pending: make([]byte, 1024)}
	c := &conn{
		f:  &Forwarder{runner: newRunner()},
		fl: flowtable.NewFlow(flowtable.Key{}, nil, time.Minute, time.Now()), eni: &eniState{}, rt: &route{svc: &lbCounters{}},
		target: &nat.Target{},
		ep:     ep, wq: &waiter.Queue{}, provider: provider, providerRaw: raw,
	}
	c.initRelay()
	c.live.Store(2)
	c.c2p.Store(dirParked)
	c.p2c.Store(dirParked)
	return c, ep, fds[1]
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
	b.Run("consumer-to-target", func(b *testing.B) {
		c, ep, peer := benchConn(b)
		buf := make([]byte, 4096)
		b.ReportAllocs()
		for b.Loop() {
			ep.readable.Store(true)
			c.wakeC2P()
			for got := 0; got < len(ep.pending); {
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
