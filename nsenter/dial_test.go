package nsenter

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestDialTCPConnectsFromInsideTheNamespace: the connection starts in the
// namespace (a listener there accepts it; none listens on the host's
// loopback at that port), the calling thread never leaves the host's
// namespace, and a refused connection says so.
func TestDialTCPConnectsFromInsideTheNamespace(t *testing.T) {
	requireRoot(t)
	name := scratch(t, "pvl-dial")
	var ln net.Listener
	if err := Do(name, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	host := threadNetns()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		c, err := DialTCP(ctx, name, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		seen, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(seen) != c.LocalAddr().String() {
			t.Fatalf("the listener saw %q (%v); the connection is %s -> %s", seen, err, c.LocalAddr(), c.RemoteAddr())
		}
		if c.RemoteAddr().String() != ln.Addr().String() {
			t.Errorf("remote address %s, want %s", c.RemoteAddr(), ln.Addr())
		}
	}
	if got := threadNetns(); got != host {
		t.Errorf("the calling thread is in %s after the dials, want %s", got, host)
	}

	// Nothing listens on this port inside; a listener on the host's
	// loopback must not be what answers.
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	_, err = DialTCP(ctx, name, hostLn.Addr().String())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial to a port nobody listens on in the namespace: %v, want connection refused", err)
	}
	// A context already over: no connection, the context's error.
	done, stop := context.WithCancel(context.Background())
	stop()
	if c, err := DialTCP(done, name, ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("dial with a cancelled context succeeded")
	}
	if _, err := DialTCP(ctx, "pvl-no-such-namespace", ln.Addr().String()); err == nil {
		t.Errorf("dial from a namespace that does not exist succeeded")
	}
}
