package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/awsxml"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

func TestAConsumerInOneRegionReachesAServiceHostedInAnotherByName(t *testing.T) {
	f := fabrictest.Up(t, example(t, "two-regions"))
	e := f.Status.Endpoints[0]
	if e.Region != "us-west-2" || e.ServiceRegion != "us-east-1" {
		t.Fatalf("fabric status: endpoint region %q, service_region %q", e.Region, e.ServiceRegion)
	}
	if !strings.HasSuffix(e.DNSNames[0], ".us-east-1.vpce.amazonaws.com") {
		t.Fatalf("the regional name %s does not carry the service Region", e.DNSNames[0])
	}
	var azs []string
	for _, fw := range f.Status.Forwarders {
		azs = append(azs, fw.AZ)
	}
	if !slices.Equal(azs, []string{"usw2-az1", "usw2-az2"}) {
		t.Fatalf("forwarders in %v, want the consumer's AZs", azs)
	}
	consumer := f.Netns(t, "consumer")
	v4, _ := enisOf(e)
	if got := dig(t, consumer, e.DNSNames[0], "A"); !slices.Equal(got, v4) {
		t.Fatalf("%s resolves to %v in the consumer VPC, want %v", e.DNSNames[0], got, v4)
	}
	// By name, from the consumer VPC: each connection reaches a target in
	// the host Region, which learns the consumer and the endpoint from the
	// proxy protocol header.
	seenAZ := map[string]bool{}
	for i := 0; i < 10; i++ {
		out, err := inNetns(t, consumer, fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "across Regions\n")
		if err != nil {
			t.Fatalf("pvlink client %s: %v\n%s", e.DNSNames[0], err, out)
		}
		var res peer.Result
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var seen peer.Seen
		json.Unmarshal(res.Target, &seen)
		if seen.Proxy == nil || seen.Proxy.VPCEndpoint != e.ID || seen.Proxy.Source != res.Local {
			t.Fatalf("the target saw %s, want a proxy header from %s via %s", res.Target, res.Local, e.ID)
		}
		if !strings.HasPrefix(seen.AZ, "use1-") {
			t.Fatalf("a target in %s answered; the service is in us-east-1", seen.AZ)
		}
		seenAZ[seen.AZ] = true
	}
	t.Logf("10 connections by name from us-west-2 reached targets in %v", seenAZ)

	// CloudWatch: the provider's service metrics count them; the
	// consumer, using cross-Region access, gets no endpoint metrics (as
	// the guide says).
	provider, consumerAcct := accountNamed(t, f, "provider"), accountNamed(t, f, "consumer")
	list := "Action=ListMetrics&Version=2010-08-01&Namespace="
	if st, out := signedServiceCall(t, f.Status.API.URL, provider, "us-east-1", "monitoring", list+"AWS%2FPrivateLinkServices"); st != 200 || !strings.Contains(out, "<MetricName>NewConnections</MetricName>") {
		t.Errorf("the provider's service metrics: %d %s", st, out)
	}
	if st, out := signedServiceCall(t, f.Status.API.URL, consumerAcct, "us-west-2", "monitoring", list+"AWS%2FPrivateLinkEndpoints"); st != 200 || strings.Contains(out, "<MetricName>") {
		t.Errorf("endpoint metrics published for a cross-Region consumer: %d %s", st, out)
	}

	// Connections open when one provider AZ goes down: those pinned to
	// its target see their bytes vanish (a timeout), the others carry on.
	type pinned struct {
		c  net.Conn
		r  *bufio.Reader
		az string
	}
	var open []pinned
	dial := fabrictest.DialFrom(consumer)
	for i := 0; i < 20 && (len(open) < 8 || !slices.ContainsFunc(open, func(p pinned) bool { return p.az == "use1-az1" }) || !slices.ContainsFunc(open, func(p pinned) bool { return p.az == "use1-az2" })); i++ {
		c, err := dial(context.Background(), "tcp", e.ENIs[i%2].IP+":80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("pin\n"))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		r.ReadString('\n') // the echo
		var seen peer.Seen
		json.Unmarshal([]byte(line), &seen)
		open = append(open, pinned{c, r, seen.AZ})
	}
	// One provider AZ down: once its target fails its checks, every
	// connection goes to the provider's other AZ; no failover to another
	// Region is involved, the consumer's AZs are all up.
	if out, err := fabrictest.Run(t, "fault", "az-down", f.Name, "use1-az1"); err != nil {
		t.Fatalf("fault az-down: %v\n%s", err, out)
	}
	lost := 0
	deadline := time.Now().Add(1500 * time.Millisecond)
	for _, p := range open {
		p.c.SetDeadline(deadline)
		p.c.Write([]byte("still there?\n"))
	}
	type answer struct {
		got string
		err error
	}
	answers := make([]answer, len(open))
	var wg sync.WaitGroup
	for i, p := range open {
		wg.Add(1)
		go func() { // each waits on its own: a read past the deadline fails at once
			defer wg.Done()
			got, err := p.r.ReadString('\n')
			answers[i] = answer{got, err}
		}()
	}
	wg.Wait()
	for i, p := range open {
		got, err := answers[i].got, answers[i].err
		switch {
		case p.az == "use1-az1" && !isTimeout(err):
			t.Errorf("a flow pinned to the downed AZ: %q, %v; want a timeout", got, err)
		case p.az == "use1-az1":
			lost++
		case err != nil:
			t.Errorf("a flow pinned to use1-az2 failed when use1-az1 went down: %v", err)
		}
	}
	t.Logf("use1-az1 down: %d of %d open flows (those pinned there) timed out, the others carried on", lost, len(open))
	for _, fw := range f.Status.Forwarders {
		waitUntil(t, 15*time.Second, fw.AZ+"'s view of the use1-az1 target", func() bool {
			var ts []snapshot.TargetInfo
			fabrictest.ForwarderJSON(t, fw, "/targets", &ts)
			for _, x := range ts {
				if x.Target == "198.19.1.10:8080" {
					return x.State == "unhealthy"
				}
			}
			return false
		})
	}
	for i := 0; i < 10; i++ {
		out, err := inNetns(t, consumer, fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "one AZ down\n", "--timeout", "5s")
		if err != nil {
			t.Fatalf("with use1-az1 down: %v\n%s", err, out)
		}
		var res peer.Result
		json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res)
		var seen peer.Seen
		json.Unmarshal(res.Target, &seen)
		if seen.AZ != "use1-az2" {
			t.Fatalf("with use1-az1 down, a connection reached %q", seen.AZ)
		}
	}
	if out, err := fabrictest.Run(t, "fault", "az-up", f.Name, "use1-az1"); err != nil {
		t.Fatalf("fault az-up: %v\n%s", err, out)
	}
	// The flows that were pinned there carry on: their bytes arrive.
	for _, p := range open {
		if p.az != "use1-az1" {
			continue
		}
		p.c.SetDeadline(time.Now().Add(15 * time.Second))
		if got, err := p.r.ReadString('\n'); err != nil || got != "still there?\n" {
			t.Errorf("a flow pinned to use1-az1 after az-up: %q, %v", got, err)
		}
	}

	// The provider's Region down: the endpoint fails, with nowhere else to
	// go (PrivateLink does not fail over across Regions); the consumer's
	// own AZs stay up, so its DNS names still answer.
	if out, err := fabrictest.Run(t, "fault", "region-down", f.Name, "us-east-1"); err != nil {
		t.Fatalf("fault region-down: %v\n%s", err, out)
	}
	if out, _ := fabrictest.Run(t, "fabric", "status", f.Name); !strings.Contains(out, "FAULT: region-down us-east-1") {
		t.Errorf("fabric status does not show the Region down:\n%s", out)
	}
	if got := dig(t, consumer, e.DNSNames[0], "A"); !slices.Equal(got, v4) {
		t.Errorf("with the provider's Region down the consumer's name gives %v, want its ENIs %v", got, v4)
	}
	out, err := inNetns(t, consumer, fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "Region down\n", "--timeout", "3s")
	if err == nil {
		t.Fatalf("a connection went through with the provider's Region down:\n%s", out)
	}
	if !strings.Contains(out, "deadline") && !strings.Contains(out, "timeout") {
		t.Errorf("with the provider's Region down: %s; want a timeout (no RST, no ICMP)", out)
	}
	if out, err := fabrictest.Run(t, "fault", "region-up", f.Name, "us-east-1"); err != nil {
		t.Fatalf("fault region-up: %v\n%s", err, out)
	}
	waitUntil(t, 20*time.Second, "connections through again after region-up", func() bool {
		out, err := inNetns(t, consumer, fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "back\n", "--timeout", "2s")
		return err == nil && strings.Contains(out, e.ID)
	})
}

// accountNamed and vpcNamed find a fabric's account or VPC by name.
func accountNamed(t *testing.T, f *fabrictest.Fabric, name string) ctl.Account {
	t.Helper()
	for _, a := range f.Status.Accounts {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no account %s", name)
	return ctl.Account{}
}

func vpcNamed(t *testing.T, f *fabrictest.Fabric, name string) ctl.VPCState {
	t.Helper()
	for _, v := range f.Status.VPCs {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no VPC %s", name)
	return ctl.VPCState{}
}

// waitAvailable waits for an endpoint to be available with the host
// running it, and gives its status.
func waitAvailable(t *testing.T, f *fabrictest.Fabric, id string) ctl.EndpointState {
	t.Helper()
	var e ctl.EndpointState
	waitUntil(t, 15*time.Second, "endpoint "+id+" available", func() bool {
		f.Refresh(t)
		for _, x := range f.Status.Endpoints {
			if x.ID == id {
				e = x
			}
		}
		return e.State == "available" && f.Status.Phase == "up"
	})
	return e
}

func TestTheAPIAnswersPerRegionAndCreatesACrossRegionEndpoint(t *testing.T) {
	f := fabrictest.Up(t, example(t, "two-regions"))
	consumer := accountNamed(t, f, "consumer")
	svc := f.Status.Services[0]
	vpc := vpcNamed(t, f, "consumer")
	url := f.Status.API.URL
	// In us-west-2 the service of us-east-1 can be reached, and says
	// where it is; a Region the fabric does not have is refused.
	st, out := signedCall(t, url, consumer, "us-west-2", "Action=DescribeVpcEndpointServices&Version=2016-11-15")
	if st != 200 || !strings.Contains(out, svc.ServiceName) || awsxml.Field(out, "serviceRegion") != "us-east-1" {
		t.Fatalf("DescribeVpcEndpointServices in us-west-2: %d %s", st, out)
	}
	if st, out := signedCall(t, url, consumer, "eu-west-1", "Action=DescribeVpcs&Version=2016-11-15"); st != 401 || !strings.Contains(out, "AuthFailure") {
		t.Errorf("a Region the fabric does not have: %d %s", st, out)
	}
	st, out = signedCall(t, url, consumer, "us-west-2", "Action=DescribeAvailabilityZones&Version=2016-11-15")
	if st != 200 || !strings.Contains(out, "usw2-az1") || strings.Contains(out, "use1-az1") {
		t.Errorf("DescribeAvailabilityZones in us-west-2: %d %s", st, out)
	}
	// The consumer's VPC is in us-west-2: seen there, not in us-east-1.
	if _, out := signedCall(t, url, consumer, "us-east-1", "Action=DescribeVpcs&Version=2016-11-15"); strings.Contains(out, vpc.ID) {
		t.Errorf("the us-west-2 VPC is listed in us-east-1")
	}
	// Without ServiceRegion the service is not found in us-west-2; with
	// it, the endpoint is made.
	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId=" + vpc.ID + "&ServiceName=" + svc.ServiceName + "&SubnetId.1=" + vpc.Subnets[0].ID
	if st, out := signedCall(t, url, consumer, "us-west-2", create); st != 400 || !strings.Contains(out, "InvalidServiceName") {
		t.Errorf("without ServiceRegion: %d %s", st, out)
	}
	st, out = signedCall(t, url, consumer, "us-west-2", create+"&ServiceRegion=us-east-1")
	id := awsxml.Field(out, "vpcEndpointId")
	if st != 200 || id == "" || awsxml.Field(out, "serviceRegion") != "us-east-1" {
		t.Fatalf("CreateVpcEndpoint with ServiceRegion: %d %s", st, out)
	}
	e := waitAvailable(t, f, id)
	if e.Region != "us-west-2" || e.ServiceRegion != "us-east-1" || !strings.Contains(e.DNSNames[0], ".us-east-1.vpce.amazonaws.com") {
		t.Fatalf("the API's endpoint: %+v", e)
	}
	out, err := inNetns(t, f.Netns(t, "consumer"), fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "made through the API\n")
	if err != nil {
		t.Fatalf("pvlink client: %v\n%s", err, out)
	}
	var res peer.Result
	json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res)
	var seen peer.Seen
	json.Unmarshal(res.Target, &seen)
	if seen.Proxy == nil || seen.Proxy.VPCEndpoint != id || !strings.HasPrefix(seen.AZ, "use1-") {
		t.Fatalf("the target saw %s, want the proxy header of %s in us-east-1", res.Target, id)
	}
	// The provider, in its Region, sees where the connection comes from.
	provider := accountNamed(t, f, "provider")
	st, out = signedCall(t, url, provider, "us-east-1", "Action=DescribeVpcEndpointConnections&Version=2016-11-15&Filter.1.Name=vpc-endpoint-id&Filter.1.Value.1="+id)
	if st != 200 || awsxml.Field(out, "vpcEndpointRegion") != "us-west-2" || awsxml.Field(out, "vpcEndpointConnectionId") != "vpce-con-"+strings.TrimPrefix(id, "vpce-") {
		t.Fatalf("the provider's DescribeVpcEndpointConnections: %d %s", st, out)
	}
}

func TestSupportedRegionsThroughTheAPIFollowTheRules(t *testing.T) {
	f := fabrictest.Up(t, example(t, "two-regions"))
	provider, consumer := accountNamed(t, f, "provider"), accountNamed(t, f, "consumer")
	svc := f.Status.Services[0]
	url := f.Status.API.URL
	modify := func(params string) (int, string) {
		return signedCall(t, url, provider, "us-east-1", "Action=ModifyVpcEndpointServiceConfiguration&Version=2016-11-15&ServiceId="+svc.ID+params)
	}
	regions := func() []string {
		_, out := signedCall(t, url, provider, "us-east-1", "Action=DescribeVpcEndpointServiceConfigurations&Version=2016-11-15&ServiceId.1="+svc.ID)
		var rs []string
		for _, part := range strings.Split(out, "<region>")[1:] {
			rs = append(rs, part[:strings.Index(part, "<")])
		}
		return rs
	}
	if got := regions(); !slices.Equal(got, []string{"us-east-1", "us-west-2"}) {
		t.Fatalf("supported Regions %v", got)
	}
	// The host Region stays.
	if st, out := modify("&RemoveSupportedRegion.1=us-east-1"); st != 400 || !strings.Contains(out, "cannot be removed") {
		t.Errorf("removing the host Region: %d %s", st, out)
	}
	if st, out := modify("&AddSupportedRegion.1=eu-west-1"); st != 400 || !strings.Contains(out, "is not one of the fabric") {
		t.Errorf("a Region the fabric does not have: %d %s", st, out)
	}
	// Removed: the existing endpoint keeps working, a new one is refused.
	if st, out := modify("&RemoveSupportedRegion.1=us-west-2"); st != 200 {
		t.Fatalf("removing us-west-2: %d %s", st, out)
	}
	if got := regions(); !slices.Equal(got, []string{"us-east-1"}) {
		t.Fatalf("supported Regions after the removal: %v", got)
	}
	e := f.Status.Endpoints[0]
	if out, err := inNetns(t, f.Netns(t, "consumer"), fabrictest.Binary(t), "client", e.DNSNames[0]+":80", "--message", "still here\n"); err != nil || !strings.Contains(out, e.ID) {
		t.Errorf("the existing endpoint after its Region was removed: %v\n%s", err, out)
	}
	vpc := vpcNamed(t, f, "consumer")
	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcId=" + vpc.ID + "&ServiceName=" + svc.ServiceName + "&SubnetId.1=" + vpc.Subnets[0].ID + "&ServiceRegion=us-east-1"
	if st, out := signedCall(t, url, consumer, "us-west-2", create); st != 400 || !strings.Contains(out, "does not support Region us-west-2") {
		t.Errorf("a new endpoint from the removed Region: %d %s", st, out)
	}
	// Offered there again (ctl's unit tests hold the idle timeout rule,
	// which the API cannot reach: the timeout is a topology setting).
	if st, out := modify("&AddSupportedRegion.1=us-west-2"); st != 200 {
		t.Fatalf("adding us-west-2 back: %d %s", st, out)
	}
	if got := regions(); !slices.Equal(got, []string{"us-east-1", "us-west-2"}) {
		t.Fatalf("supported Regions after adding us-west-2 back: %v", got)
	}
}
