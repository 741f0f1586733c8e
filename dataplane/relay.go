package dataplane

import (
	"errors"
	"io"
	"net"
	"sync"
)

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
// work; an error on either side (a reset) closes both at once.
func relay(consumer, provider halfCloser, e *eniState) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := copyHalf(provider, consumer, e); err != nil {
			consumer.Close()
			provider.Close()
			return
		}
		provider.CloseWrite()
	}()
	if err := copyHalf(consumer, provider, e); err != nil {
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
func copyHalf(dst, src net.Conn, e *eniState) error {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
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
