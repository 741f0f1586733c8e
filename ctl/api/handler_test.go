package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/cloudwatch"
	"pvlink.dev/pvlink/internal/awsxml"
)

// memBackend is ctld's model without the host: changes commit in memory.
type memBackend struct {
	m  *ctl.State
	cw *cloudwatch.History
}

func (b *memBackend) Model() *ctl.State   { return b.m }
func (b *memBackend) Status() *ctl.Report { return nil }
func (b *memBackend) CloudWatch() *cloudwatch.History {
	if b.cw == nil {
		b.cw = cloudwatch.NewHistory(time.Hour)
	}
	return b.cw
}
func (b *memBackend) VerifyPrivateDNS(caller, id string) (string, error) {
	return "", &apiError{400, "InvalidParameter", "no DNS in this test"}
}
func (b *memBackend) Change(op func(*ctl.State) error) (uint64, error) {
	next := b.m.Clone()
	if err := op(next); err != nil {
		return 0, err
	}
	next.Version++
	b.m = next
	return next.Version, nil
}

func demoBackend(t *testing.T) (*memBackend, *httptest.Server) {
	t.Helper()
	data, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := ctl.ParseTopology("demo.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	m := &ctl.State{}
	if err := m.ApplyTopology(topo, "demo.yaml"); err != nil {
		t.Fatal(err)
	}
	m.API = ctl.APISettings{RequestsPerSecond: 1e6, Burst: 1e6} // these tests are not about the throttle
	b := &memBackend{m: m}
	srv := httptest.NewServer(New(b, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return b, srv
}

func account(b *memBackend, name string) ctl.Account {
	for _, a := range b.m.Accounts {
		if a.Name == name {
			return a
		}
	}
	panic("no account " + name)
}

// send signs a POST with the SDK's signer (for service, at when), with
// its headers, and returns the answer's status, headers and body.
func send(t *testing.T, url string, a ctl.Account, service string, header map[string]string, body string, when time.Time) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256([]byte(body))
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, req, hex.EncodeToString(sum[:]), service, "us-east-1", when)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

// queryForm is the Query protocols' content type.
var queryForm = map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

// call is a Query call.
func call(t *testing.T, url string, a ctl.Account, service, body string, when time.Time) (int, string) {
	t.Helper()
	status, _, out := send(t, url, a, service, queryForm, body, when)
	return status, out
}

func TestSignatureRefusalsCarryEachAPIsCodes(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	unknown := consumer
	unknown.AccessKeyID = "AKIAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name, service string
		who           ctl.Account
		when          time.Time
		status        int
		code          string
	}{
		{"EC2, 20 minutes old", "ec2", consumer, time.Now().Add(-20 * time.Minute), 400, "<Code>RequestExpired</Code>"},
		{"EC2, unknown key", "ec2", unknown, time.Now(), 401, "<Code>AuthFailure</Code>"},
		{"ELBv2, unknown key", "elasticloadbalancing", unknown, time.Now(), 403, "<Code>InvalidClientTokenId</Code>"},
		{"ELBv2, 20 minutes old", "elasticloadbalancing", consumer, time.Now().Add(-20 * time.Minute), 403, "<Code>SignatureDoesNotMatch</Code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := "Action=DescribeVpcs&Version=2016-11-15"
			if tc.service != "ec2" {
				body = "Action=DescribeLoadBalancers&Version=2015-12-01"
			}
			status, out := call(t, srv.URL, tc.who, tc.service, body, tc.when)
			if status != tc.status || !strings.Contains(out, tc.code) {
				t.Fatalf("%d %s, want %d with %s", status, out, tc.status, tc.code)
			}
		})
	}
	// Unsigned.
	resp, err := http.Post(srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeVpcs&Version=2016-11-15"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(out), "<Code>MissingAuthenticationToken</Code>") {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, out)
	}
}

func TestThe51stInterfaceEndpointOfAVPCIsRefusedWithAWSsQuotaError(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	vpc, subnet, svc := b.m.VPCs[1].ID, b.m.VPCs[1].Subnets[0].ID, b.m.Services[0].ServiceName
	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId=" + vpc + "&ServiceName=" + svc + "&SubnetId.1=" + subnet
	// The demo has one endpoint in the VPC already: 49 more reach 50.
	for i := 2; i <= 50; i++ {
		if status, out := call(t, srv.URL, consumer, "ec2", create, time.Now()); status != 200 {
			t.Fatalf("endpoint %d: %d %s", i, status, out)
		}
	}
	status, out := call(t, srv.URL, consumer, "ec2", create, time.Now())
	if status != 400 || !strings.Contains(out, "<Code>VpcEndpointLimitExceeded</Code>") {
		t.Fatalf("the 51st endpoint: %d %s", status, out)
	}
	if n := len(b.m.Endpoints); n != 50 {
		t.Fatalf("%d endpoints in the model, want 50", n)
	}
}

func TestTagsOnCreateByCallAndInDescribes(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	vpc, subnet, svc := b.m.VPCs[1].ID, b.m.VPCs[1].Subnets[0].ID, b.m.Services[0].ServiceName
	status, out := call(t, srv.URL, consumer, "ec2", "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId="+vpc+"&ServiceName="+svc+"&SubnetId.1="+subnet+
		"&TagSpecification.1.ResourceType=vpc-endpoint&TagSpecification.1.Tag.1.Key=team&TagSpecification.1.Tag.1.Value=payments", time.Now())
	if status != 200 || !strings.Contains(out, "<tagSet><item><key>team</key><value>payments</value></item></tagSet>") {
		t.Fatalf("create with a tag: %d %s", status, out)
	}
	id := out[strings.Index(out, "<vpcEndpointId>")+len("<vpcEndpointId>"):]
	id = id[:strings.Index(id, "<")]
	if status, out := call(t, srv.URL, consumer, "ec2", "Action=CreateTags&Version=2016-11-15&ResourceId.1="+id+"&Tag.1.Key=env&Tag.1.Value=test", time.Now()); status != 200 {
		t.Fatalf("CreateTags: %d %s", status, out)
	}
	// The provider may not tag the consumer's endpoint.
	if status, out := call(t, srv.URL, provider, "ec2", "Action=CreateTags&Version=2016-11-15&ResourceId.1="+id+"&Tag.1.Key=x&Tag.1.Value=y", time.Now()); status != 400 || !strings.Contains(out, "<Code>InvalidID</Code>") {
		t.Fatalf("CreateTags on another account's endpoint: %d %s", status, out)
	}
	status, out = call(t, srv.URL, consumer, "ec2", "Action=DescribeTags&Version=2016-11-15&Filter.1.Name=resource-id&Filter.1.Value.1="+id, time.Now())
	if status != 200 || strings.Count(out, "<resourceType>vpc-endpoint</resourceType>") != 2 || !strings.Contains(out, "<key>env</key>") {
		t.Fatalf("DescribeTags: %d %s", status, out)
	}
	if status, out := call(t, srv.URL, consumer, "ec2", "Action=DeleteTags&Version=2016-11-15&ResourceId.1="+id+"&Tag.1.Key=team", time.Now()); status != 200 {
		t.Fatalf("DeleteTags: %d %s", status, out)
	}
	status, out = call(t, srv.URL, consumer, "ec2", "Action=DescribeVpcEndpoints&Version=2016-11-15&VpcEndpointId.1="+id, time.Now())
	if status != 200 || strings.Contains(out, "<key>team</key>") || !strings.Contains(out, "<key>env</key>") {
		t.Fatalf("after DeleteTags: %d %s", status, out)
	}
	// Its ENI, as DescribeNetworkInterfaces shows it.
	status, out = call(t, srv.URL, consumer, "ec2", "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1="+vpc, time.Now())
	if status != 200 || strings.Count(out, "<interfaceType>vpc_endpoint</interfaceType>") != 3 || !strings.Contains(out, "VPC Endpoint Interface "+id) {
		t.Fatalf("DescribeNetworkInterfaces: %d %s", status, out)
	}
}

func TestTargetGroupAttributesAreSetAndCheckedAsELBv2Does(t *testing.T) {
	b, srv := demoBackend(t)
	provider := account(b, "provider")
	arn := "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/" + b.m.TargetGroups[0].ID
	modify := func(key, value string) (int, string) {
		return call(t, srv.URL, provider, "elasticloadbalancing", "Action=ModifyTargetGroupAttributes&Version=2015-12-01&TargetGroupArn="+arn+
			"&Attributes.member.1.Key="+key+"&Attributes.member.1.Value="+value, time.Now())
	}
	if status, out := modify("deregistration_delay.timeout_seconds", "20"); status != 200 || !strings.Contains(out, "<Key>deregistration_delay.timeout_seconds</Key><Value>20</Value>") {
		t.Fatalf("set the deregistration delay: %d %s", status, out)
	}
	if got := b.m.TargetGroups[0].DeregistrationDelay; got != "20s" {
		t.Fatalf("the model's deregistration delay is %q", got)
	}
	for _, bad := range [][2]string{{"proxy_protocol_v2.enabled", "yes"}, {"stickiness.enabled", "true"}, {"tcp.idle_timeout.seconds", "10"}, {"load_balancing.cross_zone.enabled", "sometimes"}} {
		if status, out := modify(bad[0], bad[1]); status != 400 || !strings.Contains(out, "<Code>ValidationError</Code>") {
			t.Errorf("%s=%s: %d %s, want ValidationError", bad[0], bad[1], status, out)
		}
	}
	status, out := call(t, srv.URL, provider, "elasticloadbalancing", "Action=DescribeTargetGroupAttributes&Version=2015-12-01&TargetGroupArn="+arn, time.Now())
	if status != 200 || !strings.Contains(out, "<Key>proxy_protocol_v2.enabled</Key><Value>true</Value>") || !strings.Contains(out, "<DescribeTargetGroupAttributesResult>") {
		t.Fatalf("describe: %d %s", status, out)
	}
}

func TestInvalidInputGetsTheCodeAUserExpectsAndChangesNothing(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	cvpc, psvc := b.m.VPCs[1], b.m.Services[0]
	// A second consumer subnet in use1-az1, and a provider service whose
	// load balancer is only in use1-az1.
	_, out := call(t, srv.URL, consumer, "ec2", "Action=CreateSubnet&Version=2016-11-15&VpcId="+cvpc.ID+"&CidrBlock=198.18.3.0/24&AvailabilityZoneId=use1-az1", time.Now())
	second := out[strings.Index(out, "<subnetId>")+10:]
	second = second[:strings.Index(second, "<")]
	version := b.m.Version
	create := func(extra string) (int, string) {
		return call(t, srv.URL, consumer, "ec2", "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId="+cvpc.ID+"&ServiceName="+psvc.ServiceName+extra, time.Now())
	}
	tests := []struct {
		name   string
		status int
		out    string
		code   string
		msg    string
	}{}
	add := func(name string, status int, out, code, msg string) {
		tests = append(tests, struct {
			name   string
			status int
			out    string
			code   string
			msg    string
		}{name, status, out, code, msg})
	}
	st, o := create("&SubnetId.1=" + cvpc.Subnets[0].ID + "&SubnetId.2=" + second)
	add("two subnets in one AZ", st, o, "InvalidParameter", "one subnet per Availability Zone")
	st, o = create("&SubnetId.1=" + cvpc.Subnets[0].ID + "&IpAddressType=ipv6")
	add("IPv6 on an IPv4-only service", st, o, "InvalidParameter", "does not support the IP address type ipv6")
	st, o = create("&SubnetId.1=subnet-0123456789abcdef0")
	add("unknown subnet", st, o, "InvalidSubnetID.NotFound", "subnet-0123456789abcdef0")
	st, o = create("")
	add("no subnet", st, o, "InvalidParameter", "at least one subnet")
	st, o = create("&SubnetId.1=" + cvpc.Subnets[0].ID + "&SubnetConfiguration.1.SubnetId=" + cvpc.Subnets[0].ID + "&SubnetConfiguration.1.Ipv4=198.18.1.2")
	add("a reserved address", st, o, "InvalidParameter", "is reserved")
	st, o = call(t, srv.URL, consumer, "ec2", "Action=DescribeVpcEndpoints&Version=2016-11-15&Filter.1.Name=colour&Filter.1.Value.1=blue", time.Now())
	add("unknown filter", st, o, "InvalidParameterValue", "The filter 'colour' is invalid")
	st, o = call(t, srv.URL, consumer, "ec2", "Action=DescribeVpcEndpoints&Version=2011-01-01", time.Now())
	add("another API version", st, o, "InvalidParameterValue", "Version 2011-01-01 is not served")
	// The provider: a UDP listener, and a load balancer only in use1-az1
	// that a service offers (so use1-az2 is not the service's).
	lbARN := "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/web-nlb/" + b.m.LoadBalancers[0].ID
	tgARN := "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/" + b.m.TargetGroups[0].ID
	st, o = call(t, srv.URL, provider, "elasticloadbalancing", "Action=CreateListener&Version=2015-12-01&LoadBalancerArn="+lbARN+"&Protocol=UDP&Port=53&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn="+tgARN, time.Now())
	add("a UDP listener", st, o, "ValidationError", "PrivateLink does not support UDP")
	for _, tc := range tests {
		if tc.status/100 != 4 || !strings.Contains(tc.out, "<Code>"+tc.code+"</Code>") || !strings.Contains(html.UnescapeString(tc.out), tc.msg) {
			t.Errorf("%s: %d %s\nwant %s saying %q", tc.name, tc.status, tc.out, tc.code, tc.msg)
		}
	}
	if b.m.Version != version {
		t.Errorf("the refusals moved the model from version %d to %d", version, b.m.Version)
	}
	// A subnet in an AZ the service does not offer: a service on a load
	// balancer in use1-az1 only.
	pvpc := b.m.VPCs[0]
	_, o = call(t, srv.URL, provider, "elasticloadbalancing", "Action=CreateLoadBalancer&Version=2015-12-01&Name=one-az&Type=network&Subnets.member.1="+pvpc.Subnets[0].ID, time.Now())
	oneAZ := o[strings.Index(o, "<LoadBalancerArn>")+17:]
	oneAZ = oneAZ[:strings.Index(oneAZ, "<")]
	_, o = call(t, srv.URL, provider, "ec2", "Action=CreateVpcEndpointServiceConfiguration&Version=2016-11-15&NetworkLoadBalancerArn.1="+oneAZ, time.Now())
	svcID := o[strings.Index(o, "<serviceId>")+11:]
	svcID = svcID[:strings.Index(svcID, "<")]
	call(t, srv.URL, provider, "ec2", "Action=ModifyVpcEndpointServicePermissions&Version=2016-11-15&ServiceId="+svcID+"&AddAllowedPrincipals.1=*", time.Now())
	svcName := "com.amazonaws.vpce.us-east-1." + svcID
	st, o = call(t, srv.URL, consumer, "ec2", "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId="+cvpc.ID+"&ServiceName="+svcName+"&SubnetId.1="+cvpc.Subnets[1].ID, time.Now())
	if st != 400 || !strings.Contains(o, "<Code>InvalidParameter</Code>") || !strings.Contains(o, "is not available in us-east-1b (use1-az2)") {
		t.Fatalf("a subnet in an AZ the service does not offer: %d %s", st, o)
	}
}

func TestDescribesArePagedByMaxResultsAndNextToken(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	vpc, subnet, svc := b.m.VPCs[1].ID, b.m.VPCs[1].Subnets[0].ID, b.m.Services[0].ServiceName
	for i := 0; i < 11; i++ { // 12 with the demo's
		call(t, srv.URL, consumer, "ec2", "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId="+vpc+"&ServiceName="+svc+"&SubnetId.1="+subnet, time.Now())
	}
	// walk follows a describe's pages of 5 and counts them and the ids.
	walk := func(action, idTag string) (pages, ids int) {
		seen := map[string]bool{}
		token := ""
		for {
			body := "Action=" + action + "&Version=2016-11-15&MaxResults=5"
			if token != "" {
				body += "&NextToken=" + token
			}
			status, out := call(t, srv.URL, consumer, "ec2", body, time.Now())
			if status != 200 {
				t.Fatalf("%s page %d: %d %s", action, pages, status, out)
			}
			pages++
			for _, part := range strings.Split(out, "<"+idTag+">")[1:] {
				seen[part[:strings.Index(part, "<")]] = true
			}
			token = ""
			if i := strings.Index(out, "<nextToken>"); i >= 0 {
				token = out[i+11 : i+strings.Index(out[i:], "</nextToken>")]
			}
			if token == "" {
				return pages, len(seen)
			}
		}
	}
	if pages, n := walk("DescribeVpcEndpoints", "vpcEndpointId"); pages != 3 || n != 12 {
		t.Fatalf("%d pages, %d endpoints; want 3 pages of 12 endpoints", pages, n)
	}
	// The other describes page alike: 13 ENIs (the demo's endpoint has
	// two), the consumer's subnets.
	if pages, n := walk("DescribeNetworkInterfaces", "networkInterfaceId"); pages != 3 || n != 13 {
		t.Fatalf("%d pages, %d network interfaces; want 3 pages of 13", pages, n)
	}
	if pages, n := walk("DescribeSubnets", "subnetId"); pages != 1 || n != 2 {
		t.Fatalf("%d pages, %d subnets; want 1 page of 2", pages, n)
	}
	if status, out := call(t, srv.URL, consumer, "ec2", "Action=DescribeVpcEndpoints&Version=2016-11-15&NextToken=bogus", time.Now()); status != 400 || !strings.Contains(out, "InvalidNextToken") {
		t.Fatalf("a bad token: %d %s", status, out)
	}
}

func TestIPAddressTypesFollowTheSharingRules(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	ec2 := func(who ctl.Account, body string) (int, string) {
		return call(t, srv.URL, who, "ec2", "Version=2016-11-15&"+body, time.Now())
	}
	// The demo's load balancer is ipv4: its service cannot offer IPv6.
	st, out := ec2(provider, "Action=ModifyVpcEndpointServiceConfiguration&ServiceId="+b.m.Services[0].ID+"&AddSupportedIpAddressType.1=ipv6")
	if st != 400 || !strings.Contains(out, "only if its load balancers are dualstack") {
		t.Fatalf("IPv6 on an ipv4 load balancer's service: %d %s", st, out)
	}
	// A dualstack load balancer's can.
	_, out = call(t, srv.URL, provider, "elasticloadbalancing", "Version=2015-12-01&Action=CreateLoadBalancer&Name=dual&Type=network&IpAddressType=dualstack&Subnets.member.1="+b.m.VPCs[0].Subnets[0].ID, time.Now())
	lb := awsxml.Field(out, "LoadBalancerArn")
	st, out = ec2(provider, "Action=CreateVpcEndpointServiceConfiguration&NetworkLoadBalancerArn.1="+lb+"&SupportedIpAddressType.1=ipv4&SupportedIpAddressType.2=ipv6")
	if st != 200 {
		t.Fatalf("a dualstack service: %d %s", st, out)
	}
	svc := awsxml.Field(out, "serviceName")
	ec2(provider, "Action=ModifyVpcEndpointServicePermissions&ServiceId="+awsxml.Field(out, "serviceId")+"&AddAllowedPrincipals.1=*")
	// A consumer VPC with IPv6, a subnet with a /64 of it.
	_, out = ec2(consumer, "Action=CreateVpc&CidrBlock=198.20.0.0/16&AmazonProvidedIpv6CidrBlock=true")
	vpc, v6 := awsxml.Field(out, "vpcId"), awsxml.Field(out, "ipv6CidrBlock")
	if v6 == "" {
		t.Fatalf("CreateVpc with an IPv6 block: %s", out)
	}
	vp := netip.MustParsePrefix(v6)
	sub64 := netip.PrefixFrom(vp.Addr(), 64).String()
	st, out = ec2(consumer, "Action=CreateSubnet&VpcId="+vpc+"&CidrBlock=198.20.1.0/24&Ipv6CidrBlock="+sub64+"&AvailabilityZoneId=use1-az1")
	if st != 200 {
		t.Fatalf("a dualstack subnet (%s): %d %s", sub64, st, out)
	}
	subnet := awsxml.Field(out, "subnetId")
	create := func(extra string) (int, string) {
		return ec2(consumer, "Action=CreateVpcEndpoint&VpcId="+vpc+"&ServiceName="+svc+"&SubnetId.1="+subnet+extra)
	}
	if st, out := create("&IpAddressType=ipv6&DnsOptions.DnsRecordIpType=ipv4"); st != 400 || !strings.Contains(out, "DnsRecordIpType ipv4 does not fit an ipv6 endpoint") {
		t.Fatalf("an ipv6 endpoint with A records: %d %s", st, out)
	}
	if st, out := create("&IpAddressType=dualstack&PolicyDocument=" + strings.Repeat("x", ctl.MaxPolicyLength+1)); st != 400 || !strings.Contains(out, "takes at most 20480") {
		t.Fatalf("a policy over 20,480 characters: %d %s", st, out)
	}
	policy := `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`
	st, out = create("&IpAddressType=dualstack&DnsOptions.DnsRecordIpType=ipv6&PolicyDocument=" + url.QueryEscape(policy))
	if st != 200 || awsxml.Field(out, "dnsRecordIpType") != "ipv6" || !strings.Contains(html.UnescapeString(out), policy) {
		t.Fatalf("a dualstack endpoint with AAAA records and a policy: %d %s", st, out)
	}
	e := b.m.Endpoints[len(b.m.Endpoints)-1]
	if e.ENIs[0].IP == "" || e.ENIs[0].IPv6 == "" || !netip.MustParsePrefix(sub64).Contains(netip.MustParseAddr(e.ENIs[0].IPv6)) {
		t.Fatalf("the dualstack ENI has %q and %q", e.ENIs[0].IP, e.ENIs[0].IPv6)
	}
}

func TestELBv2TagsOnLoadBalancersAndTargetGroups(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	lb := "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/web-nlb/" + b.m.LoadBalancers[0].ID
	tg := "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/" + b.m.TargetGroups[0].ID
	elb := func(who ctl.Account, body string) (int, string) {
		return call(t, srv.URL, who, "elasticloadbalancing", "Version=2015-12-01&"+body, time.Now())
	}
	if st, out := elb(provider, "Action=AddTags&ResourceArns.member.1="+lb+"&ResourceArns.member.2="+tg+"&Tags.member.1.Key=team&Tags.member.1.Value=payments"); st != 200 {
		t.Fatalf("AddTags: %d %s", st, out)
	}
	st, out := elb(provider, "Action=DescribeTags&ResourceArns.member.1="+lb+"&ResourceArns.member.2="+tg)
	if st != 200 || strings.Count(out, "<Key>team</Key><Value>payments</Value>") != 2 {
		t.Fatalf("DescribeTags: %d %s", st, out)
	}
	if st, out := elb(consumer, "Action=AddTags&ResourceArns.member.1="+lb+"&Tags.member.1.Key=x&Tags.member.1.Value=y"); st != 400 || !strings.Contains(out, "<Code>LoadBalancerNotFound</Code>") {
		t.Fatalf("AddTags by another account: %d %s", st, out)
	}
	elb(provider, "Action=RemoveTags&ResourceArns.member.1="+lb+"&TagKeys.member.1=team")
	if _, out := elb(provider, "Action=DescribeTags&ResourceArns.member.1="+lb); strings.Contains(out, "<Key>team</Key>") {
		t.Fatalf("after RemoveTags: %s", out)
	}
}

// TestELBv2DescribesOfWhatIsNotThereAnswerNotFound: a listener, or a load
// balancer named to list listeners or target groups by, that the caller
// does not have is an error, as ELBv2 answers, not an empty list.
func TestELBv2DescribesOfWhatIsNotThereAnswerNotFound(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	lb := "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/web-nlb/" + b.m.LoadBalancers[0].ID
	listener := "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/net/web-nlb/" + b.m.LoadBalancers[0].ID + "/" + b.m.LoadBalancers[0].Listeners[0].ID
	gone := "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/gone/0123456789abcdef"
	for _, c := range []struct {
		who        ctl.Account
		body, want string
	}{
		{provider, "Action=DescribeListeners&LoadBalancerArn=" + lb, "<ListenerArn>" + listener + "</ListenerArn>"},
		{provider, "Action=DescribeListeners&ListenerArns.member.1=" + listener, "<ListenerArn>" + listener + "</ListenerArn>"},
		{provider, "Action=DescribeListeners", "<Code>ValidationError</Code>"},
		{provider, "Action=DescribeListeners&LoadBalancerArn=" + gone, "<Code>LoadBalancerNotFound</Code>"},
		{consumer, "Action=DescribeListeners&LoadBalancerArn=" + lb, "<Code>LoadBalancerNotFound</Code>"},
		{provider, "Action=DescribeListeners&ListenerArns.member.1=" + listener + "&ListenerArns.member.2=" + listener[:len(listener)-16] + "0123456789abcdef", "<Code>ListenerNotFound</Code>"},
		{consumer, "Action=DescribeListeners&ListenerArns.member.1=" + listener, "<Code>ListenerNotFound</Code>"},
		{provider, "Action=DescribeTargetGroups&LoadBalancerArn=" + lb, "<TargetGroupName>web</TargetGroupName>"},
		{provider, "Action=DescribeTargetGroups&LoadBalancerArn=" + gone, "<Code>LoadBalancerNotFound</Code>"},
	} {
		if _, out := call(t, srv.URL, c.who, "elasticloadbalancing", "Version=2015-12-01&"+c.body, time.Now()); !strings.Contains(out, c.want) {
			t.Errorf("%s (as %s): want %s\n%s", c.body, c.who.Name, c.want, out)
		}
	}
}

// AZs are named as AWS names them (us-east-1a) wherever the API shows a
// name, beside their ids (use1-az1); a subnet can be made in an AZ by
// either, not both.
func TestTheAPIShowsAZsByNameAndByID(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	ec2 := ec2OK(t, srv.URL, consumer)
	out := ec2("Action=DescribeVpcEndpointServices")
	for _, want := range []string{
		"<availabilityZoneSet><item>us-east-1a</item><item>us-east-1b</item></availabilityZoneSet>",
		"<availabilityZoneIdSet><item>use1-az1</item><item>use1-az2</item></availabilityZoneIdSet>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("DescribeVpcEndpointServices has no %s:\n%s", want, out)
		}
	}
	if out := ec2("Action=DescribeAvailabilityZones"); !strings.Contains(out, "<zoneName>us-east-1b</zoneName>") || !strings.Contains(out, "<zoneId>use1-az2</zoneId>") {
		t.Errorf("DescribeAvailabilityZones:\n%s", out)
	}
	vpc := b.m.VPCs[1].ID
	out = ec2("Action=CreateSubnet&VpcId=" + vpc + "&CidrBlock=198.18.3.0/24&AvailabilityZone=us-east-1b")
	if !strings.Contains(out, "<availabilityZone>us-east-1b</availabilityZone>") || !strings.Contains(out, "<availabilityZoneId>use1-az2</availabilityZoneId>") {
		t.Errorf("CreateSubnet by name:\n%s", out)
	}
	if n := strings.Count(ec2("Action=DescribeSubnets&Filter.1.Name=availability-zone&Filter.1.Value.1=us-east-1b"), "<availabilityZoneId>use1-az2</availabilityZoneId>"); n != 2 {
		t.Errorf("%d subnets named in us-east-1b, want the demo's and the new one", n)
	}
	version := b.m.Version
	for _, q := range []string{
		"&AvailabilityZone=us-east-1b&AvailabilityZoneId=use1-az2",
		"&AvailabilityZone=us-east-1z",
	} {
		st, out := call(t, srv.URL, consumer, "ec2", "Version=2016-11-15&Action=CreateSubnet&VpcId="+vpc+"&CidrBlock=198.18.4.0/24"+q, time.Now())
		if st != 400 {
			t.Errorf("CreateSubnet%s: %d %s, want a 400", q, st, out)
		}
	}
	if b.m.Version != version {
		t.Errorf("a refused CreateSubnet changed the model (version %d -> %d)", version, b.m.Version)
	}
	names := b.m.DNSNames(b.m.Endpoints[0])
	if !strings.Contains(names[1], "-us-east-1a.") || !strings.Contains(names[2], "-us-east-1b.") {
		t.Errorf("zonal DNS names %v", names[1:])
	}
}

// Resources are found by their tags (tag:KEY, tag-key), as automation
// finds them; a resource without the tag does not pass.
func TestTagFiltersFindTaggedResourcesOnly(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	ec2 := ec2OK(t, srv.URL, consumer)
	ep, sub := b.m.Endpoints[0].ID, b.m.VPCs[1].Subnets[0].ID
	ec2("Action=CreateTags&ResourceId.1=" + ep + "&ResourceId.2=" + sub + "&Tag.1.Key=team&Tag.1.Value=payments")
	for _, tc := range []struct {
		action, filter, id string
		want               int
	}{
		{"DescribeVpcEndpoints", "Filter.1.Name=tag:team&Filter.1.Value.1=payments", ep, 1},
		{"DescribeVpcEndpoints", "Filter.1.Name=tag:team&Filter.1.Value.1=pay*", ep, 1},
		{"DescribeVpcEndpoints", "Filter.1.Name=tag:team&Filter.1.Value.1=search", ep, 0},
		{"DescribeVpcEndpoints", "Filter.1.Name=tag:owner&Filter.1.Value.1=payments", ep, 0},
		{"DescribeVpcEndpoints", "Filter.1.Name=tag-key&Filter.1.Value.1=team", ep, 1},
		{"DescribeSubnets", "Filter.1.Name=tag:team&Filter.1.Value.1=payments", sub, 1},
		{"DescribeSubnets", "Filter.1.Name=tag:team&Filter.1.Value.1=payments", b.m.VPCs[1].Subnets[1].ID, 0},
		{"DescribeVpcs", "Filter.1.Name=tag:team&Filter.1.Value.1=payments", b.m.VPCs[1].ID, 0},
	} {
		if n := strings.Count(ec2("Action="+tc.action+"&"+tc.filter), ">"+tc.id+"<"); n != tc.want {
			t.Errorf("%s %s: %s found %d times, want %d", tc.action, tc.filter, tc.id, n, tc.want)
		}
	}
	if st, out := call(t, srv.URL, consumer, "ec2", "Version=2016-11-15&Action=DescribeVpcEndpoints&Filter.1.Name=colour&Filter.1.Value.1=x", time.Now()); st != 400 || !strings.Contains(out, "tag:KEY") {
		t.Errorf("an unknown filter: %d %s", st, out)
	}
}

// ec2OK is an EC2 call (Version given) as acct that must answer 200; it
// returns the answer.
func ec2OK(t *testing.T, url string, acct ctl.Account) func(q string) string {
	return func(q string) string {
		t.Helper()
		return callOK(t, url, acct, "ec2", "Version=2016-11-15&"+q)
	}
}

// The service descriptions take AWS's filters: a filter that leaves a
// service out leaves it out (they used to be ignored), a service named by
// id and filtered out is not "not found", and an unknown filter is refused.
func TestServiceDescriptionsTakeTheirFilters(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	svc := b.m.Services[0]
	configs, services := ec2OK(t, srv.URL, provider), ec2OK(t, srv.URL, consumer)
	for _, tc := range []struct {
		call func(string) string
		q    string
		want int
	}{
		{configs, "Action=DescribeVpcEndpointServiceConfigurations&Filter.1.Name=service-name&Filter.1.Value.1=" + svc.ServiceName, 1},
		{configs, "Action=DescribeVpcEndpointServiceConfigurations&Filter.1.Name=service-name&Filter.1.Value.1=nope", 0},
		{configs, "Action=DescribeVpcEndpointServiceConfigurations&Filter.1.Name=service-state&Filter.1.Value.1=" + svc.State, 1},
		{configs, "Action=DescribeVpcEndpointServiceConfigurations&ServiceId.1=" + svc.ID + "&Filter.1.Name=service-state&Filter.1.Value.1=Deleting", 0},
		{services, "Action=DescribeVpcEndpointServices&Filter.1.Name=owner&Filter.1.Value.1=" + svc.OwnerID, 1},
		{services, "Action=DescribeVpcEndpointServices&Filter.1.Name=owner&Filter.1.Value.1=999999999999", 0},
		{services, "Action=DescribeVpcEndpointServices&Filter.1.Name=service-type&Filter.1.Value.1=Interface", 1},
		{services, "Action=DescribeVpcEndpointServices&Filter.1.Name=service-region&Filter.1.Value.1=us-west-2", 0},
	} {
		if n := strings.Count(tc.call(tc.q), "<serviceId>"+svc.ID+"</serviceId>"); n != tc.want {
			t.Errorf("%s: the service %d times, want %d", tc.q, n, tc.want)
		}
	}
	for _, c := range []struct {
		acct   ctl.Account
		action string
	}{{provider, "DescribeVpcEndpointServiceConfigurations"}, {consumer, "DescribeVpcEndpointServices"}} {
		if st, out := call(t, srv.URL, c.acct, "ec2", "Version=2016-11-15&Action="+c.action+"&Filter.1.Name=colour&Filter.1.Value.1=x", time.Now()); st != 400 || !strings.Contains(out, "colour") || !strings.Contains(out, "is invalid") {
			t.Errorf("%s with an unknown filter: %d %s", c.action, st, out)
		}
	}
}

// No Describe action ignores its filters: each refuses an unknown one, and
// those that only listed before narrow their answer now.
func TestEveryDescribeTakesItsFiltersOrRefusesThem(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	svc := b.m.Services[0]
	for _, action := range []string{"DescribeVpcEndpoints", "DescribeVpcEndpointServiceConfigurations", "DescribeVpcEndpointServices",
		"DescribeVpcEndpointConnections", "DescribeVpcEndpointServicePermissions&ServiceId=" + svc.ID, "DescribeVpcs", "DescribeSubnets",
		"DescribeAvailabilityZones", "DescribeRegions", "DescribeVpcEndpointConnectionNotifications", "DescribeSecurityGroups",
		"DescribeTags", "DescribeNetworkInterfaces", "DescribeSecurityGroupRules", "DescribeManagedPrefixLists"} {
		if st, out := call(t, srv.URL, provider, "ec2", "Version=2016-11-15&Action="+action+"&Filter.1.Name=colour&Filter.1.Value.1=x", time.Now()); st != 400 || !strings.Contains(out, "colour") {
			t.Errorf("%s with an unknown filter: %d %s", action, st, out)
		}
	}
	p, c := ec2OK(t, srv.URL, provider), ec2OK(t, srv.URL, consumer)
	p("Action=CreateVpcEndpointConnectionNotification&ServiceId=" + svc.ID + "&ConnectionNotificationArn=arn:aws:sns:us-east-1:111122223333:events&ConnectionEvents.1=Connect")
	for _, tc := range []struct {
		call      func(string) string
		q, needle string
		want      int
	}{
		{c, "Action=DescribeAvailabilityZones&Filter.1.Name=zone-name&Filter.1.Value.1=us-east-1b", "<zoneId>", 1},
		{c, "Action=DescribeAvailabilityZones&ZoneId.1=use1-az1", "<zoneName>us-east-1a</zoneName>", 1},
		{c, "Action=DescribeAvailabilityZones&Filter.1.Name=zone-id&Filter.1.Value.1=use1-az9", "<zoneId>", 0},
		{c, "Action=DescribeRegions&Filter.1.Name=region-name&Filter.1.Value.1=us-east-1", "<regionName>", 1},
		{c, "Action=DescribeRegions&RegionName.1=eu-west-1", "<regionName>", 0},
		{p, "Action=DescribeVpcEndpointServicePermissions&ServiceId=" + svc.ID + "&Filter.1.Name=principal-type&Filter.1.Value.1=Account", "<principal>", 1},
		{p, "Action=DescribeVpcEndpointServicePermissions&ServiceId=" + svc.ID + "&Filter.1.Name=principal-type&Filter.1.Value.1=Role", "<principal>", 0},
		{p, "Action=DescribeVpcEndpointConnectionNotifications&Filter.1.Name=service-id&Filter.1.Value.1=" + svc.ID, "<connectionNotificationId>", 1},
		{p, "Action=DescribeVpcEndpointConnectionNotifications&Filter.1.Name=connection-notification-state&Filter.1.Value.1=Disabled", "<connectionNotificationId>", 0},
	} {
		if n := strings.Count(tc.call(tc.q), tc.needle); n != tc.want {
			t.Errorf("%s: %d of %s, want %d", tc.q, n, tc.needle, tc.want)
		}
	}
}

// STS's GetCallerIdentity names the account whose keys signed; a call for
// a service pvlink does not serve says so, in a body its client reads:
// XML for the query and rest-xml protocols, JSON for the JSON ones.
func TestGetCallerIdentityAndAServiceNotServed(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	status, out := call(t, srv.URL, consumer, "sts", "Action=GetCallerIdentity&Version=2011-06-15", time.Now())
	if status != 200 || !strings.Contains(out, "<Account>"+consumer.ID+"</Account>") || !strings.Contains(out, "<Arn>arn:aws:iam::"+consumer.ID+":root</Arn>") || !strings.Contains(out, "<GetCallerIdentityResult>") {
		t.Fatalf("GetCallerIdentity: %d %s", status, out)
	}
	if status, out := call(t, srv.URL, consumer, "sts", "Action=AssumeRole&Version=2011-06-15", time.Now()); status != 400 || !strings.Contains(out, "<Code>InvalidAction</Code>") {
		t.Fatalf("AssumeRole: %d %s", status, out)
	}
	if status, out := call(t, srv.URL, consumer, "s3", "", time.Now()); status != 400 || !strings.Contains(out, "<ErrorResponse") || !strings.Contains(out, "pvlink does not serve s3") {
		t.Fatalf("an S3 call: %d %s", status, out)
	}
	// DynamoDB posts JSON; Lambda's rest-json ListFunctions has no body,
	// so no content type.
	for _, c := range []struct{ service, contentType, target string }{
		{"dynamodb", "application/x-amz-json-1.0", "DynamoDB_20120810.ListTables"},
		{"lambda", "", ""},
	} {
		status, header, out := callJSONOf(t, srv.URL, consumer, c.service, c.contentType, c.target, "", time.Now())
		var body struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(out), &body); status != 400 || err != nil || body.Type != "InvalidAction" ||
			!strings.Contains(body.Message, "pvlink does not serve "+c.service) || header.Get("x-amzn-ErrorType") != "InvalidAction" {
			t.Errorf("a %s call: %d %v %s (%v)", c.service, status, header, out, err)
		}
	}
}

func TestPayerResponsibilityIsTheProvidersToTake(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	svc := b.m.Services[0].ID
	modify := func(a ctl.Account, payer string) (int, string) {
		return call(t, srv.URL, a, "ec2", "Action=ModifyVpcEndpointServicePayerResponsibility&Version=2016-11-15&ServiceId="+svc+"&PayerResponsibility="+payer, time.Now())
	}
	if status, out := modify(consumer, "ServiceOwner"); status != 400 {
		t.Fatalf("the consumer took on the service's charges: %d %s", status, out)
	}
	if status, out := modify(provider, "Consumer"); status != 400 || !strings.Contains(out, "the one value is ServiceOwner") {
		t.Fatalf("PayerResponsibility=Consumer: %d %s", status, out)
	}
	if status, out := modify(provider, "ServiceOwner"); status != 200 || !strings.Contains(out, "<return>true</return>") {
		t.Fatalf("ServiceOwner: %d %s", status, out)
	}
	status, out := call(t, srv.URL, consumer, "ec2", "Action=DescribeVpcEndpointServices&Version=2016-11-15", time.Now())
	if status != 200 || !strings.Contains(out, "<payerResponsibility>ServiceOwner</payerResponsibility>") {
		t.Fatalf("the consumer's view of the service: %d %s", status, out)
	}
}

// Rules one by one: an Authorize answers the rules it added with their
// ids, DescribeSecurityGroupRules lists them (and a group's default
// outbound rule), a Revoke takes them by id.
func TestSecurityGroupRulesHaveIdsToListAndRevokeBy(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	ec2 := func(body string) (int, string) {
		return call(t, srv.URL, consumer, "ec2", body+"&Version=2016-11-15", time.Now())
	}
	status, out := ec2("Action=CreateSecurityGroup&GroupName=clients&GroupDescription=clients&VpcId=" + b.m.VPCs[1].ID)
	group := awsxml.Field(out, "groupId")
	if status != 200 || group == "" {
		t.Fatalf("CreateSecurityGroup: %d %s", status, out)
	}
	status, out = ec2("Action=AuthorizeSecurityGroupIngress&GroupId=" + group + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.IpRanges.1.CidrIp=198.18.1.0/24")
	rule := awsxml.Field(out, "securityGroupRuleId")
	if status != 200 || !strings.HasPrefix(rule, "sgr-") || !strings.Contains(out, "<cidrIpv4>198.18.1.0/24</cidrIpv4>") || !strings.Contains(out, "<isEgress>false</isEgress>") {
		t.Fatalf("AuthorizeSecurityGroupIngress: %d %s", status, out)
	}
	status, out = ec2("Action=DescribeSecurityGroupRules&Filter.1.Name=group-id&Filter.1.Value.1=" + group)
	if status != 200 || strings.Count(out, "<securityGroupRuleId>") != 2 || !strings.Contains(out, "<securityGroupRuleId>"+rule+"</securityGroupRuleId>") || !strings.Contains(out, "<isEgress>true</isEgress>") {
		t.Fatalf("DescribeSecurityGroupRules: the inbound rule and the default outbound one: %d %s", status, out)
	}
	if status, out := ec2("Action=RevokeSecurityGroupIngress&GroupId=" + group + "&SecurityGroupRuleId.1=" + rule); status != 200 {
		t.Fatalf("RevokeSecurityGroupIngress by id: %d %s", status, out)
	}
	if status, out := ec2("Action=DescribeSecurityGroupRules&SecurityGroupRuleId.1=" + rule); status != 400 || !strings.Contains(out, "InvalidSecurityGroupRuleId.NotFound") {
		t.Fatalf("the revoked rule: %d %s", status, out)
	}
	if g, _ := b.m.SecurityGroupByID(consumer.ID, group); len(g.Ingress) != 0 {
		t.Fatalf("the group's rules after the revoke: %+v", g.Ingress)
	}
}

// A connection names itself (vpce-con-) and the Region its endpoint is in.
func TestAConnectionHasItsIdAndItsEndpointsRegion(t *testing.T) {
	b, srv := demoBackend(t)
	provider := account(b, "provider")
	e := b.m.Endpoints[0]
	status, out := call(t, srv.URL, provider, "ec2", "Action=DescribeVpcEndpointConnections&Version=2016-11-15", time.Now())
	if status != 200 || !strings.Contains(out, "<vpcEndpointConnectionId>vpce-con-"+strings.TrimPrefix(e.ID, "vpce-")+"</vpcEndpointConnectionId>") || !strings.Contains(out, "<vpcEndpointRegion>us-east-1</vpcEndpointRegion>") {
		t.Fatalf("DescribeVpcEndpointConnections: %d %s", status, out)
	}
}

// SNS: a topic made is listed to its owner only.
func TestListTopicsShowsTheCallersTopics(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	if st, out := call(t, srv.URL, provider, "sns", "Action=CreateTopic&Version=2010-03-31&Name=endpoint-events", time.Now()); st != 200 {
		t.Fatalf("CreateTopic: %d %s", st, out)
	}
	st, out := call(t, srv.URL, provider, "sns", "Action=ListTopics&Version=2010-03-31", time.Now())
	if st != 200 || !strings.Contains(out, "<TopicArn>arn:aws:sns:us-east-1:"+provider.ID+":endpoint-events</TopicArn>") {
		t.Fatalf("ListTopics as the owner: %d %s", st, out)
	}
	if _, out := call(t, srv.URL, consumer, "sns", "Action=ListTopics&Version=2010-03-31", time.Now()); strings.Contains(out, "endpoint-events") {
		t.Fatalf("another account lists the topic: %s", out)
	}
}

// Every answer, EC2's, ELBv2's and CloudWatch's, refusals included, names
// its request in x-amzn-RequestId as well as in its body: the SDKs read
// the header for an error's request id.
func TestEveryAnswerNamesItsRequestInAHeader(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	for _, c := range []struct{ service, body string }{
		{"ec2", "Action=DescribeVpcEndpoints&Version=2016-11-15"},
		{"ec2", "Action=DescribeVpcEndpoints&Version=2016-11-15&VpcEndpointId.1=vpce-0"},
		{"elasticloadbalancing", "Action=DescribeLoadBalancers&Version=2015-12-01"},
		{"elasticloadbalancing", "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"},
		{"monitoring", "Action=ListMetrics&Version=2010-08-01"},
		{"s3", ""},
	} {
		status, header, out := send(t, srv.URL, consumer, c.service, queryForm, c.body, time.Now())
		id := header.Get("x-amzn-RequestId")
		if id == "" || !strings.Contains(out, id) {
			t.Errorf("%s %s: %d, header x-amzn-RequestId %q, body %s", c.service, c.body, status, id, out)
		}
	}
}

// DryRun=true (the CLI's --dry-run) changes nothing: an action that would
// succeed is answered 412 DryRunOperation, as AWS answers a permitted dry
// run; one that would be refused gets its refusal; an action pvlink does
// not serve is still InvalidAction.
func TestADryRunChangesNothingAndSaysWhetherTheCallWouldSucceed(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	cvpc, psvc := b.m.VPCs[1], b.m.Services[0]
	endpoints := len(b.m.Endpoints)
	ec2 := func(a ctl.Account, q string) (int, string) {
		return call(t, srv.URL, a, "ec2", "Version=2016-11-15&"+q, time.Now())
	}
	_, out := ec2(consumer, "Action=DescribeVpcEndpoints")
	existing := out[strings.Index(out, "<vpcEndpointId>")+15:]
	existing = existing[:strings.Index(existing, "<")]
	version := b.m.Version
	create := "Action=CreateVpcEndpoint&VpcId=" + cvpc.ID + "&ServiceName=" + psvc.ServiceName + "&SubnetId.1=" + cvpc.Subnets[0].ID
	tests := []struct {
		name   string
		who    ctl.Account
		query  string
		status int
		code   string
	}{
		{"create an endpoint", consumer, create + "&DryRun=true", 412, "DryRunOperation"},
		{"delete an endpoint", consumer, "Action=DeleteVpcEndpoints&VpcEndpointId.1=" + existing + "&DryRun=true", 412, "DryRunOperation"},
		{"accept it", provider, "Action=AcceptVpcEndpointConnections&ServiceId=" + psvc.ID + "&VpcEndpointId.1=" + existing + "&DryRun=true", 412, "DryRunOperation"},
		{"tag it", consumer, "Action=CreateTags&ResourceId.1=" + existing + "&Tag.1.Key=k&Tag.1.Value=v&DryRun=true", 412, "DryRunOperation"},
		{"describe", consumer, "Action=DescribeVpcEndpoints&DryRun=true", 412, "DryRunOperation"},
		{"create in a subnet that is not there", consumer, "Action=CreateVpcEndpoint&VpcId=" + cvpc.ID + "&ServiceName=" + psvc.ServiceName + "&SubnetId.1=subnet-0123456789abcdef0&DryRun=true", 400, "InvalidSubnetID.NotFound"},
		{"an action not served", consumer, "Action=RunInstances&DryRun=true", 400, "InvalidAction"},
		{"DryRun=false", consumer, "Action=DescribeVpcEndpoints&DryRun=false", 200, ""},
	}
	for _, tc := range tests {
		status, out := ec2(tc.who, tc.query)
		if status != tc.status || !strings.Contains(out, "<Code>"+tc.code+"</Code>") && tc.code != "" {
			t.Errorf("%s: %d %s\nwant %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
	if _, out := ec2(consumer, create+"&DryRun=true"); !strings.Contains(out, "Request would have succeeded, but DryRun flag is set.") {
		t.Errorf("the dry run's message: %s", out)
	}
	if b.m.Version != version || len(b.m.Endpoints) != endpoints || len(b.m.Tags[existing]) != 0 || b.m.Endpoints[0].State != "pendingAcceptance" {
		t.Errorf("the dry runs changed the model: version %d (was %d), %d endpoints (was %d), tags %v, state %s",
			b.m.Version, version, len(b.m.Endpoints), endpoints, b.m.Tags[existing], b.m.Endpoints[0].State)
	}
	// The same call without DryRun does it.
	if status, out := ec2(consumer, create); status != 200 || len(b.m.Endpoints) != endpoints+1 {
		t.Errorf("the call without DryRun: %d %s, %d endpoints", status, out, len(b.m.Endpoints))
	}
}

// A create call sent again with its ClientToken (a retry whose answer was
// lost) answers what the first made instead of making another, for its
// caller only: endpoint services, connection notifications and flow logs,
// as endpoints already did.
func TestAClientTokenMakesACreateAnswerWhatItMadeBefore(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	p, c := ec2OK(t, srv.URL, provider), ec2OK(t, srv.URL, consumer)
	between := func(out, open string) string {
		i := strings.Index(out, open)
		if i < 0 {
			t.Fatalf("no %s in %s", open, out)
		}
		v := out[i+len(open):]
		return v[:strings.Index(v, "<")]
	}
	pvpc := b.m.VPCs[0]
	out := callOK(t, srv.URL, provider, "elasticloadbalancing", "Action=CreateLoadBalancer&Version=2015-12-01&Name=second&Type=network&Subnets.member.1="+pvpc.Subnets[0].ID)
	second := between(out, "<LoadBalancerArn>")
	services := len(b.m.Services)
	createSvc := "Action=CreateVpcEndpointServiceConfiguration&NetworkLoadBalancerArn.1=" + second + "&ClientToken=svc-1"
	first, again := between(p(createSvc), "<serviceId>"), between(p(createSvc), "<serviceId>")
	if first != again || len(b.m.Services) != services+1 {
		t.Errorf("a service created twice with one token: %s, then %s; %d services (were %d)", first, again, len(b.m.Services), services)
	}

	svc := b.m.Services[0]
	notifications := len(b.m.Notifications)
	createN := "Action=CreateVpcEndpointConnectionNotification&ServiceId=" + svc.ID + "&ConnectionNotificationArn=arn:aws:sns:us-east-1:111122223333:events&ConnectionEvents.1=Connect&ClientToken=n-1"
	n1, n2 := between(p(createN), "<connectionNotificationId>"), between(p(createN), "<connectionNotificationId>")
	if n1 != n2 || len(b.m.Notifications) != notifications+1 {
		t.Errorf("a notification created twice with one token: %s, then %s; %d notifications (were %d)", n1, n2, len(b.m.Notifications), notifications)
	}
	// The same token from another account is that account's own.
	ep := b.m.Endpoints[0]
	n3 := between(c("Action=CreateVpcEndpointConnectionNotification&VpcEndpointId="+ep.ID+"&ConnectionNotificationArn=arn:aws:sns:us-east-1:444455556666:mine&ConnectionEvents.1=Accept&ClientToken=n-1"), "<connectionNotificationId>")
	if n3 == n1 || len(b.m.Notifications) != notifications+2 {
		t.Errorf("another account's call with the same token got %s (the first was %s); %d notifications", n3, n1, len(b.m.Notifications))
	}

	flowLogs := len(b.m.FlowLogs)
	createF := "Action=CreateFlowLogs&ResourceType=NetworkInterface&ResourceId.1=" + ep.ENIs[0].ID + "&TrafficType=REJECT&LogGroupName=rejects&ClientToken=f-1"
	f1, f2 := between(c(createF), "<flowLogIdSet><item>"), between(c(createF), "<flowLogIdSet><item>")
	if f1 != f2 || len(b.m.FlowLogs) != flowLogs+1 {
		t.Errorf("a flow log created twice with one token: %s, then %s; %d flow logs (were %d)", f1, f2, len(b.m.FlowLogs), flowLogs)
	}
	// Another token is another request (the same flow log again would be
	// FlowLogAlreadyExists: this one records accepted traffic).
	if f3 := between(c(strings.NewReplacer("f-1", "f-2", "REJECT", "ACCEPT").Replace(createF)), "<flowLogIdSet><item>"); f3 == f1 || len(b.m.FlowLogs) != flowLogs+2 {
		t.Errorf("another token got %s (the first was %s); %d flow logs", f3, f1, len(b.m.FlowLogs))
	}
}

// callOK is call now, failing the test on anything but a 200.
func callOK(t *testing.T, url string, a ctl.Account, service, body string) string {
	t.Helper()
	st, out := call(t, url, a, service, body, time.Now())
	if st != 200 {
		t.Fatalf("%s: %d %s", body, st, out)
	}
	return out
}

// DescribeTargetHealth with Targets answers for those only, in order, a
// target not registered as such (what aws elbv2 wait target-deregistered
// waits for); a target whose deregistration is over is no longer listed.
func TestTargetHealthAnswersForTheTargetsNamedAndForgetsDrainedOnes(t *testing.T) {
	b, srv := demoBackend(t)
	provider := account(b, "provider")
	arn := "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/" + b.m.TargetGroups[0].ID
	health := func(targets string) []string {
		t.Helper()
		out := callOK(t, srv.URL, provider, "elasticloadbalancing", "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn="+arn+targets)
		var got []string
		for _, m := range strings.Split(out, "<member>")[1:] {
			id := m[strings.Index(m, "<Id>")+4 : strings.Index(m, "</Id>")]
			state := m[strings.Index(m, "<State>")+7 : strings.Index(m, "</State>")]
			reason := ""
			if i := strings.Index(m, "<Reason>"); i >= 0 {
				reason = m[i+8 : strings.Index(m, "</Reason>")]
			}
			got = append(got, id+" "+state+" "+reason)
		}
		return got
	}
	if got := health(""); len(got) != 2 {
		t.Fatalf("all targets: %v", got)
	}
	if got := health("&Targets.member.1.Id=198.19.2.10&Targets.member.2.Id=198.19.1.10&Targets.member.2.Port=8080"); len(got) != 2 ||
		!strings.HasPrefix(got[0], "198.19.2.10 ") || !strings.HasPrefix(got[1], "198.19.1.10 ") {
		t.Errorf("two targets named, in that order: %v", got)
	}
	if got := health("&Targets.member.1.Id=198.19.9.9&Targets.member.1.Port=8080"); len(got) != 1 || got[0] != "198.19.9.9 unused Target.NotRegistered" {
		t.Errorf("a target not registered: %v", got)
	}
	// With no delay, a deregistered target is gone at once.
	callOK(t, srv.URL, provider, "elasticloadbalancing", "Action=ModifyTargetGroupAttributes&Version=2015-12-01&TargetGroupArn="+arn+
		"&Attributes.member.1.Key=deregistration_delay.timeout_seconds&Attributes.member.1.Value=0")
	callOK(t, srv.URL, provider, "elasticloadbalancing", "Action=DeregisterTargets&Version=2015-12-01&TargetGroupArn="+arn+"&Targets.member.1.Id=198.19.1.10&Targets.member.1.Port=8080")
	if got := health(""); len(got) != 1 || !strings.HasPrefix(got[0], "198.19.2.10 ") {
		t.Errorf("after a deregistration with no delay: %v", got)
	}
	if got := health("&Targets.member.1.Id=198.19.1.10"); len(got) != 1 || got[0] != "198.19.1.10 unused Target.NotRegistered" {
		t.Errorf("the deregistered target named: %v", got)
	}
}
