package dataplane

import (
	"testing"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// A target group's cross-zone setting overrides its load balancer's,
// except on a node reached across Regions, whose consumer AZs are not the
// provider's: there every AZ's targets stay in scope.
func TestATargetGroupsCrossZoneOverridesTheLoadBalancersButNotAcrossRegions(t *testing.T) {
	for _, tc := range []struct {
		lb   LoadBalancer
		tg   string
		want bool
	}{
		{LoadBalancer{}, "", false},
		{LoadBalancer{CrossZone: true}, "", true},
		{LoadBalancer{}, "true", true},
		{LoadBalancer{CrossZone: true}, "false", false},
		{LoadBalancer{CrossZone: true, CrossRegion: true}, "false", true},
	} {
		if got := groupSettings(TargetGroup{CrossZone: tc.tg}, "use1-az1", tc.lb, 1).CrossZone; got != tc.want {
			t.Errorf("load balancer %+v, group %q: cross-zone %v, want %v", tc.lb, tc.tg, got, tc.want)
		}
	}
}

// A deregistration delay set to none drains nothing; one not set is the
// NLB's 300 s.
func TestADeregistrationDelayOfNoneIsNoneAndUnsetIsTheDefault(t *testing.T) {
	for _, tc := range []struct {
		set  snapshot.Duration
		want time.Duration
	}{
		{0, DefaultDeregistrationDelay},
		{snapshot.NoDelay, 0},
		{snapshot.Duration(20 * time.Second), 20 * time.Second},
	} {
		if got := groupSettings(TargetGroup{DeregistrationDelay: tc.set}, "use1-az1", LoadBalancer{}, 1).DeregistrationDelay; got != tc.want {
			t.Errorf("deregistration delay %v: the node drains for %v, want %v", time.Duration(tc.set), got, tc.want)
		}
	}
}
