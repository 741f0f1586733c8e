package ctl

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func demoTopology(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDemoTopologyIsValid(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", demoTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	if topo.Name != "demo" || len(topo.Zones) != 2 || len(topo.Endpoints) != 1 {
		t.Fatalf("unexpected topology: %+v", topo)
	}
	// Defaults: the namespace's own address is the first one AWS does not
	// reserve.
	if got := topo.VPCs[0].Subnets[0].HostIP; got != "198.19.1.4" {
		t.Errorf("host_ip default = %s, want 198.19.1.4", got)
	}
}

// TestBadTopologyIsRefusedWithFileLineAndField edits one line of the demo
// file at a time and checks the error names the file, the line and the field.
func TestBadTopologyIsRefusedWithFileLineAndField(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           string
	}{
		{"unknown field", "    protocol: TCP\n    port: 8080", "    protocl: TCP\n    port: 8080", "field protocl not found"},
		{"bad cidr", "cidr: 198.19.0.0/16", "cidr: 198.19.0.0/33", "vpcs[0].cidr"},
		{"subnet outside vpc", "cidr: 198.19.2.0/24", "cidr: 198.20.2.0/24", "is not inside the VPC's 198.19.0.0/16"},
		{"zone not listed", "{name: consumer-az2, availability_zone: use1-az2", "{name: consumer-az2, availability_zone: use1-az9", `"use1-az9" is not one of availability_zones`},
		{"udp listener", "{protocol: TCP, port: 80, target_group: web}", "{protocol: UDP, port: 80, target_group: web}", "PrivateLink does not support UDP"},
		{"tls listener", "{protocol: TCP, port: 80, target_group: web}", "{protocol: TLS, port: 80, target_group: web}", "do not terminate TLS"},
		{"two ENIs in one zone", "{subnet: consumer-az2, ipv4: 198.18.2.10}", "{subnet: consumer-az2, ipv4: 198.18.2.10}\n      - {subnet: consumer-az1, ipv4: 198.18.1.10}", "an endpoint takes one subnet per availability zone"},
		{"two endpoints on one address", "    subnet_configurations:\n      - {subnet: consumer-az1, ipv4: 198.18.1.10}\n      - {subnet: consumer-az2, ipv4: 198.18.2.10}\n", "    subnet_configurations:\n      - {subnet: consumer-az1, ipv4: 198.18.1.10}\n      - {subnet: consumer-az2, ipv4: 198.18.2.10}\n  - name: web2\n    vpc: consumer\n    service: web\n    subnet_configurations:\n      - {subnet: consumer-az1, ipv4: 198.18.1.10}\n", "address clash: 198.18.1.10 is already used by the ENI of endpoint web"},
		{"eni address reserved", "{subnet: consumer-az1, ipv4: 198.18.1.10}", "{subnet: consumer-az1, ipv4: 198.18.1.2}", "is reserved"},
		{"eni outside subnet", "{subnet: consumer-az2, ipv4: 198.18.2.10}", "{subnet: consumer-az2, ipv4: 198.18.1.11}", "not inside subnet consumer-az2"},
		{"node address clash with target", "private_ipv4_address: 198.19.1.5}", "private_ipv4_address: 198.19.1.10}", "address clash: 198.19.1.10 is already used by the target"},
		{"unknown target group", "target_group: web}", "target_group: api}", `target group "api" is not defined`},
		{"service in no shared zone", "      - {subnet: provider-az2, private_ipv4_address: 198.19.2.5}\n", "", "service web is not available in use1-az2"},
		{"duplicate vpc", "  - name: consumer\n    account: consumer", "  - name: provider\n    account: consumer", "VPC provider is defined twice"},
		{"bad account id", `id: "444455556666"`, `id: "44445555666"`, `accounts[1].id: "44445555666" is not an AWS account id (12 digits)`},
		{"unknown account", "    account: consumer\n", "    account: customer\n", `vpcs[1].account: account "customer" is not defined`},
		{"bad principal", `allowed_principals: ["arn:aws:iam::444455556666:root"]`, `allowed_principals: ["444455556666"]`, `endpoint_services[0].allowed_principals[0]: "444455556666" is not a principal ARN`},
		{"one server, two proxy settings", "load_balancers:\n", "  - name: web2\n    vpc: provider\n    port: 8080\n    proxy_protocol_v2: false\n    targets: [{ip: 198.19.1.10}]\n\nload_balancers:\n", "differs on proxy_protocol_v2"},
		{"idle timeout beyond the NLB's", "    port: 8080\n", "    port: 8080\n    idle_timeout: 7000s\n", "target_groups[0].idle_timeout: 1h56m40s is outside 1s-1h40m0s"},
		{"listener idle timeout beyond the NLB's", "{protocol: TCP, port: 80, target_group: web}", "{protocol: TCP, port: 80, target_group: web, idle_timeout: 7000s}", "load_balancers[0].listeners[0].idle_timeout: 1h56m40s is outside 1s-6000s"},
		{"health check interval too short", "    port: 8080\n", "    port: 8080\n    health_check: {interval: 1ms}\n", "target_groups[0].health_check.interval: 1ms is outside"},
		{"not yaml", "name: demo", "name: [demo", "did not find expected"},
		{"bad name", "name: demo", "name: Demo_1", "is not a valid name"},
		{"ipv6 service on an ipv4 load balancer", "    load_balancers: [web-nlb]\n", "    load_balancers: [web-nlb]\n    supported_ip_address_types: [ipv4, ipv6]\n", "a service supports IPv6 only if its load balancers are dualstack; web-nlb is ipv4"},
		{"too many workers", "region: us-east-1\n", "region: us-east-1\nforwarder_workers: 17\n", "forwarder_workers: 17: use 1 to 16"},
		{"bad outbound rule", "load_balancers:\n", "security_groups:\n  - name: out\n    vpc: provider\n    egress:\n      - {ip_protocol: tcp, from_port: 80, to_port: 80, cidr_ipv4: bogus}\n\nload_balancers:\n", `security_groups[0].egress[0].cidr_ipv4: "bogus" is not an IPv4 CIDR block`},
		{"security group named default", "load_balancers:\n", "security_groups:\n  - vpc: provider\n    ingress: []\n    name: default\n\nload_balancers:\n", `security_groups[0].name: "default" is the name of every VPC's default group`},
	}
	base := string(demoTopology(t))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("demo.yaml no longer contains %q", tc.old)
			}
			edited := strings.Replace(base, tc.old, tc.new, 1)
			_, err := ParseTopology("bad.yaml", []byte(edited))
			if err == nil {
				t.Fatal("accepted")
			}
			var te *TopologyError
			if !errors.As(err, &te) {
				t.Fatalf("error is %T, want *TopologyError: %v", err, err)
			}
			if te.File != "bad.yaml" || te.Line == 0 {
				t.Errorf("error %q lacks file and line", err)
			}
			// The error points at the line that was changed (or, for a
			// removal, near it).
			changed := strings.Count(edited[:strings.Index(edited, tc.new)+len(tc.new)], "\n") + 1
			if tc.new != "" && te.Line > changed || te.Line < changed-3 {
				t.Errorf("error at line %d, edit was at line %d: %v", te.Line, changed, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestPlanGivesEachAZItsENIsAndNode(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", demoTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	s := Plan(topo)
	if got := s.ForwarderZones(); len(got) != 2 || got[0] != "use1-az1" || got[1] != "use1-az2" {
		t.Fatalf("zones = %v", got)
	}
	for _, az := range s.ForwarderZones() {
		cfg := s.ForwarderConfig(az)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", az, err)
		}
		if len(cfg.ENIs) != 1 || cfg.ENIs[0].Netns != "pvl-demo-consumer" || len(cfg.ENIs[0].Tun) > 15 {
			t.Fatalf("%s: ENIs %+v", az, cfg.ENIs)
		}
		lb := cfg.LoadBalancers["web-nlb"]
		want := map[string]string{"use1-az1": "198.19.1.5", "use1-az2": "198.19.2.5"}[az]
		if lb.NodeIP.String() != want || lb.Netns != "pvl-demo-provider" {
			t.Errorf("%s: node %+v, want %s", az, lb, want)
		}
		if l := cfg.ENIs[0].Listeners; len(l) != 1 || l[0].Port != 80 || l[0].TargetGroup != "web" {
			t.Errorf("%s: listeners %+v", az, l)
		}
		if tg := cfg.TargetGroups["web"]; len(tg.Targets) != 2 {
			t.Errorf("%s: targets %+v", az, tg.Targets)
		}
	}
	e := s.Endpoints[0]
	if !strings.HasPrefix(e.ID, "vpce-") || len(e.ID) != len("vpce-")+17 || !strings.HasPrefix(e.Service, "com.amazonaws.vpce.us-east-1.vpce-svc-") {
		t.Errorf("ids: %s %s", e.ID, e.Service)
	}
}
