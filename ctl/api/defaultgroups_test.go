package api

import (
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// consumerVPC is the demo through the API as its consumer sees it: the
// backend, the server, the consumer's account, its VPC, and an EC2 call of
// its (status and body).
func consumerVPC(t *testing.T) (*memBackend, *httptest.Server, ctl.Account, ctl.VPCState, func(string) (int, string)) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	return b, srv, consumer, b.m.VPCs[1], func(body string) (int, string) {
		return call(t, srv.URL, consumer, "ec2", "Version=2016-11-15&"+body, time.Now())
	}
}

// createGroup makes a security group named name in VPC vpcID and returns
// its id.
func createGroup(t *testing.T, srv *httptest.Server, a ctl.Account, vpcID, name string) string {
	t.Helper()
	out := callOK(t, srv.URL, a, "ec2", "Action=CreateSecurityGroup&Version=2016-11-15&GroupName="+name+"&GroupDescription="+name+"&VpcId="+vpcID)
	return between(out, "", "<groupId>", "<")
}

// between is the text of out between the first from after the first
// after, and the next to ("" if there is none).
func between(out, after, from, to string) string {
	i := strings.Index(out, after)
	if i < 0 {
		return ""
	}
	out = out[i:]
	j := strings.Index(out, from)
	if j < 0 {
		return ""
	}
	out = out[j+len(from):]
	if k := strings.Index(out, to); k >= 0 {
		return out[:k]
	}
	return ""
}

// Every VPC has a default group, as EC2 makes it: named default, all
// traffic in from its own members, everything out. It cannot be deleted
// or named again, goes with its VPC, and an endpoint made without groups
// gets it.
func TestEveryVPCHasADefaultSecurityGroupThatEndpointsGetByDefault(t *testing.T) {
	b, srv, consumer, vpc, ec2 := consumerVPC(t)

	out := callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1="+vpc.ID+"&Filter.2.Name=group-name&Filter.2.Value.1=default")
	if n := strings.Count(out, "<groupName>default</groupName>"); n != 1 {
		t.Fatalf("the consumer VPC's default groups: %d, want 1: %s", n, out)
	}
	id := between(out, "<securityGroupInfo>", "<groupId>", "<")
	perm := between(out, "<ipPermissions>", "<item>", "</ipPermissions>")
	if !strings.Contains(perm, "<ipProtocol>-1</ipProtocol>") || !strings.Contains(perm, "<groups><item><groupId>"+id+"</groupId><userId>"+consumer.ID+"</userId></item></groups>") {
		t.Fatalf("the default group's inbound rule is not all traffic from itself: %s", out)
	}
	if !strings.Contains(between(out, "<ipPermissionsEgress>", "", "</ipPermissionsEgress>"), "<cidrIp>0.0.0.0/0</cidrIp>") {
		t.Fatalf("the default group's outbound rule is not everything: %s", out)
	}
	if e := b.m.Endpoints[0]; !slices.Equal(e.SecurityGroups, []string{id}) {
		t.Fatalf("the demo's endpoint (made without groups) has %v, want the default group %s", e.SecurityGroups, id)
	}

	if status, out := ec2("Action=DeleteSecurityGroup&GroupId=" + id); status != 400 || !strings.Contains(out, "<Code>CannotDelete</Code>") {
		t.Fatalf("DeleteSecurityGroup of the default group: %d %s", status, out)
	}
	if status, out := ec2("Action=CreateSecurityGroup&GroupName=default&GroupDescription=mine&VpcId=" + vpc.ID); status != 400 || !strings.Contains(out, "reserved") {
		t.Fatalf("CreateSecurityGroup named default: %d %s", status, out)
	}
	// A fabric has no default VPC: a group is not found by its name alone
	// (EC2 looks such names up in the default VPC), nor made without one.
	for _, body := range []string{"Action=DescribeSecurityGroups&GroupName.1=default", "Action=DeleteSecurityGroup&GroupName=default",
		"Action=AuthorizeSecurityGroupIngress&GroupName=default&IpPermissions.1.IpProtocol=-1&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8"} {
		if status, out := ec2(body); status != 400 || !strings.Contains(out, "<Code>InvalidGroup.NotFound</Code>") || !strings.Contains(out, "default VPC") {
			t.Fatalf("%s: %d %s", body, status, out)
		}
	}
	if status, out := ec2("Action=CreateSecurityGroup&GroupName=app&GroupDescription=app"); status != 400 || !strings.Contains(out, "<Code>VPCIdNotSpecified</Code>") {
		t.Fatalf("CreateSecurityGroup without a VPC: %d %s", status, out)
	}

	// An endpoint made through the API without groups gets the default one.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId="+vpc.ID+"&ServiceName="+b.m.Services[0].ServiceName+"&SubnetId.1="+vpc.Subnets[0].ID)
	if g := between(out, "<groupSet>", "<groupId>", "<"); g != id || !strings.Contains(out, "<groupName>default</groupName>") {
		t.Fatalf("CreateVpcEndpoint without groups: group %q, want %s: %s", g, id, out)
	}
	// It keeps a group: the last one goes only as another comes.
	endpoint := between(out, "<vpcEndpoint>", "<vpcEndpointId>", "<")
	if status, out := ec2("Action=ModifyVpcEndpoint&VpcEndpointId=" + endpoint + "&RemoveSecurityGroupId.1=" + id); status != 400 || !strings.Contains(out, "at least one security group") {
		t.Fatalf("ModifyVpcEndpoint removing its last group: %d %s", status, out)
	}

	// A new VPC has its own; a group of its own keeps it from being
	// deleted; deleting it takes its default group.
	out = callOK(t, srv.URL, consumer, "ec2", "Action=CreateVpc&Version=2016-11-15&CidrBlock=198.18.0.0/20")
	newVPC := between(out, "<vpc>", "<vpcId>", "<")
	def := b.m.DefaultGroup(b.m.VPCs[len(b.m.VPCs)-1].Name)
	if def == nil || def.OwnerID != consumer.ID {
		t.Fatalf("CreateVpc made no default group of the caller's: %+v", def)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=CreateSecurityGroup&Version=2016-11-15&GroupName=app&GroupDescription=app&VpcId="+newVPC)
	app := between(out, "", "<groupId>", "<")
	if status, out := ec2("Action=DeleteVpc&VpcId=" + newVPC); status != 400 || !strings.Contains(out, "<Code>DependencyViolation</Code>") {
		t.Fatalf("DeleteVpc with a group of its own: %d %s", status, out)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=DeleteSecurityGroup&Version=2016-11-15&GroupId="+app)
	callOK(t, srv.URL, consumer, "ec2", "Action=DeleteVpc&Version=2016-11-15&VpcId="+newVPC)
	if slices.ContainsFunc(b.m.SecurityGroups, func(g ctl.SecurityGroupState) bool { return g.ID == def.ID }) {
		t.Fatalf("the deleted VPC's default group %s stayed", def.ID)
	}
}

// A rule may name a security group as its source: it is listed as EC2
// lists one, lets in the group's members (a VPC's hosts for its default
// group, the ENIs of the endpoints the group is on), is revoked by its
// id, and keeps the group it names from being deleted.
func TestARuleFromASecurityGroupLetsInItsMembers(t *testing.T) {
	b, srv, consumer, vpc, ec2 := consumerVPC(t)
	def := b.m.DefaultGroup(vpc.Name).ID
	web, peers := createGroup(t, srv, consumer, vpc.ID, "web"), createGroup(t, srv, consumer, vpc.ID, "peers")

	// web lets in tcp/80 from the default group's members and tcp/443
	// from peers'.
	out := callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.Groups.1.GroupId="+def+
		"&IpPermissions.2.IpProtocol=tcp&IpPermissions.2.FromPort=443&IpPermissions.2.ToPort=443&IpPermissions.2.Groups.1.GroupId="+peers)
	if strings.Count(out, "<referencedGroupInfo>") != 2 || !strings.Contains(out, "<referencedGroupInfo><groupId>"+def+"</groupId><userId>"+consumer.ID+"</userId></referencedGroupInfo>") {
		t.Fatalf("AuthorizeSecurityGroupIngress from groups: the rules it added: %s", out)
	}
	if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.Groups.1.GroupId=" + def); status != 400 || !strings.Contains(out, "InvalidPermission.Duplicate") {
		t.Fatalf("the same rule again: %d %s", status, out)
	}
	provider := b.m.DefaultGroup(b.m.VPCs[0].Name).ID
	if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.Groups.1.GroupId=" + provider); status != 400 || !strings.Contains(out, "InvalidGroup.NotFound") {
		t.Fatalf("a rule from another account's group: %d %s", status, out)
	}
	if status, out := ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + web + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.Groups.1.GroupName=default"); status != 400 || !strings.Contains(out, "GroupId") {
		t.Fatalf("a source group by name: %d %s", status, out)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1="+web)
	if !strings.Contains(out, "<groups><item><groupId>"+peers+"</groupId><userId>"+consumer.ID+"</userId></item></groups>") {
		t.Fatalf("DescribeSecurityGroups does not list the rule from peers: %s", out)
	}

	// An endpoint in web and one in peers: web's ENIs let in tcp/80 from
	// the VPC's ranges (the default group's members) and tcp/443 from
	// peers' ENIs.
	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId=" + vpc.ID + "&ServiceName=" + b.m.Services[0].ServiceName + "&SubnetId.1=" + vpc.Subnets[0].ID
	callOK(t, srv.URL, consumer, "ec2", create+"&SecurityGroupId.1="+web)
	callOK(t, srv.URL, consumer, "ec2", create+"&SecurityGroupId.1="+peers)
	inWeb, inPeers := b.m.Endpoints[len(b.m.Endpoints)-2], b.m.Endpoints[len(b.m.Endpoints)-1]
	// Which interfaces a group is on (what keeps it from being deleted).
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=group-id&Filter.1.Value.1="+web)
	if strings.Count(out, "<networkInterfaceId>") != 1 || !strings.Contains(out, "<networkInterfaceId>"+inWeb.ENIs[0].ID+"</networkInterfaceId>") {
		t.Fatalf("DescribeNetworkInterfaces with group-id %s: %s", web, out)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=group-name&Filter.1.Value.1=default")
	if n := strings.Count(out, "<networkInterfaceId>"); n != len(b.m.Endpoints[0].ENIs) {
		t.Fatalf("DescribeNetworkInterfaces with group-name default: %d interfaces, want the demo endpoint's %d: %s", n, len(b.m.Endpoints[0].ENIs), out)
	}
	var rules []snapshot.SGRule
	for _, e := range b.m.ForwarderConfig(inWeb.ENIs[0].AZ).ENIs {
		if e.ID == inWeb.ENIs[0].ID {
			rules = e.Ingress
		}
	}
	want := []snapshot.SGRule{
		{Proto: 6, FromPort: 80, ToPort: 80, Source: netip.MustParsePrefix(vpc.CIDR)},
		{Proto: 6, FromPort: 443, ToPort: 443, Source: netip.PrefixFrom(netip.MustParseAddr(inPeers.ENIs[0].IP), 32)},
	}
	if !slices.Equal(rules, want) {
		t.Fatalf("the forwarder's rules for an ENI in web: %v, want %v", rules, want)
	}

	if status, out := ec2("Action=DeleteSecurityGroup&GroupId=" + peers); status != 400 || !strings.Contains(out, "<Code>DependencyViolation</Code>") {
		t.Fatalf("DeleteSecurityGroup of a group a rule names: %d %s", status, out)
	}
	out = callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroupRules&Version=2016-11-15&Filter.1.Name=group-id&Filter.1.Value.1="+web)
	var rule string
	for _, item := range strings.Split(out, "<item>")[1:] {
		if strings.Contains(item, "<groupId>"+peers+"</groupId>") {
			rule = between(item, "", "<securityGroupRuleId>", "<")
		}
	}
	if rule == "" {
		t.Fatalf("DescribeSecurityGroupRules does not list the rule from peers: %s", out)
	}
	callOK(t, srv.URL, consumer, "ec2", "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+"&SecurityGroupRuleId.1="+rule)
	if g, _ := b.m.SecurityGroupByID(consumer.ID, web); len(g.FromGroups) != 1 || g.FromGroups[0].Group != def {
		t.Fatalf("after revoking the rule from peers by its id, web's rules from groups: %+v", g.FromGroups)
	}
}

// DescribeSecurityGroups' filters on rules: a group passes an
// ip-permission. filter if one of its inbound rules has the value (an
// egress.ip-permission. one, outbound), and one without such rules does
// not.
func TestSecurityGroupsAreFoundByTheirRules(t *testing.T) {
	b, srv, consumer, vpc, _ := consumerVPC(t)
	def := b.m.DefaultGroup(vpc.Name).ID
	web := createGroup(t, srv, consumer, vpc.ID, "web")
	callOK(t, srv.URL, consumer, "ec2", "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId="+web+
		"&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=443&IpPermissions.1.ToPort=443&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24")
	found := func(filters string) []string {
		t.Helper()
		out := callOK(t, srv.URL, consumer, "ec2", "Action=DescribeSecurityGroups&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1="+vpc.ID+"&"+filters)
		var ids []string
		for _, item := range strings.Split(out, "<groupName>")[1:] {
			ids = append(ids, between(item, "", "<groupId>", "<"))
		}
		return ids
	}
	for _, tc := range []struct {
		filters string
		want    []string
	}{
		{"Filter.2.Name=ip-permission.cidr&Filter.2.Value.1=198.18.1.0/24", []string{web}},
		{"Filter.2.Name=ip-permission.to-port&Filter.2.Value.1=443", []string{web}},
		{"Filter.2.Name=ip-permission.group-id&Filter.2.Value.1=" + def, []string{def}},
		{"Filter.2.Name=ip-permission.protocol&Filter.2.Value.1=-1", []string{def}},
		{"Filter.2.Name=egress.ip-permission.cidr&Filter.2.Value.1=0.0.0.0/0", []string{def, web}},
		{"Filter.2.Name=ip-permission.cidr&Filter.2.Value.1=10.0.0.0/8", nil},
		{"Filter.2.Name=owner-id&Filter.2.Value.1=" + consumer.ID + "&Filter.3.Name=description&Filter.3.Value.1=default*", []string{def}},
	} {
		got := found(tc.filters)
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: groups %v, want %v", tc.filters, got, want)
		}
	}
}
