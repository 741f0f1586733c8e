package ctl

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// withSpareLB is the demo with a second load balancer, which no service
// uses, on port 81 of the same target group.
func withSpareLB(t *testing.T) string {
	demo := string(demoTopology(t))
	const at = "\nendpoint_services:"
	if !strings.Contains(demo, at) {
		t.Fatal("the demo has no endpoint_services section")
	}
	return strings.Replace(demo, at, `
  - name: spare-nlb
    vpc: provider
    subnet_mappings:
      - {subnet: provider-az1, private_ipv4_address: 198.19.1.6}
      - {subnet: provider-az2, private_ipv4_address: 198.19.2.6}
    listeners:
      - {protocol: TCP, port: 81, target_group: web}
`+at, 1)
}

func lbNamed(t *testing.T, s *State, name string) *LBState {
	t.Helper()
	for i := range s.LoadBalancers {
		if s.LoadBalancers[i].Name == name {
			return &s.LoadBalancers[i]
		}
	}
	t.Fatalf("no load balancer %s", name)
	return nil
}

// TestCrossZoneSetThroughTheAPIReachesTheForwarders: the attribute is the
// model's, and each AZ's forwarder snapshot follows it.
func TestCrossZoneSetThroughTheAPIReachesTheForwarders(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptEndpoint("web"); err != nil {
		t.Fatal(err)
	}
	lb := lbNamed(t, s, "web-nlb")
	for _, v := range []string{"true", "false", "true"} {
		if err := s.SetLoadBalancerAttributes(lb.OwnerID, lb.ID, map[string]string{"load_balancing.cross_zone.enabled": v}); err != nil {
			t.Fatal(err)
		}
		if got := lb.Attributes()["load_balancing.cross_zone.enabled"]; got != v {
			t.Fatalf("set to %s, the attribute says %s", v, got)
		}
		for _, az := range []string{"use1-az1", "use1-az2"} {
			if got := s.ForwarderConfig(az).LoadBalancers["web-nlb"].CrossZone; got != (v == "true") {
				t.Fatalf("cross-zone set to %s: %s's forwarder has %v", v, az, got)
			}
		}
	}
}

// TestAttributesPvlinkWouldNotHonourAreRefusedWithTheReason: an unknown
// key, a value that is not a boolean, and settings pvlink has nothing
// behind (access logs, DNS AZ affinity, zonal shift) are refused, naming
// the attribute; their off values are taken.
func TestAttributesPvlinkWouldNotHonourAreRefusedWithTheReason(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	lb := lbNamed(t, s, "web-nlb")
	for _, c := range []struct{ key, value, says string }{
		{"idle_timeout.timeout_seconds", "60", "not recognized"},
		{"deletion_protection.enabled", "yes", "not true or false"},
		{"load_balancing.cross_zone.enabled", "1", "not true or false"},
		{"access_logs.s3.enabled", "true", "no S3"},
		{"access_logs.s3.bucket", "logs", "no S3"},
		{"dns_record.client_routing_policy", "availability_zone_affinity", "not served"},
		{"zonal_shift.config.enabled", "true", "no zonal shift"},
	} {
		err := s.SetLoadBalancerAttributes(lb.OwnerID, lb.ID, map[string]string{c.key: c.value})
		var me *ModelError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s=%s: %v, want a refusal that names the attribute and says %q", c.key, c.value, err, c.says)
		}
	}
	off := map[string]string{}
	for _, k := range LoadBalancerAttributes {
		off[k] = lb.Attributes()[k]
	}
	if err := s.SetLoadBalancerAttributes(lb.OwnerID, lb.ID, off); err != nil {
		t.Fatalf("the attributes as they are, set again: %v", err)
	}
	if err := s.SetLoadBalancerAttributes("444455556666", lb.ID, off); err == nil {
		t.Fatal("another account changed the provider's load balancer")
	}
}

// TestDeletionProtectionRefusesADeleteAndAnApplyThatDropsTheLoadBalancer:
// with it on, neither DeleteLoadBalancer nor a topology without the load
// balancer takes it away; an apply that keeps it keeps the protection;
// once it is off, the apply goes through.
func TestDeletionProtectionRefusesADeleteAndAnApplyThatDropsTheLoadBalancer(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, withSpareLB(t)); err != nil {
		t.Fatal(err)
	}
	spare := lbNamed(t, s, "spare-nlb")
	owner, id := spare.OwnerID, spare.ID
	if err := s.SetLoadBalancerAttributes(owner, id, map[string]string{"deletion_protection.enabled": "true"}); err != nil {
		t.Fatal(err)
	}
	var np *OperationNotPermittedError
	if err := s.DeleteLoadBalancer(owner, id); !errors.As(err, &np) {
		t.Fatalf("delete of a protected load balancer: %v, want OperationNotPermitted", err)
	}
	if err := applyText(t, s, withSpareLB(t)); err != nil {
		t.Fatal(err)
	}
	if !lbNamed(t, s, "spare-nlb").DeletionProtection {
		t.Fatal("an apply that keeps the load balancer dropped its deletion protection")
	}
	if err := applyText(t, s, string(demoTopology(t))); !errors.As(err, &np) || !strings.Contains(err.Error(), "spare-nlb") {
		t.Fatalf("an apply without the protected load balancer: %v, want OperationNotPermitted naming it", err)
	}
	lbNamed(t, s, "spare-nlb") // still there
	if err := s.SetLoadBalancerAttributes(owner, id, map[string]string{"deletion_protection.enabled": "false"}); err != nil {
		t.Fatal(err)
	}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatalf("the apply once the protection is off: %v", err)
	}
	if s.hasLoadBalancer(id) {
		t.Fatal("the load balancer is still there")
	}
}

// TestARefusalOfDeletionProtectionIsAConflictNotAFailure: ctld's control
// API answers the refused apply with 409 (a 5xx would read as ctld's own
// failure, which a client such as the crash test's retries for ever).
func TestARefusalOfDeletionProtectionIsAConflictNotAFailure(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, withSpareLB(t)); err != nil {
		t.Fatal(err)
	}
	spare := lbNamed(t, s, "spare-nlb")
	if err := s.SetLoadBalancerAttributes(spare.OwnerID, spare.ID, map[string]string{"deletion_protection.enabled": "true"}); err != nil {
		t.Fatal(err)
	}
	err := applyText(t, s, string(demoTopology(t)))
	if code := statusOf(err); code != http.StatusConflict {
		t.Fatalf("an apply dropping a protected load balancer: %d (%v), want 409", code, err)
	}
	if code := statusOf(s.DeleteLoadBalancer(spare.OwnerID, spare.ID)); code != http.StatusConflict {
		t.Fatalf("a delete of a protected load balancer: %d", code)
	}
	if code := statusOf(errors.New("disk full")); code != http.StatusInternalServerError {
		t.Fatalf("ctld's own failure: %d", code)
	}
}

func TestUnhealthyConnectionTerminationOffReachesTheForwarders(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	tg := &s.TargetGroups[0]
	a := tg.Attributes()
	if a["target_health_state.unhealthy.connection_termination.enabled"] != "true" || a["target_health_state.unhealthy.draining_interval_seconds"] != "0" || a["preserve_client_ip.enabled"] != "false" {
		t.Fatalf("defaults: %v", a)
	}
	// An interval needs termination off, in the same call or before.
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"target_health_state.unhealthy.draining_interval_seconds": "30"}); err == nil {
		t.Fatal("a draining interval was taken with termination on")
	}
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{
		"target_health_state.unhealthy.connection_termination.enabled": "false",
		"target_health_state.unhealthy.draining_interval_seconds":      "30",
		"preserve_client_ip.enabled":                                   "true",
	}); err != nil {
		t.Fatal(err)
	}
	got := s.ForwarderConfig("use1-az1").TargetGroups["web"]
	if !got.KeepUnhealthy || time.Duration(got.UnhealthyDraining) != 30*time.Second {
		t.Fatalf("the forwarder's target group: keep %v, draining %v", got.KeepUnhealthy, time.Duration(got.UnhealthyDraining))
	}
	if a := tg.Attributes(); a["target_health_state.unhealthy.draining_interval_seconds"] != "30" || a["preserve_client_ip.enabled"] != "true" {
		t.Fatalf("after the change: %v", a)
	}
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"target_health_state.unhealthy.draining_interval_seconds": "360001"}); err == nil {
		t.Fatal("an interval over 360000 s was taken")
	}
}

func TestATopologysUnhealthyDrainingNeedsTerminationOff(t *testing.T) {
	demo := string(demoTopology(t))
	const at = "    proxy_protocol_v2: true\n"
	bad := strings.Replace(demo, at, at+"    unhealthy_draining_interval: 30s\n", 1)
	if bad == demo {
		t.Fatal("the demo's target group no longer reads as this test expects")
	}
	if _, err := ParseTopology("demo.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "unhealthy_draining_interval: applies only with unhealthy_connection_termination: false") {
		t.Fatalf("an interval with termination on: %v", err)
	}
	good := strings.Replace(demo, at, at+"    unhealthy_connection_termination: false\n    unhealthy_draining_interval: 30s\n", 1)
	s := &State{}
	if err := applyText(t, s, good); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"]; !got.KeepUnhealthy || time.Duration(got.UnhealthyDraining) != 30*time.Second {
		t.Fatalf("from the file: %+v", got)
	}
}

func TestATargetGroupsCrossZoneComesFromTheFileOrTheAPI(t *testing.T) {
	demo := string(demoTopology(t))
	const at = "    proxy_protocol_v2: true\n"
	s := &State{}
	if err := applyText(t, s, strings.Replace(demo, at, at+"    cross_zone: true\n", 1)); err != nil {
		t.Fatal(err)
	}
	tg := &s.TargetGroups[0]
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"].CrossZone; got != "true" || tg.Attributes()["load_balancing.cross_zone.enabled"] != "true" {
		t.Fatalf("cross_zone: true in the file gives %q, attribute %q", got, tg.Attributes()["load_balancing.cross_zone.enabled"])
	}
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"load_balancing.cross_zone.enabled": "use_load_balancer_configuration"}); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"].CrossZone; got != "" || tg.Attributes()["load_balancing.cross_zone.enabled"] != "use_load_balancer_configuration" {
		t.Fatalf("use_load_balancer_configuration gives %q", got)
	}
}

func TestRoutingFailoverThresholdsReachTheForwarders(t *testing.T) {
	demo := string(demoTopology(t))
	const at = "    proxy_protocol_v2: true\n"
	s := &State{}
	if err := applyText(t, s, strings.Replace(demo, at, at+"    unhealthy_state_routing_min_healthy_targets: 2\n", 1)); err != nil {
		t.Fatal(err)
	}
	tg := &s.TargetGroups[0]
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"]; got.MinHealthyCount != 2 || got.MinHealthyPercent != 0 {
		t.Fatalf("from the file: %+v", got)
	}
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": "50"}); err != nil {
		t.Fatal(err)
	}
	a := tg.Attributes()
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"]; got.MinHealthyPercent != 50 || a["target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage"] != "50" || a["target_group_health.unhealthy_state_routing.minimum_healthy_targets.count"] != "2" {
		t.Fatalf("after the API: %+v, %v", got, a)
	}
	for k, v := range map[string]string{
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": "101",
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count":      "0",
		"target_group_health.dns_failover.minimum_healthy_targets.count":                 "2",
	} {
		if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{k: v}); err == nil {
			t.Errorf("%s=%s was taken", k, v)
		}
	}
	// Their defaults are taken, as a tool that writes every attribute sends them.
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"target_group_health.dns_failover.minimum_healthy_targets.count": "1", "target_group_health.dns_failover.minimum_healthy_targets.percentage": "off"}); err != nil {
		t.Fatal(err)
	}
}

// A deregistration delay of 0 (the attribute, or a topology's 0s) is none,
// to the forwarders and in the attributes; a delay not set is the NLB's
// default. (0 was taken for not set: a target drained 300 s.)
func TestADeregistrationDelayOfZeroIsNone(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	tg := &s.TargetGroups[0]
	forwarder := func() snapshot.Duration { return s.ForwarderConfig("use1-az1").TargetGroups["web"].DeregistrationDelay }
	if got, a := forwarder(), tg.Attributes(); got != 0 || a["deregistration_delay.timeout_seconds"] != "300" {
		t.Fatalf("not set: the forwarder gets %v, the attribute says %s", time.Duration(got), a["deregistration_delay.timeout_seconds"])
	}
	if err := s.SetTargetGroupAttributes(tg.OwnerID, tg.ID, map[string]string{"deregistration_delay.timeout_seconds": "0"}); err != nil {
		t.Fatal(err)
	}
	if got, a := forwarder(), tg.Attributes(); got != snapshot.NoDelay || a["deregistration_delay.timeout_seconds"] != "0" {
		t.Fatalf("set to 0: the forwarder gets %v, the attribute says %s", time.Duration(got), a["deregistration_delay.timeout_seconds"])
	}
	z := &State{}
	text := strings.Replace(string(demoTopology(t)), "    port: 8080\n", "    port: 8080\n    deregistration_delay: 0s\n", 1)
	if !strings.Contains(text, "deregistration_delay: 0s") {
		t.Fatal("the demo topology has no target group port line to put the delay after")
	}
	if err := applyText(t, z, text); err != nil {
		t.Fatal(err)
	}
	if got := z.ForwarderConfig("use1-az1").TargetGroups["web"].DeregistrationDelay; got != snapshot.NoDelay || z.TargetGroups[0].Attributes()["deregistration_delay.timeout_seconds"] != "0" {
		t.Fatalf("a topology's 0s: the forwarder gets %v, the attributes %v", time.Duration(got), z.TargetGroups[0].Attributes())
	}
}
