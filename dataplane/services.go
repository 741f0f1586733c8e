package dataplane

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// The service side of the metrics (AWS/PrivateLinkServices): an ENI's
// traffic split by the load balancer whose listener took it. An ENI has
// one set per load balancer it has carried; the sets outlive snapshots, so
// that a connection keeps counting into the set it began with.

// lbCounters are one ENI's counters for one load balancer.
type lbCounters struct {
	name, arn string
	active    atomic.Int64
	newConns  atomic.Uint64
	bytes     atomic.Uint64
	rstSent   atomic.Uint64
	// portErrors counts connections refused because their target had
	// every connection of its node in use (PortAllocationErrorCount).
	portErrors atomic.Uint64
	// The RSTs of AWS/NetworkELB's TCP_Client_Reset_Count,
	// TCP_Target_Reset_Count and TCP_ELB_Reset_Count (resets.go).
	clientResets, targetResets, elbResets atomic.Uint64
}

// lbSets are an ENI's per-load-balancer counters, and which of them each
// listener port counts into (for the RSTs the link writes).
type lbSets struct {
	mu     sync.Mutex
	byName map[string]*lbCounters
	byPort atomic.Pointer[map[uint16]*lbCounters]
}

// counters gives the set of load balancer lb, made on first use.
func (s *lbSets) counters(lb LoadBalancer) *lbCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName == nil {
		s.byName = map[string]*lbCounters{}
	}
	c := s.byName[lb.Name]
	if c == nil {
		c = &lbCounters{name: lb.Name, arn: lb.ARN}
		s.byName[lb.Name] = c
	}
	if lb.ARN != "" {
		c.arn = lb.ARN
	}
	return c
}

// list gives every set the ENI has.
func (s *lbSets) list() []*lbCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*lbCounters, 0, len(s.byName))
	for _, c := range s.byName {
		out = append(out, c)
	}
	return out
}

// noteSent sees every packet the link writes towards the consumer: a
// capture takes it, and a TCP RST is RstPacketsSent of the load balancer
// whose listener port it comes from (a RST from a port with no listener
// counts for the ENI only).
func (e *eniState) noteSent(pkt *stack.PacketBuffer) {
	e.captureOut(pkt)
	e.flowOut(pkt)
	if pkt.TransportProtocolNumber != header.TCPProtocolNumber {
		return
	}
	th := pkt.TransportHeader().Slice()
	if len(th) < header.TCPMinimumSize || header.TCP(th).Flags()&header.TCPFlagRst == 0 {
		return
	}
	e.rstSent.Add(1)
	e.noteReset(pkt, header.TCP(th))
}
