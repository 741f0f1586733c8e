package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// awsCLI runs the real AWS CLI against the fabric's API as one of its
// accounts.
type awsCLI struct {
	service string   // ec2 unless set
	env     []string // more of the CLI's environment
	t       *testing.T
	url     string
	account ctl.Account
	region  string
}

// awsBinary is Debian's AWS CLI, which make test installs, or else the
// first on PATH.
func awsBinary() string {
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		return "/usr/bin/aws"
	}
	p, _ := exec.LookPath("aws")
	return p
}

func awsAs(t *testing.T, f *fabrictest.Fabric, name string) *awsCLI {
	t.Helper()
	if awsBinary() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("the AWS CLI is not installed (make test installs Debian's awscli)")
		}
		t.Skip("needs the AWS CLI (apt-get install awscli)")
	}
	f.Refresh(t)
	for _, a := range f.Status.Accounts {
		if a.Name == name {
			return &awsCLI{t: t, url: f.Status.API.URL, account: a, region: f.Status.Region}
		}
	}
	t.Fatalf("no account %s", name)
	return nil
}

// run runs `aws ec2 ARGS... --output json` and returns its output and error.
func (a *awsCLI) run(args ...string) (string, error) { return a.runService("ec2", args...) }

// elb is the same CLI for ELBv2.
func (a *awsCLI) elb() *awsCLI { b := *a; b.service = "elbv2"; return &b }

func (a *awsCLI) runService(service string, args ...string) (string, error) {
	if a.service != "" {
		service = a.service
	}
	cmd := exec.Command(awsBinary(), append(append([]string{service}, args...), "--endpoint-url", a.url, "--output", "json")...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+a.account.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+a.account.SecretAccessKey,
		"AWS_DEFAULT_REGION="+a.region, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
	cmd.Env = append(cmd.Env, a.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// do runs an action that must succeed and decodes its JSON answer.
func (a *awsCLI) do(v any, args ...string) {
	a.t.Helper()
	out, err := a.run(args...)
	if err != nil {
		a.t.Fatalf("aws %s %s (as %s): %v\n%s", a.service, strings.Join(args, " "), a.account.Name, err, out)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			a.t.Fatalf("aws ec2 %s: %v\n%s", args[0], err, out)
		}
	}
}

// refused runs an action that must fail with code.
func (a *awsCLI) refused(code string, args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err == nil || !strings.Contains(out, "("+code+")") {
		a.t.Fatalf("aws ec2 %s (as %s): %v, want %s\n%s", strings.Join(args, " "), a.account.Name, err, code, out)
	}
	return out
}

// providerOnly is the demo without its endpoint: the provider's service,
// acceptance required, the consumer account allowed, and the consumer's
// VPC, where the test creates the endpoint through the API.
func providerOnly(t *testing.T) string {
	topo := strings.Replace(demoTopology(t), "acceptance_required: false", "acceptance_required: true", 1)
	return topo[:strings.Index(topo, "endpoints:\n  - name: web\n")]
}

type endpointsOut struct {
	VpcEndpoints []struct {
		VpcEndpointId, State, VpcId, ServiceName, OwnerId string
		NetworkInterfaceIds, SubnetIds                    []string
		DnsEntries                                        []struct{ DnsName string }
	}
}

func TestTheEndpointLifecycleThroughTheAWSCLI(t *testing.T) {
	// The provider's service (acceptance required, the consumer account
	// allowed) comes from the topology; the consumer's endpoint is made
	// through the API.
	f := fabrictest.Up(t, providerOnly(t))
	consumer, provider := awsAs(t, f, "consumer"), awsAs(t, f, "provider")

	// Who am I: the first thing a configured CLI or SDK tool asks.
	out, err := consumer.runService("sts", "get-caller-identity")
	var who struct{ Account, Arn string }
	if err != nil || json.Unmarshal([]byte(out), &who) != nil || who.Account != consumer.account.ID || who.Arn != "arn:aws:iam::"+consumer.account.ID+":root" {
		t.Fatalf("aws sts get-caller-identity as the consumer: %v\n%s", err, out)
	}

	// The consumer finds the service, its VPC and subnets.
	var services struct {
		ServiceNames   []string
		ServiceDetails []struct {
			ServiceId, Owner   string
			AcceptanceRequired bool
			AvailabilityZones  []string
		}
	}
	consumer.do(&services, "describe-vpc-endpoint-services")
	if len(services.ServiceNames) != 1 || services.ServiceDetails[0].Owner != "111122223333" || !services.ServiceDetails[0].AcceptanceRequired {
		t.Fatalf("describe-vpc-endpoint-services as the consumer: %+v", services)
	}
	// AZs by name, as AWS shows them (Debian's CLI predates the service's
	// AvailabilityZoneIds; the API's own tests read them).
	if d := services.ServiceDetails[0]; !slices.Equal(d.AvailabilityZones, []string{"us-east-1a", "us-east-1b"}) {
		t.Fatalf("the service's AZs: %v", d.AvailabilityZones)
	}
	var zones struct {
		AvailabilityZones []struct{ ZoneName, ZoneId string }
	}
	consumer.do(&zones, "describe-availability-zones")
	if len(zones.AvailabilityZones) != 2 || zones.AvailabilityZones[1].ZoneName != "us-east-1b" || zones.AvailabilityZones[1].ZoneId != "use1-az2" {
		t.Fatalf("describe-availability-zones: %+v", zones)
	}
	var vpcs struct {
		Vpcs []struct{ VpcId, OwnerId string }
	}
	consumer.do(&vpcs, "describe-vpcs")
	if len(vpcs.Vpcs) != 1 || vpcs.Vpcs[0].OwnerId != "444455556666" {
		t.Fatalf("the consumer sees VPCs %+v, want only its own", vpcs)
	}
	var subnets struct {
		Subnets []struct{ SubnetId, AvailabilityZone, AvailabilityZoneId string }
	}
	consumer.do(&subnets, "describe-subnets", "--filters", "Name=vpc-id,Values="+vpcs.Vpcs[0].VpcId)
	if len(subnets.Subnets) != 2 || subnets.Subnets[0].AvailabilityZone != "us-east-1a" || subnets.Subnets[0].AvailabilityZoneId != "use1-az1" {
		t.Fatalf("subnets: %+v", subnets)
	}
	var inB struct {
		Subnets []struct{ AvailabilityZoneId string }
	}
	consumer.do(&inB, "describe-subnets", "--filters", "Name=availability-zone,Values=us-east-1b")
	if len(inB.Subnets) != 1 || inB.Subnets[0].AvailabilityZoneId != "use1-az2" {
		t.Fatalf("subnets named in us-east-1b: %+v", inB)
	}

	// It requests an endpoint: pendingAcceptance, with DNS names.
	var created struct {
		VpcEndpoint struct {
			VpcEndpointId, State string
			DnsEntries           []struct{ DnsName string }
		}
	}
	consumer.do(&created, "create-vpc-endpoint", "--vpc-endpoint-type", "Interface", "--vpc-id", vpcs.Vpcs[0].VpcId,
		"--service-name", services.ServiceNames[0], "--subnet-ids", subnets.Subnets[0].SubnetId, subnets.Subnets[1].SubnetId,
		"--client-token", "lifecycle-1")
	id := created.VpcEndpoint.VpcEndpointId
	if created.VpcEndpoint.State != snapshot.StatePendingAcceptance || len(created.VpcEndpoint.DnsEntries) != 3 {
		t.Fatalf("create-vpc-endpoint: %+v", created)
	}
	// Zonal names carry the AZ's name: endpoint_id-az_name.service_id...
	for i, az := range []string{"us-east-1a", "us-east-1b"} {
		if n := created.VpcEndpoint.DnsEntries[i+1].DnsName; !strings.Contains(n, "-"+az+"."+services.ServiceDetails[0].ServiceId+".") {
			t.Fatalf("zonal DNS name %s, want one of %s", n, az)
		}
	}
	// The same request again (its ClientToken) is the same endpoint.
	var again struct {
		VpcEndpoint struct{ VpcEndpointId string }
	}
	consumer.do(&again, "create-vpc-endpoint", "--vpc-endpoint-type", "Interface", "--vpc-id", vpcs.Vpcs[0].VpcId,
		"--service-name", services.ServiceNames[0], "--subnet-ids", subnets.Subnets[0].SubnetId, subnets.Subnets[1].SubnetId,
		"--client-token", "lifecycle-1")
	if again.VpcEndpoint.VpcEndpointId != id {
		t.Fatalf("the same ClientToken made a second endpoint %s (first %s)", again.VpcEndpoint.VpcEndpointId, id)
	}

	// Nothing goes through while it waits; the consumer cannot accept its
	// own request, and the provider cannot see the consumer's endpoint.
	f.Refresh(t)
	eni := f.Status.Endpoints[0].ENIs[0]
	if _, err := exchange(t, f, net.JoinHostPort(eni.IP, "80"), 1500*time.Millisecond); err == nil {
		t.Fatal("a connection went through a pendingAcceptance endpoint")
	}
	var configs struct{ ServiceConfigurations []struct{ ServiceId string } }
	provider.do(&configs, "describe-vpc-endpoint-service-configurations")
	serviceID := configs.ServiceConfigurations[0].ServiceId
	consumer.refused("InvalidVpcEndpointServiceId.NotFound", "accept-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id)
	provider.refused("InvalidVpcEndpointId.NotFound", "describe-vpc-endpoints", "--vpc-endpoint-ids", id)

	// The provider sees the request and accepts it: available, traffic.
	var conns struct {
		VpcEndpointConnections []struct{ VpcEndpointId, VpcEndpointState, VpcEndpointOwner string }
	}
	provider.do(&conns, "describe-vpc-endpoint-connections", "--filters", "Name=vpc-endpoint-state,Values=pendingAcceptance")
	if len(conns.VpcEndpointConnections) != 1 || conns.VpcEndpointConnections[0].VpcEndpointId != id || conns.VpcEndpointConnections[0].VpcEndpointOwner != "444455556666" {
		t.Fatalf("describe-vpc-endpoint-connections: %+v", conns)
	}
	var answer struct {
		Unsuccessful []struct {
			ResourceId string
			Error      struct{ Code string }
		}
	}
	provider.do(&answer, "accept-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id, "vpce-0000000000000000a")
	if len(answer.Unsuccessful) != 1 || answer.Unsuccessful[0].ResourceId != "vpce-0000000000000000a" || answer.Unsuccessful[0].Error.Code != "InvalidVpcEndpointId.NotFound" {
		t.Fatalf("accept of one real and one unknown endpoint: %+v", answer)
	}
	state := func() string {
		var eps endpointsOut
		consumer.do(&eps, "describe-vpc-endpoints", "--vpc-endpoint-ids", id)
		return eps.VpcEndpoints[0].State
	}
	// pending while the forwarders take it on, then available.
	if s := state(); s != snapshot.StatePending && s != snapshot.StateAvailable {
		t.Fatalf("after accept the endpoint is %s", s)
	}
	waitUntil(t, 2*time.Second, "the accepted endpoint available", func() bool { return state() == snapshot.StateAvailable })
	waitUntil(t, 2*time.Second, "traffic through the accepted endpoint", func() bool {
		c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 500 * time.Millisecond, Dial: fabrictest.DialFrom(eni.Netns)}
		_, err := c.Run(t.Context())
		return err == nil
	})

	// A subnet (an AZ) taken from the endpoint and given back
	// (modify-vpc-endpoint): its ENI, TUN and zonal name go while the
	// other AZ carries on; given back, a new ENI carries traffic.
	sub1, sub2 := subnets.Subnets[0].SubnetId, subnets.Subnets[1].SubnetId
	consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--remove-subnet-ids", sub1, sub2)
	consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--remove-subnet-ids", "subnet-0123456789abcdef0")
	consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--add-subnet-ids", sub1)
	consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--ip-address-type", "dualstack")
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--remove-subnet-ids", sub2)
	var eps endpointsOut
	consumer.do(&eps, "describe-vpc-endpoints", "--vpc-endpoint-ids", id)
	if e := eps.VpcEndpoints[0]; !slices.Equal(e.SubnetIds, []string{sub1}) || len(e.NetworkInterfaceIds) != 1 || len(e.DnsEntries) != 2 || strings.Contains(e.DnsEntries[1].DnsName, "us-east-1b") {
		t.Fatalf("after its second subnet was removed: %+v", e)
	}
	waitUntil(t, 3*time.Second, "the removed ENI's TUN gone", func() bool { return len(tunsIn(t, f.Netns(t, "consumer"))) == 1 })
	waitUntil(t, 3*time.Second, "the endpoint available again", func() bool { return state() == snapshot.StateAvailable })
	if _, err := exchange(t, f, net.JoinHostPort(eni.IP, "80"), 2*time.Second); err != nil {
		t.Fatalf("the remaining ENI after the other subnet left: %v", err)
	}
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", id, "--add-subnet-ids", sub2)
	waitUntil(t, 3*time.Second, "the endpoint available with its subnet back", func() bool { return state() == snapshot.StateAvailable })
	f.Refresh(t)
	if enis := f.Status.Endpoints[0].ENIs; len(enis) != 2 || enis[1].AZ != "use1-az2" {
		t.Fatalf("the endpoint's ENIs with its subnet back: %+v", enis)
	} else if _, err := exchange(t, f, net.JoinHostPort(enis[1].IP, "80"), 2*time.Second); err != nil {
		t.Fatalf("the ENI of the subnet given back: %v", err)
	}

	// Rejected: traffic stops.
	provider.do(&answer, "reject-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id)
	if s := state(); s != snapshot.StateRejected {
		t.Fatalf("after reject the endpoint is %s", s)
	}
	if _, err := exchange(t, f, net.JoinHostPort(eni.IP, "80"), 1500*time.Millisecond); err == nil {
		t.Fatal("a connection went through a rejected endpoint")
	}

	// Deleted: deleting, then gone from the describes and from the host.
	consumer.do(&answer, "delete-vpc-endpoints", "--vpc-endpoint-ids", id)
	if len(answer.Unsuccessful) != 0 {
		t.Fatalf("delete: %+v", answer)
	}
	waitUntil(t, 3*time.Second, "the deleted endpoint gone from describe-vpc-endpoints", func() bool {
		_, err := consumer.run("describe-vpc-endpoints", "--vpc-endpoint-ids", id)
		return err != nil
	})
	consumer.refused("InvalidVpcEndpointId.NotFound", "describe-vpc-endpoints", "--vpc-endpoint-ids", id)
	waitUntil(t, 3*time.Second, "the deleted endpoint's TUN leaves the consumer VPC", func() bool {
		return len(tunsIn(t, f.Netns(t, "consumer"))) == 0
	})
}

func TestTheAPIRefusesWhatAWSRefuses(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer, provider := awsAs(t, f, "consumer"), awsAs(t, f, "provider")
	version := endpointVersion(t, f)

	// Signatures: a wrong secret, an unknown key.
	bad := *consumer
	bad.account.SecretAccessKey = "not-the-secret-at-all"
	bad.refused("AuthFailure", "describe-vpc-endpoints")
	unknown := *consumer
	unknown.account.AccessKeyID = "AKIAAAAAAAAAAAAAAAAA"
	unknown.refused("AuthFailure", "describe-vpc-endpoints")

	// A principal the service does not allow neither sees it nor connects.
	provider.do(nil, "modify-vpc-endpoint-service-permissions", "--service-id", f.Status.Services[0].ID,
		"--remove-allowed-principals", "arn:aws:iam::444455556666:root")
	var services struct{ ServiceNames []string }
	consumer.do(&services, "describe-vpc-endpoint-services")
	if len(services.ServiceNames) != 0 {
		t.Fatalf("a consumer no longer allowed still sees %v", services.ServiceNames)
	}
	consumer.refused("InvalidServiceName", "create-vpc-endpoint", "--vpc-id", f.Status.VPCs[1].ID,
		"--service-name", f.Status.Services[0].ServiceName, "--subnet-ids", f.Status.VPCs[1].Subnets[0].ID)
	// Its accepted endpoint is untouched.
	if s := endpointState(t, f); s != snapshot.StateAvailable {
		t.Fatalf("removing the principal moved the endpoint to %s", s)
	}

	// Bad input: unknown ids, two subnets in one AZ, a subnet in an AZ the
	// service does not offer, an IPv6 endpoint on an IPv4-only service.
	provider.do(nil, "modify-vpc-endpoint-service-permissions", "--service-id", f.Status.Services[0].ID,
		"--add-allowed-principals", "arn:aws:iam::444455556666:root")
	consumerVPC := f.Status.VPCs[1]
	svc := f.Status.Services[0].ServiceName
	consumer.refused("InvalidVpcEndpointId.NotFound", "describe-vpc-endpoints", "--vpc-endpoint-ids", "vpce-0123456789abcdef0")
	consumer.refused("InvalidVpcID.NotFound", "create-vpc-endpoint", "--vpc-id", "vpc-0123456789abcdef0", "--service-name", svc, "--subnet-ids", consumerVPC.Subnets[0].ID)
	consumer.refused("InvalidSubnetID.NotFound", "create-vpc-endpoint", "--vpc-id", consumerVPC.ID, "--service-name", svc, "--subnet-ids", "subnet-0123456789abcdef0")
	out := consumer.refused("InvalidParameter", "create-vpc-endpoint", "--vpc-id", consumerVPC.ID, "--service-name", svc, "--subnet-ids", consumerVPC.Subnets[0].ID, "--ip-address-type", "ipv6")
	if !strings.Contains(out, "does not support the IP address type ipv6") {
		t.Fatalf("an IPv6 endpoint on an IPv4-only service: %s", out)
	}
	consumer.refused("InvalidAction", "describe-instances")
	if v := endpointVersion(t, f); v != version+2 {
		t.Fatalf("the refused calls changed the model: version %d, want %d (the two permission changes)", v, version+2)
	}
}

func TestTheEndpointLifecycleThroughBoto3(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import boto3").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("Debian's python3-boto3 is not installed (make test installs it)")
		}
		t.Skip("needs python3-boto3")
	}
	f := fabrictest.Up(t, providerOnly(t))
	consumer, provider := awsAs(t, f, "consumer"), awsAs(t, f, "provider")
	cmd := exec.Command(python, "testdata/boto3_lifecycle.py")
	cmd.Env = append(os.Environ(), "PVLINK_ENDPOINT_URL="+f.Status.API.URL, "AWS_DEFAULT_REGION="+f.Status.Region,
		"CONSUMER_KEY="+consumer.account.AccessKeyID, "CONSUMER_SECRET="+consumer.account.SecretAccessKey,
		"PROVIDER_KEY="+provider.account.AccessKeyID, "PROVIDER_SECRET="+provider.account.SecretAccessKey,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lifecycle ok") {
		t.Fatalf("boto3 lifecycle: %v\n%s", err, out)
	}
}

// TestAFabricBuiltFromNothingWithTheAWSCLI: a fabric with two accounts and
// nothing else; the provider makes a VPC, a subnet, a target group, a
// Network Load Balancer, a listener and an endpoint service, all with the
// AWS CLI; the consumer makes its VPC and an endpoint; the provider
// accepts; traffic reaches the provider's own server; then everything is
// taken down again through the API.
func TestAFabricBuiltFromNothingWithTheAWSCLI(t *testing.T) {
	f := fabrictest.Up(t, `name: NAME
region: us-east-1
availability_zones: [use1-az1, use1-az2]
accounts:
  - {name: provider, id: "111122223333"}
  - {name: consumer, id: "444455556666"}
`)
	provider, consumer := awsAs(t, f, "provider"), awsAs(t, f, "consumer")
	providerELB := provider.elb()
	var vpc struct{ Vpc struct{ VpcId string } }
	var sub struct{ Subnet struct{ SubnetId string } }
	provider.do(&vpc, "create-vpc", "--cidr-block", "198.19.0.0/16")
	provider.do(&sub, "create-subnet", "--vpc-id", vpc.Vpc.VpcId, "--cidr-block", "198.19.1.0/24", "--availability-zone-id", "use1-az1")
	provider.refused("InvalidSubnet.Conflict", "create-subnet", "--vpc-id", vpc.Vpc.VpcId, "--cidr-block", "198.19.1.0/25", "--availability-zone-id", "use1-az2")

	var tg struct {
		TargetGroups []struct{ TargetGroupArn string }
	}
	providerELB.do(&tg, "create-target-group", "--name", "web", "--protocol", "TCP", "--port", "8080", "--vpc-id", vpc.Vpc.VpcId,
		"--target-type", "ip", "--health-check-interval-seconds", "5", "--healthy-threshold-count", "2")
	tgARN := tg.TargetGroups[0].TargetGroupArn
	providerELB.refused("ValidationError", "create-target-group", "--name", "dns", "--protocol", "UDP", "--port", "53", "--vpc-id", vpc.Vpc.VpcId)
	providerELB.do(nil, "register-targets", "--target-group-arn", tgARN, "--targets", "Id=198.19.1.10,Port=8080")
	type loadBalancers struct {
		LoadBalancers []struct {
			LoadBalancerArn, VpcId, CanonicalHostedZoneId, DNSName string
			CreatedTime                                            time.Time
		}
	}
	var lb, described loadBalancers
	made := time.Now()
	providerELB.do(&lb, "create-load-balancer", "--name", "web-nlb", "--type", "network", "--scheme", "internal", "--subnets", sub.Subnet.SubnetId)
	lbARN := lb.LoadBalancers[0].LoadBalancerArn
	// As AWS shows it: when it was made, us-east-1's zone for a Route 53
	// alias to a Network Load Balancer, and a DNS name of its name and
	// the id its ARN ends with.
	providerELB.do(&described, "describe-load-balancers", "--load-balancer-arns", lbARN)
	if got, want := described.LoadBalancers[0].DNSName, "web-nlb-"+lbARN[strings.LastIndex(lbARN, "/")+1:]+".elb.us-east-1.amazonaws.com"; got != want {
		t.Fatalf("the load balancer's DNS name is %s, want %s", got, want)
	}
	if got := described.LoadBalancers[0]; got.CanonicalHostedZoneId != "Z26RNL4JYFTOTI" ||
		!got.CreatedTime.Equal(lb.LoadBalancers[0].CreatedTime) || got.CreatedTime.Before(made.Add(-time.Second)) || got.CreatedTime.After(time.Now()) {
		t.Fatalf("describe-load-balancers: zone %q, made %v (create-load-balancer said %v; made between %v and now)",
			got.CanonicalHostedZoneId, got.CreatedTime, lb.LoadBalancers[0].CreatedTime, made)
	}
	providerELB.refused("DuplicateLoadBalancerName", "create-load-balancer", "--name", "web-nlb", "--type", "network", "--subnets", sub.Subnet.SubnetId)
	providerELB.do(nil, "create-listener", "--load-balancer-arn", lbARN, "--protocol", "TCP", "--port", "80", "--default-actions", "Type=forward,TargetGroupArn="+tgARN)
	var svc struct {
		ServiceConfiguration struct{ ServiceId, ServiceName, ServiceState string }
	}
	provider.do(&svc, "create-vpc-endpoint-service-configuration", "--network-load-balancer-arns", lbARN, "--acceptance-required")
	serviceID := svc.ServiceConfiguration.ServiceId

	// Nobody is allowed yet: the consumer cannot see it.
	consumerVPC := func() (string, string) {
		var v struct{ Vpc struct{ VpcId string } }
		var s struct{ Subnet struct{ SubnetId string } }
		consumer.do(&v, "create-vpc", "--cidr-block", "198.18.0.0/16")
		consumer.refused("InvalidParameterCombination", "create-subnet", "--vpc-id", v.Vpc.VpcId, "--cidr-block", "198.18.1.0/24",
			"--availability-zone", "us-east-1a", "--availability-zone-id", "use1-az1")
		consumer.do(&s, "create-subnet", "--vpc-id", v.Vpc.VpcId, "--cidr-block", "198.18.1.0/24", "--availability-zone", "us-east-1a")
		return v.Vpc.VpcId, s.Subnet.SubnetId
	}
	cVPC, cSub := consumerVPC()
	consumer.refused("InvalidServiceName", "create-vpc-endpoint", "--vpc-id", cVPC, "--service-name", svc.ServiceConfiguration.ServiceName, "--subnet-ids", cSub)
	provider.do(nil, "modify-vpc-endpoint-service-permissions", "--service-id", serviceID, "--add-allowed-principals", "arn:aws:iam::444455556666:root")

	// The provider's own server, on the target's address (which the
	// realizer put in the provider's VPC).
	f.Refresh(t)
	var providerNS string
	for _, v := range f.Status.VPCs {
		if v.ID == vpc.Vpc.VpcId {
			providerNS = v.Netns
		}
	}
	var ln net.Listener
	waitUntil(t, 3*time.Second, "the target's address in the provider VPC", func() bool {
		ln = listenInQuietly(providerNS, "198.19.1.10:8080")
		return ln != nil
	})
	t.Cleanup(func() { ln.Close() })
	// It echoes, and notes a proxy protocol v2 header in front of the
	// consumer's bytes (echoing only what follows it).
	var proxied atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				n, _ := io.ReadAtLeast(c, buf, 5)
				data := buf[:n]
				if n >= 16 && bytes.HasPrefix(data, []byte("\r\n\r\n\x00\r\nQUIT\n")) {
					hdr := 16 + int(binary.BigEndian.Uint16(data[14:16]))
					for len(data) < hdr+5 {
						m, err := c.Read(buf[len(data):])
						if err != nil {
							return
						}
						data = buf[:len(data)+m]
					}
					proxied.Add(1)
					data = data[hdr:]
				}
				c.Write(data)
			}()
		}
	}()

	var created struct {
		VpcEndpoint struct{ VpcEndpointId, State string }
	}
	consumer.do(&created, "create-vpc-endpoint", "--vpc-endpoint-type", "Interface", "--vpc-id", cVPC, "--service-name", svc.ServiceConfiguration.ServiceName, "--subnet-ids", cSub)
	id := created.VpcEndpoint.VpcEndpointId
	provider.do(nil, "accept-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id)
	// A load balancer cannot leave the service while the endpoint is
	// connected.
	provider.refused("DependencyViolation", "modify-vpc-endpoint-service-configuration", "--service-id", serviceID, "--remove-network-load-balancer-arns", lbARN)

	f.Refresh(t)
	var eni ctl.ENIState
	for _, e := range f.Status.Endpoints {
		if e.ID == id {
			eni = e.ENIs[0]
		}
	}
	waitUntil(t, 5*time.Second, "an echo through the endpoint built with the AWS CLI", func() bool { return echoHello(eni) })
	var health struct {
		TargetHealthDescriptions []struct {
			Target       struct{ Id string }
			TargetHealth struct{ State string }
		}
	}
	if proxied.Load() != 0 {
		t.Fatal("a proxy protocol header reached the target before it was turned on")
	}
	// Proxy protocol v2 turned on through the API reaches the data path.
	providerELB.do(nil, "modify-target-group-attributes", "--target-group-arn", tgARN, "--attributes", "Key=proxy_protocol_v2.enabled,Value=true")
	waitUntil(t, 5*time.Second, "a proxy protocol v2 header at the target", func() bool { return echoHello(eni) && proxied.Load() > 0 })
	waitUntil(t, 15*time.Second, "the target healthy in describe-target-health", func() bool {
		providerELB.do(&health, "describe-target-health", "--target-group-arn", tgARN)
		return len(health.TargetHealthDescriptions) == 1 && health.TargetHealthDescriptions[0].TargetHealth.State == "healthy"
	})

	// The load balancer's attributes: cross-zone and deletion protection
	// are set; what pvlink has nothing behind is refused.
	var lbAttrs struct{ Attributes []struct{ Key, Value string } }
	lbAttr := func(key string) string {
		providerELB.do(&lbAttrs, "describe-load-balancer-attributes", "--load-balancer-arn", lbARN)
		for _, a := range lbAttrs.Attributes {
			if a.Key == key {
				return a.Value
			}
		}
		return ""
	}
	if lbAttr("load_balancing.cross_zone.enabled") != "false" || lbAttr("deletion_protection.enabled") != "false" {
		t.Fatalf("a new load balancer's attributes: %+v", lbAttrs.Attributes)
	}
	providerELB.do(nil, "modify-load-balancer-attributes", "--load-balancer-arn", lbARN, "--attributes",
		"Key=load_balancing.cross_zone.enabled,Value=true", "Key=deletion_protection.enabled,Value=true")
	if lbAttr("load_balancing.cross_zone.enabled") != "true" || lbAttr("deletion_protection.enabled") != "true" {
		t.Fatalf("after modify-load-balancer-attributes: %+v", lbAttrs.Attributes)
	}
	providerELB.refused("ValidationError", "modify-load-balancer-attributes", "--load-balancer-arn", lbARN, "--attributes", "Key=access_logs.s3.enabled,Value=true")

	// A second AZ for the load balancer (set-subnets): a node with an
	// address of the new subnet, held by the provider's namespace, and
	// the AZ in the service's; then back to one AZ.
	var sub2 struct{ Subnet struct{ SubnetId string } }
	provider.do(&sub2, "create-subnet", "--vpc-id", vpc.Vpc.VpcId, "--cidr-block", "198.19.2.0/24", "--availability-zone", "us-east-1b")
	var zones struct {
		AvailabilityZones []struct {
			ZoneName              string
			LoadBalancerAddresses []struct{ IpAddress string }
		}
	}
	providerELB.do(&zones, "set-subnets", "--load-balancer-arn", lbARN, "--subnets", sub.Subnet.SubnetId, sub2.Subnet.SubnetId)
	if z := zones.AvailabilityZones; len(z) != 2 || z[1].ZoneName != "us-east-1b" || len(z[1].LoadBalancerAddresses) != 1 || !strings.HasPrefix(z[1].LoadBalancerAddresses[0].IpAddress, "198.19.2.") {
		t.Fatalf("set-subnets answered %+v", zones)
	}
	node2 := net.JoinHostPort(zones.AvailabilityZones[1].LoadBalancerAddresses[0].IpAddress, "0")
	holds := func() bool { // the provider's namespace has the node's address
		l := listenInQuietly(providerNS, node2)
		if l != nil {
			l.Close()
		}
		return l != nil
	}
	waitUntil(t, 3*time.Second, "the new node's address in the provider's namespace", holds)
	var svcAZs struct {
		ServiceConfigurations []struct{ AvailabilityZones []string }
	}
	provider.do(&svcAZs, "describe-vpc-endpoint-service-configurations", "--service-ids", serviceID)
	if azs := svcAZs.ServiceConfigurations[0].AvailabilityZones; !slices.Equal(azs, []string{"us-east-1a", "us-east-1b"}) {
		t.Fatalf("the service's AZs with the load balancer in two: %v", azs)
	}
	providerELB.do(&zones, "set-subnets", "--load-balancer-arn", lbARN, "--subnets", sub.Subnet.SubnetId)
	if len(zones.AvailabilityZones) != 1 {
		t.Fatalf("set-subnets back to one: %+v", zones)
	}
	waitUntil(t, 3*time.Second, "the removed node's address gone", func() bool { return !holds() })
	provider.do(nil, "delete-subnet", "--subnet-id", sub2.Subnet.SubnetId)
	// Dualstack and back (set-ip-address-type); the target group's
	// targets are IPv4.
	var ipType struct{ IpAddressType string }
	providerELB.do(&ipType, "set-ip-address-type", "--load-balancer-arn", lbARN, "--ip-address-type", "dualstack")
	if ipType.IpAddressType != "dualstack" {
		t.Fatalf("set-ip-address-type dualstack answered %+v", ipType)
	}
	providerELB.refused("ValidationError", "set-ip-address-type", "--load-balancer-arn", lbARN, "--ip-address-type", "ipv6")
	providerELB.do(&ipType, "set-ip-address-type", "--load-balancer-arn", lbARN, "--ip-address-type", "ipv4")
	var tgs struct {
		TargetGroups []struct{ IpAddressType string }
	}
	providerELB.do(&tgs, "describe-target-groups", "--target-group-arns", tgARN)
	if ipType.IpAddressType != "ipv4" || tgs.TargetGroups[0].IpAddressType != "ipv4" {
		t.Fatalf("back to ipv4: %+v; the target group's type: %+v", ipType, tgs)
	}
	if !echoHello(eni) {
		t.Fatal("no echo through the endpoint after the load balancer's AZs changed")
	}

	// Everything down again through the API, each refused while something
	// still stands on it.
	providerELB.refused("OperationNotPermitted", "delete-load-balancer", "--load-balancer-arn", lbARN)
	providerELB.do(nil, "modify-load-balancer-attributes", "--load-balancer-arn", lbARN, "--attributes", "Key=deletion_protection.enabled,Value=false")
	providerELB.refused("ResourceInUse", "delete-load-balancer", "--load-balancer-arn", lbARN)
	consumer.do(nil, "delete-vpc-endpoints", "--vpc-endpoint-ids", id)
	provider.do(nil, "delete-vpc-endpoint-service-configurations", "--service-ids", serviceID)
	providerELB.do(nil, "delete-load-balancer", "--load-balancer-arn", lbARN)
	providerELB.do(nil, "delete-target-group", "--target-group-arn", tgARN)
	provider.refused("DependencyViolation", "delete-vpc", "--vpc-id", vpc.Vpc.VpcId)
	provider.do(nil, "delete-subnet", "--subnet-id", sub.Subnet.SubnetId)
	provider.do(nil, "delete-vpc", "--vpc-id", vpc.Vpc.VpcId)
	waitUntil(t, 5*time.Second, "the provider VPC's namespace gone", func() bool {
		_, err := os.Stat("/run/netns/" + providerNS)
		return err != nil
	})
}

// echoHello sends "hello" through an ENI and reports whether it came back.
func echoHello(eni ctl.ENIState) bool {
	ctx, cancel := contextWithTimeout(time.Second)
	defer cancel()
	c, err := fabrictest.DialFrom(eni.Netns)(ctx, "tcp", net.JoinHostPort(eni.IP, "80"))
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "hello"
}

// listenInQuietly listens in a namespace, or returns nil.
func listenInQuietly(ns, addr string) net.Listener {
	var ln net.Listener
	if err := nsenter.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return nil
	}
	return ln
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// signedCall makes one EC2 call signed with the AWS SDK's signer and
// returns the HTTP status and body.
func signedCall(t *testing.T, url string, a ctl.Account, region, body string) (int, string) {
	t.Helper()
	return signedServiceCall(t, url, a, region, "ec2", body)
}

// signedServiceCall signs a Query call for a service (ec2, monitoring,
// elasticloadbalancing) with the SDK's signer.
func signedServiceCall(t *testing.T, url string, a ctl.Account, region, service, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey},
		req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestABurstOverTheThrottleIsRefusedAndTheCLIsRetriesGetThrough(t *testing.T) {
	f := fabrictest.Up(t, strings.Replace(demoTopology(t), "availability_zones:", "api: {requests_per_second: 2, burst: 2}\navailability_zones:", 1))
	consumer := awsAs(t, f, "consumer")
	throttled := 0
	for i := 0; i < 10; i++ {
		status, body := signedCall(t, f.Status.API.URL, consumer.account, f.Status.Region, "Action=DescribeVpcs&Version=2016-11-15")
		switch {
		case status == http.StatusOK:
		case status == http.StatusServiceUnavailable && strings.Contains(body, "<Code>RequestLimitExceeded</Code>"):
			throttled++
		default:
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	if throttled < 5 {
		t.Fatalf("%d of 10 back-to-back calls were throttled at 2 per second (burst 2), want most", throttled)
	}
	// Six CLI calls at once: some are throttled, all get through on the
	// CLI's own retries.
	f.Refresh(t)
	before := f.Status.API.Throttled
	consumer.env = []string{"AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=10"}
	time.Sleep(time.Second) // the bucket refills
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		go func() {
			out, err := consumer.run("describe-vpcs")
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			errs <- err
		}()
	}
	for i := 0; i < 6; i++ {
		if err := <-errs; err != nil {
			t.Errorf("a throttled CLI call did not get through: %v", err)
		}
	}
	f.Refresh(t)
	if f.Status.API.Throttled == before {
		t.Fatal("six concurrent CLI calls at 2 per second were never throttled: the test says nothing")
	}
	t.Logf("%d of the CLI's calls were throttled and retried", f.Status.API.Throttled-before)
}

// subscriber is an HTTP endpoint of a topic that records what it is sent,
// and refuses everything (503) while down.
type subscriber struct {
	mu   sync.Mutex
	down bool
	got  []ctl.ConnectionMessage
	srv  *httptest.Server
}

func (s *subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var env ctl.SNSMessage
	var msg ctl.ConnectionMessage
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &env) != nil || env.Type != "Notification" || r.Header.Get("x-amz-sns-message-type") != "Notification" || json.Unmarshal([]byte(env.Message), &msg) != nil {
		http.Error(w, "not an SNS notification: "+string(body), http.StatusBadRequest)
		return
	}
	s.got = append(s.got, msg)
}

func (s *subscriber) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.got {
		out = append(out, m.Event)
	}
	return out
}

func TestConnectionNotificationsArriveAlsoAfterTheSubscriberWasDown(t *testing.T) {
	f := fabrictest.Up(t, providerOnly(t))
	provider, consumer := awsAs(t, f, "provider"), awsAs(t, f, "consumer")
	sub := &subscriber{down: true}
	sub.srv = httptest.NewServer(sub)
	defer sub.srv.Close()

	providerSNS := *provider
	providerSNS.service = "sns"
	var topic struct{ TopicArn string }
	providerSNS.do(&topic, "create-topic", "--name", "endpoint-events")
	providerSNS.do(nil, "subscribe", "--topic-arn", topic.TopicArn, "--protocol", "http", "--notification-endpoint", sub.srv.URL+"/hook")
	serviceID := f.Status.Services[0].ID
	var created struct {
		ConnectionNotification struct{ ConnectionNotificationId string }
	}
	provider.do(&created, "create-vpc-endpoint-connection-notification", "--service-id", serviceID,
		"--connection-notification-arn", topic.TopicArn, "--connection-events", "Connect", "Accept", "Reject", "Delete")
	provider.refused("InvalidParameter", "create-vpc-endpoint-connection-notification", "--service-id", serviceID,
		"--connection-notification-arn", topic.TopicArn, "--connection-events", "Teleport")

	// The whole lifecycle while the subscriber is down.
	vpc, subnet := f.Status.VPCs[1].ID, f.Status.VPCs[1].Subnets[0].ID
	var ep struct {
		VpcEndpoint struct{ VpcEndpointId string }
	}
	consumer.do(&ep, "create-vpc-endpoint", "--vpc-endpoint-type", "Interface", "--vpc-id", vpc, "--service-name", f.Status.Services[0].ServiceName, "--subnet-ids", subnet)
	id := ep.VpcEndpoint.VpcEndpointId
	provider.do(nil, "accept-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id)
	provider.do(nil, "reject-vpc-endpoint-connections", "--service-id", serviceID, "--vpc-endpoint-ids", id)
	consumer.do(nil, "delete-vpc-endpoints", "--vpc-endpoint-ids", id)

	// ctld dies with the events undelivered and comes back: they were
	// committed with the changes that made them.
	time.Sleep(500 * time.Millisecond)
	if p := ctl.DaemonProcess(f.Name); p == nil || syscall.Kill(p.PID, syscall.SIGKILL) != nil {
		t.Fatal("could not kill ctld")
	}
	time.Sleep(200 * time.Millisecond)
	if _, _, err := ctl.EnsureDaemon(f.Name, fabrictest.Binary(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(sub.events()); n != 0 {
		t.Fatalf("a down subscriber took %d events", n)
	}
	sub.mu.Lock()
	sub.down = false
	sub.mu.Unlock()
	waitUntil(t, 15*time.Second, "four events at the subscriber once it is back", func() bool { return len(sub.events()) >= 4 })
	got := sub.events()
	slices.Sort(got)
	if strings.Join(got, ",") != "Accept,Connect,Delete,Reject" {
		t.Fatalf("events %v, want one each of Accept, Connect, Delete, Reject", got)
	}
	sub.mu.Lock()
	msgs := slices.Clone(sub.got)
	sub.mu.Unlock()
	for _, m := range msgs {
		if m.ServiceID != serviceID || m.EndpointID != id || m.EndpointOwner != "444455556666" || m.NotificationID != created.ConnectionNotification.ConnectionNotificationId {
			t.Fatalf("message %+v does not name the service, endpoint, owner and notification", m)
		}
	}
}

func TestASecurityGroupMadeWithTheAPIIsEnforcedByTheENIs(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := awsAs(t, f, "consumer")
	e := f.Status.Endpoints[0]
	reach := func(eni ctl.ENIState) bool {
		c := &peer.Client{Addr: net.JoinHostPort(eni.IP, "80"), Timeout: 700 * time.Millisecond, Dial: fabrictest.DialFrom(eni.Netns)}
		_, err := c.Run(context.Background())
		return err == nil
	}
	if !reach(e.ENIs[0]) || !reach(e.ENIs[1]) {
		t.Fatal("the endpoint does not carry traffic with its VPC's default group")
	}
	def := e.SecurityGroups[0] // the default group, which lets in the whole VPC
	var sg struct{ GroupId string }
	consumer.do(&sg, "create-security-group", "--vpc-id", e.VPCID, "--group-name", "app", "--description", "clients of the web service")
	// Only the az2 subnet's host (198.18.2.4) may connect, on port 80.
	consumer.do(nil, "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.2.0/24")
	consumer.refused("InvalidPermission.Duplicate", "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.2.0/24")
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--add-security-group-ids", sg.GroupId, "--remove-security-group-ids", def)
	waitUntil(t, 3*time.Second, "az1's ENI closed to 198.18.1.4", func() bool { return !reach(e.ENIs[0]) })
	if !reach(e.ENIs[1]) {
		t.Fatal("the allowed source was refused")
	}
	if n := dropsFor(t, f, e.ENIs[0], "security_group"); n == 0 {
		t.Fatal("no security_group drops counted")
	}
	consumer.refused("DependencyViolation", "delete-security-group", "--group-id", sg.GroupId)
	// The endpoint and its interfaces name the group, as AWS shows them.
	var eps struct {
		VpcEndpoints []struct {
			Groups []struct{ GroupId, GroupName string }
		}
	}
	consumer.do(&eps, "describe-vpc-endpoints", "--vpc-endpoint-ids", e.ID)
	var enis struct {
		NetworkInterfaces []struct {
			Groups []struct{ GroupId, GroupName string }
		}
	}
	consumer.do(&enis, "describe-network-interfaces", "--network-interface-ids", e.ENIs[0].ID)
	for what, groups := range map[string][]struct{ GroupId, GroupName string }{"endpoint": eps.VpcEndpoints[0].Groups, "interface": enis.NetworkInterfaces[0].Groups} {
		if len(groups) != 1 || groups[0].GroupId != sg.GroupId || groups[0].GroupName != "app" {
			t.Fatalf("the %s's groups: %+v, want %s (app)", what, groups, sg.GroupId)
		}
	}
	var described struct {
		SecurityGroups []struct {
			GroupId       string
			IpPermissions []struct {
				IpProtocol       string
				FromPort, ToPort int
				IpRanges         []struct{ CidrIp string }
			}
		}
	}
	consumer.do(&described, "describe-security-groups", "--group-ids", sg.GroupId)
	if p := described.SecurityGroups[0].IpPermissions; len(p) != 1 || p[0].FromPort != 80 || p[0].IpRanges[0].CidrIp != "198.18.2.0/24" {
		t.Fatalf("describe-security-groups: %+v", described)
	}
	// Opening az1's subnet too, then taking the group off the endpoint.
	consumer.do(nil, "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.1.0/24")
	waitUntil(t, 3*time.Second, "az1's ENI open to its subnet", func() bool { return reach(e.ENIs[0]) })
	consumer.do(nil, "revoke-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "198.18.1.0/24")
	waitUntil(t, 3*time.Second, "az1's ENI closed again", func() bool { return !reach(e.ENIs[0]) })
	// The last group stays until another takes its place.
	consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--remove-security-group-ids", sg.GroupId)
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--remove-security-group-ids", sg.GroupId, "--add-security-group-ids", def)
	consumer.do(nil, "delete-security-group", "--group-id", sg.GroupId)
	waitUntil(t, 3*time.Second, "both ENIs open with the default group back", func() bool { return reach(e.ENIs[0]) && reach(e.ENIs[1]) })
}
