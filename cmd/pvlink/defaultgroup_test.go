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
// A rule naming a managed prefix list lets in the list's ranges, version by
// version.
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

	// A group whose rule names a managed prefix list lets in the list's
	// ranges, and follows the list's versions.
	var pl struct {
		PrefixList struct {
			PrefixListId string
			Version      int
		}
	}
	consumer.do(&pl, "create-managed-prefix-list", "--prefix-list-name", "offices", "--address-family", "IPv4", "--max-entries", "4",
		"--entries", "Cidr="+outside+"/32,Description=the outside")
	var offices struct{ GroupId string }
	consumer.do(&offices, "create-security-group", "--vpc-id", e.VPCID, "--group-name", "offices", "--description", "from the offices list")
	consumer.do(nil, "authorize-security-group-ingress", "--group-id", offices.GroupId, "--ip-permissions",
		"IpProtocol=tcp,FromPort=80,ToPort=80,PrefixListIds=[{PrefixListId="+pl.PrefixList.PrefixListId+",Description=offices}]")
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--add-security-group-ids", offices.GroupId, "--remove-security-group-ids", web.GroupId)
	waitUntil(t, 3*time.Second, "the list's address let in", func() bool { return reachFrom(outside) })
	if reachFrom("") {
		t.Fatal("the VPC's host got in through a group whose one rule names a list without it")
	}
	var vpcs struct{ Vpcs []struct{ CidrBlock string } }
	consumer.do(&vpcs, "describe-vpcs", "--vpc-ids", e.VPCID)
	consumer.do(&pl, "modify-managed-prefix-list", "--prefix-list-id", pl.PrefixList.PrefixListId, "--current-version", "1",
		"--add-entries", "Cidr="+vpcs.Vpcs[0].CidrBlock+",Description=the VPC", "--remove-entries", "Cidr="+outside+"/32")
	if pl.PrefixList.Version != 2 {
		t.Fatalf("modify-managed-prefix-list answered version %d, want 2", pl.PrefixList.Version)
	}
	waitUntil(t, 3*time.Second, "the outside address refused by the list's version 2", func() bool { return !reachFrom(outside) })
	if !reachFrom("") {
		t.Fatal("the VPC's host, added to the list, was refused")
	}
	consumer.refused("PrefixListVersionMismatch", "modify-managed-prefix-list", "--prefix-list-id", pl.PrefixList.PrefixListId, "--current-version", "1",
		"--add-entries", "Cidr=198.19.0.0/16")
	var entries struct {
		Entries []struct{ Cidr, Description string }
	}
	consumer.do(&entries, "get-managed-prefix-list-entries", "--prefix-list-id", pl.PrefixList.PrefixListId, "--target-version", "1")
	if len(entries.Entries) != 1 || entries.Entries[0].Cidr != outside+"/32" || entries.Entries[0].Description != "the outside" {
		t.Fatalf("the list's entries at version 1: %+v", entries)
	}
	var named struct {
		SecurityGroups []struct {
			IpPermissions []struct {
				PrefixListIds []struct{ PrefixListId, Description string }
			}
		}
	}
	consumer.do(&named, "describe-security-groups", "--filters", "Name=ip-permission.prefix-list-id,Values="+pl.PrefixList.PrefixListId)
	if g := named.SecurityGroups; len(g) != 1 || len(g[0].IpPermissions) != 1 || len(g[0].IpPermissions[0].PrefixListIds) != 1 ||
		g[0].IpPermissions[0].PrefixListIds[0].Description != "offices" {
		t.Fatalf("the groups whose rules name the list: %+v", named)
	}
	consumer.refused("DependencyViolation", "delete-managed-prefix-list", "--prefix-list-id", pl.PrefixList.PrefixListId)
}
