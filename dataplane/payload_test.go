package dataplane

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// payloadEndpoint stands in for the consumer's endpoint as gVisor's Write
// treats a payload: it takes min(Len, room) bytes, from TakeBuffer when the
// payload has it and takes is set (pvlink's gVisor), else by reading them
// in views of at most 64 KiB (gVisor as released). Every third Write queues
// only the first half of what it took, as gVisor does when the send buffer
// shrank while it read. It counts the bytes that came in the relay's read
// views and those copied out of a payload.
type payloadEndpoint struct {
	tcpip.Endpoint
	takes  bool
	room   int
	writes int
	got    bytes.Buffer
	taken  int // bytes handed over in views (TakeBuffer)
	copied int // bytes read out of a payload
	inView int // bytes of either kind that were read into views (viewPayload)
	shut   chan struct{}
	ops    tcpip.SocketOptions
}

func (e *payloadEndpoint) SocketOptions() *tcpip.SocketOptions { return &e.ops }

func (e *payloadEndpoint) Write(p tcpip.Payloader, _ tcpip.WriteOptions) (int64, tcpip.Error) {
	n := min(p.Len(), e.room)
	var b []byte
	if t, ok := p.(interface{ TakeBuffer(int) buffer.Buffer }); ok && e.takes {
		v := t.TakeBuffer(n)
		if int(v.Size()) != n {
			return 0, &tcpip.ErrBadBuffer{}
		}
		b = v.Flatten()
		v.Release()
		e.taken += n
	} else {
		b = make([]byte, n)
		for at := 0; at < n; at += 64 << 10 {
			if _, err := io.ReadFull(p, b[at:min(at+64<<10, n)]); err != nil {
				return 0, &tcpip.ErrBadBuffer{}
			}
		}
		e.copied += n
	}
	if _, ok := p.(*viewPayload); ok {
		e.inView += n
	}
	if e.writes++; e.writes%3 == 0 {
		n /= 2 // the rest is dropped: the writer offers it again
	}
	e.got.Write(b[:n])
	return int64(n), nil
}

func (e *payloadEndpoint) Shutdown(tcpip.ShutdownFlags) tcpip.Error {
	close(e.shut)
	return nil
}

func (e *payloadEndpoint) Abort() {}
func (e *payloadEndpoint) Close() {}

// A target that sends in bulk has its bytes read into gVisor views once a
// read has brought bulkMin of them, and the endpoint takes those views as
// they are (pvlink's gVisor) or copies out of them (gVisor as released),
// a Write that has room for only part of a read leaving the rest for the
// next. Either way every byte arrives once, in order, and the target's FIN
// after them.
func TestBulkBytesFromATargetReachTheEndpointInTheirReadViews(t *testing.T) {
	for _, takes := range []bool{true, false} {
		name := map[bool]string{true: "views-taken", false: "views-copied"}[takes]
		t.Run(name, func(t *testing.T) {
			ep := &payloadEndpoint{takes: takes, room: 48 << 10, shut: make(chan struct{})}
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
				// Writes of every size, then the FIN.
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
			if ep.inView == 0 {
				t.Fatalf("no read went into views (%d bytes taken, %d copied)", ep.taken, ep.copied)
			}
			if takes && ep.taken == 0 {
				t.Fatalf("no byte was handed over in its read view (%d copied)", ep.copied)
			}
			if ep.inView == ep.taken+ep.copied {
				t.Fatalf("no read went through the relay's buffer: the first one should (%d in views)", ep.inView)
			}
			if c.vp.b.Size() != 0 {
				t.Fatalf("%d bytes left in the connection's views", c.vp.b.Size())
			}
			t.Logf("%d bytes handed over in views, %d copied", ep.taken, ep.copied)
		})
	}
}

// TakeBuffer hands over what is asked for without letting go of it; done
// drops what a Write queued, and what is left is offered again, in order;
// Read does the same by copying.
func TestAViewPayloadKeepsWhatAWriteDidNotQueue(t *testing.T) {
	var p viewPayload
	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	iov := p.grow(len(data), nil)
	at := 0
	for _, s := range iov {
		at += copy(s, data[at:])
	}
	if at != len(data) || p.Len() != len(data) {
		t.Fatalf("grow made %d bytes of views (Len %d), want %d", at, p.Len(), len(data))
	}
	first := p.TakeBuffer(70000) // cuts a view
	if first.Size() != 70000 || p.Len() != len(data)-70000 {
		t.Fatalf("took %d, %d left to offer; want 70000, %d", first.Size(), p.Len(), len(data)-70000)
	}
	got := first.Flatten()[:50000]
	first.Release()
	p.done(50000) // the Write queued only 50000
	if p.Len() != len(data)-50000 {
		t.Fatalf("after a Write that queued 50000: %d left, want %d", p.Len(), len(data)-50000)
	}
	b := make([]byte, 1000)
	if n, err := p.Read(b); n != 1000 || err != nil {
		t.Fatalf("Read: %d, %v", n, err)
	}
	if n, err := p.Read(nil); n != 0 || err != nil {
		t.Fatalf("gVisor's probe with bytes left: %d, %v; want 0, nil", n, err)
	}
	p.done(1000)
	got = append(got, b...)
	rest := p.TakeBuffer(1 << 30)
	got = append(got, rest.Flatten()...)
	p.done(rest.Size())
	rest.Release()
	if !bytes.Equal(got, data) {
		t.Fatalf("the bytes handed over differ from those put in at %d", firstDiff(got, data))
	}
	if n, err := p.Read(b); n != 0 || err != io.EOF || p.b.Size() != 0 {
		t.Fatalf("Read of an empty payload: %d, %v (%d bytes held); want EOF", n, err, p.b.Size())
	}
}
