package nat

import (
	"fmt"
	"net/netip"
	"testing"
)

func flows(n int) []Flow {
	out := make([]Flow, n)
	for i := range out {
		out[i] = Flow{
			Src:     netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)}),
			Dst:     netip.MustParseAddr("198.18.1.10"),
			SrcPort: uint16(1024 + i),
			DstPort: 80,
			Proto:   6,
		}
	}
	return out
}

func targets(n int, az string) []Candidate {
	out := make([]Candidate, n)
	for i := range out {
		out[i] = Candidate{Addr: netip.MustParseAddrPort(fmt.Sprintf("198.19.1.%d:8080", 10+i)), AZ: az}
	}
	return out
}

func TestPickIsStableAndStaysInItsZone(t *testing.T) {
	cands := append(targets(3, "az1"), Candidate{Addr: netip.MustParseAddrPort("198.19.2.10:8080"), AZ: "az2"})
	for _, f := range flows(1000) {
		a, ok := Pick(cands, "az1", false, f)
		if !ok || a.AZ != "az1" {
			t.Fatalf("picked %+v (ok=%v) for a node in az1 without cross-zone", a, ok)
		}
		if b, _ := Pick(cands, "az1", false, f); b != a {
			t.Fatalf("same flow, different targets: %v then %v", a, b)
		}
	}
	if _, ok := Pick(cands, "az3", false, flows(1)[0]); ok {
		t.Error("picked a target in another zone without cross-zone")
	}
	if c, ok := Pick(cands, "az3", true, flows(1)[0]); !ok || c.AZ == "az3" {
		t.Errorf("cross-zone pick = %+v, %v", c, ok)
	}
}

func TestRemovingATargetMovesOnlyItsFlows(t *testing.T) {
	cands := targets(10, "az1")
	fs := flows(100000)
	before := make([]Candidate, len(fs))
	for i, f := range fs {
		before[i], _ = Pick(cands, "az1", false, f)
	}
	removed := cands[3]
	rest := append(append([]Candidate{}, cands[:3]...), cands[4:]...)
	moved := 0
	for i, f := range fs {
		after, _ := Pick(rest, "az1", false, f)
		if after != before[i] {
			if before[i] != removed {
				t.Fatalf("flow %d moved from %v, which was not removed", i, before[i])
			}
			moved++
		}
	}
	if frac := float64(moved) / float64(len(fs)); frac > 0.12 {
		t.Errorf("%.1f%% of flows moved, want about 10%%", 100*frac)
	}
}

func BenchmarkPick(b *testing.B) {
	cands := targets(10, "az1")
	f := flows(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		Pick(cands, "az1", false, f)
	}
}
