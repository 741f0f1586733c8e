package dataplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/nsenter"
)

const (
	// providerMSS is the MSS the forwarder offers targets: the provider
	// side of a PrivateLink connection carries the same 8500-byte packets.
	providerMSS = endpointMTU - 40
	// dialTimeout bounds a connect to a target; an NLB gives up on a
	// target that does not answer the handshake in about this long.
	dialTimeout = 10 * time.Second
)

// dialTarget opens a kernel TCP connection to target from the load
// balancer's node address, with the socket created inside the provider VPC's
// namespace (a socket keeps the namespace it was born in, so it can be used
// from any thread afterwards).
func (f *Forwarder) dialTarget(ctx context.Context, lb LoadBalancer, target netip.AddrPort) (*net.TCPConn, error) {
	h, err := f.namespace(lb.Netns)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(lb.NodeIP, 0)),
		Timeout:   dialTimeout,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, providerMSS)
				// Choose the source port at connect(), per destination,
				// not at bind(): a node then has the whole port range for
				// each target, and TIME_WAIT ports can be reused.
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	var conn net.Conn
	err = nsenter.DoHandle(h, func() error {
		var derr error
		conn, derr = d.DialContext(ctx, "tcp4", target.String())
		return derr
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s -> %s in netns %s: %w", lb.NodeIP, target, lb.Netns, err)
	}
	return conn.(*net.TCPConn), nil
}

// namespace returns an open handle of a provider namespace, opening it once.
func (f *Forwarder) namespace(name string) (netns.NsHandle, error) {
	f.nsMu.Lock()
	defer f.nsMu.Unlock()
	if h, ok := f.providerNS[name]; ok {
		return h, nil
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return 0, fmt.Errorf("%w: open netns %s: %v", errNoNamespace, name, err)
	}
	f.providerNS[name] = h
	return h, nil
}
