package dataplane

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/nat"
)

// viewsEndpoint stands in for a gVisor endpoint whose receive queue holds
// views, with gVisor's Read semantics: views handed over one by one, a peek
// takes nothing, a read takes what the writer accepted.
type viewsEndpoint struct {
	tcpip.Endpoint
	views [][]byte
	reads int // Read calls that were not peeks
}

func (e *viewsEndpoint) queued() int {
	n := 0
	for _, v := range e.views {
		n += len(v)
	}
	return n
}

func (e *viewsEndpoint) Read(w io.Writer, o tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	if len(e.views) == 0 {
		return tcpip.ReadResult{}, &tcpip.ErrWouldBlock{}
	}
	if !o.Peek {
		e.reads++
	}
	done := 0
	for i := 0; i < len(e.views); {
		n, err := w.Write(e.views[i])
		done += n
		if !o.Peek {
			if e.views[i] = e.views[i][n:]; len(e.views[i]) == 0 {
				e.views = e.views[1:]
				i--
			}
		}
		if err != nil {
			break
		}
		i++
	}
	return tcpip.ReadResult{Count: done, Total: done}, nil
}

func (e *viewsEndpoint) GetSockOptInt(opt tcpip.SockOptInt) (int, tcpip.Error) {
	return e.queued(), nil
}

func (e *viewsEndpoint) Readiness(mask waiter.EventMask) waiter.EventMask {
	if len(e.views) > 0 {
		return mask & waiter.EventIn
	}
	return 0
}

func (e *viewsEndpoint) ModerateRecvBuf(int) {}

// relayConn is a connection whose consumer side is ep and whose target is
// one end of a socket pair (send buffer sndbuf bytes, 0: the default); the
// other end, the target's, is returned, blocking unless told.
func relayConn(tb testing.TB, ep tcpip.Endpoint, sndbuf int, peerNonblock bool) (*conn, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	unix.SetNonblock(fds[1], peerNonblock)
	if sndbuf > 0 {
		unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
	}
	// As dialTarget makes it (non-blocking) and the relay's start leaves it
	// (in the poller's set).
	unix.SetNonblock(fds[0], true)
	provider := os.NewFile(uintptr(fds[0]), "provider")
	raw, err := provider.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := newPoller()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { provider.Close(); unix.Close(fds[1]); p.close() })
	c := &conn{
		// A flow table for the relay's end (finish) to take the flow from,
		// which the benchmarks' cleanup can reach.
		f:  &Forwarder{runner: newRunner(), poller: p, flows: flowtable.New(1024)},
		fl: flowtable.NewFlow(flowtable.Key{}, nil, time.Minute, time.Now()), eni: &eniState{}, rt: &route{svc: &lbCounters{}},
		target: &nat.Target{},
		ep:     ep, wq: &waiter.Queue{}, provider: provider, providerRaw: raw, providerFD: fds[0],
	}
	if err := p.add(c); err != nil {
		tb.Fatal(err)
	}
	c.initRelay()
	return c, fds[1]
}

// receive reads n bytes from the target's end as they come (its socket is
// the only thing that makes room for the relay's waits).
func receive(fd, n int) <-chan []byte {
	out := make(chan []byte, 1)
	go func() {
		var got bytes.Buffer
		buf := make([]byte, 1<<20)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for deadline := time.Now().Add(10 * time.Second); got.Len() < n && time.Now().Before(deadline); {
			k, err := unix.Read(fd, buf)
			if k > 0 {
				got.Write(buf[:k])
			} else if err == unix.EAGAIN {
				unix.Poll(pfd, 100)
			} else {
				break
			}
		}
		out <- got.Bytes()
	}()
	return out
}

// The consumer's queued bytes reach the target whole and in order, behind
// the proxy header, whether the target's socket takes them all at once or
// a little at a time; what a short write left is taken on the next round,
// never twice.
func TestConsumerBytesGoToTheTargetGatheredAndExactlyOnce(t *testing.T) {
	views := func() ([][]byte, []byte) {
		r := rand.New(rand.NewPCG(1, 2))
		var vs [][]byte
		var all []byte
		for range 40 {
			v := make([]byte, 1+r.IntN(32<<10))
			for i := range v {
				v[i] = byte(r.Uint32())
			}
			vs = append(vs, v)
			all = append(all, v...)
		}
		return vs, all
	}
	hdr := []byte("PROXY-HEADER")
	for _, c := range []struct {
		name   string
		sndbuf int
	}{{"room for everything", 8 << 20}, {"room for a little at a time", 16 << 10}} {
		t.Run(c.name, func(t *testing.T) {
			vs, all := views()
			ep := &viewsEndpoint{views: vs}
			cn, peer := relayConn(t, ep, c.sndbuf, true)
			cn.pw.hdr = append([]byte(nil), hdr...)
			want := append(append([]byte(nil), hdr...), all...)
			got := receive(peer, len(want))
			rounds := 0
			for ep.queued() > 0 && rounds < 100000 {
				rounds++
				end, err := cn.copyFromConsumer()
				if end || err != nil {
					t.Fatalf("round %d: end %v, err %v", rounds, end, err)
				}
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("the target got %d bytes, want %d; first difference at %d", len(b), len(want), firstDiff(b, want))
			}
			if c.sndbuf > len(want) && (rounds != 1 || cn.pw.gathered != len(all) || cn.pw.sent != len(all)) {
				t.Errorf("%d rounds, %d bytes gathered and %d sent in the last, for %d views that fit the socket: want one writev of all",
					rounds, cn.pw.gathered, cn.pw.sent, len(vs))
			}
			if ep.reads != rounds {
				t.Errorf("%d reads taking bytes for %d rounds", ep.reads, rounds)
			}
			t.Logf("%d views, %d bytes: %d rounds", len(vs), len(all), rounds)
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A read from a target takes more than one frame's worth only for a
// connection whose send buffer towards the consumer has grown, and never
// more than a quarter of it: that is all a write blocked on a slow
// consumer holds beside what gVisor holds. Under memory pressure, one.
func TestReadsFromATargetFollowTheSendBuffer(t *testing.T) {
	ep := &benchEndpoint{}
	c := &conn{f: &Forwarder{}, ep: ep}
	for _, tc := range []struct {
		sendBuf  int64
		pressure bool
		want     int
	}{
		{smallHold, false, 1},
		{512 << 10, false, 2},
		{2 << 20, false, 8},
		{tcpTXBufMax, false, maxReadChunks},
		{tcpTXBufMax, true, 1},
	} {
		ep.ops.SetSendBufferSize(tc.sendBuf, false)
		c.f.pressure.Store(tc.pressure)
		got := c.readChunks()
		if got != tc.want {
			t.Errorf("send buffer %d KiB, pressure %v: reads of %d frames, want %d", tc.sendBuf>>10, tc.pressure, got, tc.want)
		}
		if got > 1 && int64(got*gsoPayloadMax) > tc.sendBuf/4 {
			t.Errorf("send buffer %d KiB: a read of %d bytes is over a quarter of it", tc.sendBuf>>10, got*gsoPayloadMax)
		}
	}
}
