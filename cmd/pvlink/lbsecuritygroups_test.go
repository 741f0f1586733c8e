package main

import (
	"bufio"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// guardedTopology is the demo whose load balancer has a security group
// that lets in 10.0.0.0/8 on port 80 only: a provider that named only its
// own test addresses, not the consumer's 198.18.0.0/16.
func guardedTopology(t *testing.T) string {
	t.Helper()
	topo := demoTopology(t)
	lb := "      - {protocol: TCP, port: 80, target_group: web}\n"
	guarded := strings.Replace(topo, lb, lb+"    security_groups: [nlb-sg]\n", 1)
	const pp = "    proxy_protocol_v2: true\n"
	guarded = strings.Replace(guarded, pp, pp+"    health_check: {interval: 200ms, timeout: 150ms, healthy_threshold: 2, unhealthy_threshold: 2}\n", 1)
	if guarded == topo || !strings.Contains(guarded, "interval: 200ms") {
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

// The silent PrivateLink failure of a provider whose load balancer's
// security group does not name the consumer: the consumer's SYNs vanish,
// counted; with enforcement off on PrivateLink traffic, or a rule for the
// consumer's range, they get through.
func TestALoadBalancersSecurityGroupsDropAConsumerTheirRulesDoNotName(t *testing.T) {
	f := fabrictest.Up(t, guardedTopology(t))
	eni := f.Status.Endpoints[0].ENIs[0]
	provider := awsAs(t, f, "provider")
	var lbs struct {
		LoadBalancers []struct {
			LoadBalancerArn string
			SecurityGroups  []string
		}
	}
	provider.elb().do(&lbs, "describe-load-balancers")
	if len(lbs.LoadBalancers) != 1 || len(lbs.LoadBalancers[0].SecurityGroups) != 1 {
		t.Fatalf("describe-load-balancers: %+v", lbs)
	}
	lb := lbs.LoadBalancers[0]
	sg := lb.SecurityGroups[0]
	// Debian's AWS CLI predates EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic
	// (it neither sends nor shows it): those calls are made signed with
	// the SDK's signer, their XML read as it is.
	elb := func(params url.Values) string {
		t.Helper()
		params.Set("Version", "2015-12-01")
		code, out := signedServiceCall(t, provider.url, provider.account, provider.region, "elasticloadbalancing", params.Encode())
		if code != 200 {
			t.Fatalf("%s: %d\n%s", params.Get("Action"), code, out)
		}
		return out
	}
	if out := elb(url.Values{"Action": {"DescribeLoadBalancers"}}); !strings.Contains(out, "<EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic>on<") {
		t.Fatalf("DescribeLoadBalancers does not show enforcement on:\n%s", out)
	}

	// A connection made says the SYN got through: the filter drops SYNs.
	connects := func() bool {
		ctx, cancel := contextWithTimeout(time.Second)
		defer cancel()
		c, err := fabrictest.DialFrom(eni.Netns)(ctx, "tcp", net.JoinHostPort(eni.IP, "80"))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	before := dropsFor(t, f, eni, "lb_security_group")
	if connects() {
		t.Fatal("a consumer the load balancer's rules do not name got through")
	}
	if after := dropsFor(t, f, eni, "lb_security_group"); after <= before {
		t.Fatalf("lb_security_group drops %d, then %d: the SYNs were not counted", before, after)
	}
	// Enforcement off on PrivateLink traffic.
	enforce := func(v string) {
		t.Helper()
		out := elb(url.Values{"Action": {"SetSecurityGroups"}, "LoadBalancerArn": {lb.LoadBalancerArn},
			"SecurityGroups.member.1": {sg}, "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": {v}})
		if !strings.Contains(out, "<EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic>"+v+"<") || !strings.Contains(out, sg) {
			t.Fatalf("SetSecurityGroups enforce %s:\n%s", v, out)
		}
	}
	enforce("off")
	waitUntil(t, 5*time.Second, "the consumer through with enforcement off", func() bool { return connects() })
	if status := pvlink(t, "fabric", "status", f.Name); !strings.Contains(status, "1 (PrivateLink off)") {
		t.Fatalf("fabric status does not show the load balancer's group and enforcement off:\n%s", status)
	}
	enforce("on")
	waitUntil(t, 5*time.Second, "the consumer dropped again", func() bool { return !connects() })
	// The provider names the consumer's range in its group.
	provider.do(nil, "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.0.0/16")
	waitUntil(t, 5*time.Second, "the consumer through by a rule", func() bool { return connects() })

	// Stateful: with the rule revoked, a connection made under it carries
	// on (a tracked flow); a new one is dropped.
	ctx, cancel := contextWithTimeout(time.Second)
	held, err := fabrictest.DialFrom(eni.Netns)(ctx, "tcp", net.JoinHostPort(eni.IP, "80"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := bufio.NewReader(held)
	echo := func(line string) bool {
		held.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := held.Write([]byte(line)); err != nil {
			return false
		}
		got, err := r.ReadString('\n')
		return err == nil && got == line
	}
	held.Write([]byte("hello\n"))
	held.SetReadDeadline(time.Now().Add(2 * time.Second))
	if report, err := r.ReadString('\n'); err != nil || !strings.Contains(report, `"target":"web"`) {
		t.Fatalf("the target's report: %q %v", report, err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("the echo: %q %v", line, err)
	}
	provider.do(nil, "revoke-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.0.0/16")
	waitUntil(t, 5*time.Second, "new connections dropped again", func() bool { return !connects() })
	if !echo("still there\n") {
		t.Fatal("a connection made under the revoked rule stopped carrying")
	}
	held.Close()
	provider.do(nil, "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.0.0/16")
	waitUntil(t, 5*time.Second, "the consumer through by the rule again", func() bool { return connects() })
	provider.refused("DependencyViolation", "delete-security-group", "--group-id", sg)

	// Outbound: the load balancer's connections to targets and its health
	// checks leave by its groups' outbound rules. Without EC2's default
	// rule nothing leaves: the targets fail their checks and a connection
	// gets no answer; a rule for the targets' port brings both back.
	var groups struct {
		SecurityGroups []struct {
			IpPermissionsEgress []struct {
				IpProtocol string
				IpRanges   []struct{ CidrIp string }
			}
		}
	}
	provider.do(&groups, "describe-security-groups", "--group-ids", sg)
	if e := groups.SecurityGroups[0].IpPermissionsEgress; len(e) != 1 || e[0].IpProtocol != "-1" || e[0].IpRanges[0].CidrIp != "0.0.0.0/0" {
		t.Fatalf("a group's outbound rules before any change: %+v", groups)
	}
	target := f.Status.Targets[0].IP + ":" + strconv.Itoa(f.Status.Targets[0].Port)
	provider.do(nil, "revoke-security-group-egress", "--group-id", sg, "--ip-permissions", "IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]")
	waitUntil(t, 5*time.Second, "the targets unhealthy with nothing let out", func() bool { return targetState(t, f, target) == "unhealthy" })
	if connects() {
		t.Fatal("a connection was answered with no outbound rule to its target")
	}
	provider.do(nil, "authorize-security-group-egress", "--group-id", sg, "--ip-permissions", "IpProtocol=tcp,FromPort=8080,ToPort=8080,IpRanges=[{CidrIp=198.19.0.0/16}]")
	waitUntil(t, 5*time.Second, "the targets healthy again", func() bool { return targetState(t, f, target) == "healthy" })
	waitUntil(t, 5*time.Second, "the consumer through again", func() bool { return connects() })
	provider.elb().refused("InvalidSecurityGroup", "set-security-groups", "--load-balancer-arn", lb.LoadBalancerArn, "--security-groups", "sg-0123456789abcdef0")
}
