package nsenter

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DialTCP connects to addr (an IP address and port) over TCP from inside
// the network namespace name. A socket belongs to the namespace it was
// made in, so only the socket(2) call runs there, on a thread locked for
// as long as that call takes; the connect and its wait run on any thread.
// Dialing whole inside the namespace (net.Dialer under Do) keeps a thread
// locked for the handshake: the runtime parks that thread and must wake
// that very thread when the handshake ends, once per connection. An addr
// whose host is not an IP address (or has a zone) is dialed that way, so
// that the name is looked up from inside; a name of "" dials from the
// calling thread's namespace.
func DialTCP(ctx context.Context, name, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, opError(addr, err)
	}
	ap, err := netip.ParseAddrPort(addr)
	if name == "" || err != nil || ap.Addr().Zone() != "" {
		return dialInside(ctx, name, addr)
	}
	ip := ap.Addr().Unmap()
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip.Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	}
	var fd int
	if err := Do(name, func() (err error) {
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, opError(addr, err)
	}
	f := os.NewFile(uintptr(fd), "tcp "+addr)
	defer f.Close() // net.FileConn keeps a descriptor of its own
	if err := connect(ctx, f, fd, sa); err != nil {
		return nil, opError(addr, err)
	}
	return net.FileConn(f)
}

// connect connects f's socket (non-blocking) to sa and waits for the
// handshake on the runtime's poller, as long as ctx allows.
func connect(ctx context.Context, f *os.File, fd int, sa unix.Sockaddr) error {
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return nil
	case unix.EINPROGRESS, unix.EINTR:
	default:
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		// Writable means the handshake has ended, either way.
		if _, err := unix.Getpeername(int(fd)); err == nil {
			return true
		}
		switch e, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); {
		case err != nil:
			cerr = err
		case e != 0:
			cerr = syscall.Errno(e)
		default:
			return false // still in progress
		}
		return true
	})
	if werr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return werr
	}
	return cerr
}

// dialInside dials addr with net.Dialer from inside the namespace name.
func dialInside(ctx context.Context, name, addr string) (conn net.Conn, err error) {
	if name == "" {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	err = Do(name, func() error {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}

func opError(addr string, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: addrOf(addr), Err: err}
}

// addrOf is addr as a net.Addr for error messages.
type addrOf string

func (a addrOf) Network() string { return "tcp" }
func (a addrOf) String() string  { return string(a) }
