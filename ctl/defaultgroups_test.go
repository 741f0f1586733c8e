package ctl

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"pvlink.dev/pvlink/snapshot"
)

// The demo's endpoint declares no security groups: it gets its VPC's
// default group, whose members are the VPC's hosts, so its ENIs take all
// traffic from the consumer VPC's range and nothing else.
func TestATopologysEndpointWithoutGroupsGetsItsVPCsDefaultGroup(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	for _, v := range s.VPCs {
		if g := s.DefaultGroup(v.Name); g == nil || g.Name != "default" || g.OwnerID != v.OwnerID {
			t.Fatalf("VPC %s's default group: %+v", v.Name, g)
		}
	}
	def := s.DefaultGroup("consumer")
	e := s.Endpoints[0]
	if !slices.Equal(e.SecurityGroups, []string{def.ID}) {
		t.Fatalf("the endpoint's groups: %v, want the default group %s", e.SecurityGroups, def.ID)
	}
	want := []snapshot.SGRule{{Proto: 0, FromPort: 0, ToPort: 65535, Source: netip.MustParsePrefix("198.18.0.0/16")}}
	for _, eni := range s.ForwarderConfig(e.ENIs[0].AZ).ENIs {
		if !slices.Equal(eni.SecurityGroups, []string{def.ID}) || !slices.Equal(eni.Ingress, want) {
			t.Fatalf("the forwarder's ENI %s: groups %v, rules %v; want %s and %v", eni.ID, eni.SecurityGroups, eni.Ingress, def.ID, want)
		}
	}

	// What the API does to a default group stays through another apply
	// (its rules, their descriptions and ids), and so does its id.
	rule := Permission{Protocol: "tcp", From: 80, To: 80, CIDRs: []string{"10.0.0.0/8"}}
	rule.Describe("10.0.0.0/8", "the office")
	if err := s.AuthorizeIngress(def.OwnerID, def.ID, []Permission{rule}); err != nil {
		t.Fatal(err)
	}
	if err := s.AuthorizeEgress(def.OwnerID, def.ID, []Permission{{Protocol: "tcp", From: 443, To: 443, Groups: []string{def.ID}}}); err != nil {
		t.Fatal(err)
	}
	office := def.Ingress[len(def.Ingress)-1]
	if err := s.ModifyRules(def.OwnerID, def.ID, []RuleChange{{ID: def.RuleID(false, office), Rule: Permission{Protocol: "tcp", From: 81, To: 81, CIDRs: []string{"10.0.0.0/8"}, Descriptions: map[string]string{"10.0.0.0/8": "the office"}}}}); err != nil {
		t.Fatal(err)
	}
	before := *s.Clone().DefaultGroup("consumer")
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	after := s.DefaultGroup("consumer")
	if after.ID != before.ID || !slices.Equal(after.Ingress, before.Ingress) || !slices.Equal(after.FromGroups, before.FromGroups) || !slices.Equal(after.ToGroups, before.ToGroups) ||
		!maps.Equal(after.Descriptions, before.Descriptions) || !maps.Equal(after.RuleIDs, before.RuleIDs) || len(after.RuleIDs) != 1 || len(after.ToGroups) != 1 {
		t.Fatalf("another apply changed the default group: %+v, then %+v", before, *after)
	}
}

// A topology may name a VPC's default group ("default") but not make one.
func TestATopologyNamesTheDefaultGroupButDoesNotDeclareOne(t *testing.T) {
	demo := string(demoTopology(t))
	endpoint := "    ip_address_type: ipv4\n"
	named := strings.Replace(demo, endpoint, endpoint+"    security_groups: [default, open]\n", 1) + `
security_groups:
  - name: open
    vpc: consumer
    ingress:
      - {ip_protocol: tcp, from_port: 80, to_port: 80, cidr_ipv4: 0.0.0.0/0}
`
	if named == demo {
		t.Fatal("the demo's endpoint no longer reads as this test expects")
	}
	s := &State{}
	if err := applyText(t, s, named); err != nil {
		t.Fatal(err)
	}
	if def := s.DefaultGroup("consumer"); len(s.Endpoints[0].SecurityGroups) != 2 || s.Endpoints[0].SecurityGroups[0] != def.ID {
		t.Fatalf("the endpoint's groups: %v, want the default group %s first", s.Endpoints[0].SecurityGroups, def.ID)
	}
	declared := strings.Replace(named, "  - name: open\n", "  - name: default\n", 1)
	if _, err := ParseTopology("demo.yaml", []byte(declared)); err == nil || !strings.Contains(err.Error(), "default group") {
		t.Fatalf("a topology's group named default: %v", err)
	}
}

// A model stored before VPCs had default groups gets them, and its
// endpoints made without groups get theirs; a default group whose VPC is
// gone goes.
func TestEveryChangeGivesEachVPCItsDefaultGroup(t *testing.T) {
	s := &State{}
	if err := applyText(t, s, string(demoTopology(t))); err != nil {
		t.Fatal(err)
	}
	s.SecurityGroups = slices.DeleteFunc(s.SecurityGroups, func(g SecurityGroupState) bool { return g.VPC == "consumer" })
	s.Endpoints[0].SecurityGroups = nil
	s.ensureDefaultGroups()
	if s.DefaultGroup("consumer") == nil || s.DefaultGroup("provider") == nil {
		t.Fatal("a VPC was left without a default group")
	}
	if !slices.Equal(s.Endpoints[0].SecurityGroups, []string{s.DefaultGroup("consumer").ID}) {
		t.Fatalf("the endpoint stored without groups has %v, want its VPC's default group", s.Endpoints[0].SecurityGroups)
	}
	n := len(s.SecurityGroups)
	s.ensureDefaultGroups()
	if len(s.SecurityGroups) != n {
		t.Fatalf("a second pass made %d groups more", len(s.SecurityGroups)-n)
	}
	s.VPCs = slices.DeleteFunc(s.VPCs, func(v VPCState) bool { return v.Name == "consumer" })
	s.ensureDefaultGroups()
	if s.DefaultGroup("consumer") != nil {
		t.Fatal("the default group of a VPC that is gone stayed")
	}
}
