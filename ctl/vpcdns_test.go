package ctl

import (
	"strings"
	"testing"

	"pvlink.dev/pvlink/ctl/dns"
)

// verifiedPrivateDNSDemo is the demo with a verified private DNS name on its
// service, not yet enabled on its endpoint.
func verifiedPrivateDNSDemo(t *testing.T) (*State, string) {
	t.Helper()
	demo := strings.Replace(string(demoTopology(t)), "    load_balancers: [web-nlb]\n", "    load_balancers: [web-nlb]\n    private_dns_name: api.example.com\n", 1)
	s := &State{}
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	s.Verified(s.Services[0].ID, true)
	return s, demo
}

func TestPrivateDNSNeedsTheVPCsDNSSupportAndHostnames(t *testing.T) {
	s, _ := verifiedPrivateDNSDemo(t)
	e := &s.Endpoints[0]
	consumer, owner := e.VPCID, e.OwnerID
	all := func(string) bool { return true }
	private := func() int { return len(s.VPCRecords(consumer, all).A[dns.Name("api.example.com")]) }
	regional := s.DNSNames(*e)[0]

	// A topology's VPC has both on.
	for _, attr := range []string{AttrDNSSupport, AttrDNSHostnames} {
		if on, err := s.vpcByID(consumer).VPCAttribute(attr); err != nil || !on {
			t.Fatalf("%s of a topology's VPC: %v %v", attr, on, err)
		}
	}
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSHostnames, false); err != nil {
		t.Fatal(err)
	}
	err := s.EnablePrivateDNS(e, true)
	if err == nil || err.Error() != "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for "+consumer {
		t.Fatalf("private DNS with DNS hostnames off: %v", err)
	}
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSHostnames, true); err != nil {
		t.Fatal(err)
	}
	if err := s.EnablePrivateDNS(e, true); err != nil {
		t.Fatal(err)
	}
	if private() != 2 {
		t.Fatal("the private DNS name does not answer with both attributes on")
	}
	// Turned off afterwards: the endpoint keeps private DNS, the name
	// stops answering; the endpoint's own names stay.
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSHostnames, false); err != nil {
		t.Fatal(err)
	}
	if !e.PrivateDNSEnabled || private() != 0 {
		t.Fatalf("with DNS hostnames off: enabled %v, private name answers %d", e.PrivateDNSEnabled, private())
	}
	if len(s.VPCRecords(consumer, all).A[dns.Name(regional)]) != 2 {
		t.Fatal("the regional name stopped answering with DNS hostnames off")
	}
	// DNS support off: no answer at all; hostnames cannot come on then.
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSSupport, false); err != nil {
		t.Fatal(err)
	}
	if s.VPCRecords(consumer, all) != nil {
		t.Fatal("the resolver answers with DNS support off")
	}
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSHostnames, true); err == nil || !strings.Contains(err.Error(), "only while DNS support is") {
		t.Fatalf("DNS hostnames on without DNS support: %v", err)
	}
	// Another account cannot change it; an unknown attribute is refused.
	if err := s.SetVPCAttribute("111122223333", consumer, AttrDNSSupport, true); err == nil {
		t.Fatal("the provider changed the consumer's VPC")
	}
	if err := s.SetVPCAttribute(owner, consumer, "enableClassicLink", true); err == nil {
		t.Fatal("an unknown attribute was taken")
	}
	if err := s.SetVPCAttribute(owner, consumer, AttrNAUMetrics, true); err == nil {
		t.Fatal("Network Address Usage metrics were turned on")
	}
}

func TestAVPCMadeThroughTheAPIHasDNSHostnamesOff(t *testing.T) {
	s, _ := verifiedPrivateDNSDemo(t)
	v, err := s.CreateVPC("444455556666", "198.20.0.0/16", false)
	if err != nil {
		t.Fatal(err)
	}
	if on, _ := v.VPCAttribute(AttrDNSSupport); !on {
		t.Fatal("DNS support off on a new VPC")
	}
	if on, _ := v.VPCAttribute(AttrDNSHostnames); on {
		t.Fatal("DNS hostnames on on a new VPC (CreateVpc's default is off)")
	}
}

func TestATopologyDeclaresTheVPCsDNSAttributesOrKeepsThem(t *testing.T) {
	s, demo := verifiedPrivateDNSDemo(t)
	consumer, owner := s.Endpoints[0].VPCID, s.Endpoints[0].OwnerID
	// Changed through the API, kept by an apply of a file that is silent.
	if err := s.SetVPCAttribute(owner, consumer, AttrDNSHostnames, false); err != nil {
		t.Fatal(err)
	}
	if err := applyText(t, s, demo); err != nil {
		t.Fatal(err)
	}
	if !s.vpcByID(consumer).DNSHostnamesOff {
		t.Fatal("an apply that says nothing of DNS hostnames turned them back on")
	}
	// Declared, the file's value.
	declared := strings.Replace(demo, "    cidr: 198.18.0.0/16\n", "    cidr: 198.18.0.0/16\n    enable_dns_hostnames: true\n", 1)
	if declared == demo {
		t.Fatal("the demo's consumer VPC no longer reads as this test expects")
	}
	if err := applyText(t, s, declared); err != nil {
		t.Fatal(err)
	}
	if s.vpcByID(consumer).DNSHostnamesOff {
		t.Fatal("enable_dns_hostnames: true left them off")
	}
	// DNS support off in the file takes DNS hostnames with it.
	noSupport := strings.Replace(demo, "    cidr: 198.18.0.0/16\n", "    cidr: 198.18.0.0/16\n    enable_dns_support: false\n", 1)
	if err := applyText(t, s, noSupport); err != nil {
		t.Fatal(err)
	}
	if v := s.vpcByID(consumer); !v.DNSSupportOff || !v.DNSHostnamesOff {
		t.Fatalf("enable_dns_support: false gives support off %v, hostnames off %v", v.DNSSupportOff, v.DNSHostnamesOff)
	}
	// Hostnames declared on where support stays off (the file silent on
	// it, the VPC's off): refused, the model as it was.
	hostnamesOnly := strings.Replace(demo, "    cidr: 198.18.0.0/16\n", "    cidr: 198.18.0.0/16\n    enable_dns_hostnames: true\n", 1)
	if err := applyText(t, s, hostnamesOnly); err == nil || !strings.Contains(err.Error(), "DNS hostnames need DNS support") {
		t.Fatalf("DNS hostnames on over DNS support off: %v", err)
	}
}

// A file that asks for both is refused when it is read, before anything
// is made.
func TestATopologyWithPrivateDNSInAVPCWithoutDNSHostnamesIsRefused(t *testing.T) {
	_, demo := verifiedPrivateDNSDemo(t)
	enabled := strings.Replace(demo, "    ip_address_type: ipv4\n    subnet_configurations:", "    ip_address_type: ipv4\n    private_dns_enabled: true\n    subnet_configurations:", 1)
	off := strings.Replace(enabled, "    cidr: 198.18.0.0/16\n", "    cidr: 198.18.0.0/16\n    enable_dns_hostnames: false\n", 1)
	if off == enabled || enabled == demo {
		t.Fatal("the demo no longer reads as this test expects")
	}
	if _, err := ParseTopology("demo.yaml", []byte(off)); err == nil || !strings.Contains(err.Error(), "endpoints[0].private_dns_enabled: private DNS needs enable_dns_support and enable_dns_hostnames on in VPC consumer") {
		t.Fatalf("private DNS in a VPC with DNS hostnames off: %v", err)
	}
	both := strings.Replace(demo, "    cidr: 198.18.0.0/16\n", "    cidr: 198.18.0.0/16\n    enable_dns_support: false\n    enable_dns_hostnames: true\n", 1)
	if _, err := ParseTopology("demo.yaml", []byte(both)); err == nil || !strings.Contains(err.Error(), "enable_dns_hostnames: DNS hostnames need DNS support") {
		t.Fatalf("DNS hostnames without DNS support: %v", err)
	}
}
