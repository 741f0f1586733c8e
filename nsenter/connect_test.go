package nsenter

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// boundSocket is a socket bound to a port of 127.0.0.1 (nothing listens
// on it yet), closed when the test ends.
func boundSocket(t *testing.T) (int, netip.AddrPort) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	return fd, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
}

// loopbackListener listens on a port of 127.0.0.1 with backlog.
func loopbackListener(t *testing.T, backlog int) (int, netip.AddrPort) {
	ln, addr := boundSocket(t)
	if err := unix.Listen(ln, backlog); err != nil {
		t.Fatal(err)
	}
	return ln, addr
}

// fullListener is a loopback listener whose accept queue is full: the
// kernel drops the next SYN to it, so a connect stays in progress until
// accept makes room and the SYN is sent again.
func fullListener(t *testing.T) (int, netip.AddrPort) {
	ln, addr := loopbackListener(t, 0)
	if err := unix.SetNonblock(ln, true); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		fd, err := startConnect(t, addr)
		if err == unix.EINPROGRESS {
			if done, _ := Connected(fd); !done {
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

func sockaddr(a netip.AddrPort) *unix.SockaddrInet4 {
	return &unix.SockaddrInet4{Addr: a.Addr().As4(), Port: int(a.Port())}
}

// startConnect starts a connect to addr from a new non-blocking socket.
func startConnect(t *testing.T, addr netip.AddrPort) (int, error) {
	fd := nonblockingSocket(t)
	return fd, unix.Connect(fd, sockaddr(addr))
}

func nonblockingSocket(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A connect the target does not complete at once ends when the handshake
// does, on Go's netpoller; one that never completes ends with its
// context. (Over a namespace's loopback a connect is mostly done when the
// system call returns; a target that is slow to accept, or a Region away,
// takes this way.)
func TestConnectInProgressEndsWhenTheHandshakeDoes(t *testing.T) {
	ln, addr := fullListener(t)
	// socket is a new non-blocking socket as DialTCP and the forwarder's
	// dials make it: a pollable os.File.
	socket := func() (*os.File, syscall.RawConn, int) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		file := os.NewFile(uintptr(fd), "provider")
		t.Cleanup(func() { file.Close() })
		raw, err := file.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		return file, raw, fd
	}

	t.Run("never answered: the context ends it", func(t *testing.T) {
		file, raw, fd := socket()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := Connect(ctx, file, raw, fd, sockaddr(addr), 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("connect to a full accept queue: %v, want the context's deadline", err)
		}
	})

	t.Run("answered later: the handshake ends it", func(t *testing.T) {
		file, raw, fd := socket()
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
		if err := Connect(ctx, file, raw, fd, sockaddr(addr), 10*time.Second); err != nil {
			t.Fatalf("connect once the target accepts: %v", err)
		}
		if done, err := Connected(fd); !done || err != nil {
			t.Fatalf("connect returned, but the socket is not connected (%v, %v)", done, err)
		}
		took := time.Since(start)
		if took < 200*time.Millisecond {
			t.Errorf("connected after %v, before the target made room", took)
		}
		t.Logf("connected after %v", took.Round(time.Millisecond))
	})
}

// TestConnectedTellsEachEndOfAHandshake: a connect still in progress, one
// the target accepted, one it refused, and one it accepted and closed at
// once, each as connected reads it from the socket.
func TestConnectedTellsEachEndOfAHandshake(t *testing.T) {
	connectTo := func(addr netip.AddrPort) int {
		fd, err := startConnect(t, addr)
		if err != nil && err != unix.EINPROGRESS {
			t.Fatal(err)
		}
		return fd
	}
	// until waits for connected to say the handshake ended.
	until := func(fd int) error {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if done, err := Connected(fd); done {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the handshake never ended")
		return nil
	}
	listener := func() (int, netip.AddrPort) { return loopbackListener(t, 16) }

	t.Run("in progress", func(t *testing.T) {
		_, addr := fullListener(t)
		if done, err := Connected(connectTo(addr)); done || err != nil {
			t.Errorf("a SYN the target dropped: connected says (%v, %v), want still in progress", done, err)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		_, addr := listener()
		fd := connectTo(addr)
		if err := until(fd); err != nil {
			t.Errorf("accepted: %v", err)
		}
		if s, _ := tcpState(fd); s != unix.BPF_TCP_ESTABLISHED {
			t.Errorf("state %d", s)
		}
	})
	t.Run("refused", func(t *testing.T) {
		_, addr := boundSocket(t) // bound, but nothing listens
		if err := until(connectTo(addr)); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("refused: %v, want ECONNREFUSED", err)
		}
	})
	t.Run("accepted and closed", func(t *testing.T) {
		ln, addr := listener()
		fd := connectTo(addr)
		nfd, _, err := unix.Accept(ln)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(nfd) // its FIN reaches fd at once over loopback
		if err := until(fd); err != nil {
			t.Errorf("accepted, then closed: %v, want connected", err)
		}
		if s, _ := tcpState(fd); s != unix.BPF_TCP_CLOSE_WAIT {
			t.Errorf("state %d, want CLOSE_WAIT", s)
		}
	})
}
