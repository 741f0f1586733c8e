package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"pvlink.dev/pvlink/ctl"
)

// memBackend is ctld's model without the host: changes commit in memory.
type memBackend struct{ m *ctl.State }

func (b *memBackend) Model() *ctl.State   { return b.m }
func (b *memBackend) Status() *ctl.Report { return nil }
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
	b := &memBackend{m}
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

// call signs a Query call with the SDK's signer (for service, at when).
func call(t *testing.T, url string, a ctl.Account, service, body string, when time.Time) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, req, hex.EncodeToString(sum[:]), service, "us-east-1", when)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
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
	for _, bad := range [][2]string{{"proxy_protocol_v2.enabled", "yes"}, {"stickiness.enabled", "true"}, {"tcp.idle_timeout.seconds", "10"}, {"load_balancing.cross_zone.enabled", "true"}} {
		if status, out := modify(bad[0], bad[1]); status != 400 || !strings.Contains(out, "<Code>ValidationError</Code>") {
			t.Errorf("%s=%s: %d %s, want ValidationError", bad[0], bad[1], status, out)
		}
	}
	status, out := call(t, srv.URL, provider, "elasticloadbalancing", "Action=DescribeTargetGroupAttributes&Version=2015-12-01&TargetGroupArn="+arn, time.Now())
	if status != 200 || !strings.Contains(out, "<Key>proxy_protocol_v2.enabled</Key><Value>true</Value>") || !strings.Contains(out, "<DescribeTargetGroupAttributesResult>") {
		t.Fatalf("describe: %d %s", status, out)
	}
}
