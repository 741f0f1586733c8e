package dataplane

import (
	"io"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// A connection whose last read from its target brought bulkMin bytes or
// more reads the next one straight into gVisor views (viewPayload) and
// hands them to the consumer's endpoint as they are. Built with pvlink's
// gVisor (third_party/gvisor), that takes the relay's user-space copy and
// gVisor's clearing of the chunks out of a download: in the forwarder each
// byte the target sends is copied by the read only, then written to the TUN
// from where it landed. Short answers keep the relay's buffer:
// a one-byte answer in a 64 KiB chunk would hold the chunk until the
// consumer acknowledged it.
const bulkMin = 16 << 10

// A payload is what writeConsumer hands gVisor's Write: bytes read from a
// target, of which Write takes what it queues. Write may read more than it
// queues (it drops what no longer fits when the send buffer shrank while it
// read, as the memory budget may make it), so a payload's reads and takes
// only look: done(n) drops the n bytes Write says it queued, and the rest
// is offered again.
type payload interface {
	tcpip.Payloader
	done(n int64)
}

// bytesPayload is a read into the relay's buffer.
type bytesPayload struct {
	b   []byte
	off int // what Read has handed out since the last done
}

func (p *bytesPayload) Len() int { return len(p.b) - p.off }

func (p *bytesPayload) Read(dst []byte) (int, error) {
	if p.off == len(p.b) {
		return 0, io.EOF
	}
	n := copy(dst, p.b[p.off:])
	p.off += n
	return n, nil
}

func (p *bytesPayload) done(n int64) {
	p.b = p.b[n:]
	p.off = 0
}

// reset lets go of the buffer.
func (p *bytesPayload) reset() { *p = bytesPayload{} }

// viewPayload holds bytes read from a target in gVisor views. pvlink's
// gVisor takes the views themselves (TakeBuffer); gVisor as released copies
// them out through Read, as it copies any payload.
type viewPayload struct {
	b   buffer.Buffer
	off int              // what Read has handed out since the last done
	lr  io.LimitedReader // for WriteFromReaderAndLimitedReader, kept: one made per call would escape
}

func (p *viewPayload) Len() int { return int(p.b.Size()) - p.off }

// Read copies out what is left (gVisor as released).
func (p *viewPayload) Read(dst []byte) (int, error) {
	if p.Len() == 0 {
		return 0, io.EOF
	}
	n, _ := p.b.ReadAt(dst, int64(p.off))
	p.off += n
	return n, nil
}

// TakeBuffer hands gVisor's Write up to max bytes in their views (pvlink's
// gVisor asks for it in place of Read): views shared with p, which keeps
// them until done. Neither side writes to them.
func (p *viewPayload) TakeBuffer(max int) buffer.Buffer {
	out := p.b.Clone()
	out.TrimFront(int64(p.off))
	out.Truncate(int64(max))
	p.off += int(out.Size())
	return out
}

func (p *viewPayload) done(n int64) {
	p.b.TrimFront(n)
	p.off = 0
}

// release drops what was not written.
func (p *viewPayload) release() {
	p.b.Release()
	p.off = 0
}

// grow makes p hold n bytes of fresh views for a read to fill, and returns
// their memory for readv (in iov's room). The views are made by gVisor's
// own WriteFromReader from a reader that writes nothing (uninitialized): in
// pvlink's gVisor it does not clear chunks that a reader fills, and the
// read that follows overwrites them; gVisor as released clears them.
func (p *viewPayload) grow(n int, iov [][]byte) [][]byte {
	p.b.WriteFromReaderAndLimitedReader(uninitialized{}, int64(n), &p.lr)
	p.lr.R = nil
	views := p.b.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		iov = append(iov, v.AsSlice())
	}
	return iov
}

// uninitialized is a reader that claims to fill what it is given without
// writing it.
type uninitialized struct{}

func (uninitialized) Read(b []byte) (int, error) { return len(b), nil }

// readViews reads up to want bytes from the target's socket with one readv
// into c.vp's views and returns what the read returned; after an error or
// EOF the views are released.
func (c *conn) readViews(want int) (n int, rerr, cerr error) {
	c.pr.iov = c.vp.grow(want, c.pr.iov[:0])
	cerr = c.providerRaw.Read(c.pr.readFn)
	n, rerr = c.pr.n, c.pr.err
	clear(c.pr.iov)
	c.pr.iov = c.pr.iov[:0]
	if cerr != nil || rerr != nil || n <= 0 {
		c.vp.release()
		return max(n, 0), rerr, cerr
	}
	c.vp.b.Truncate(int64(n))
	return n, nil, nil
}
