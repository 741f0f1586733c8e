package ctl

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func twoRegions(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../examples/two-regions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func applyTopology(s *State, text string) error {
	topo, err := ParseTopology("two-regions.yaml", []byte(text))
	if err != nil {
		return err
	}
	return s.ApplyTopology(topo, "two-regions.yaml")
}

func TestACrossRegionEndpointReachesItsServiceFromAnotherRegionsAZs(t *testing.T) {
	s := &State{}
	if err := applyTopology(s, twoRegions(t)); err != nil {
		t.Fatal(err)
	}
	e := s.Endpoints[0]
	if e.Region != "us-west-2" || e.ServiceRegion != "us-east-1" || !e.crossRegion() {
		t.Fatalf("endpoint regions: %q -> %q", e.Region, e.ServiceRegion)
	}
	if names := s.DNSNames(e); !strings.HasSuffix(names[0], "."+e.ServiceID+".us-east-1.vpce.amazonaws.com") || !strings.Contains(names[1], "-us-west-2a."+e.ServiceID+".us-east-1.") {
		t.Errorf("DNS names: %v", names)
	}
	if svc := s.Services[0]; !strings.HasPrefix(svc.ServiceName, "com.amazonaws.vpce.us-east-1.") {
		t.Errorf("service name %s", svc.ServiceName)
	}
	// Each consumer AZ's forwarder gets the provider's load balancer from
	// a host-Region node, across its AZs.
	for _, az := range []string{"usw2-az1", "usw2-az2"} {
		cfg := s.ForwarderConfig(az)
		lb, ok := cfg.LoadBalancers["web-nlb"]
		if len(cfg.ENIs) != 1 || !ok || !lb.CrossZone || lb.NodeIP.String() != "198.19.1.5" || len(cfg.ENIs[0].Listeners) != 1 {
			t.Errorf("%s: %+v", az, cfg)
		}
	}
}

func TestCrossRegionRulesOfTheSharingPage(t *testing.T) {
	base := twoRegions(t)
	for _, c := range []struct{ name, from, to, want string }{
		{"a Region the service does not support", "    supported_regions: [us-west-2]\n", "", "does not support Region us-west-2"},
		{"a custom idle timeout", "    proxy_protocol_v2: true\n", "    proxy_protocol_v2: true\n    idle_timeout: 600s\n", "custom TCP idle timeout"},
		{"a listener's custom idle timeout", "target_group: web}", "target_group: web, idle_timeout: 600s}", "web-nlb's listener 80"},
		{"no service Region across Regions", "    service_region: us-east-1\n", "", "give service_region: us-east-1"},
		{"a service Region that is not the service's", "    service_region: us-east-1\n", "    service_region: us-west-2\n", "hosted in us-east-1, not us-west-2"},
		{"a subnet in another Region's AZ", "availability_zone: usw2-az1", "availability_zone: use1-az1", "is in Region us-east-1, the VPC in us-west-2"},
		{"a Region that is not the fabric's", "    supported_regions: [us-west-2]\n", "    supported_regions: [eu-west-1]\n", `Region "eu-west-1" is not the fabric's`},
	} {
		text := strings.Replace(base, c.from, c.to, 1)
		if text == base {
			t.Fatalf("%s: the example changed", c.name)
		}
		err := applyTopology(&State{}, text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}

	// A Region taken off the service keeps its existing endpoints and
	// refuses new ones.
	s := &State{}
	if err := applyTopology(s, base); err != nil {
		t.Fatal(err)
	}
	id := s.Endpoints[0].ID
	removed := strings.Replace(base, "    supported_regions: [us-west-2]\n", "", 1)
	if err := applyTopology(s, removed); err != nil {
		t.Fatalf("removing the Region with an endpoint there: %v", err)
	}
	if len(s.Endpoints) != 1 || s.Endpoints[0].ID != id {
		t.Fatalf("the existing endpoint went: %+v", s.Endpoints)
	}
	another := removed + `  - name: second
    vpc: consumer
    service: web
    service_region: us-east-1
    subnet_configurations:
      - {subnet: consumer-az1}
`
	if err := applyTopology(s, another); err == nil || !strings.Contains(err.Error(), "does not support Region us-west-2") {
		t.Errorf("a new endpoint from the removed Region: %v", err)
	}
}

func TestSupportedRegionsKeepTheHostRegionAndRefuseACustomIdleTimeout(t *testing.T) {
	s := &State{}
	if err := applyTopology(s, twoRegions(t)); err != nil {
		t.Fatal(err)
	}
	svc := &s.Services[0]
	if err := s.SetSupportedRegions(svc, nil, []string{"us-east-1"}); err == nil {
		t.Error("the host Region was removed")
	}
	if err := s.SetSupportedRegions(svc, nil, []string{"us-west-2"}); err != nil || len(svc.SupportedRegions) != 0 {
		t.Fatalf("removing us-west-2: %v, %v", err, svc.SupportedRegions)
	}
	s.TargetGroups[0].IdleTimeout = "600s"
	if err := s.SetSupportedRegions(svc, []string{"us-west-2"}, nil); err == nil || !strings.Contains(err.Error(), "custom TCP idle timeout") {
		t.Errorf("a custom idle timeout: %v", err)
	}
	s.TargetGroups[0].IdleTimeout = "350s"
	if err := s.SetSupportedRegions(svc, []string{"us-west-2", "us-east-1"}, nil); err != nil || len(svc.SupportedRegions) != 1 {
		t.Errorf("adding us-west-2 (and the host, a no-op): %v, %v", err, svc.SupportedRegions)
	}
}

func TestARegionDownTakesEveryAZOfItDownAndOnlyThose(t *testing.T) {
	s := &State{}
	if err := applyTopology(s, twoRegions(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.RegionDown("eu-west-1", time.Now()); err == nil {
		t.Error("a Region the fabric does not have went down")
	}
	if err := s.RegionDown("us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	for az, want := range map[string]bool{"use1-az1": true, "use1-az2": true, "usw2-az1": false, "usw2-az2": false} {
		if s.IsAZDown(az) != want {
			t.Errorf("%s down: %v, want %v", az, !want, want)
		}
	}
	// The snapshot of a consumer AZ marks the provider's targets.
	for _, tg := range s.ForwarderConfig("usw2-az1").TargetGroups {
		for _, tgt := range tg.Targets {
			if !tgt.Blackholed {
				t.Errorf("target %s not black-holed with its Region down", tgt.IP)
			}
		}
	}
	if err := s.RegionUp("us-east-1"); err != nil || s.IsAZDown("use1-az1") {
		t.Fatalf("region-up: %v, use1-az1 down %v", err, s.IsAZDown("use1-az1"))
	}
}

func TestCrossRegionAccessTakesThePermissionItsConditionsAndOptingIn(t *testing.T) {
	base := twoRegions(t)
	providerAllow := "        condition: {StringEquals: {\"ec2:VpceSupportedRegion\": [us-west-2]}}\n"
	consumerAllow := "        condition: {StringEquals: {\"ec2:VpceServiceRegion\": [us-east-1]}}\n"
	for _, c := range []struct{ name, from, to, want string }{
		{"no provider permission", "    iam_policy:\n      - effect: Allow\n        action: [vpce:AllowMultiRegion]\n" + providerAllow, "", "account provider (111122223333) is not authorized to perform vpce:AllowMultiRegion"},
		{"the provider's condition names another Region", providerAllow, strings.Replace(providerAllow, "us-west-2", "eu-west-1", 1), "with ec2:VpceSupportedRegion us-west-2"},
		{"no consumer permission", "    iam_policy:\n      - effect: Allow\n        action: [vpce:AllowMultiRegion]\n" + consumerAllow, "", "account consumer (444455556666) is not authorized"},
		{"the consumer's condition names another Region", consumerAllow, strings.Replace(consumerAllow, "us-east-1", "us-west-2", 1), "with ec2:VpceServiceRegion us-east-1"},
		{"an explicit deny", consumerAllow, consumerAllow + "      - effect: Deny\n        action: [\"vpce:*\"]\n", "account consumer (444455556666) is not authorized"},
		{"an opt-in Region the provider has not opted into", "  - {name: us-west-2, availability_zones: [usw2-az1, usw2-az2]}\n", "  - {name: us-west-2, availability_zones: [usw2-az1, usw2-az2], opt_in: true}\n", "opt-in Region that account provider"},
		{"an action pvlink does not evaluate", "action: [vpce:AllowMultiRegion]\n" + consumerAllow, "action: [ec2:CreateVpcEndpoint]\n" + consumerAllow, `action "ec2:CreateVpcEndpoint"`},
	} {
		text := strings.Replace(base, c.from, c.to, 1)
		if text == base {
			t.Fatalf("%s: the example changed", c.name)
		}
		err := applyTopology(&State{}, text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Opted in, the provider may offer the opt-in Region.
	optIn := strings.Replace(base, "  - {name: us-west-2, availability_zones: [usw2-az1, usw2-az2]}\n", "  - {name: us-west-2, availability_zones: [usw2-az1, usw2-az2], opt_in: true}\n", 1)
	optIn = strings.Replace(optIn, "    id: \"111122223333\"\n", "    id: \"111122223333\"\n    opted_in_regions: [us-west-2]\n", 1)
	s := &State{}
	if err := applyTopology(s, optIn); err != nil {
		t.Fatalf("the provider opted into us-west-2: %v", err)
	}
	// A consumer choosing an opt-in Region as its service Region must
	// have opted into it too.
	for i := range s.Accounts {
		if s.Accounts[i].Name == "consumer" {
			s.Accounts[i].IAMPolicy = []PolicyStatement{{Effect: "Allow", Action: []string{ActionAllowMultiRegion}}}
		}
	}
	if err := s.mayMultiRegion("444455556666", KeyServiceRegion, "us-west-2"); err == nil || !strings.Contains(err.Error(), "has not opted into") {
		t.Errorf("the consumer chose an opt-in Region it had not opted into: %v", err)
	}
	for i := range s.Accounts {
		if s.Accounts[i].Name == "consumer" {
			s.Accounts[i].OptedInRegions = []string{"us-west-2"}
		}
	}
	if err := s.mayMultiRegion("444455556666", KeyServiceRegion, "us-west-2"); err != nil {
		t.Errorf("opted in, allowed without conditions: %v", err)
	}
}

func TestCreateEndpointAcrossRegionsChecksThePermission(t *testing.T) {
	s := &State{}
	if err := applyTopology(s, twoRegions(t)); err != nil {
		t.Fatal(err)
	}
	var vpc VPCState
	for _, v := range s.VPCs {
		if v.Name == "consumer" {
			vpc = v
		}
	}
	req := EndpointRequest{VPCID: vpc.ID, ServiceName: s.Services[0].ServiceName, SubnetIDs: []string{vpc.Subnets[0].ID}, Region: "us-west-2", ServiceRegion: "us-east-1"}
	if _, err := s.Clone().CreateEndpoint("444455556666", req); err != nil {
		t.Fatalf("with the permission: %v", err)
	}
	for i := range s.Accounts {
		if s.Accounts[i].Name == "consumer" {
			s.Accounts[i].IAMPolicy = nil
		}
	}
	_, err := s.CreateEndpoint("444455556666", req)
	var ue *UnauthorizedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "vpce:AllowMultiRegion") {
		t.Errorf("without the permission: %v", err)
	}
	// A request made in us-east-1 does not see a VPC of us-west-2.
	if _, err := s.CreateEndpoint("444455556666", EndpointRequest{VPCID: vpc.ID, ServiceName: s.Services[0].ServiceName, SubnetIDs: []string{vpc.Subnets[0].ID}, Region: "us-east-1"}); err == nil {
		t.Error("a us-west-2 VPC's endpoint was made by a request in us-east-1")
	}
}
