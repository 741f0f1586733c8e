package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// ec2Client is a current AWS SDK (aws-sdk-go-v2's EC2 client, whose model
// has SupportedRegions and ServiceRegion, which Debian's AWS CLI 2.9
// predates) pointed at the fabric's API as an account, in a Region.
func ec2Client(f *fabrictest.Fabric, a ctl.Account, region string) *ec2.Client {
	return ec2.New(ec2.Options{Region: region, BaseEndpoint: aws.String(f.Status.API.URL), Credentials: credentialsOf(a)})
}

// credentialsOf are an account's keys for the SDK's clients.
func credentialsOf(a ctl.Account) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, nil
	})
}

// elbClient is aws-sdk-go-v2's ELBv2 client (whose model has the listener
// attributes, which Debian's AWS CLI 2.9 predates), the same way.
func elbClient(f *fabrictest.Fabric, a ctl.Account, region string) *elasticloadbalancingv2.Client {
	return elasticloadbalancingv2.New(elasticloadbalancingv2.Options{Region: region, BaseEndpoint: aws.String(f.Status.API.URL), Credentials: credentialsOf(a)})
}

func TestACurrentAWSSDKOffersAServiceInAnotherRegionAndConnectsFromThere(t *testing.T) {
	f := fabrictest.Up(t, example(t, "two-regions"))
	provider, consumer := accountNamed(t, f, "provider"), accountNamed(t, f, "consumer")
	ctx := context.Background()
	svc := f.Status.Services[0]
	east := ec2Client(f, provider, "us-east-1")
	west := ec2Client(f, consumer, "us-west-2")

	// The provider takes us-west-2 off and puts it back; the host Region
	// cannot go.
	if _, err := east.ModifyVpcEndpointServiceConfiguration(ctx, &ec2.ModifyVpcEndpointServiceConfigurationInput{ServiceId: aws.String(svc.ID), RemoveSupportedRegions: []string{"us-east-1"}}); err == nil {
		t.Error("the SDK removed the host Region")
	}
	if _, err := east.ModifyVpcEndpointServiceConfiguration(ctx, &ec2.ModifyVpcEndpointServiceConfigurationInput{ServiceId: aws.String(svc.ID), RemoveSupportedRegions: []string{"us-west-2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.ModifyVpcEndpointServiceConfiguration(ctx, &ec2.ModifyVpcEndpointServiceConfigurationInput{ServiceId: aws.String(svc.ID), AddSupportedRegions: []string{"us-west-2"}}); err != nil {
		t.Fatal(err)
	}
	conf, err := east.DescribeVpcEndpointServiceConfigurations(ctx, &ec2.DescribeVpcEndpointServiceConfigurationsInput{ServiceIds: []string{svc.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var regions []string
	for _, r := range conf.ServiceConfigurations[0].SupportedRegions {
		regions = append(regions, aws.ToString(r.Region))
	}
	if !slices.Equal(regions, []string{"us-east-1", "us-west-2"}) {
		t.Fatalf("SupportedRegions through the SDK: %v", regions)
	}

	// The consumer, in us-west-2, sees the service with its Region and
	// creates an endpoint to it.
	services, err := west.DescribeVpcEndpointServices(ctx, &ec2.DescribeVpcEndpointServicesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(services.ServiceDetails) != 1 || aws.ToString(services.ServiceDetails[0].ServiceRegion) != "us-east-1" {
		t.Fatalf("DescribeVpcEndpointServices in us-west-2: %+v", services.ServiceDetails)
	}
	vpcs, err := west.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatalf("the consumer's VPCs in us-west-2: %v, %v", vpcs, err)
	}
	subnets, err := west.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	made, err := west.CreateVpcEndpoint(ctx, &ec2.CreateVpcEndpointInput{
		VpcId: vpcs.Vpcs[0].VpcId, ServiceName: aws.String(svc.ServiceName), ServiceRegion: aws.String("us-east-1"),
		SubnetIds: []string{aws.ToString(subnets.Subnets[0].SubnetId)},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(made.VpcEndpoint.VpcEndpointId)
	e := waitAvailable(t, f, id)
	described, err := west.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{id}})
	if err != nil || aws.ToString(described.VpcEndpoints[0].ServiceRegion) != "us-east-1" {
		t.Fatalf("DescribeVpcEndpoints through the SDK: %v, %v", described, err)
	}
	out, err := inNetns(t, f.Netns(t, "consumer"), fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "from the SDK's endpoint\n")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("a connection by the SDK endpoint's name: %v\n%s", err, out)
	}
}
