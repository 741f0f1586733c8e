package ctl

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// guardedDemo is the demo whose load balancer has a security group that
// lets in 10.0.0.0/8 on port 80 only: not the consumer's 198.18.0.0/16.
func guardedDemo(t *testing.T, enforce string) string {
	t.Helper()
	topo := string(demoTopology(t))
	lb := "      - {protocol: TCP, port: 80, target_group: web}\n"
	extra := "    security_groups: [nlb-sg]\n"
	if enforce != "" {
		extra += "    enforce_security_group_inbound_rules_on_private_link_traffic: " + enforce + "\n"
	}
	guarded := strings.Replace(topo, lb, lb+extra, 1)
	if guarded == topo {
		t.Fatal("the demo's listener no longer reads as this test expects")
	}
	return guarded + `
security_groups:
  - name: nlb-sg
    vpc: provider
    ingress:
      - {ip_protocol: tcp, from_port: 80, to_port: 80, cidr_ipv4: 10.0.0.0/8}
`
}

func TestTheForwardersGetALoadBalancersSecurityGroupsWhileEnforced(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, guardedDemo(t, "")); err != nil {
		t.Fatal(err)
	}
	lb := &s.LoadBalancers[0]
	if lb.Enforce() != EnforceOn || len(lb.SecurityGroups) != 1 || !strings.HasPrefix(lb.SecurityGroups[0], "sg-") {
		t.Fatalf("the load balancer's groups: %v, enforce %q", lb.SecurityGroups, lb.Enforce())
	}
	got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]
	if len(got.SecurityGroups) != 1 || len(got.Ingress) != 1 || got.Ingress[0].Source != netip.MustParsePrefix("10.0.0.0/8") || got.Ingress[0].FromPort != 80 {
		t.Fatalf("the forwarder's load balancer: %+v", got)
	}
	// Off: the forwarders filter nothing; the groups stay.
	if err := s.SetLoadBalancerSecurityGroups(lb.OwnerID, lb.ID, lb.SecurityGroups, EnforceOff); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]; len(got.SecurityGroups) != 0 || len(got.Ingress) != 0 {
		t.Fatalf("enforcement off still filters: %+v", got)
	}
	if lb.Enforce() != EnforceOff || len(lb.SecurityGroups) != 1 {
		t.Fatalf("after off: %v %q", lb.SecurityGroups, lb.Enforce())
	}
	// The group is in use: it cannot be deleted.
	var dep *DependencyError
	if err := s.DeleteSecurityGroup(lb.OwnerID, lb.SecurityGroups[0]); !errors.As(err, &dep) || !strings.Contains(err.Error(), "load balancer web-nlb") {
		t.Fatalf("deleting the load balancer's group: %v", err)
	}
	// A group of another VPC, or none that exists, is refused.
	var sgErr *LBSecurityGroupError
	if err := s.SetLoadBalancerSecurityGroups(lb.OwnerID, lb.ID, []string{"sg-0123456789abcdef0"}, ""); !errors.As(err, &sgErr) || sgErr.Config {
		t.Fatalf("an unknown group: %v", err)
	}
	if err := s.SetLoadBalancerSecurityGroups(lb.OwnerID, lb.ID, lb.SecurityGroups, "maybe"); !errors.As(err, &sgErr) || !sgErr.Config {
		t.Fatalf("enforce maybe: %v", err)
	}
	// The file says enforce off: the same as the API's.
	if err := applyText(t, s, guardedDemo(t, "off")); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]; len(got.Ingress) != 0 || s.LoadBalancers[0].Enforce() != EnforceOff {
		t.Fatalf("enforce off in the file: %+v", got)
	}
}

func TestALoadBalancerMadeWithoutSecurityGroupsNeverGetsAny(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateSecurityGroup(s.LoadBalancers[0].OwnerID, s.VPCs[0].ID, "late", "too late")
	if err != nil {
		t.Fatal(err)
	}
	lb := &s.LoadBalancers[0]
	var sgErr *LBSecurityGroupError
	if err := s.SetLoadBalancerSecurityGroups(lb.OwnerID, lb.ID, []string{g.ID}, ""); !errors.As(err, &sgErr) || !sgErr.Config || !strings.Contains(err.Error(), "only when it is created") {
		t.Fatalf("security groups for a load balancer made without them: %v", err)
	}
	if lb.Enforce() != "" || len(s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"].Ingress) != 0 {
		t.Fatal("a load balancer without security groups has an enforcement setting or rules")
	}
}

func TestATopologysLoadBalancerSecurityGroupsAreChecked(t *testing.T) {
	guarded := guardedDemo(t, "")
	for _, tc := range []struct{ name, from, to, want string }{
		{"undefined", "    security_groups: [nlb-sg]\n", "    security_groups: [nope]\n", `security_groups[0]: security group "nope" is not defined`},
		{"another VPC", "    vpc: provider\n    ingress:", "    vpc: consumer\n    ingress:", "security group nlb-sg is in VPC consumer, the load balancer in provider"},
		{"bad value", "    security_groups: [nlb-sg]\n", "    security_groups: [nlb-sg]\n    enforce_security_group_inbound_rules_on_private_link_traffic: maybe\n", `"maybe" is not on or off`},
		{"no groups", "    security_groups: [nlb-sg]\n", "    enforce_security_group_inbound_rules_on_private_link_traffic: off\n", "applies to a load balancer with security_groups"},
	} {
		text := strings.Replace(guarded, tc.from, tc.to, 1)
		if text == guarded {
			t.Fatalf("%s: the edit did not apply", tc.name)
		}
		if _, err := ParseTopology("demo.yaml", []byte(text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A load balancer's groups' outbound rules reach the forwarders whether or
// not their inbound rules apply to PrivateLink traffic: EC2's default
// (everything out) until one is changed.
func TestALoadBalancersOutboundRulesReachTheForwarders(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, guardedDemo(t, "off")); err != nil {
		t.Fatal(err)
	}
	lb := &s.LoadBalancers[0]
	target := netip.MustParseAddrPort("198.19.1.10:8080")
	got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]
	if !got.EgressFiltered || len(got.Ingress) != 0 || !got.EgressAllows(target) {
		t.Fatalf("the default outbound rule with inbound enforcement off: %+v", got)
	}
	everything := Permission{Protocol: "-1", CIDRs: []string{"0.0.0.0/0"}}
	if err := s.RevokeEgress(lb.OwnerID, lb.SecurityGroups[0], []Permission{everything}); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]; got.EgressAllows(target) {
		t.Fatalf("with no outbound rule the target is reachable: %+v", got)
	}
	if err := s.AuthorizeEgress(lb.OwnerID, lb.SecurityGroups[0], []Permission{{Protocol: "tcp", From: 8080, To: 8080, CIDRs: []string{"198.19.1.0/24"}}}); err != nil {
		t.Fatal(err)
	}
	got = s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]
	if !got.EgressAllows(target) || got.EgressAllows(netip.MustParseAddrPort("198.19.2.10:8080")) || got.EgressAllows(netip.MustParseAddrPort("198.19.1.10:9090")) {
		t.Fatalf("one outbound rule for 198.19.1.0/24:8080: %+v", got.Egress)
	}
	// A file that gives a group no outbound rule.
	if err := applyText(t, s, strings.Replace(guardedDemo(t, ""), "    vpc: provider\n    ingress:", "    vpc: provider\n    egress: []\n    ingress:", 1)); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").LoadBalancers["web-nlb"]; got.EgressAllows(target) {
		t.Fatal("egress: [] in the file let the target be reached")
	}
}
