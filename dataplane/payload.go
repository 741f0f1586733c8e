package dataplane

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// A connection whose target sends in bulk moves the target's bytes into
// gVisor without a buffer of the relay's between them: gVisor's Write reads
// them from the socket straight into the views it sends from. Through a
// buffer, each byte was copied twice in user space (the read into the
// buffer, then gVisor's copy into its views), which was 7% of a worker's
// CPU over a single download.
//
// gVisor sizes its views by the payload's Len before reading, and reads
// until it has Len bytes: a reader that ends early makes it loop. So Len is
// what the socket holds (SIOCINQ, which leaves a FIN out), capped at the
// read's size; with one reader, a read of at most that much returns all of
// it. A connection enters bulk mode with a read of bulkMin bytes or more
// and leaves it when the socket holds fewer: short answers, a FIN, an empty
// socket and errors keep the buffered read, which tells them apart.
const bulkMin = 16 << 10

// errShortQueuedRead is a read that returned less than SIOCINQ said the
// socket held (urgent data, which a read skips): gVisor has dropped what
// that Write read, so the connection cannot go on.
var errShortQueuedRead = errors.New("target socket returned less than it held")

// providerPayload is the target's socket as the payload of gVisor's Write
// (tcpip.Payloader): left more bytes, read on demand.
type providerPayload struct {
	raw  syscall.RawConn
	left int
	err  error // the first failed read; gVisor drops the Write's bytes

	// What the RawConn's functions (made once, on first use) pass back.
	dst     []byte
	got     int
	readErr error
	inq     int
	inqErr  error
	readFn  func(fd uintptr) bool
	inqFn   func(fd uintptr) bool
}

func (p *providerPayload) init(raw syscall.RawConn) {
	if p.readFn == nil {
		p.raw = raw
		p.readFn = p.read
		p.inqFn = p.queued
	}
}

func (p *providerPayload) read(fd uintptr) bool {
	p.got, p.readErr = unix.Read(int(fd), p.dst)
	return true
}

func (p *providerPayload) queued(fd uintptr) bool {
	p.inq, p.inqErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	return true
}

// Len is how many bytes gVisor may read.
func (p *providerPayload) Len() int { return p.left }

// Read reads from the target's socket into b, which is a view of gVisor's.
// An empty b is gVisor asking whether the payload has ended (it has not
// while left is above zero).
func (p *providerPayload) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if len(b) > p.left {
		b = b[:p.left]
	}
	if len(b) == 0 {
		return 0, nil
	}
	p.dst = b
	err := p.raw.Read(p.readFn)
	p.dst = nil
	n := max(p.got, 0)
	switch {
	case err != nil:
		p.err = err
	case p.readErr != nil:
		p.err = p.readErr
	case n < len(b):
		p.err = errShortQueuedRead
	}
	p.left -= n
	return n, p.err
}

// copyQueued moves what the target's socket holds, up to want bytes, to
// the consumer through gVisor's Write. ok is false, and nothing is read,
// when the socket holds fewer than bulkMin bytes: the connection leaves
// bulk mode and the buffered read takes it from there.
func (c *conn) copyQueued(want int) (end bool, err error, ok bool) {
	p := &c.pp
	p.init(c.providerRaw)
	if cerr := c.providerRaw.Read(p.inqFn); cerr != nil {
		return true, cerr, true
	}
	if p.inqErr != nil || p.inq < bulkMin {
		c.bulk = false
		return false, nil, false
	}
	n := min(p.inq, want)
	p.left, p.err = n, nil
	werr := c.writeConsumer(p)
	moved := n - p.left
	p.left = 0
	c.sentToConsumer(moved)
	switch {
	case p.err != nil:
		return true, p.err, true
	case werr != nil:
		return true, werr, true
	case n < want && !c.p2cHup.Load():
		// The socket held less than a full read: it is empty now, and
		// what comes later is a new edge.
		return true, errWouldBlock, true
	}
	return false, nil, true
}
