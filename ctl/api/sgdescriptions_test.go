package api

import (
	"strings"
	"testing"
)

// A rule's description is kept from its Authorize, listed where EC2 lists
// it, changed by UpdateSecurityGroupRuleDescriptions (by permission or by
// rule id, for a rule the group has), and goes with the rule.
func TestSecurityGroupRuleDescriptionsAreKeptListedAndUpdated(t *testing.T) {
	b, srv, consumer, vpc, ec2 := consumerVPC(t)
	def := b.m.DefaultGroup(vpc.Name).ID
	web := createGroup(t, srv, consumer, vpc.ID, "web")
	perm := "IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80"
	callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&"+perm+
		"&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.7/24&IpPermissions.1.IpRanges.1.Description=az1+hosts"+
		"&IpPermissions.1.Groups.1.GroupId="+def+"&IpPermissions.1.Groups.1.Description=the+default+group")

	out := callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1="+web)
	for _, want := range []string{"<cidrIp>198.18.1.0/24</cidrIp><description>az1 hosts</description>", "<userId>" + consumer.ID + "</userId><description>the default group</description>"} {
		if !strings.Contains(out, want) {
			t.Fatalf("DescribeSecurityGroups lacks %s: %s", want, out)
		}
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroupRules&Version=2016-11-15&Filter.1.Name=group-id&Filter.1.Value.1="+web)
	var fromDefault string
	for _, item := range strings.Split(out, "<item>")[1:] {
		if strings.Contains(item, "<referencedGroupInfo>") {
			fromDefault = between(item, "", "<securityGroupRuleId>", "<")
			if !strings.Contains(item, "<description>the default group</description>") {
				t.Fatalf("DescribeSecurityGroupRules: the rule from the default group has no description: %s", item)
			}
		}
	}

	// By permission, and by rule id.
	callOK(t, srv.URL, consumer, "ec2", "Action=UpdateSecurityGroupRuleDescriptionsIngress&Version=2016-11-15&GroupId="+web+"&"+perm+
		"&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24&IpPermissions.1.IpRanges.1.Description=az1+again")
	callOK(t, srv.URL, consumer, "ec2", "Action=UpdateSecurityGroupRuleDescriptionsIngress&Version=2016-11-15&GroupId="+web+
		"&SecurityGroupRuleDescription.1.SecurityGroupRuleId="+fromDefault+"&SecurityGroupRuleDescription.1.Description=renamed")
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1="+web)
	if !strings.Contains(out, "<description>az1 again</description>") || !strings.Contains(out, "<description>renamed</description>") || strings.Contains(out, "az1 hosts") {
		t.Fatalf("after the updates: %s", out)
	}
	// The default outbound rule takes one too.
	callOK(t, srv.URL, consumer, "ec2", "Action=UpdateSecurityGroupRuleDescriptionsEgress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=-1&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0&IpPermissions.1.IpRanges.1.Description=anywhere")
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1="+web)
	if !strings.Contains(between(out, "<ipPermissionsEgress>", "", "</ipPermissionsEgress>"), "<description>anywhere</description>") {
		t.Fatalf("the outbound rule's description: %s", out)
	}

	if status, out := ec2("Action=UpdateSecurityGroupRuleDescriptionsIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=81&IpPermissions.1.ToPort=81&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24&IpPermissions.1.IpRanges.1.Description=x"); status != 400 || !strings.Contains(out, "<Code>InvalidPermission.NotFound</Code>") {
		t.Fatalf("a description for a rule the group has not: %d %s", status, out)
	}
	if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&" + perm + "&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8&IpPermissions.1.IpRanges.1.Description=" + strings.Repeat("x", 256)); status != 400 || !strings.Contains(out, "at most 255") {
		t.Fatalf("a 256-character description: %d %s", status, out)
	}

	// Revoked, the rules take their descriptions along.
	callOK(t, srv.URL, consumer, "ec2", "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&"+perm+
		"&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24&IpPermissions.1.Groups.1.GroupId="+def)
	if g, _ := b.m.SecurityGroupByID(consumer.ID, web); len(g.Descriptions) != 1 {
		t.Fatalf("after revoking both inbound rules, descriptions kept: %v (only the outbound rule's should be)", g.Descriptions)
	}
}
