package dataplane

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/proxyproto"
)

// relayBufSize is one read's worth of a relay direction; 64 KiB matches the
// largest segment run gVisor hands over in one read.
const relayBufSize = 64 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// errExpired ends a relay direction whose flow passed its idle timeout.
var errExpired = errors.New("flow expired")

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

// relay copies bytes both ways until both sides are done, as an NLB
// passes a connection on: a FIN becomes a FIN (CloseWrite) on the other
// side, a RST becomes a RST. A flow that expired is left for the consumer's
// next segment to find (and be answered with a RST); a flow the forwarder
// reset has already been torn down. A non-nil pp is a proxy protocol header
// to send with the consumer's first bytes.
func relay(consumer *gonet.TCPConn, c *conn, fl *flowtable.Flow, pp *proxyproto.Header) {
	provider := c.provider
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := c.copy(provider, consumer, fl, pp, true)
		switch {
		case errors.Is(err, errExpired) || c.reset.Load():
		case err != nil: // the consumer reset: reset the target
			provider.SetLinger(0)
			provider.Close()
			consumer.Close()
		default:
			provider.CloseWrite()
		}
	}()
	err := c.copy(consumer, provider, fl, nil, false)
	switch {
	case errors.Is(err, errExpired) || c.reset.Load():
	case err != nil: // the target reset: reset the consumer
		c.ep.Abort()
		provider.Close()
	default:
		consumer.CloseWrite()
	}
	<-done
	c.closed.Store(true)
	consumer.Close()
	provider.Close()
}

// copy copies src to dst until EOF (nil) or an error, counting bytes for
// the ENI and the flow and marking the flow active. A non-nil pp is encoded
// in front of the first read, so header and first payload leave in one
// write (one segment, as an NLB sends them); if src ends before sending
// anything, the header goes alone.
//
// A buffer is taken from the pool only once src has something to read and
// given back after the write, so an idle connection pins none: its
// goroutines wait on readiness, not in Read.
func (c *conn) copy(dst, src net.Conn, fl *flowtable.Flow, pp *proxyproto.Header, fromConsumer bool) error {
	counter := &fl.BytesOut
	wait := c.waitProvider
	if fromConsumer {
		counter = &fl.BytesIn
		wait = c.waitConsumer
	}
	var bp *[]byte
	defer func() {
		if bp != nil {
			relayBufs.Put(bp)
		}
	}()
	for {
		if bp != nil {
			relayBufs.Put(bp)
			bp = nil
		}
		wait()
		bp = relayBufs.Get().(*[]byte)
		buf := *bp
		off := 0
		if pp != nil {
			n, err := pp.Encode(buf)
			if err != nil {
				return err
			}
			off, pp = n, nil
		}
		n, rerr := src.Read(buf[off:])
		if c.expired.Load() {
			if fromConsumer {
				// The consumer's first segment after the flow was
				// forgotten: answer it with a RST.
				c.ep.Abort()
			}
			return errExpired
		}
		if n > 0 || off > 0 {
			if _, werr := dst.Write(buf[:off+n]); werr != nil {
				return werr
			}
			fl.Touch(time.Now().UnixNano())
			counter.Add(uint64(n))
			c.eni.bytes.Add(uint64(n))
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}

// waitConsumer blocks until the consumer side has data, a FIN, an error or
// has been closed (then the Read that follows says which).
func (c *conn) waitConsumer() {
	if c.ep.Readiness(consumerEvents) != 0 {
		return
	}
	// The entry and the timer are made once per connection and reused:
	// only the consumer-to-provider goroutine waits here.
	if c.waitCh == nil {
		c.waitEntry, c.waitCh = waiter.NewChannelEntry(consumerEvents)
		c.waitTimer = time.NewTimer(time.Second)
	} else {
		c.waitTimer.Reset(time.Second)
	}
	c.wq.EventRegister(&c.waitEntry)
	defer c.wq.EventUnregister(&c.waitEntry)
	for c.ep.Readiness(consumerEvents) == 0 && !c.reset.Load() && !c.closed.Load() {
		select {
		case <-c.waitCh:
		case <-c.waitTimer.C:
			// Re-check now and then: a close from our side does not
			// always notify.
			c.waitTimer.Reset(time.Second)
		}
	}
	c.waitTimer.Stop()
}

// consumerEvents wake a relay waiting for the consumer.
const consumerEvents = waiter.EventIn | waiter.EventHUp | waiter.EventErr

// waitProvider blocks until the provider socket is readable (data, FIN or
// error) or closed, without reading from it.
func (c *conn) waitProvider() {
	raw, err := c.provider.SyscallConn()
	if err != nil {
		return
	}
	var one [1]byte
	raw.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return err != unix.EAGAIN
	})
}
