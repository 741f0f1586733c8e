package dataplane

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/proxyproto"
)

// A read from a target takes whole chunks of gsoPayloadMax bytes, gVisor's
// largest GSO segment, so that a full read leaves as full GSO frames only
// (gVisor cuts a write into segments of at most that size, and sends what
// is left over as a runt).
// A connection whose send buffer towards the consumer has grown reads up
// to maxReadChunks at once: a read of a busy socket costs its system call
// and the window update it sends the target (whose kernel then sends more,
// in the same call). Eight downloads at once came to 15.2-17.7 Gbit/s with
// one read per frame and to 20.7-22.0 with reads of up to eight frames
// (pvlink bench --measure download, 4 alternating rounds); the forwarder's
// sockets sent their targets 0.51-0.60 segments (window updates) per 64 KiB
// received before, 0.18-0.19 after (ss -ti, 2 rounds).
const maxReadChunks = 8

var (
	chunkBufs = sync.Pool{New: func() any { b := make([]byte, gsoPayloadMax); return &b }}
	bigBufs   = sync.Pool{New: func() any { b := make([]byte, maxReadChunks*gsoPayloadMax); return &b }}
)

// readChunks is how many chunks the next read from the target may take: a
// quarter of the connection's send buffer (what a write blocked on a slow
// consumer holds on to beside what gVisor holds), one under memory
// pressure or with a small buffer, at most maxReadChunks.
func (c *conn) readChunks() int {
	if c.f.pressure.Load() {
		return 1
	}
	n := int(c.ep.SocketOptions().GetSendBufferSize()/4) / gsoPayloadMax
	return min(max(n, 1), maxReadChunks)
}

// writeHeader sends a proxy protocol header on its own (on_first_ack, and
// health checks).
func writeHeader(w io.Writer, h *proxyproto.Header) error {
	var b [proxyproto.NLBLength + 64]byte
	n, err := h.Encode(b[:])
	if err != nil {
		return err
	}
	_, err = w.Write(b[:n])
	return err
}

// The relay copies bytes both ways, as an NLB passes a connection on: a FIN
// becomes a FIN (a half-close) on the other side, a RST becomes a RST.
//
// It holds no goroutine while a connection is idle. Each direction is a
// small state machine: parked (waiting for its source, with nothing but a
// registration: a gVisor waiter callback for the consumer side, the
// forwarder's epoll set for the provider side), running (the wake-up hands
// it to one of the forwarder's pooled goroutines, which copies until the
// source would block and parks it again) or done. The last direction to finish releases the flow. So an idle
// connection costs its gVisor endpoint, its socket and this record, not two
// goroutine stacks.
const (
	dirParked int32 = iota
	dirRunning
	dirDone
)

// consumerEvents wake the consumer-to-provider direction.
const consumerEvents = waiter.EventIn | waiter.EventHUp | waiter.EventErr

// start begins relaying a connection whose both sides are up. The calling
// goroutine runs the consumer-to-provider direction until it first parks.
// A non-nil pp is a proxy protocol header to send with the consumer's
// first bytes.
func (c *conn) start(pp *proxyproto.Header) {
	c.initRelay()
	if pp != nil {
		var b [proxyproto.NLBLength + 64]byte
		if n, err := pp.Encode(b[:]); err == nil {
			c.pw.hdr = append([]byte(nil), b[:n]...)
		}
	}
	c.live.Store(2)
	c.c2p.Store(dirRunning)
	c.p2c.Store(dirParked)
	c.consumerEntry.Init((*consumerWaker)(c), consumerEvents)
	c.wq.EventRegister(&c.consumerEntry)
	err := c.f.poller.add(c)
	c.started.Store(true)
	switch {
	case err != nil:
		// No way to hear from the target: give the connection up.
		c.f.log.Warn("relay: watch provider socket", "err", err)
		c.abort()
	case c.reset.Load(): // reset while we dialed
		c.abort()
	case c.expired.Load(): // forgotten while we dialed
		c.forget()
	}
	c.pumpC2P()
}

// initRelay makes, once per connection, the functions its wake-ups hand
// to the provider socket's RawConn: made per read or write (a method
// value, a closure) each would be an allocation. (The wait for room on a
// full socket gets its own on first use: most connections never wait.)
func (c *conn) initRelay() {
	c.pw.c = c
	c.pw.writeFn = c.pw.write
	c.pr.readFn = c.pr.read
}

// c2pPump and p2cPump are a connection as the runner's task for one of its
// directions: a pointer conversion, where a method value would allocate.
type (
	c2pPump conn
	p2cPump conn
)

func (p *c2pPump) run() { (*conn)(p).pumpC2P() }
func (p *p2cPump) run() { (*conn)(p).pumpP2C() }

// consumerWaker is a connection as the listener of its consumer endpoint's
// events, the same way.
type consumerWaker conn

func (w *consumerWaker) NotifyEvent(waiter.EventMask) { (*conn)(w).wakeC2P() }

// wakeC2P is the consumer endpoint's call when it has bytes (or a FIN, or
// a RST) for the target.
func (c *conn) wakeC2P() {
	if c.c2p.CompareAndSwap(dirParked, dirRunning) {
		c.f.runner.run((*c2pPump)(c))
	}
}

// wakeP2C is the poller's call when the provider socket became readable.
// A running direction is told to read once more before it parks. hup says
// the target's FIN (or an error) is there: it waits behind any bytes, and
// its edge may have merged with theirs, so a short read no longer means
// there is nothing left to read.
func (c *conn) wakeP2C(hup bool) {
	if hup {
		c.p2cHup.Store(true)
	}
	if c.p2c.CompareAndSwap(dirParked, dirRunning) {
		c.f.runner.run((*p2cPump)(c))
		return
	}
	c.p2cPending.Store(true)
	if c.p2c.CompareAndSwap(dirParked, dirRunning) { // it parked meanwhile
		c.f.runner.run((*p2cPump)(c))
	}
}

// dirDone ends a direction (running -> done by its goroutine, or parked ->
// done by whoever cut the connection); the second one to end releases the
// connection.
func (c *conn) dirDone(d *atomic.Int32, from int32) {
	if d.CompareAndSwap(from, dirDone) && c.live.Add(-1) == 0 {
		c.finish()
	}
}

// stopParked ends the directions that are parked; running ones end on
// their own once they see the sockets closed or the flags set.
func (c *conn) stopParked() {
	c.dirDone(&c.c2p, dirParked)
	c.dirDone(&c.p2c, dirParked)
}

// finish closes both sides and gives back everything the flow held.
func (c *conn) finish() {
	c.wq.EventUnregister(&c.consumerEntry)
	c.ep.Close()
	c.closeProvider()
	c.f.flows.DeleteFlow(c.fl)
	c.release()
}

// release gives back the flow's port allocation and its place among the
// ENI's active connections, once (at the end, or when the idle timeout
// forgets the flow).
func (c *conn) release() {
	if c.released.CompareAndSwap(false, true) {
		c.group.Release(c.target)
		c.eni.active.Add(-1)
		c.rt.svc.active.Add(-1)
	}
}

// pumpC2P copies from the consumer to the target until the consumer has
// nothing to read, then parks.
func (c *conn) pumpC2P() {
	for {
		if c.reset.Load() || c.cut.Load() {
			c.dirDone(&c.c2p, dirRunning)
			return
		}
		if c.f.targetDown(c.target.Addr) {
			// The target's AZ is down: nothing reaches it. The bytes
			// wait in the endpoint; a lifted fault wakes the direction.
			c.c2p.Store(dirParked)
			return
		}
		if c.ep.Readiness(consumerEvents) == 0 {
			c.c2p.Store(dirParked)
			// A wake-up between the check and the store found the
			// direction running and did nothing: look again.
			if (c.ep.Readiness(consumerEvents) != 0 || c.reset.Load() || c.cut.Load()) &&
				c.c2p.CompareAndSwap(dirParked, dirRunning) {
				continue
			}
			return
		}
		end, err := c.copyFromConsumer()
		if !end {
			continue
		}
		switch {
		case c.reset.Load():
		case c.expired.Load():
			if err != nil {
				// Forgotten while bytes waited for the target: the
				// consumer gets its RST now, not at its next segment.
				c.ep.Abort()
			}
		case err == errConsumerReset:
			c.consumerReset()
		case err != nil: // the target refused bytes, or the consumer's side failed
			var sockErr unix.Errno
			if c.cut.CompareAndSwap(false, true) && !errors.As(err, &sockErr) {
				// The target's socket is sound (and the other direction
				// has not closed it): the close sends it the node's RST.
				c.rt.svc.elbResets.Add(1)
			}
			c.targetRST.Store(isResetByPeer(err))
			c.resetProvider()
			c.ep.Abort()
			c.stopParked()
		default: // FIN from the consumer
			c.providerRaw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
		}
		c.dirDone(&c.c2p, dirRunning)
		return
	}
}

// copyFromConsumer moves what the consumer sent into the target's socket.
// gVisor's Read hands over its buffers (peeking: nothing is taken yet),
// and providerWriter gathers them into one writev; only the bytes the
// socket took are then taken from the endpoint. So the bytes are not
// copied in between, and the target's socket gets one system call for
// what was queued (one write per view had been 10 to 50 writes of 28-29 KB
// each per wake-up, measured in an 8-stream upload). end says the
// direction is over (EOF: err nil).
func (c *conn) copyFromConsumer() (end bool, err error) {
	w := &c.pw
	w.blocked, w.err = false, nil
	queued, _ := c.ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption)
	var terr tcpip.Error
	for try := 0; ; try++ {
		w.gather(queued)
		_, terr = c.ep.Read(w, tcpip.ReadOptions{Peek: true})
		// gVisor's Read ended before the gathered views reached
		// what was queued (it cannot shrink: only this direction
		// reads): gather again, up to what was seen.
		if w.flushed || w.gathered == 0 || try == 1 {
			break
		}
		queued = w.gathered
	}
	sent := w.done()
	if c.expired.Load() {
		// The consumer's first segment after the flow was forgotten:
		// answer it with a RST, as an NLB does.
		c.ep.Abort()
		return true, nil
	}
	if sent > 0 {
		c.skip.left = sent
		res, _ := c.ep.Read(&c.skip, tcpip.ReadOptions{})
		n := res.Count
		c.ep.ModerateRecvBuf(n)
		c.fl.Touch(time.Now().UnixNano())
		c.fl.BytesIn.Add(uint64(n))
		c.eni.bytesIn.Add(uint64(n))
		c.rt.svc.bytes.Add(uint64(n))
	}
	switch terr.(type) {
	case nil, *tcpip.ErrWouldBlock, *tcpip.ErrBadBuffer:
		// ErrBadBuffer: the writer stopped before anything was taken
		// (w says why).
	case *tcpip.ErrClosedForReceive:
		if len(w.hdr) > 0 { // the consumer closed before sending: header alone
			_, err = c.provider.Write(w.hdr)
			w.hdr = nil
		}
		return true, err
	case *tcpip.ErrConnectionReset:
		return true, errConsumerReset
	default:
		return true, errors.New(terr.String())
	}
	if w.err != nil {
		return true, w.err
	}
	if w.blocked {
		// The target's socket is full: wait for room outside gVisor's
		// endpoint lock (the other direction may need it meanwhile).
		if err := c.waitProviderWritable(); err != nil {
			return true, err
		}
	}
	return false, nil
}

// providerWriter is the io.Writer gVisor's Read (peeking) hands the
// consumer's bytes to, view by view. It gathers them and, once they add up
// to what was queued (or to gatherMax views), writes them all to the
// target's socket in one non-blocking writev, still inside the Read: the
// views stay valid only while gVisor holds the endpoint's lock. Views
// offered after that are refused, which ends the Read. A writev that would
// block, or that is short, marks the direction blocked: it waits for room
// before it reads again. The proxy header, while pending, goes in front of
// the first bytes in the same writev.
type providerWriter struct {
	c       *conn
	hdr     []byte
	blocked bool
	err     error

	// The gathering in progress: the views (after the header's slot),
	// their bytes, the bytes to gather before writing, and whether the
	// writev was made and how many payload bytes it took.
	iov      [][]byte
	iovp     *[][]byte // iov's vector, from iovPool while gathering
	gathered int
	want     int
	flushed  bool
	sent     int

	// The writev in progress, for writeFn (the method value of write,
	// made once by initRelay), which the socket's RawConn calls.
	n       int
	werr    error
	writeFn func(fd uintptr) bool
	pfd     [1]unix.PollFd
	pollFn  func(fd uintptr) bool // writable, waiting for room
}

// gatherMax bounds the views one writev takes (IOV_MAX is 1024).
const gatherMax = 64

var errShortWrite = errors.New("provider socket full")

// errGathered ends gVisor's Read once the gathered views are written.
var errGathered = errors.New("gathered views written")

// iovPool holds the gathering vectors: one is needed only while a
// direction runs, and kept per connection it would be 1.5 KiB on each.
var iovPool = sync.Pool{New: func() any { v := make([][]byte, 1, gatherMax+1); return &v }}

// gather begins a gathering that writes once want bytes are in.
func (w *providerWriter) gather(want int) {
	w.iovp = iovPool.Get().(*[][]byte)
	w.iov = (*w.iovp)[:1]
	w.gathered, w.want, w.flushed, w.sent = 0, max(want, 1), false, 0
}

// done ends a gathering: the payload bytes the target's socket took.
func (w *providerWriter) done() int {
	clear(w.iov) // the views are gVisor's again
	iovPool.Put(w.iovp)
	w.iov, w.iovp = nil, nil
	return w.sent
}

// write is one non-blocking writev of w.iov (the header's slot first,
// empty when no header is pending).
func (w *providerWriter) write(fd uintptr) bool {
	iov := w.iov
	if len(w.hdr) > 0 {
		iov[0] = w.hdr
	} else {
		iov = iov[1:]
	}
	w.n, w.werr = unix.Writev(int(fd), iov)
	return true
}

func (w *providerWriter) Write(b []byte) (int, error) {
	if w.flushed {
		return 0, errGathered
	}
	w.iov = append(w.iov, b)
	w.gathered += len(b)
	if w.gathered >= w.want || len(w.iov) > gatherMax {
		w.flush()
	}
	return len(b), nil
}

// flush writes the gathered views (and a pending header) to the target's
// socket, once.
func (w *providerWriter) flush() {
	w.flushed = true
	cerr := w.c.providerRaw.Write(w.writeFn)
	n, werr := w.n, w.werr
	w.iov[0] = nil
	if cerr != nil {
		werr = cerr
	}
	switch {
	case werr == unix.EAGAIN || werr == unix.EINTR:
		w.blocked = true
		return
	case werr != nil:
		w.err = werr
		return
	}
	if h := len(w.hdr); h > 0 {
		if n < h {
			w.hdr = w.hdr[n:]
			w.blocked = true
			return
		}
		w.hdr = nil
		n -= h
	}
	w.sent = n
	if n < w.gathered {
		w.blocked = true
	}
}

// skipWriter takes the bytes a writev sent from the endpoint: it accepts
// left bytes of gVisor's views and refuses the rest.
type skipWriter struct{ left int }

func (s *skipWriter) Write(b []byte) (int, error) {
	if s.left >= len(b) {
		s.left -= len(b)
		return len(b), nil
	}
	n := s.left
	s.left = 0
	return n, errShortWrite
}

// waitProviderWritable waits until the target's socket has room (or an
// error to report), on Go's netpoller. The poll inside the wait closes the
// gap between the short write and the netpoller's wait.
func (c *conn) waitProviderWritable() error {
	if c.pw.pollFn == nil {
		c.pw.pollFn = c.pw.writable
	}
	return c.providerRaw.Write(c.pw.pollFn)
}

// writable polls the target's socket for room, for pollFn.
func (w *providerWriter) writable(fd uintptr) bool {
	w.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	n, err := unix.Poll(w.pfd[:], 0)
	return err != nil || n > 0
}

// pumpP2C copies from the target to the consumer until the target's socket
// would block, then parks it in the poller.
func (c *conn) pumpP2C() {
	for {
		if c.reset.Load() || c.expired.Load() || c.cut.Load() {
			c.dirDone(&c.p2c, dirRunning)
			return
		}
		if c.f.targetDown(c.target.Addr) {
			c.p2c.Store(dirParked) // nothing comes from it either
			return
		}
		end, err := c.copyFromProvider()
		if !end {
			continue
		}
		if err == errWouldBlock {
			c.p2c.Store(dirParked)
			switch {
			case c.reset.Load() || c.expired.Load() || c.cut.Load():
				c.dirDone(&c.p2c, dirParked)
			case c.p2cPending.Swap(false) && c.p2c.CompareAndSwap(dirParked, dirRunning):
				continue // an edge came while we ran
			}
			return
		}
		switch {
		case c.expired.Load() || c.reset.Load():
		case err == errConsumerReset: // seen while writing to the consumer
			c.consumerReset()
		case err != nil: // the target reset, or the consumer is gone
			c.targetRST.Store(isResetByPeer(err))
			c.ep.Abort()
			c.closeProvider()
			c.cut.Store(true)
			c.stopParked()
		default: // FIN from the target
			c.ep.Shutdown(tcpip.ShutdownWrite)
		}
		c.dirDone(&c.p2c, dirRunning)
		return
	}
}

var errWouldBlock = errors.New("would block")

// providerReader is one non-blocking read of the target's socket into buf,
// for readFn (the method value of read, made once by initRelay).
type providerReader struct {
	buf    []byte
	iov    [][]byte // instead of buf: gVisor views' memory (readViews)
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func (r *providerReader) read(fd uintptr) bool {
	if len(r.iov) > 0 {
		r.n, r.err = unix.Readv(int(fd), r.iov)
		return true
	}
	r.n, r.err = unix.Read(int(fd), r.buf)
	return true
}

// copyFromProvider does one non-blocking read from the target and its
// write to the consumer. end with errWouldBlock means park; end with nil
// means EOF. A read that did not fill the buffer emptied the socket, so
// the direction parks without another read: a later byte is a new edge.
func (c *conn) copyFromProvider() (end bool, err error) {
	want := c.readChunks() * gsoPayloadMax
	var n int
	var rerr, cerr error
	var p payload
	if c.bulk {
		n, rerr, cerr = c.readViews(want)
		p = &c.vp
	} else {
		pool := &chunkBufs
		if want > gsoPayloadMax {
			pool = &bigBufs
		}
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		buf := (*bp)[:want]
		c.pr.buf = buf
		cerr = c.providerRaw.Read(c.pr.readFn)
		n, rerr = c.pr.n, c.pr.err
		c.pr.buf = nil
		c.cr = bytesPayload{b: buf[:max(n, 0)]}
		defer c.cr.reset()
		p = &c.cr
	}
	if cerr != nil {
		return true, cerr
	}
	switch {
	case rerr == unix.EAGAIN || rerr == unix.EINTR:
		return true, errWouldBlock
	case rerr != nil:
		return true, rerr
	case n == 0:
		return true, nil
	}
	err = c.writeConsumer(p)
	c.vp.release() // what a failed write left
	if err != nil {
		return true, err
	}
	c.bulk = n >= bulkMin
	c.fl.Touch(time.Now().UnixNano())
	c.fl.BytesOut.Add(uint64(n))
	c.eni.bytesOut.Add(uint64(n))
	c.rt.svc.bytes.Add(uint64(n))
	if n < want && !c.p2cHup.Load() {
		return true, errWouldBlock
	}
	return false, nil
}

// consumerWriteEvents wake a write to the consumer that would block.
const consumerWriteEvents = waiter.WritableEvents | waiter.EventHUp | waiter.EventErr

// writeConsumer writes all of p to the consumer's endpoint, waiting for
// room as needed (only a direction with bytes in flight waits); what a
// Write did not queue is offered again. p is the connection's own (c.cr or
// c.vp): one made per write would escape.
func (c *conn) writeConsumer(p payload) error {
	var ch chan struct{}
	for p.Len() > 0 {
		n, terr := c.ep.Write(p, tcpip.WriteOptions{})
		p.done(n)
		switch terr.(type) {
		case nil:
		case *tcpip.ErrConnectionReset:
			return errConsumerReset
		case *tcpip.ErrWouldBlock:
			if ch == nil {
				var e waiter.Entry
				e, ch = waiter.NewChannelEntry(consumerWriteEvents)
				c.wq.EventRegister(&e)
				defer c.wq.EventUnregister(&e)
				continue // look again before the first wait
			}
			<-ch
		default:
			return errors.New(terr.String())
		}
	}
	return nil
}
