package nat

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"pvlink.dev/pvlink/flowtable"
)

// Health is a target's state as an NLB reports it.
type Health int32

const (
	Initial   Health = iota // registered, not yet through its first checks
	Healthy                 // passed HealthyThreshold checks in a row
	Unhealthy               // failed UnhealthyThreshold checks in a row
	Draining                // deregistered: no new flows until the delay ends
	Unused                  // deregistered and drained
	// UnhealthyDraining: failed its checks in a group that keeps the
	// connections of unhealthy targets for a while
	// (Settings.UnhealthyDraining): no new flows, its flows kept until
	// the interval ends (then Unhealthy, and they are reset) or it passes
	// its checks again.
	UnhealthyDraining
)

func (h Health) String() string {
	return [...]string{"initial", "healthy", "unhealthy", "draining", "unused", "unhealthy.draining"}[h]
}

// failed reports whether a health check put the target out of service.
func (h Health) failed() bool { return h == Unhealthy || h == UnhealthyDraining }

// HealthCheck holds the NLB health check settings of a target group.
type HealthCheck struct {
	Enabled            bool
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
}

// DefaultHealthCheck is an NLB's default TCP health check.
var DefaultHealthCheck = HealthCheck{Enabled: true, Interval: 30 * time.Second, Timeout: 10 * time.Second, HealthyThreshold: 5, UnhealthyThreshold: 2}

// DefaultConnLimit is how many concurrent connections an NLB holds through
// PrivateLink to one target IP:port from one node (its source ports).
const DefaultConnLimit = 55000

// Target is one registered target of a group on one node.
type Target struct {
	Addr netip.AddrPort
	AZ   string

	health atomic.Int32
	conns  atomic.Int64 // connections open from this node (port accounting)

	// Owned by the group's mutex.
	okRun, failRun int
	drainTimer     *time.Timer
	unhealthyTimer *time.Timer // the end of UnhealthyDraining
	deregistered   time.Time
	stopCheck      context.CancelFunc
}

// Health is the target's state now.
func (t *Target) Health() Health { return Health(t.health.Load()) }

// Conns is the number of connections open to the target from this node.
func (t *Target) Conns() int64 { return t.conns.Load() }

// Registration is a target as a config snapshot lists it.
type Registration struct {
	Addr netip.AddrPort
	AZ   string
	// DeregisteredAt, when set, starts draining: no new flows until
	// DeregisteredAt + Settings.DeregistrationDelay, then unused.
	DeregisteredAt time.Time
}

// Settings are a target group's attributes as one node applies them.
type Settings struct {
	Zone                  string // the node's AZ
	CrossZone             bool
	HealthCheck           HealthCheck
	DeregistrationDelay   time.Duration
	ConnectionTermination bool // cut a target's flows when it has drained
	ConnLimit             int  // per target IP:port; 0 = DefaultConnLimit
	// KeepUnhealthy keeps the flows of a target that fails its checks
	// (target_health_state.unhealthy.connection_termination.enabled
	// false): for UnhealthyDraining if it is set, then they are reset;
	// for as long as they last if it is not.
	KeepUnhealthy     bool
	UnhealthyDraining time.Duration
	// Routing failover (target_group_health.unhealthy_state_routing):
	// when fewer of the node's targets are healthy than MinHealthyCount
	// (at least 1), or than MinHealthyPercent of them (0: off), new flows
	// go to all of them, unhealthy ones included.
	MinHealthyCount   int
	MinHealthyPercent int
}

// Events are what a group tells its owner; each may be nil. They are
// called from the group's own goroutines, never under its lock.
type Events struct {
	// Unhealthy: the target failed its checks and its flows must be
	// reset: at once, or at the end of its unhealthy draining; never with
	// KeepUnhealthy and no draining interval.
	Unhealthy func(*Target)
	// Drained: deregistration ended; with connection termination on, its
	// flows must be cut.
	Drained func(t *Target, terminate bool)
	// Changed: a health check moved the target from one state to another.
	Changed func(t *Target, from, to Health)
}

// CheckFunc makes one health check of a target and returns nil if it
// passed. The forwarder gives one that connects from the node's address.
type CheckFunc func(ctx context.Context, addr netip.AddrPort) error

// selection is the immutable result of a change: what Pick uses.
type selection struct {
	maglev  *Maglev
	targets []*Target
}

// Group is a target group as one load-balancer node sees it.
type Group struct {
	Name string

	current    atomic.Pointer[selection]
	portErrors atomic.Uint64
	connLimit  atomic.Int64

	mu       sync.Mutex // guards everything below
	settings Settings
	targets  map[netip.AddrPort]*Target
	check    CheckFunc
	events   Events
	ctx      context.Context
}

// NewGroup makes a group; Update gives it targets. With check nil, targets
// are never health-checked and stay in their initial state.
func NewGroup(ctx context.Context, name string, s Settings, check CheckFunc, ev Events) *Group {
	g := &Group{Name: name, settings: s, targets: map[netip.AddrPort]*Target{}, check: check, events: ev, ctx: ctx}
	g.current.Store(&selection{maglev: NewMaglev(nil)})
	return g
}

// Update applies new settings and registrations. Targets already known keep
// their health and connections; new ones start initial; targets no longer
// listed are forgotten at once.
func (g *Group) Update(s Settings, regs []Registration) {
	g.mu.Lock()
	checkChanged := g.settings.HealthCheck != s.HealthCheck
	g.settings = s
	limit := int64(s.ConnLimit)
	if limit <= 0 {
		limit = DefaultConnLimit
	}
	g.connLimit.Store(limit)
	seen := map[netip.AddrPort]bool{}
	for _, r := range regs {
		seen[r.Addr] = true
		t := g.targets[r.Addr]
		if t == nil {
			t = &Target{Addr: r.Addr, AZ: r.AZ}
			g.targets[r.Addr] = t
			if g.inScope(t) {
				g.startCheckLocked(t)
			}
		}
		switch {
		case !r.DeregisteredAt.IsZero() && t.deregistered.IsZero():
			g.deregisterLocked(t, r.DeregisteredAt)
		case r.DeregisteredAt.IsZero() && !t.deregistered.IsZero():
			// Registered again while draining (or after): it starts
			// over, as a new target does, from its first health check.
			g.stopLocked(t)
			t.deregistered, t.okRun, t.failRun = time.Time{}, 0, 0
			t.health.Store(int32(Initial))
			if g.inScope(t) {
				g.startCheckLocked(t)
			}
		case checkChanged && t.deregistered.IsZero() && g.inScope(t):
			// New health-check settings take effect at once; the
			// target keeps its state.
			g.stopLocked(t)
			g.startCheckLocked(t)
		}
	}
	for addr, t := range g.targets {
		if !seen[addr] {
			g.stopLocked(t)
			delete(g.targets, addr)
		}
	}
	g.rebuildLocked()
	g.mu.Unlock()
}

func (g *Group) inScope(t *Target) bool { return g.settings.CrossZone || t.AZ == g.settings.Zone }

// Pick chooses the target of a new flow. It takes no lock.
func (g *Group) Pick(k flowtable.Key) (*Target, bool) {
	sel := g.current.Load()
	i := sel.maglev.Lookup(FlowHash(k))
	if i < 0 {
		return nil, false
	}
	return sel.targets[i], true
}

// Acquire reserves a provider-side connection (a source port of the node)
// to t; false means the limit is reached, counted as a port allocation
// error. Release gives it back.
func (g *Group) Acquire(t *Target) bool {
	if t.conns.Add(1) > g.connLimit.Load() {
		t.conns.Add(-1)
		g.portErrors.Add(1)
		return false
	}
	return true
}

// Release ends a connection Acquire allowed.
func (g *Group) Release(t *Target) { t.conns.Add(-1) }

// Eligible lists the targets new flows go to now (a target's state changes
// a moment before the table that follows from it is swapped in).
func (g *Group) Eligible() []netip.AddrPort {
	sel := g.current.Load()
	out := make([]netip.AddrPort, len(sel.targets))
	for i, t := range sel.targets {
		out[i] = t.Addr
	}
	return out
}

// PortAllocationErrors counts connections refused at the limit.
func (g *Group) PortAllocationErrors() uint64 { return g.portErrors.Load() }

// Targets returns the group's targets, sorted by address.
func (g *Group) Targets() []*Target {
	g.mu.Lock()
	out := make([]*Target, 0, len(g.targets))
	for _, t := range g.targets {
		out = append(out, t)
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Compare(out[j].Addr) < 0 })
	return out
}

// Close stops the group's health checks and timers.
func (g *Group) Close() {
	g.mu.Lock()
	for _, t := range g.targets {
		g.stopLocked(t)
	}
	g.mu.Unlock()
}

func (g *Group) stopLocked(t *Target) {
	if t.stopCheck != nil {
		t.stopCheck()
		t.stopCheck = nil
	}
	if t.drainTimer != nil {
		t.drainTimer.Stop()
	}
	if t.unhealthyTimer != nil {
		t.unhealthyTimer.Stop()
	}
}

// rebuildLocked computes the eligible targets and swaps in a new table:
// the in-scope targets not deregistered that are healthy, or, if none is
// (or fewer than the routing failover threshold), all of them (an NLB
// fails open).
func (g *Group) rebuildLocked() {
	var scope, healthy []*Target
	for _, t := range g.targets {
		h := t.Health()
		if !g.inScope(t) || h == Draining || h == Unused {
			continue
		}
		scope = append(scope, t)
		if h == Healthy {
			healthy = append(healthy, t)
		}
	}
	eligible := healthy
	if len(healthy) < max(1, g.settings.MinHealthyCount) || len(healthy)*100 < g.settings.MinHealthyPercent*len(scope) {
		eligible = scope // fail open: routing failover
	}
	// A stable order, so equal sets build equal tables on every node.
	sort.Slice(eligible, func(i, j int) bool { return eligible[i].Addr.Compare(eligible[j].Addr) < 0 })
	keys := make([]netip.AddrPort, len(eligible))
	for i, t := range eligible {
		keys[i] = t.Addr
	}
	g.current.Store(&selection{maglev: NewMaglev(keys), targets: eligible})
}

func (g *Group) deregisterLocked(t *Target, at time.Time) {
	t.deregistered = at
	t.health.Store(int32(Draining))
	if t.stopCheck != nil {
		t.stopCheck()
		t.stopCheck = nil
	}
	delay := time.Until(at.Add(g.settings.DeregistrationDelay))
	terminate := g.settings.ConnectionTermination
	t.drainTimer = time.AfterFunc(max(delay, 0), func() {
		g.mu.Lock()
		t.health.Store(int32(Unused))
		g.rebuildLocked()
		g.mu.Unlock()
		if g.events.Drained != nil {
			g.events.Drained(t, terminate)
		}
	})
}

func (g *Group) startCheckLocked(t *Target) {
	hc := g.settings.HealthCheck
	if g.check == nil || !hc.Enabled {
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	t.stopCheck = cancel
	go g.checkLoop(ctx, t, hc)
}

// checkLoop checks a target now and then every interval, moving it between
// healthy and unhealthy by the thresholds.
func (g *Group) checkLoop(ctx context.Context, t *Target, hc HealthCheck) {
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
		err := g.check(cctx, t.Addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		g.record(t, err == nil, hc)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (g *Group) record(t *Target, ok bool, hc HealthCheck) {
	g.mu.Lock()
	h := t.Health()
	if h == Draining || h == Unused {
		g.mu.Unlock()
		return
	}
	next := h
	if ok {
		t.okRun, t.failRun = t.okRun+1, 0
		if h != Healthy && t.okRun >= hc.HealthyThreshold {
			next = Healthy
		}
	} else {
		t.okRun, t.failRun = 0, t.failRun+1
		if !h.failed() && t.failRun >= hc.UnhealthyThreshold {
			next = Unhealthy
			if g.settings.KeepUnhealthy && g.settings.UnhealthyDraining > 0 {
				next = UnhealthyDraining
			}
		}
	}
	if next != h {
		t.health.Store(int32(next))
		g.rebuildLocked()
	}
	if h == UnhealthyDraining && next == Healthy && t.unhealthyTimer != nil {
		t.unhealthyTimer.Stop() // back in time: its flows stay
	}
	if next == UnhealthyDraining {
		t.unhealthyTimer = time.AfterFunc(g.settings.UnhealthyDraining, func() { g.endUnhealthyDraining(t) })
	}
	reset := next == Unhealthy && !h.failed() && !g.settings.KeepUnhealthy
	g.mu.Unlock()
	if next != h && g.events.Changed != nil {
		g.events.Changed(t, h, next)
	}
	if reset && g.events.Unhealthy != nil {
		g.events.Unhealthy(t)
	}
}

// endUnhealthyDraining makes a target still draining as unhealthy
// unhealthy at the end of its interval: its flows are reset then.
func (g *Group) endUnhealthyDraining(t *Target) {
	g.mu.Lock()
	if t.Health() != UnhealthyDraining {
		g.mu.Unlock()
		return
	}
	t.health.Store(int32(Unhealthy))
	g.rebuildLocked()
	g.mu.Unlock()
	if g.events.Changed != nil {
		g.events.Changed(t, UnhealthyDraining, Unhealthy)
	}
	if g.events.Unhealthy != nil {
		g.events.Unhealthy(t)
	}
}
