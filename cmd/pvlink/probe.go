package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/bench/peer"
	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// probeResult is one connection of `fabric probe`.
type probeResult struct {
	Endpoint string          `json:"endpoint"`
	AZ       string          `json:"az"`
	ENI      string          `json:"eni"`
	Addr     string          `json:"addr"`
	Client   string          `json:"client,omitempty"`
	Seen     json.RawMessage `json:"target_saw,omitempty"`
	NodeIP   string          `json:"expected_peer_ip"`
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
}

func newFabricProbeCmd() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "probe [NAME | -f FILE]",
		Short: "Connect from the consumer VPC to every ENI port and show what each target saw",
		Long: "For every endpoint, ENI and port, connects from inside the consumer VPC's\n" +
			"namespace, prints the target's report of the connection, and checks that the\n" +
			"target saw the load-balancer node of that AZ as the source (never the consumer).\n" +
			"Exits non-zero if any probe fails.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			c, err := client(cmd, name)
			if err != nil {
				return err
			}
			s, err := c.Status()
			if err != nil {
				return err
			}
			var results []probeResult
			failed := 0
			for _, e := range s.Endpoints {
				if e.State != snapshot.StateAvailable {
					// Only an available endpoint carries traffic: a probe
					// would only time out.
					if output == "table" {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: skipped, the endpoint is %s\n", e.ID, e.State)
					}
					continue
				}
				for _, eni := range e.ENIs {
					for _, port := range e.Ports {
						for _, ip := range []string{eni.IP, eni.IPv6} {
							if ip == "" {
								continue
							}
							r := probe(cmd.Context(), s, e, eni, ip, port)
							if !r.OK {
								failed++
							}
							results = append(results, r)
							if output == "table" {
								printProbe(cmd, r)
							}
						}
					}
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.Encode(results)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d probes failed", failed, len(results))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addOutputFlag(c, &output)
	return c
}

func probe(ctx context.Context, s *ctl.Report, e ctl.EndpointState, eni ctl.ENIState, ip string, port int) probeResult {
	r := probeResult{Endpoint: e.ID, AZ: eni.AZ, ENI: eni.ID, Addr: net.JoinHostPort(ip, strconv.Itoa(port))}
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

func printProbe(cmd *cobra.Command, r probeResult) {
	status := "ok"
	if !r.OK {
		status = "FAILED: " + r.Error
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s via %s (%s) from %s: %s\n  target saw: %s\n", r.AZ, r.Endpoint, r.Addr, r.ENI, r.Client, status, r.Seen)
}
