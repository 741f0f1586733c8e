package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullListener is a loopback listener whose accept queue is full: the
// kernel drops the next SYN to it, so a connect stays in progress until
// accept makes room and the SYN is sent again.
func fullListener(t *testing.T) (int, netip.AddrPort) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ln) })
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(ln, true); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(ln)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for i := 0; ; i++ {
		fd := nonblockingSocket(t)
		err := unix.Connect(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())})
		if err == unix.EINPROGRESS {
			if done, _ := connected(fd); !done {
				return ln, addr // this one's SYN was dropped: the queue is full
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if i == 16 {
			t.Fatal("the accept queue of a listener with backlog 0 never filled")
		}
	}
}

func nonblockingSocket(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A connect the target does not complete at once ends on the poller's
// wake-up when the handshake does, with the socket in the poller's set
// and no token left over for the relay; one that never completes ends
// with its context. (Over a namespace's loopback a connect is mostly done
// when the system call returns; a target that is slow to accept, or a
// Region away, takes this way.)
func TestConnectInProgressEndsOnThePollersWakeUp(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	f := &Forwarder{poller: p}
	ln, addr := fullListener(t)

	t.Run("never answered: the context ends it", func(t *testing.T) {
		fd := nonblockingSocket(t)
		var w sockWatch
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := f.connect(ctx, fd, addr, &w)
		p.unwatch(fd, &w)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("connect to a full accept queue: %v, want the context's deadline", err)
		}
	})

	t.Run("answered later: the wake-up ends it", func(t *testing.T) {
		fd := nonblockingSocket(t)
		var w sockWatch
		// Room in the queue after a while; the kernel resends the SYN
		// about a second after the first.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			time.Sleep(200 * time.Millisecond)
			for {
				nfd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
				if err == nil {
					unix.Close(nfd)
					continue
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		start := time.Now()
		if err := f.connect(ctx, fd, addr, &w); err != nil {
			t.Fatalf("connect once the target accepts: %v", err)
		}
		if done, err := connected(fd); !done || err != nil {
			t.Fatalf("connect returned, but the socket is not connected (%v, %v)", done, err)
		}
		if p.socks[fd].Load() != &w || !w.outWatched {
			t.Error("the socket is not in the poller's set for room, as a connect that waited leaves it")
		}
		if w.wantRoom.Load() || len(w.room) != 0 {
			t.Error("the connect left its wait armed or a token behind")
		}
		t.Logf("connected after %v", time.Since(start).Round(time.Millisecond))
		p.unwatch(fd, &w)
	})
}
