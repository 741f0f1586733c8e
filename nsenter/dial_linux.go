package nsenter

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dialLimit bounds a DialTCP whose context has no earlier deadline.
const dialLimit = time.Minute

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
	rc, err := f.SyscallConn()
	if err == nil {
		err = Connect(ctx, f, rc, fd, sa, dialLimit)
	}
	if err != nil {
		return nil, opError(addr, err)
	}
	return net.FileConn(f)
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
