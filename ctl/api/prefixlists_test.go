package api

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// A customer-managed prefix list is made, read at each of its versions,
// changed (each change of its entries a new version, refused when the
// caller names a stale one) and restored, as EC2 does; a security group
// rule that names it lets in its current ranges, so the forwarders' rules
// follow the list's changes; it is listed as a PrefixListId, revoked by its
// id, and keeps the list from being deleted.
func TestAPrefixListIsARulesPeerAndItsVersionsReachTheForwarders(t *testing.T) {
	b, srv, consumer, vpc, ec2 := consumerVPC(t)
	out := callOK(t, srv.URL, consumer, "ec2", "Action=CreateManagedPrefixList&Version=2016-11-15&PrefixListName=office&AddressFamily=IPv4&MaxEntries=3"+
		"&Entry.1.Cidr=198.18.7.0/24&Entry.1.Description=hq&Entry.2.Cidr=198.18.9.9/32"+
		"&TagSpecification.1.ResourceType=prefix-list&TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=net")
	pl := between(out, "", "<prefixListId>", "<")
	if !strings.HasPrefix(pl, "pl-") || !strings.Contains(out, "<version>1</version>") || !strings.Contains(out, "<state>create-complete</state>") ||
		!strings.Contains(out, "<prefixListArn>arn:aws:ec2:us-east-1:"+consumer.ID+":prefix-list/"+pl+"</prefixListArn>") || !strings.Contains(out, "<key>team</key>") {
		t.Fatalf("CreateManagedPrefixList: %s", out)
	}
	for _, bad := range []struct{ query, code string }{
		{"PrefixListName=v6&AddressFamily=IPv4&MaxEntries=2&Entry.1.Cidr=fd00::/64", "InvalidParameter"},
		{"PrefixListName=big&AddressFamily=IPv4&MaxEntries=1&Entry.1.Cidr=198.18.1.0/24&Entry.2.Cidr=198.18.2.0/24", "InvalidPrefixListModification"},
		{"PrefixListName=com.amazonaws.x&AddressFamily=IPv4&MaxEntries=1", "InvalidParameter"},
		{"PrefixListName=nosize&AddressFamily=IPv4", "MissingParameter"},
	} {
		if status, out := ec2("Action=CreateManagedPrefixList&" + bad.query); status != 400 || !strings.Contains(out, "<Code>"+bad.code+"</Code>") {
			t.Errorf("CreateManagedPrefixList %s: %d %s; want %s", bad.query, status, out, bad.code)
		}
	}

	// web lets in tcp/8080 from the list.
	web := createGroup(t, srv, consumer, vpc.ID, "web")
	out = callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=8080&IpPermissions.1.ToPort=8080"+
		"&IpPermissions.1.PrefixListIds.1.PrefixListId="+pl+"&IpPermissions.1.PrefixListIds.1.Description=offices")
	rule := between(out, "", "<securityGroupRuleId>", "<")
	if rule == "" || !strings.Contains(out, "<prefixListId>"+pl+"</prefixListId>") || strings.Contains(out, "referencedGroupInfo") {
		t.Fatalf("AuthorizeSecurityGroupIngress from a prefix list: %s", out)
	}
	if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=1&IpPermissions.1.ToPort=1&IpPermissions.1.Groups.1.GroupId=" + pl); status != 400 || !strings.Contains(out, "<Code>InvalidGroup.NotFound</Code>") {
		t.Errorf("a rule from the list named as a group: %d %s", status, out)
	}
	for _, peer := range []string{"pl-0000000000000000a", "sg-0000000000000000a"} {
		if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=1&IpPermissions.1.ToPort=1&IpPermissions.1.PrefixListIds.1.PrefixListId=" + peer); status != 400 || !strings.Contains(out, "<Code>InvalidPrefixListID.NotFound</Code>") {
			t.Errorf("a rule from %s as a prefix list: %d %s", peer, status, out)
		}
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&Filter.1.Name=ip-permission.prefix-list-id&Filter.1.Value.1="+pl)
	if !strings.Contains(out, "<groupId>"+web+"</groupId>") || !strings.Contains(out, "<prefixListIds><item><prefixListId>"+pl+"</prefixListId><description>offices</description></item></prefixListIds>") {
		t.Fatalf("DescribeSecurityGroups by the list: %s", out)
	}
	if r, ok := ruleWithID(groupRules(t, srv, consumer, web), rule); !ok || r.PrefixListID != pl || r.Description != "offices" {
		t.Fatalf("DescribeSecurityGroupRules: the rule is %+v (%v)", r, ok)
	}

	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId=" + vpc.ID + "&ServiceName=" + b.m.Services[0].ServiceName + "&SubnetId.1=" + vpc.Subnets[0].ID
	callOK(t, srv.URL, consumer, "ec2", create+"&SecurityGroupId.1="+web)
	eni := b.m.Endpoints[len(b.m.Endpoints)-1].ENIs[0]
	forwarderRules := func() []snapshot.SGRule {
		for _, e := range b.m.ForwarderConfig(eni.AZ).ENIs {
			if e.ID == eni.ID {
				return e.Ingress
			}
		}
		return nil
	}
	rules := func(cidrs ...string) []snapshot.SGRule {
		var out []snapshot.SGRule
		for _, c := range cidrs {
			out = append(out, snapshot.SGRule{Proto: 6, FromPort: 8080, ToPort: 8080, Source: netip.MustParsePrefix(c)})
		}
		return out
	}
	if got, want := forwarderRules(), rules("198.18.7.0/24", "198.18.9.9/32"); !slices.Equal(got, want) {
		t.Fatalf("the forwarder's rules: %v, want %v", got, want)
	}

	// Version 2: one range out, one in; a change naming version 1 again
	// is refused and changes nothing.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=ModifyManagedPrefixList&Version=2016-11-15&PrefixListId="+pl+"&CurrentVersion=1"+
		"&RemoveEntry.1.Cidr=198.18.9.9/32&AddEntry.1.Cidr=198.18.8.1/24&AddEntry.1.Description=lab")
	if !strings.Contains(out, "<version>2</version>") || !strings.Contains(out, "<state>modify-complete</state>") {
		t.Fatalf("ModifyManagedPrefixList: %s", out)
	}
	if got, want := forwarderRules(), rules("198.18.7.0/24", "198.18.8.0/24"); !slices.Equal(got, want) {
		t.Fatalf("the forwarder's rules after version 2: %v, want %v", got, want)
	}
	for _, bad := range []struct{ query, code string }{
		{"CurrentVersion=1&AddEntry.1.Cidr=198.18.10.0/24", "PrefixListVersionMismatch"},
		{"RemoveEntry.1.Cidr=198.18.99.0/24", "InvalidPrefixListModification"},
		{"AddEntry.1.Cidr=198.18.10.0/24&AddEntry.2.Cidr=198.18.11.0/24", "InvalidPrefixListModification"},
		{"AddEntry.1.Cidr=198.18.10.0/24&MaxEntries=5", "InvalidPrefixListModification"},
		{"MaxEntries=1", "InvalidPrefixListModification"},
		{"PrefixListName=com.amazonaws.office", "InvalidParameter"},
		{"RemoveEntry.1.Cidr=198.18.7.0/24&PrefixListName=com.amazonaws.office", "InvalidParameter"},
	} {
		if status, out := ec2("Action=ModifyManagedPrefixList&PrefixListId=" + pl + "&" + bad.query); status != 400 || !strings.Contains(out, "<Code>"+bad.code+"</Code>") {
			t.Errorf("ModifyManagedPrefixList %s: %d %s; want %s", bad.query, status, out, bad.code)
		}
	}
	if p, _ := b.m.PrefixListByID(consumer.ID, pl); p.Current().Version != 2 || p.MaxEntries != 3 {
		t.Fatalf("after the refused changes the list is %+v", p)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=GetManagedPrefixListEntries&Version=2016-11-15&PrefixListId="+pl+"&TargetVersion=1")
	if !strings.Contains(out, "<cidr>198.18.9.9/32</cidr>") || strings.Contains(out, "198.18.8.0/24") || !strings.Contains(out, "<description>hq</description>") {
		t.Fatalf("GetManagedPrefixListEntries at version 1: %s", out)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=GetManagedPrefixListAssociations&Version=2016-11-15&PrefixListId="+pl)
	if !strings.Contains(out, "<resourceId>"+web+"</resourceId>") {
		t.Fatalf("GetManagedPrefixListAssociations: %s", out)
	}
	// Pages as the model bounds them: 1 to 100 entries or lists, 5 to
	// 255 associations.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=GetManagedPrefixListEntries&Version=2016-11-15&PrefixListId="+pl+"&MaxResults=1")
	if strings.Count(out, "<cidr>") != 1 || !strings.Contains(out, "<nextToken>") {
		t.Fatalf("GetManagedPrefixListEntries MaxResults=1 of two entries: %s", out)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=DescribeManagedPrefixLists&Version=2016-11-15&MaxResults=1")
	for _, bad := range []string{
		"Action=DescribeManagedPrefixLists&Version=2016-11-15&MaxResults=101",
		"Action=GetManagedPrefixListEntries&Version=2016-11-15&PrefixListId=" + pl + "&MaxResults=101",
		"Action=GetManagedPrefixListAssociations&Version=2016-11-15&PrefixListId=" + pl + "&MaxResults=256",
		"Action=GetManagedPrefixListAssociations&Version=2016-11-15&PrefixListId=" + pl + "&MaxResults=4",
	} {
		if status, out := call(t, srv.URL, consumer, "ec2", bad, time.Now()); status != 400 || !strings.Contains(out, "<Code>InvalidParameterValue</Code>") {
			t.Errorf("%s: %d %s; want InvalidParameterValue", bad, status, out)
		}
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=GetManagedPrefixListAssociations&Version=2016-11-15&PrefixListId="+pl+"&MaxResults=255")

	// Version 3 restores version 1's entries.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=RestoreManagedPrefixListVersion&Version=2016-11-15&PrefixListId="+pl+"&PreviousVersion=1&CurrentVersion=2")
	if !strings.Contains(out, "<version>3</version>") || !strings.Contains(out, "<state>restore-complete</state>") {
		t.Fatalf("RestoreManagedPrefixListVersion: %s", out)
	}
	if got, want := forwarderRules(), rules("198.18.7.0/24", "198.18.9.9/32"); !slices.Equal(got, want) {
		t.Fatalf("the forwarder's rules after restoring version 1: %v, want %v", got, want)
	}

	// A rule changed in place to name the list keeps its id.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=9090&IpPermissions.1.ToPort=9090&IpPermissions.1.IpRanges.1.CidrIp=198.18.50.0/24")
	moved := between(out, "", "<securityGroupRuleId>", "<")
	callOK(t, srv.URL, consumer, "ec2", "Action=ModifySecurityGroupRules&Version=2016-11-15&GroupId="+web+"&SecurityGroupRule.1.SecurityGroupRuleId="+moved+
		"&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=tcp&SecurityGroupRule.1.SecurityGroupRule.FromPort=9090&SecurityGroupRule.1.SecurityGroupRule.ToPort=9090"+
		"&SecurityGroupRule.1.SecurityGroupRule.PrefixListId="+pl)
	if r, ok := ruleWithID(groupRules(t, srv, consumer, web), moved); !ok || r.PrefixListID != pl || r.CIDRv4 != "" {
		t.Fatalf("the rule changed to name the list: %+v (%v)", r, ok)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&SecurityGroupRuleId.1="+moved)

	// Another account neither sees the list nor may name it.
	provider := account(b, "provider")
	if st, out := call(t, srv.URL, provider, "ec2", "Action=DescribeManagedPrefixLists&Version=2016-11-15&PrefixListId.1="+pl, time.Now()); st != 400 || !strings.Contains(out, "<Code>InvalidPrefixListID.NotFound</Code>") {
		t.Fatalf("another account describes the list: %d %s", st, out)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeManagedPrefixLists&Version=2016-11-15&Filter.1.Name=prefix-list-name&Filter.1.Value.1=office")
	if !strings.Contains(out, "<prefixListId>"+pl+"</prefixListId>") || !strings.Contains(out, "<version>3</version>") || !strings.Contains(out, "<maxEntries>3</maxEntries>") {
		t.Fatalf("DescribeManagedPrefixLists by name: %s", out)
	}

	// Named by a rule, the list stays; once the rule is revoked by its id,
	// it goes.
	if status, out := ec2("Action=DeleteManagedPrefixList&PrefixListId=" + pl); status != 400 || !strings.Contains(out, "<Code>DependencyViolation</Code>") {
		t.Fatalf("DeleteManagedPrefixList of a list a rule names: %d %s", status, out)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&SecurityGroupRuleId.1="+rule)
	if got := forwarderRules(); len(got) != 0 {
		t.Fatalf("the forwarder's rules after the revoke: %v", got)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DeleteManagedPrefixList&Version=2016-11-15&PrefixListId="+pl)
	if !strings.Contains(out, "<state>delete-complete</state>") {
		t.Fatalf("DeleteManagedPrefixList: %s", out)
	}
	if _, ok := b.m.PrefixListByID(consumer.ID, pl); ok || len(b.m.Tags[pl]) != 0 {
		t.Fatalf("the deleted list is still there (or its tags are): %+v", b.m.Tags[pl])
	}
}
