package nat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pvlink.dev/pvlink/flowtable"
)

func flows(n int) []flowtable.Key {
	out := make([]flowtable.Key, n)
	for i := range out {
		out[i] = flowtable.Key{
			Src:     netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)}),
			Dst:     netip.MustParseAddr("198.18.1.10"),
			SrcPort: uint16(1024 + i), DstPort: 80, Proto: 6,
		}
	}
	return out
}

func addrs(n int) []netip.AddrPort {
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = netip.MustParseAddrPort(fmt.Sprintf("198.19.1.%d:8080", 10+i))
	}
	return out
}

func TestMaglevSpreadsEqualTargetsWithin1Percent(t *testing.T) {
	m := NewMaglev(addrs(10))
	shares := m.Shares()
	lo, hi := shares[0], shares[0]
	for _, s := range shares {
		lo, hi = min(lo, s), max(hi, s)
	}
	if float64(hi-lo)/float64(MaglevSize/10) > 0.01 {
		t.Errorf("table shares %v: spread %d entries, more than 1%%", shares, hi-lo)
	}
	// And the flows that land on them, 1M of them.
	counts := make([]int, 10)
	for _, f := range flows(1000000) {
		counts[m.Lookup(FlowHash(f))]++
	}
	for i, c := range counts {
		if d := float64(c-100000) / 100000; d > 0.02 || d < -0.02 {
			t.Errorf("target %d got %d of 1M flows (%.2f%% off)", i, c, 100*d)
		}
	}
}

func TestMaglevRemovingOneOfTenRemapsAboutATenth(t *testing.T) {
	keys := addrs(10)
	before := NewMaglev(keys)
	rest := append(append([]netip.AddrPort{}, keys[:3]...), keys[4:]...)
	after := NewMaglev(rest)
	fs := flows(100000)
	moved, movedOther := 0, 0
	for _, f := range fs {
		h := FlowHash(f)
		was, now := keys[before.Lookup(h)], rest[after.Lookup(h)]
		if was != now {
			moved++
			if was != keys[3] {
				movedOther++
			}
		}
	}
	frac := float64(moved) / float64(len(fs))
	t.Logf("removing 1 of 10 targets moved %.2f%% of 100k flows (%.2f%% were on other targets)", 100*frac, 100*float64(movedOther)/float64(len(fs)))
	if frac > 0.11 {
		t.Errorf("%.2f%% of flows moved; want no more than about 1/10", 100*frac)
	}
	if frac < 0.09 {
		t.Errorf("%.2f%% moved: the removed target's flows must all move", 100*frac)
	}
}

// fakeChecks is a CheckFunc whose answers the test sets per target.
type fakeChecks struct {
	mu    sync.Mutex
	down  map[netip.AddrPort]bool
	calls atomic.Int64
}

func (f *fakeChecks) check(_ context.Context, a netip.AddrPort) error {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[a] {
		return errors.New("refused")
	}
	return nil
}

func (f *fakeChecks) set(a netip.AddrPort, down bool) {
	f.mu.Lock()
	f.down[a] = down
	f.mu.Unlock()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func fastCheck() HealthCheck {
	return HealthCheck{Enabled: true, Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, HealthyThreshold: 3, UnhealthyThreshold: 2}
}

func TestHealthChecksMoveFlowsOffAnUnhealthyTarget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := &fakeChecks{down: map[netip.AddrPort]bool{}}
	a, b := netip.MustParseAddrPort("198.19.1.10:8080"), netip.MustParseAddrPort("198.19.1.11:8080")
	var unhealthy atomic.Pointer[Target]
	g := NewGroup(ctx, "web", Settings{Zone: "az1", HealthCheck: fastCheck()}, fc.check, Events{Unhealthy: func(t *Target) { unhealthy.Store(t) }})
	defer g.Close()
	g.Update(g.settings, []Registration{{Addr: a, AZ: "az1"}, {Addr: b, AZ: "az1"}, {Addr: netip.MustParseAddrPort("198.19.2.10:8080"), AZ: "az2"}})
	waitFor(t, "both targets healthy", func() bool {
		ts := g.Targets()
		return ts[0].Health() == Healthy && ts[1].Health() == Healthy && len(g.Eligible()) == 2
	})
	picked := map[netip.AddrPort]int{}
	for _, f := range flows(1000) {
		tg, ok := g.Pick(f)
		if !ok || tg.AZ != "az1" {
			t.Fatalf("picked %+v", tg)
		}
		picked[tg.Addr]++
	}
	if picked[a] == 0 || picked[b] == 0 {
		t.Fatalf("flows went to %v", picked)
	}
	fc.set(a, true)
	waitFor(t, "the failed target reported unhealthy", func() bool { p := unhealthy.Load(); return p != nil && p.Addr == a })
	waitFor(t, "only the healthy target eligible", func() bool { e := g.Eligible(); return len(e) == 1 && e[0] == b })
	for _, f := range flows(1000) {
		if tg, _ := g.Pick(f); tg.Addr != b {
			t.Fatalf("new flow went to %v after it turned unhealthy", tg.Addr)
		}
	}
	// All unhealthy: fail open.
	fc.set(b, true)
	waitFor(t, "both unhealthy, and both eligible again (fail open)", func() bool {
		return g.Targets()[1].Health() == Unhealthy && len(g.Eligible()) == 2
	})
	seen := map[netip.AddrPort]bool{}
	for _, f := range flows(1000) {
		tg, ok := g.Pick(f)
		if !ok {
			t.Fatal("no target when all are unhealthy: an NLB fails open")
		}
		seen[tg.Addr] = true
	}
	if !seen[a] || !seen[b] {
		t.Errorf("fail-open used %v, want both targets of the zone", seen)
	}
}

func TestDeregisteredTargetDrainsThenIsUnused(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := netip.MustParseAddrPort("198.19.1.10:8080"), netip.MustParseAddrPort("198.19.1.11:8080")
	drained := make(chan bool, 1)
	s := Settings{Zone: "az1", DeregistrationDelay: 100 * time.Millisecond, ConnectionTermination: true}
	g := NewGroup(ctx, "web", s, nil, Events{Drained: func(t *Target, terminate bool) { drained <- terminate }})
	defer g.Close()
	g.Update(s, []Registration{{Addr: a, AZ: "az1"}, {Addr: b, AZ: "az1"}})
	g.Update(s, []Registration{{Addr: a, AZ: "az1", DeregisteredAt: time.Now()}, {Addr: b, AZ: "az1"}})
	if h := g.Targets()[0].Health(); h != Draining {
		t.Fatalf("deregistered target is %v", h)
	}
	for _, f := range flows(1000) {
		if tg, _ := g.Pick(f); tg.Addr != a && tg.Addr != b || tg.Addr == a {
			t.Fatalf("a draining target got a new flow")
		}
	}
	select {
	case terminate := <-drained:
		if !terminate {
			t.Error("connection termination was on")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never drained")
	}
	if h := g.Targets()[0].Health(); h != Unused {
		t.Errorf("after the delay the target is %v", h)
	}
}

func TestConnectionLimitPerTargetIsCounted(t *testing.T) {
	a := netip.MustParseAddrPort("198.19.1.10:8080")
	s := Settings{Zone: "az1", ConnLimit: 3}
	g := NewGroup(context.Background(), "web", s, nil, Events{})
	g.Update(s, []Registration{{Addr: a, AZ: "az1"}})
	tg := g.Targets()[0]
	for i := 0; i < 3; i++ {
		if !g.Acquire(tg) {
			t.Fatalf("connection %d refused below the limit", i+1)
		}
	}
	if g.Acquire(tg) || g.PortAllocationErrors() != 1 {
		t.Fatalf("4th connection: errors=%d", g.PortAllocationErrors())
	}
	g.Release(tg)
	if !g.Acquire(tg) || tg.Conns() != 3 {
		t.Fatalf("after a release: conns=%d", tg.Conns())
	}
}

func BenchmarkPick(b *testing.B) {
	g := NewGroup(context.Background(), "web", Settings{Zone: "az1"}, nil, Events{})
	var regs []Registration
	for _, a := range addrs(10) {
		regs = append(regs, Registration{Addr: a, AZ: "az1"})
	}
	g.Update(Settings{Zone: "az1"}, regs)
	f := flows(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		g.Pick(f)
	}
}

func TestADrainingTargetRegisteredAgainStartsOverAndTakesFlows(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := netip.MustParseAddrPort("198.19.1.10:8080"), netip.MustParseAddrPort("198.19.1.11:8080")
	fc := &fakeChecks{down: map[netip.AddrPort]bool{}}
	s := Settings{Zone: "az1", HealthCheck: fastCheck(), DeregistrationDelay: time.Hour}
	g := NewGroup(ctx, "web", s, fc.check, Events{})
	defer g.Close()
	g.Update(s, []Registration{{Addr: a, AZ: "az1", DeregisteredAt: time.Now()}, {Addr: b, AZ: "az1"}})
	g.Update(s, []Registration{{Addr: a, AZ: "az1"}, {Addr: b, AZ: "az1"}})
	waitFor(t, "the target registered again to be healthy", func() bool {
		for _, tg := range g.Targets() {
			if tg.Addr == a && tg.Health() == Healthy {
				return true
			}
		}
		return false
	})
	got := 0
	for _, f := range flows(1000) {
		if tg, _ := g.Pick(f); tg.Addr == a {
			got++
		}
	}
	if got < 300 {
		t.Fatalf("the target registered again got %d of 1000 flows", got)
	}
}

func TestNewHealthCheckSettingsTakeEffectAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := netip.MustParseAddrPort("198.19.1.10:8080")
	fc := &fakeChecks{down: map[netip.AddrPort]bool{}}
	slow := Settings{Zone: "az1", HealthCheck: HealthCheck{Enabled: true, Interval: time.Hour, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2}}
	g := NewGroup(ctx, "web", slow, fc.check, Events{})
	defer g.Close()
	g.Update(slow, []Registration{{Addr: a, AZ: "az1"}})
	waitFor(t, "the first check", func() bool { return fc.calls.Load() >= 1 })
	fast := slow
	fast.HealthCheck = fastCheck()
	g.Update(fast, []Registration{{Addr: a, AZ: "az1"}})
	waitFor(t, "checks at the new interval", func() bool { return fc.calls.Load() >= 10 })
}

// With unhealthy connection termination off, a target that fails its
// checks keeps its flows: for the draining interval (unhealthy.draining,
// then unhealthy and reset) or, without one, for as long as they last; one
// that passes its checks again within the interval is healthy, its flows
// never reset.
func TestAnUnhealthyTargetKeepsItsFlowsWhileItDrains(t *testing.T) {
	a, b := netip.MustParseAddrPort("198.19.1.10:8080"), netip.MustParseAddrPort("198.19.1.11:8080")
	run := func(s Settings) (*Group, *fakeChecks, chan *Target, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		fc := &fakeChecks{down: map[netip.AddrPort]bool{}}
		resets := make(chan *Target, 4)
		s.Zone, s.HealthCheck = "az1", fastCheck()
		g := NewGroup(ctx, "web", s, fc.check, Events{Unhealthy: func(t *Target) { resets <- t }})
		g.Update(s, []Registration{{Addr: a, AZ: "az1"}, {Addr: b, AZ: "az1"}})
		waitFor(t, "both healthy", func() bool { return len(g.Eligible()) == 2 && g.Targets()[0].Health() == Healthy })
		return g, fc, resets, func() { g.Close(); cancel() }
	}
	noReset := func(resets chan *Target, d time.Duration) bool {
		select {
		case <-resets:
			return false
		case <-time.After(d):
			return true
		}
	}

	// Draining for 300 ms, then unhealthy and reset.
	g, fc, resets, done := run(Settings{KeepUnhealthy: true, UnhealthyDraining: 300 * time.Millisecond})
	fc.set(a, true)
	waitFor(t, "a unhealthy.draining", func() bool { return g.Targets()[0].Health() == UnhealthyDraining })
	if e := g.Eligible(); len(e) != 1 || e[0] != b {
		t.Fatalf("eligible while a drains: %v", e)
	}
	if !noReset(resets, 150*time.Millisecond) {
		t.Fatal("a draining target's flows were reset before its interval ended")
	}
	select {
	case r := <-resets:
		if r.Addr != a || r.Health() != Unhealthy {
			t.Fatalf("reset %v in state %v", r.Addr, r.Health())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the flows were never reset after the interval")
	}
	done()

	// Back within the interval: healthy, never reset.
	g, fc, resets, done = run(Settings{KeepUnhealthy: true, UnhealthyDraining: time.Second})
	fc.set(a, true)
	waitFor(t, "a unhealthy.draining", func() bool { return g.Targets()[0].Health() == UnhealthyDraining })
	fc.set(a, false)
	waitFor(t, "a healthy again", func() bool { return g.Targets()[0].Health() == Healthy && len(g.Eligible()) == 2 })
	if !noReset(resets, 1500*time.Millisecond) {
		t.Fatal("a target that recovered while draining had its flows reset")
	}
	done()

	// No interval: unhealthy at once, its flows kept.
	g, fc, resets, done = run(Settings{KeepUnhealthy: true})
	fc.set(a, true)
	waitFor(t, "a unhealthy", func() bool { return g.Targets()[0].Health() == Unhealthy })
	if !noReset(resets, 300*time.Millisecond) {
		t.Fatal("flows of an unhealthy target reset with termination off")
	}
	done()
}

// Routing failover: below the threshold of healthy targets, new flows go
// to every target of the node, unhealthy ones included; at or above it,
// to the healthy ones only.
func TestRoutingFailoverSendsFlowsToAllTargetsBelowTheThreshold(t *testing.T) {
	addrs := []netip.AddrPort{netip.MustParseAddrPort("198.19.1.10:8080"), netip.MustParseAddrPort("198.19.1.11:8080"), netip.MustParseAddrPort("198.19.1.12:8080"), netip.MustParseAddrPort("198.19.1.13:8080")}
	for _, tc := range []struct {
		name      string
		s         Settings
		down      int // targets failing their checks
		wantCount int // eligible targets
	}{
		{"default, one of four down", Settings{}, 1, 3},
		{"count 3, one down", Settings{MinHealthyCount: 3}, 1, 3},
		{"count 3, two down", Settings{MinHealthyCount: 3}, 2, 4},
		{"75 percent, one down", Settings{MinHealthyPercent: 75}, 1, 3},
		{"75 percent, two down", Settings{MinHealthyPercent: 75}, 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fc := &fakeChecks{down: map[netip.AddrPort]bool{}}
			for _, a := range addrs[:tc.down] {
				fc.set(a, true)
			}
			tc.s.Zone, tc.s.HealthCheck = "az1", fastCheck()
			g := NewGroup(ctx, "web", tc.s, fc.check, Events{})
			defer g.Close()
			var regs []Registration
			for _, a := range addrs {
				regs = append(regs, Registration{Addr: a, AZ: "az1"})
			}
			g.Update(tc.s, regs)
			waitFor(t, "every target checked", func() bool {
				n := 0
				for _, x := range g.Targets() {
					if x.Health() == Healthy || x.Health() == Unhealthy {
						n++
					}
				}
				return n == len(addrs)
			})
			waitFor(t, fmt.Sprintf("%d eligible", tc.wantCount), func() bool { return len(g.Eligible()) == tc.wantCount })
		})
	}
}
