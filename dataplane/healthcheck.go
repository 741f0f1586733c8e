package dataplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"pvlink.dev/pvlink/nat"
	"pvlink.dev/pvlink/proxyproto"
	"pvlink.dev/pvlink/snapshot"
)

// healthCheck is an NLB node's health check of a target: a connection from
// the node's address to the target's port or the group's health check
// port, which carries a LOCAL proxy protocol header when the group has
// proxy protocol on; an HTTP or HTTPS check then asks for its path and
// passes on a status its matcher names. Each check takes the load balancer
// and target group as the snapshot in force has them (its outbound rules,
// its proxy protocol and health check settings), not as they were when
// the group was made.
func (f *Forwarder) healthCheck(lb LoadBalancer, tg TargetGroup) nat.CheckFunc {
	return func(ctx context.Context, addr netip.AddrPort) error {
		lb, tg := lb, tg
		if c := f.current.Load(); c != nil {
			if now, ok := c.cfg.LoadBalancers[lb.Name]; ok {
				lb = now
			}
			if now, ok := c.cfg.TargetGroups[tg.Name]; ok {
				tg = now
			}
		}
		hc := tg.HealthCheck
		if hc.Port != 0 {
			addr = netip.AddrPortFrom(addr.Addr(), hc.Port)
		}
		sock, err := f.dialTarget(ctx, lb, addr)
		if err != nil {
			return err
		}
		c := sock.file
		defer c.Close()
		if tg.ProxyProtocolV2 {
			h := proxyproto.Header{Command: proxyproto.Local, CRC32C: true}
			if err := writeHeader(c, &h); err != nil {
				return err
			}
		}
		if hc.CheckProtocol() == snapshot.CheckTCP {
			return nil
		}
		conn, err := net.FileConn(c) // a net.Conn for TLS and HTTP; a check is no hot path
		if err != nil {
			return err
		}
		defer conn.Close()
		return httpCheck(ctx, conn, addr, hc)
	}
}

// httpCheck asks for the check's path over conn (in TLS, not verified, for
// HTTPS: an NLB does not check its targets' certificates) and passes on a
// status the matcher names.
func httpCheck(ctx context.Context, conn net.Conn, addr netip.AddrPort, hc snapshot.HealthCheck) error {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if hc.Protocol == snapshot.CheckHTTPS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // #nosec G402: as an NLB's checks
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr.String()+hc.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "ELB-HealthChecker/2.0")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if !snapshot.MatcherAllows(hc.Matcher, resp.StatusCode) {
		return fmt.Errorf("HTTP %d, not in %s", resp.StatusCode, hc.Matcher)
	}
	return nil
}
