package ctl

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// subnetIDOf is the id of the subnet named name.
func subnetIDOf(t *testing.T, s *State, name string) string {
	t.Helper()
	for _, v := range s.VPCs {
		for _, sn := range v.Subnets {
			if sn.Name == name {
				return sn.ID
			}
		}
	}
	t.Fatalf("no subnet %s", name)
	return ""
}

// TestSetSubnetsMovesTheLoadBalancersNodesAndTheServicesAZs: the demo's
// load balancer leaves use1-az2 only once no endpoint carries traffic
// there; its node and the service's AZ go with it, and come back (a node
// with an address of the subnet) when the subnet is set again.
func TestSetSubnetsMovesTheLoadBalancersNodesAndTheServicesAZs(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	lb := lbNamed(t, s, "web-nlb")
	owner, id := lb.OwnerID, lb.ID
	az1, az2 := subnetIDOf(t, s, "provider-az1"), subnetIDOf(t, s, "provider-az2")
	consumer1 := subnetIDOf(t, s, "consumer-az1")
	if err := s.AcceptEndpoint("web"); err != nil {
		t.Fatal(err)
	}

	var de *DependencyError
	if _, err := s.SetLoadBalancerSubnets(owner, id, []string{az1}); !errors.As(err, &de) {
		t.Fatalf("leaving an AZ where an available endpoint has an ENI: %v, want a refusal", err)
	}
	var me *ModelError
	if _, err := s.SetLoadBalancerSubnets(owner, id, []string{consumer1}); err == nil {
		t.Fatalf("a subnet of another account's VPC: %v", err)
	}
	if _, err := s.SetLoadBalancerSubnets(owner, id, nil); !errors.As(err, &me) {
		t.Fatalf("no subnet: %v", err)
	}

	// With the endpoint rejected, nothing carries traffic in use1-az2.
	if err := s.RejectEndpoint("web"); err != nil {
		t.Fatal(err)
	}
	got, err := s.SetLoadBalancerSubnets(owner, id, []string{az1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 1 || got.Nodes[0].AZ != "use1-az1" {
		t.Fatalf("nodes after leaving use1-az2: %+v", got.Nodes)
	}
	if azs := s.ServiceAZs(&s.Services[0]); !slices.Equal(azs, []string{"use1-az1"}) {
		t.Fatalf("the service's AZs: %v", azs)
	}
	got, err = s.SetLoadBalancerSubnets(owner, id, []string{az1, az2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 2 || got.Nodes[1].AZ != "use1-az2" || got.Nodes[1].IP == "" || got.Nodes[0].IP != "198.19.1.5" {
		t.Fatalf("nodes after coming back to use1-az2: %+v", got.Nodes)
	}
	if azs := s.ServiceAZs(&s.Services[0]); !slices.Equal(azs, []string{"use1-az1", "use1-az2"}) {
		t.Fatalf("the service's AZs: %v", azs)
	}
}

// TestSetIpAddressTypeKeepsDualstackUnderAnIPv6Service: a load balancer
// goes dualstack and back to ipv4, but not while a service it serves
// supports IPv6; other types are refused.
func TestSetIpAddressTypeKeepsDualstackUnderAnIPv6Service(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	lb := lbNamed(t, s, "web-nlb")
	owner, id := lb.OwnerID, lb.ID
	var me *ModelError
	if _, err := s.SetLoadBalancerIPAddressType(owner, id, "ipv6"); !errors.As(err, &me) {
		t.Fatalf("ipv6: %v, want a refusal", err)
	}
	if got, err := s.SetLoadBalancerIPAddressType(owner, id, "dualstack"); err != nil || got.IPAddressType != "dualstack" {
		t.Fatalf("dualstack: %+v, %v", got, err)
	}
	svc := &s.Services[0]
	svc.SupportedIPAddressTypes = []string{"ipv4", "ipv6"}
	if err := s.checkIPTypes(svc.LoadBalancers, svc.SupportedIPAddressTypes); err != nil {
		t.Fatalf("an IPv6 service on the dualstack load balancer: %v", err)
	}
	var de *DependencyError
	if _, err := s.SetLoadBalancerIPAddressType(owner, id, "ipv4"); !errors.As(err, &de) || !strings.Contains(err.Error(), svc.ID) {
		t.Fatalf("ipv4 under an IPv6 service: %v, want a refusal naming it", err)
	}
	svc.SupportedIPAddressTypes = []string{"ipv4"}
	if got, err := s.SetLoadBalancerIPAddressType(owner, id, "ipv4"); err != nil || got.IPAddressType != "ipv4" {
		t.Fatalf("ipv4 once the service is IPv4 only: %+v, %v", got, err)
	}
}
