package dataplane

import (
	"context"
	"net/netip"
	"os"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/nat"
	"pvlink.dev/pvlink/snapshot"
)

const (
	// DefaultFlowCapacity sizes the flow table for several targets at the
	// NLB's 55,000 connections each.
	DefaultFlowCapacity = 1 << 18
	// DefaultIdleTimeout is an NLB's TCP idle timeout.
	DefaultIdleTimeout = 350 * time.Second
	// DefaultDeregistrationDelay is an NLB target group's default.
	DefaultDeregistrationDelay = 300 * time.Second
)

// conn is the forwarder's side of one flow: the record's Value.
type conn struct {
	f      *Forwarder
	fl     *flowtable.Flow
	eni    *eniState
	group  *nat.Group
	target *nat.Target
	routes *eniRoutes // the ENI and listener it came in by
	rt     *route
	holds  holds // the memory budget's view (budget.go)

	// The wait queue of a consumer endpoint that handleTCP makes (a SYN
	// cookie's comes with its own), and that handshake's deadline on
	// monoNow's clock (0 once it is over), which the sweeper enforces
	// (giveUpHandshake).
	queue            waiter.Queue
	handshakeUntil   atomic.Int64
	handshakeTimeout atomic.Bool

	// Set once the connection is up.
	ep          tcpip.Endpoint
	wq          *waiter.Queue
	provider    *os.File // the node's socket to the target (dialTarget)
	providerRaw syscall.RawConn
	providerFD  int

	// The relay's state (relay.go): each direction's state, how many are
	// not done, the consumer's wake-up registration, and the proxy header
	// still to send with the consumer's first bytes.
	c2p, p2c      atomic.Int32
	p2cPending    atomic.Bool
	p2cHup        atomic.Bool
	live          atomic.Int32
	consumerEntry waiter.Entry
	pw            providerWriter // the consumer-to-provider writer, with the pending proxy header
	skip          skipWriter     // takes from the endpoint what pw's writev sent
	pr            providerReader // the provider-to-consumer read
	cr            bytesPayload   // what writeConsumer hands gVisor from a read into the relay's buffer
	vp            viewPayload    // what it hands gVisor from a read into gVisor's views (payload.go)
	bulk          bool           // the last read from the target was bulkMin or more: the next goes into views
	released      atomic.Bool
	// started: the relay runs; until then abort and forget only set
	// their flag, and start acts on it.
	started atomic.Bool

	// expired: the idle timeout passed and the flow is forgotten; the next
	// consumer segment is answered with a RST. reset: the forwarder cut
	// the flow (target unhealthy, or drained with termination). cut: the
	// relay tore the connection down after a RST from either side.
	expired atomic.Bool
	reset   atomic.Bool
	cut     atomic.Bool
	// targetRST: the target reset the connection (or refused it), and the
	// RST the consumer gets next is the target's, relayed: the link
	// counts it as TCP_Target_Reset_Count, not as one the load balancer
	// made (resets.go).
	targetRST atomic.Bool

	// What the target's socket had received when the flow had been idle
	// for half its timeout (segsBase), and the activity time that idle
	// spell began at (segsAt): see targetSpoke. Written by the sweeper.
	segsAt   atomic.Int64
	segsBase atomic.Uint32
}

// idleTimeout is the TCP idle timeout of a listener's flows: its own (a
// listener attribute in ELBv2), else its target group's, else an NLB's.
func idleTimeout(l Listener, tg TargetGroup) time.Duration {
	switch {
	case l.IdleTimeout > 0:
		return time.Duration(l.IdleTimeout)
	case tg.IdleTimeout > 0:
		return time.Duration(tg.IdleTimeout)
	}
	return DefaultIdleTimeout
}

// settings is a target group as one node sees it. With several workers
// each holds its share of the connection limit (rounded up).
func groupSettings(tg TargetGroup, az string, lb LoadBalancer, workers int) nat.Settings {
	hc := nat.DefaultHealthCheck
	if tg.HealthCheck.Disabled {
		hc.Enabled = false
	}
	if tg.HealthCheck.Interval > 0 {
		hc.Interval = time.Duration(tg.HealthCheck.Interval)
	}
	if tg.HealthCheck.Timeout > 0 {
		hc.Timeout = time.Duration(tg.HealthCheck.Timeout)
	}
	if tg.HealthCheck.HealthyThreshold > 0 {
		hc.HealthyThreshold = tg.HealthCheck.HealthyThreshold
	}
	if tg.HealthCheck.UnhealthyThreshold > 0 {
		hc.UnhealthyThreshold = tg.HealthCheck.UnhealthyThreshold
	}
	delay := DefaultDeregistrationDelay
	switch {
	case tg.DeregistrationDelay == snapshot.NoDelay:
		delay = 0
	case tg.DeregistrationDelay > 0:
		delay = time.Duration(tg.DeregistrationDelay)
	}
	limit := tg.ConnLimit
	if limit <= 0 {
		limit = nat.DefaultConnLimit
	}
	if workers > 1 {
		limit = (limit + workers - 1) / workers
	}
	crossZone := lb.CrossZone
	if !lb.CrossRegion && tg.CrossZone != "" {
		crossZone = tg.CrossZone == "true" // the target group's own setting
	}
	return nat.Settings{
		Zone: az, CrossZone: crossZone, HealthCheck: hc,
		DeregistrationDelay: delay, ConnectionTermination: tg.ConnectionTermination,
		KeepUnhealthy: tg.KeepUnhealthy, UnhealthyDraining: time.Duration(tg.UnhealthyDraining),
		MinHealthyCount: tg.MinHealthyCount, MinHealthyPercent: tg.MinHealthyPercent,
		ConnLimit: limit,
	}
}

// group returns this node's view of a target group behind a load balancer,
// made on first use and updated by every snapshot. Called under applyMu.
func (f *Forwarder) group(lb LoadBalancer, tg TargetGroup) *nat.Group {
	name := lb.Name + "/" + tg.Name
	s := groupSettings(tg, f.az, lb, f.workers)
	g := f.groups[name]
	if g == nil {
		g = nat.NewGroup(f.ctx, name, s, f.healthCheck(lb, tg), nat.Events{
			// A target that fails its checks loses its flows (a RST each
			// way), unless its AZ is down by a fault: there, as in an
			// outage, its flows' packets just vanish.
			Unhealthy: func(t *nat.Target) {
				if !f.targetDown(t.Addr) {
					f.resetTarget(t)
				}
			},
			Changed: func(t *nat.Target, from, to nat.Health) {
				f.log.Info("target health changed", "target_group", name, "target", t.Addr.String(), "from", from.String(), "to", to.String())
			},
			Drained: func(t *nat.Target, terminate bool) {
				if terminate {
					f.resetTarget(t)
				}
			},
		})
		f.groups[name] = g
	}
	regs := make([]nat.Registration, len(tg.Targets))
	for i, t := range tg.Targets {
		regs[i] = nat.Registration{Addr: netip.AddrPortFrom(t.IP, t.Port), AZ: t.AZ, DeregisteredAt: t.DeregisteredAt}
	}
	g.Update(s, regs)
	return g
}

// resetTarget resets every flow to a target, both ways.
func (f *Forwarder) resetTarget(t *nat.Target) {
	f.flows.Range(func(fl *flowtable.Flow) bool {
		if c, ok := fl.Value.(*conn); ok && c.target == t {
			f.stats.targetResets.Add(1)
			c.abort()
		}
		return true
	})
}

// abort resets both sides of a flow now.
func (c *conn) abort() {
	c.reset.Store(true)
	if !c.started.Load() {
		return
	}
	c.ep.Abort()
	c.resetProvider()
	c.rt.svc.elbResets.Add(1) // the RST to the target
	c.stopParked()
}

// resetProvider closes the target's socket with a RST.
func (c *conn) resetProvider() {
	c.providerRaw.Control(func(fd uintptr) { lingerZero(int(fd)) })
	c.closeProvider()
}

// closeProvider closes the target's socket, which takes it out of the
// poller's set and ends a wait for room on it.
func (c *conn) closeProvider() {
	c.f.poller.forget(c)
	c.provider.Close()
}

// lingerZero makes a socket's close send a RST and drop what is unsent.
func lingerZero(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// forget drops an idle flow the way an NLB does: silently. The provider
// socket is closed in TCP repair mode, which sends nothing, so the target's
// next segment finds no socket and gets a RST from its kernel; the
// consumer's next segment wakes the relay, which answers it with a RST.
// The flow's port and its place among active connections are free now.
func (c *conn) forget() {
	c.expired.Store(true)
	if !c.started.Load() {
		return
	}
	c.providerRaw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR, 1) != nil {
			lingerZero(int(fd))
		}
	})
	c.closeProvider()
	c.release()
	c.dirDone(&c.p2c, dirParked)
}

// Keepalives from the target keep a flow alive, as on an NLB, which sees
// both sides' segments. The consumer's come through the ingress filter,
// which marks the flow active; the target's are answered by the node's
// kernel socket and never reach the relay. The socket counts them, though
// (tcpi_segs_in): once a flow has been idle for half its timeout the
// sweeper notes the count, and a flow whose count grew by the time it would
// expire had segments from the target and is kept. Any keepalive interval
// shorter than the idle timeout is seen this way, at the cost of two
// getsockopt calls per idle flow per timeout, none on the data path.

// noteHalfIdle takes the baseline of a flow idle for half its timeout, once
// per idle spell.
func (c *conn) noteHalfIdle(fl *flowtable.Flow, now time.Time) {
	last := fl.LastActive().UnixNano()
	if now.UnixNano()-last <= int64(fl.IdleTimeout())/2 || c.segsAt.Load() == last || !c.started.Load() {
		return
	}
	if n, ok := c.providerSegsIn(); ok {
		c.segsBase.Store(n)
		c.segsAt.Store(last)
	}
}

// targetSpoke reports whether the target's socket received segments since
// the flow's baseline of this idle spell.
func (c *conn) targetSpoke(fl *flowtable.Flow) bool {
	if !c.started.Load() || c.segsAt.Load() != fl.LastActive().UnixNano() {
		return false
	}
	n, ok := c.providerSegsIn()
	return ok && n != c.segsBase.Load()
}

// providerSegsIn reads how many segments the node's socket to the target
// has received.
func (c *conn) providerSegsIn() (uint32, bool) {
	var n uint32
	ok := false
	c.providerRaw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n, ok = info.Segs_in, true
		}
	})
	return n, ok
}

// sweep expires idle flows until ctx ends. It looks often enough for the
// shortest idle timeout in force to be honoured within a tenth of itself.
func (f *Forwarder) sweep(ctx context.Context) {
	for {
		every := time.Second
		if c := f.current.Load(); c != nil {
			for _, e := range c.cfg.ENIs {
				for _, l := range e.Listeners {
					every = min(every, max(idleTimeout(l, c.cfg.TargetGroups[l.TargetGroup])/10, 20*time.Millisecond))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		now, mono := time.Now(), monoNow()
		f.flows.Range(func(fl *flowtable.Flow) bool {
			c := fl.Value.(*conn)
			c.giveUpHandshake(mono)
			c.noteHalfIdle(fl, now)
			return true
		})
		f.flows.ExpireUnless(now, func(fl *flowtable.Flow) bool {
			return fl.Value.(*conn).targetSpoke(fl)
		}, func(fl *flowtable.Flow) {
			f.stats.idleExpired.Add(1)
			fl.Value.(*conn).forget()
		})
	}
}

// Flows lists the open flows, oldest first.
func (f *Forwarder) Flows() []FlowInfo {
	now := time.Now()
	var out []FlowInfo
	f.flows.Range(func(fl *flowtable.Flow) bool {
		c := fl.Value.(*conn)
		// The node's address and port: the socket's, once the target
		// accepted and the relay started (which publishes the socket);
		// until then, or once it is closed, the flow is listed without.
		node := ""
		if c.started.Load() {
			if a, ok := localAddr(c.providerRaw); ok {
				node = a.String()
			}
		}
		out = append(out, FlowInfo{
			Proto: "tcp", Src: netip.AddrPortFrom(fl.Key.Src, fl.Key.SrcPort).String(),
			Dst: netip.AddrPortFrom(fl.Key.Dst, fl.Key.DstPort).String(),
			ENI: c.eni.id, EndpointID: c.eni.endpointID, Node: node,
			Target: c.target.Addr.String(), TargetState: c.target.Health().String(),
			Started: fl.Created().UTC(), IdleSeconds: now.Sub(fl.LastActive()).Seconds(),
			IdleTimeout: fl.IdleTimeout().Seconds(),
			BytesIn:     fl.BytesIn.Load(), BytesOut: fl.BytesOut.Load(), SegmentsIn: fl.SegmentsIn.Load(),
		})
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Targets lists every target group's targets as this node sees them.
func (f *Forwarder) Targets() []TargetInfo {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	var out []TargetInfo
	for name, g := range f.groups {
		for _, t := range g.Targets() {
			out = append(out, TargetInfo{Group: name, Target: t.Addr.String(), AZ: t.AZ, State: t.Health().String(), Conns: t.Conns()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group+out[i].Target < out[j].Group+out[j].Target })
	return out
}
