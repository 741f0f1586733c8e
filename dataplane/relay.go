package dataplane

import (
	"errors"
	"io"
	"net"
	"sync"

	"pvlink.dev/pvlink/proxyproto"
)

// writeHeader sends a proxy protocol header on its own (on_first_ack).
func writeHeader(w io.Writer, h *proxyproto.Header) error {
	var b [proxyproto.NLBLength + 64]byte
	n, err := h.Encode(b[:])
	if err != nil {
		return err
	}
	_, err = w.Write(b[:n])
	return err
}

// relayBufSize is one read's worth of a relay direction; 64 KiB matches the
// largest segment run gVisor hands over in one read.
const relayBufSize = 64 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// halfCloser is a connection whose write side can be shut alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// relay copies bytes both ways until both sides are done. A FIN from one
// side becomes a FIN (CloseWrite) to the other, so half-closed connections
// work; an error on either side (a reset) closes both at once. A non-nil pp
// is a proxy protocol header to send with the consumer's first bytes.
func relay(consumer, provider halfCloser, e *eniState, pp *proxyproto.Header) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := copyHalf(provider, consumer, e, pp); err != nil {
			consumer.Close()
			provider.Close()
			return
		}
		provider.CloseWrite()
	}()
	if err := copyHalf(consumer, provider, e, nil); err != nil {
		consumer.Close()
		provider.Close()
	} else {
		consumer.CloseWrite()
	}
	<-done
	consumer.Close()
	provider.Close()
}

// copyHalf copies src to dst until EOF (nil) or an error, counting bytes.
// A non-nil pp is encoded in front of the first read, so header and first
// payload leave in one write (one segment, as an NLB sends them); if src
// ends before sending anything, the header goes alone.
func copyHalf(dst, src net.Conn, e *eniState, pp *proxyproto.Header) error {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	if pp != nil {
		hn, err := pp.Encode(buf)
		if err != nil {
			return err
		}
		n, rerr := src.Read(buf[hn:])
		if _, werr := dst.Write(buf[:hn+n]); werr != nil {
			return werr
		}
		e.bytes.Add(uint64(n))
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			e.bytes.Add(uint64(n))
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}
