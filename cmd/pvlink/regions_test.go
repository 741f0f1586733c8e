package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

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

	// One provider AZ down: once its target fails its checks, every
	// connection goes to the provider's other AZ; no failover to another
	// Region is involved, the consumer's AZs are all up.
	if out, err := fabrictest.Run(t, "fault", "az-down", f.Name, "use1-az1"); err != nil {
		t.Fatalf("fault az-down: %v\n%s", err, out)
	}
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
}
