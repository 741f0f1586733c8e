package main

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
)

// The demo's endpoint names no security group, so it has its VPC's default
// group: it takes traffic from the consumer VPC's range (the group's
// members) and from nowhere else, until a rule says so. A rule naming the
// default group as its source (the CLI's --source-group) lets in the same
// members; changed in place (modify-security-group-rules), it keeps its id.
func TestAnEndpointWithoutGroupsTakesTrafficFromItsVPCOnly(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := awsAs(t, f, "consumer")
	e := f.Status.Endpoints[0]
	eni := e.ENIs[0]

	// A second address of the consumer's namespace, outside its VPC's
	// 198.18.0.0/16: a source the default group does not know. (On the
	// ENI's TUN: ctld keeps lo to the VPC's own addresses.)
	const outside = "198.19.250.1"
	if err := nsenter.Do(eni.Netns, func() error {
		tun, err := netlink.LinkByName(eni.Tun)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(tun, &netlink.Addr{IPNet: netlink.NewIPNet(net.ParseIP(outside))})
	}); err != nil {
		t.Fatal(err)
	}
	reachFrom := func(src string) bool {
		dial := fabrictest.DialFrom(eni.Netns)
		if src != "" {
			dial = func(ctx context.Context, _, addr string) (net.Conn, error) {
				var conn net.Conn
				err := nsenter.Do(eni.Netns, func() (err error) {
					d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0))}
					conn, err = d.DialContext(ctx, "tcp4", addr)
					return err
				})
				return conn, err
			}
		}
		c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 700 * time.Millisecond, Dial: dial}
		_, err := c.Run(context.Background())
		return err == nil
	}

	var groups struct {
		SecurityGroups []struct{ GroupId, GroupName string }
	}
	consumer.do(&groups, "describe-security-groups", "--filters", "Name=vpc-id,Values="+e.VPCID, "Name=group-name,Values=default")
	if len(groups.SecurityGroups) != 1 || len(e.SecurityGroups) != 1 || e.SecurityGroups[0] != groups.SecurityGroups[0].GroupId {
		t.Fatalf("the consumer VPC's default groups %+v; the endpoint's groups %v", groups.SecurityGroups, e.SecurityGroups)
	}
	def := groups.SecurityGroups[0].GroupId
	consumer.refused("CannotDelete", "delete-security-group", "--group-id", def)

	if !reachFrom("") {
		t.Fatal("the endpoint refused its own VPC's host")
	}
	dropped := dropsFor(t, f, eni, "security_group")
	if reachFrom(outside) {
		t.Fatalf("the endpoint took traffic from %s, outside its VPC, under the default group", outside)
	}
	if n := dropsFor(t, f, eni, "security_group"); n <= dropped {
		t.Fatalf("no security_group drop counted for %s (%d before, %d after)", outside, dropped, n)
	}

	// Opening the default group to the outside address.
	consumer.do(nil, "authorize-security-group-ingress", "--group-id", def, "--protocol", "tcp", "--port", "80", "--cidr", outside+"/32")
	waitUntil(t, 3*time.Second, "the outside address let in", func() bool { return reachFrom(outside) })

	// A group whose one rule names the default group as its source takes
	// the default group's place: the VPC's host again, not the outside.
	var web struct{ GroupId string }
	consumer.do(&web, "create-security-group", "--vpc-id", e.VPCID, "--group-name", "web", "--description", "from the default group")
	var added struct {
		SecurityGroupRules []struct{ SecurityGroupRuleId string }
	}
	consumer.do(&added, "authorize-security-group-ingress", "--group-id", web.GroupId, "--protocol", "tcp", "--port", "80", "--source-group", def)
	if len(added.SecurityGroupRules) != 1 {
		t.Fatalf("authorize-security-group-ingress --source-group added %+v", added)
	}
	consumer.do(nil, "update-security-group-rule-descriptions-ingress", "--group-id", web.GroupId,
		"--security-group-rule-descriptions", "SecurityGroupRuleId="+added.SecurityGroupRules[0].SecurityGroupRuleId+",Description=hosts of the VPC")
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--add-security-group-ids", web.GroupId, "--remove-security-group-ids", def)
	waitUntil(t, 3*time.Second, "the outside address refused again", func() bool { return !reachFrom(outside) })
	if !reachFrom("") {
		t.Fatal("a rule from the default group did not let in the VPC's host")
	}
	var described struct {
		SecurityGroups []struct {
			IpPermissions []struct {
				FromPort         int
				UserIdGroupPairs []struct{ GroupId, UserId, Description string }
			}
		}
	}
	consumer.do(&described, "describe-security-groups", "--group-ids", web.GroupId)
	if p := described.SecurityGroups[0].IpPermissions; len(p) != 1 || p[0].FromPort != 80 || len(p[0].UserIdGroupPairs) != 1 || p[0].UserIdGroupPairs[0].GroupId != def ||
		p[0].UserIdGroupPairs[0].UserId != "444455556666" || p[0].UserIdGroupPairs[0].Description != "hosts of the VPC" {
		t.Fatalf("web's rule as described: %+v", described)
	}

	// The same rule changed in place: it keeps its id and now lets in the
	// outside address, and not the VPC's host.
	ruleID := added.SecurityGroupRules[0].SecurityGroupRuleId
	consumer.do(nil, "modify-security-group-rules", "--group-id", web.GroupId, "--security-group-rules",
		"SecurityGroupRuleId="+ruleID+",SecurityGroupRule={IpProtocol=tcp,FromPort=80,ToPort=80,CidrIpv4="+outside+"/32,Description=the outside}")
	waitUntil(t, 3*time.Second, "the outside address let in by the changed rule", func() bool { return reachFrom(outside) })
	if reachFrom("") {
		t.Fatal("the VPC's host still got in after the rule that let it in was changed")
	}
	var rules struct {
		SecurityGroupRules []struct {
			SecurityGroupRuleId, CidrIpv4, Description string
			IsEgress                                   bool
		}
	}
	consumer.do(&rules, "describe-security-group-rules", "--security-group-rule-ids", ruleID)
	if r := rules.SecurityGroupRules; len(r) != 1 || r[0].CidrIpv4 != outside+"/32" || r[0].Description != "the outside" || r[0].IsEgress {
		t.Fatalf("rule %s after modify-security-group-rules: %+v", ruleID, rules)
	}
}
