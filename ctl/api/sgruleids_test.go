package api

import (
	"encoding/xml"
	"maps"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// groupRules lists group's rules through DescribeSecurityGroupRules.
func groupRules(t *testing.T, srv *httptest.Server, a ctl.Account, group string) []sgRule {
	t.Helper()
	out := callOK(t, srv.URL, a, "ec2", "Action=DescribeSecurityGroupRules&Version=2016-11-15&Filter.1.Name=group-id&Filter.1.Value.1="+group)
	var resp struct {
		Rules []sgRule `xml:"securityGroupRuleSet>item"`
	}
	if err := xml.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("DescribeSecurityGroupRules: %v: %s", err, out)
	}
	return resp.Rules
}

func ruleWithID(rules []sgRule, id string) (sgRule, bool) {
	i := slices.IndexFunc(rules, func(r sgRule) bool { return r.ID == id })
	if i < 0 {
		return sgRule{}, false
	}
	return rules[i], true
}

// ModifySecurityGroupRules changes a rule in place: it keeps its id (and
// its direction), takes the new protocol, ports, peer and description, and
// the forwarders' rules change with it. A rule added later with the old
// content gets an id of its own; a change that would duplicate another
// rule, name a rule the group has not, or send an outbound rule towards a
// group is refused and changes nothing.
func TestModifySecurityGroupRulesKeepsTheRuleID(t *testing.T) {
	b, srv, consumer, vpc, ec2 := consumerVPC(t)
	def := b.m.DefaultGroup(vpc.Name).ID
	web := createGroup(t, srv, consumer, vpc.ID, "web")
	out := callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80"+
		"&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24&IpPermissions.1.IpRanges.1.Description=old")
	id := between(out, "", "<securityGroupRuleId>", "<")
	if id == "" {
		t.Fatalf("Authorize named no rule: %s", out)
	}
	egressID := groupRules(t, srv, consumer, web)[1].ID // the default outbound rule
	forwarderRules := func() []snapshot.SGRule {
		g, _ := b.m.SecurityGroupByID(consumer.ID, web)
		return g.Ingress
	}

	callOK(t, srv.URL, consumer, "ec2", "Action=ModifySecurityGroupRules&Version=2016-11-15&GroupId="+web+
		"&SecurityGroupRule.1.SecurityGroupRuleId="+id+"&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=tcp"+
		"&SecurityGroupRule.1.SecurityGroupRule.FromPort=443&SecurityGroupRule.1.SecurityGroupRule.ToPort=443"+
		"&SecurityGroupRule.1.SecurityGroupRule.CidrIpv4=198.18.2.9/24&SecurityGroupRule.1.SecurityGroupRule.Description=new")
	rules := groupRules(t, srv, consumer, web)
	r, ok := ruleWithID(rules, id)
	if !ok || r.From != 443 || r.To != 443 || r.CIDRv4 != "198.18.2.0/24" || r.Description != "new" || r.IsEgress || len(rules) != 2 {
		t.Fatalf("after the change, rule %s is %+v (found %v) of %d rules", id, r, ok, len(rules))
	}
	want := []snapshot.SGRule{{Proto: 6, FromPort: 443, ToPort: 443, Source: netip.MustParsePrefix("198.18.2.0/24")}}
	if got := forwarderRules(); !slices.Equal(got, want) {
		t.Fatalf("the forwarders' rules: %v, want %v", got, want)
	}

	// The old content again: a rule of its own, with another id.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24")
	again := between(out, "", "<securityGroupRuleId>", "<")
	if again == "" || again == id {
		t.Fatalf("the re-added rule's id %q (the changed rule keeps %s): %s", again, id, out)
	}
	if n := len(groupRules(t, srv, consumer, web)); n != 3 {
		t.Fatalf("%d rules, want 3", n)
	}

	modify := func(ruleID, rule string) (int, string) {
		return ec2("Action=ModifySecurityGroupRules&GroupId=" + web + "&SecurityGroupRule.1.SecurityGroupRuleId=" + ruleID + "&" +
			strings.ReplaceAll(rule, "R.", "SecurityGroupRule.1.SecurityGroupRule."))
	}
	before := b.m.Clone()
	for _, c := range []struct{ why, id, rule, code string }{
		{"a duplicate of another rule", id, "R.IpProtocol=tcp&R.FromPort=80&R.ToPort=80&R.CidrIpv4=198.18.1.0/24", "InvalidPermission.Duplicate"},
		{"a rule the group has not", "sgr-0123456789abcdef0", "R.IpProtocol=tcp&R.FromPort=80&R.ToPort=80&R.CidrIpv4=10.0.0.0/8", "InvalidSecurityGroupRuleId.NotFound"},
		{"two peers", id, "R.IpProtocol=tcp&R.FromPort=1&R.ToPort=2&R.CidrIpv4=10.0.0.0/8&R.ReferencedGroupId=" + def, "InvalidParameter"},
		{"no peer", id, "R.IpProtocol=tcp&R.FromPort=1&R.ToPort=2", "InvalidParameter"},
		{"a prefix list the caller has not", id, "R.IpProtocol=tcp&R.FromPort=1&R.ToPort=2&R.PrefixListId=pl-1234", "InvalidPrefixListID.NotFound"},
		{"a group as a prefix list", id, "R.IpProtocol=tcp&R.FromPort=1&R.ToPort=2&R.PrefixListId=" + def, "InvalidPrefixListID.NotFound"},
		{"UDP, which no endpoint carries", id, "R.IpProtocol=udp&R.FromPort=53&R.ToPort=53&R.CidrIpv4=10.0.0.0/8", "InvalidParameter"},
		{"TCP without ports", id, "R.IpProtocol=tcp&R.CidrIpv4=10.0.0.0/8", "MissingParameter"},
		{"a source group of another VPC's", id, "R.IpProtocol=-1&R.ReferencedGroupId=sg-0000000000000000", "InvalidGroup.NotFound"},
	} {
		if status, out := modify(c.id, c.rule); status != 400 || !strings.Contains(out, "<Code>"+c.code+"</Code>") {
			t.Errorf("%s: %d %s, want 400 %s", c.why, status, out, c.code)
		}
	}
	if status, out := ec2("Action=ModifySecurityGroupRules&SecurityGroupRule.1.SecurityGroupRuleId=" + id + "&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=-1&SecurityGroupRule.1.SecurityGroupRule.CidrIpv4=10.0.0.0/8"); status != 400 || !strings.Contains(out, "<Code>MissingParameter</Code>") {
		t.Errorf("without GroupId: %d %s", status, out)
	}
	g0, _ := before.SecurityGroupByID(consumer.ID, web)
	if g1, _ := b.m.SecurityGroupByID(consumer.ID, web); !slices.Equal(g0.Ingress, g1.Ingress) || len(g1.FromGroups) != 0 || g1.EgressSet {
		t.Fatalf("refused changes changed the group: %+v, was %+v", g1, g0)
	}

	// A range's rule becomes a group's, and an outbound rule changes.
	callOK(t, srv.URL, consumer, "ec2", "Action=ModifySecurityGroupRules&Version=2016-11-15&GroupId="+web+
		"&SecurityGroupRule.1.SecurityGroupRuleId="+id+"&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=-1&SecurityGroupRule.1.SecurityGroupRule.ReferencedGroupId="+def+
		"&SecurityGroupRule.2.SecurityGroupRuleId="+egressID+"&SecurityGroupRule.2.SecurityGroupRule.IpProtocol=tcp"+
		"&SecurityGroupRule.2.SecurityGroupRule.FromPort=443&SecurityGroupRule.2.SecurityGroupRule.ToPort=443&SecurityGroupRule.2.SecurityGroupRule.CidrIpv6=fd00::/8")
	rules = groupRules(t, srv, consumer, web)
	if r, ok := ruleWithID(rules, id); !ok || r.Referenced == nil || r.Referenced.GroupID != def || r.Protocol != "-1" || r.Description != "" {
		t.Fatalf("rule %s after it named a group: %+v (found %v)", id, r, ok)
	}
	if r, ok := ruleWithID(rules, egressID); !ok || !r.IsEgress || r.CIDRv6 != "fd00::/8" || r.From != 443 {
		t.Fatalf("outbound rule %s after its change: %+v (found %v)", egressID, r, ok)
	}
	g, _ := b.m.SecurityGroupByID(consumer.ID, web)
	if len(g.Ingress) != 1 || len(g.FromGroups) != 1 || len(g.EgressRules()) != 1 || g.EgressRules()[0].Source.String() != "fd00::/8" {
		t.Fatalf("the group after both changes: %+v", g)
	}

	// Ids survive the store (the model is kept as JSON), and a revoke by
	// id takes the kept id along.
	if g, _ := b.m.Clone().SecurityGroupByID(consumer.ID, web); g.GroupRuleID(false, g.FromGroups[0]) != id {
		t.Fatalf("after a round trip through JSON the rule's id is %s, want %s", g.GroupRuleID(false, g.FromGroups[0]), id)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&SecurityGroupRuleId.1="+id)
	g, _ = b.m.SecurityGroupByID(consumer.ID, web)
	kept := slices.Collect(maps.Values(g.RuleIDs))
	if len(g.FromGroups) != 0 || slices.Contains(kept, id) || !slices.Contains(kept, again) || !slices.Contains(kept, egressID) || len(kept) != 2 {
		t.Fatalf("after the revoke: from groups %v, kept ids %v (%s and %s should be left)", g.FromGroups, g.RuleIDs, again, egressID)
	}
}

// An outbound rule may name a security group as its destination, as in
// EC2: listed with the group, revoked by id, changed in place, and keeping
// the group from being deleted. A load balancer's outbound rules reach the
// forwarders as ranges of the group's members: for a VPC's default group,
// its hosts, where the targets are.
func TestAnOutboundRuleToAGroupReachesItsMembers(t *testing.T) {
	b, srv := demoBackend(t)
	provider := account(b, "provider")
	vpc := b.m.VPCs[0]
	def := b.m.DefaultGroup(vpc.Name).ID
	nlb, peers := createGroup(t, srv, provider, vpc.ID, "nlb"), createGroup(t, srv, provider, vpc.ID, "peers")
	ec2 := func(body string) (int, string) {
		return call(t, srv.URL, provider, "ec2", "Version=2016-11-15&"+body, time.Now())
	}
	// Everything out goes; tcp/8080 to the default group's members and
	// tcp/9000 to peers' come.
	callOK(t, srv.URL, provider, "ec2", "Action=RevokeSecurityGroupEgress&Version=2016-11-15&GroupId="+nlb+"&IpPermissions.1.IpProtocol=-1&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0")
	out := callOK(t, srv.URL, provider, "ec2", "Action=AuthorizeSecurityGroupEgress&Version=2016-11-15&GroupId="+nlb+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=8080&IpPermissions.1.ToPort=8080&IpPermissions.1.Groups.1.GroupId="+def+"&IpPermissions.1.Groups.1.Description=targets"+
		"&IpPermissions.2.IpProtocol=tcp&IpPermissions.2.FromPort=9000&IpPermissions.2.ToPort=9000&IpPermissions.2.Groups.1.GroupId="+peers)
	if strings.Count(out, "<isEgress>true</isEgress>") != 2 || strings.Count(out, "<referencedGroupInfo>") != 2 {
		t.Fatalf("AuthorizeSecurityGroupEgress to groups: the rules it added: %s", out)
	}
	rules := groupRules(t, srv, provider, nlb)
	var toPeersID string
	for _, r := range rules {
		if r.Referenced != nil && r.Referenced.GroupID == peers {
			toPeersID = r.ID
		}
		if !r.IsEgress || r.Referenced == nil {
			t.Errorf("nlb's rules should all be outbound to groups now: %+v", r)
		}
	}
	out = callOK(t, srv.URL, provider, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1="+nlb)
	egress := between(out, "<ipPermissionsEgress>", "", "</ipPermissionsEgress>")
	if !strings.Contains(egress, "<groups><item><groupId>"+def+"</groupId><userId>"+provider.ID+"</userId><description>targets</description></item></groups>") {
		t.Fatalf("DescribeSecurityGroups' outbound permissions: %s", egress)
	}
	if status, out := ec2("Action=DeleteSecurityGroup&GroupId=" + peers); status != 400 || !strings.Contains(out, "<Code>DependencyViolation</Code>") {
		t.Fatalf("deleting a group an outbound rule names: %d %s", status, out)
	}

	// The load balancer's connections to targets leave by these rules:
	// to the VPC's range on 8080, to nowhere else (peers has no members).
	// (Set in the test's model: the demo's load balancer was made without
	// groups, and ELBv2 adds none to such a one.)
	b.m.LoadBalancers[0].SecurityGroups = []string{nlb}
	lbName := b.m.LoadBalancers[0].Name
	got := b.m.ForwarderConfig("use1-az1").LoadBalancers[lbName].Egress
	want := []snapshot.SGRule{{Proto: 6, FromPort: 8080, ToPort: 8080, Source: netip.MustParsePrefix(vpc.CIDR)}}
	if !slices.Equal(got, want) {
		t.Fatalf("the forwarders' outbound rules of %s: %v, want %v", lbName, got, want)
	}

	// Changed in place and revoked by id.
	callOK(t, srv.URL, provider, "ec2", "Action=ModifySecurityGroupRules&Version=2016-11-15&GroupId="+nlb+
		"&SecurityGroupRule.1.SecurityGroupRuleId="+toPeersID+"&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=tcp"+
		"&SecurityGroupRule.1.SecurityGroupRule.FromPort=9001&SecurityGroupRule.1.SecurityGroupRule.ToPort=9001&SecurityGroupRule.1.SecurityGroupRule.ReferencedGroupId="+peers)
	if r, ok := ruleWithID(groupRules(t, srv, provider, nlb), toPeersID); !ok || !r.IsEgress || r.From != 9001 || r.Referenced == nil || r.Referenced.GroupID != peers {
		t.Fatalf("the outbound rule to peers after its change: %+v (found %v)", r, ok)
	}
	if status, out := ec2("Action=RevokeSecurityGroupIngress&GroupId=" + nlb + "&SecurityGroupRuleId.1=" + toPeersID); status != 400 || !strings.Contains(out, "<Code>InvalidSecurityGroupRuleId.NotFound</Code>") {
		t.Fatalf("an outbound rule's id revoked as an inbound one: %d %s", status, out)
	}
	callOK(t, srv.URL, provider, "ec2", "Action=RevokeSecurityGroupEgress&Version=2016-11-15&GroupId="+nlb+"&SecurityGroupRuleId.1="+toPeersID)
	callOK(t, srv.URL, provider, "ec2", "Action=DeleteSecurityGroup&Version=2016-11-15&GroupId="+peers)
}
