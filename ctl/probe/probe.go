// Package probe checks a fabric's data path end to end, as a consumer
// would: a connection from inside the consumer VPC to every address and
// port of every available endpoint, an echo through it, and the target's
// report of what it saw (the load-balancer node as the source, never the
// consumer; the proxy protocol header, when on, naming the consumer and
// the endpoint).
package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// Result is one connection of a probe, or an endpoint skipped.
type Result struct {
	Endpoint string          `json:"endpoint"`
	AZ       string          `json:"az,omitempty"`
	ENI      string          `json:"eni,omitempty"`
	Addr     string          `json:"addr,omitempty"`
	Client   string          `json:"client,omitempty"`
	Seen     json.RawMessage `json:"target_saw,omitempty"`
	NodeIP   string          `json:"expected_peer_ip,omitempty"`
	OK       bool            `json:"ok"`
	// Skipped says why an endpoint was not probed: only an available
	// endpoint carries traffic, so a probe of another would only time out.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Fabric probes every ENI address and port of every endpoint of a fabric,
// calling each (if not nil) with each result as it comes; it returns them
// all and how many failed.
func Fabric(ctx context.Context, s *ctl.Report, each func(Result)) (results []Result, failed int) {
	report := func(r Result) {
		results = append(results, r)
		if each != nil {
			each(r)
		}
	}
	for _, e := range s.Endpoints {
		if e.State != snapshot.StateAvailable {
			report(Result{Endpoint: e.ID, Skipped: "the endpoint is " + e.State})
			continue
		}
		for _, eni := range e.ENIs {
			for _, port := range e.Ports {
				for _, ip := range []string{eni.IP, eni.IPv6} {
					if ip == "" {
						continue
					}
					r := one(ctx, s, e, eni, ip, port)
					if !r.OK {
						failed++
					}
					report(r)
				}
			}
		}
	}
	return results, failed
}

// String is a result for people, on two lines.
func (r Result) String() string {
	if r.Skipped != "" {
		return fmt.Sprintf("%s: skipped, %s", r.Endpoint, r.Skipped)
	}
	status := "ok"
	if !r.OK {
		status = "FAILED: " + r.Error
	}
	return fmt.Sprintf("%s %s via %s (%s) from %s: %s\n  target saw: %s", r.AZ, r.Endpoint, r.Addr, r.ENI, r.Client, status, r.Seen)
}

func one(ctx context.Context, s *ctl.Report, e ctl.EndpointState, eni ctl.ENIState, ip string, port int) Result {
	r := Result{Endpoint: e.ID, AZ: eni.AZ, ENI: eni.ID, Addr: net.JoinHostPort(ip, strconv.Itoa(port))}
	for _, lb := range s.LoadBalancers {
		for _, n := range lb.Nodes {
			if n.AZ == eni.AZ {
				r.NodeIP = n.IP
			}
		}
	}
	c := &peer.Client{Addr: r.Addr, Timeout: 10 * time.Second, Dial: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		err = nsenter.Do(eni.Netns, func() error {
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}
	res, err := c.Run(ctx)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Client, r.Seen = res.Local, res.Target
	var seen peer.Seen
	if err := json.Unmarshal(res.Target, &seen); err != nil {
		r.Error = "target report is not JSON: " + err.Error()
		return r
	}
	peerAddr, err := netip.ParseAddrPort(seen.Peer)
	switch {
	case err != nil:
		r.Error = "target report has no peer address"
	case peerAddr.Addr().String() != r.NodeIP:
		r.Error = fmt.Sprintf("target saw %s, not the load-balancer node %s", peerAddr.Addr(), r.NodeIP)
	case !res.Intact:
		r.Error = "echo differs from what was sent"
	case seen.ProxyError != "":
		r.Error = "target could not read the proxy protocol header: " + seen.ProxyError
	case seen.Proxy != nil && (seen.Proxy.Source != res.Local || seen.Proxy.Destination != r.Addr || seen.Proxy.VPCEndpoint != e.ID || !seen.Proxy.CRCOK):
		r.Error = fmt.Sprintf("proxy protocol header says %s -> %s via %s (crc ok: %v), want %s -> %s via %s",
			seen.Proxy.Source, seen.Proxy.Destination, seen.Proxy.VPCEndpoint, seen.Proxy.CRCOK, res.Local, r.Addr, e.ID)
	default:
		r.OK = true
	}
	return r
}
