package api

import (
	"strings"
	"testing"
	"time"
)

// A listener's TCP idle timeout is its attribute, as in ELBv2: listed
// (350 s by default), set from 60 to 6000 s for its load balancer's owner
// only, kept in the model the forwarders are programmed from, and refused
// on a load balancer whose service is offered in other Regions.
func TestListenerAttributesCarryTheIdleTimeout(t *testing.T) {
	b, srv := demoBackend(t)
	provider, consumer := account(b, "provider"), account(b, "consumer")
	lb := b.m.LoadBalancers[0]
	arn := "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener/net/" + lb.Name + "/" + lb.ID + "/" + lb.Listeners[0].ID
	elb := func(body string) (int, string) {
		return call(t, srv.URL, provider, "elasticloadbalancing", "Version=2015-12-01&"+body, time.Now())
	}
	set := func(key, value string) (int, string) {
		return elb("Action=ModifyListenerAttributes&ListenerArn=" + arn + "&Attributes.member.1.Key=" + key + "&Attributes.member.1.Value=" + value)
	}
	const idle = "<Key>tcp.idle_timeout.seconds</Key><Value>"
	if status, out := elb("Action=DescribeListenerAttributes&ListenerArn=" + arn); status != 200 || !strings.Contains(out, idle+"350</Value>") || !strings.Contains(out, "<DescribeListenerAttributesResult>") {
		t.Fatalf("describe: %d %s", status, out)
	}
	if status, out := set("tcp.idle_timeout.seconds", "120"); status != 200 || !strings.Contains(out, idle+"120</Value>") {
		t.Fatalf("set 120: %d %s", status, out)
	}
	if got := b.m.LoadBalancers[0].Listeners[0].IdleTimeout; got != 120*time.Second {
		t.Fatalf("the model's listener idle timeout is %v", got)
	}
	for _, c := range []struct{ key, value, code string }{
		{"tcp.idle_timeout.seconds", "59", "ValidationError"},
		{"tcp.idle_timeout.seconds", "6001", "ValidationError"},
		{"tcp.idle_timeout.seconds", "ten", "ValidationError"},
		{"routing.http.response.server.enabled", "true", "ValidationError"},
	} {
		if status, out := set(c.key, c.value); status != 400 || !strings.Contains(out, "<Code>"+c.code+"</Code>") {
			t.Errorf("%s=%s: %d %s, want %s", c.key, c.value, status, out, c.code)
		}
	}
	if status, out := elb("Action=ModifyListenerAttributes&ListenerArn=" + arn); status != 400 || !strings.Contains(out, "<Code>ValidationError</Code>") {
		t.Errorf("no attributes: %d %s", status, out)
	}
	if status, out := call(t, srv.URL, consumer, "elasticloadbalancing", "Version=2015-12-01&Action=DescribeListenerAttributes&ListenerArn="+arn, time.Now()); status != 400 || !strings.Contains(out, "<Code>ListenerNotFound</Code>") {
		t.Errorf("another account's listener: %d %s", status, out)
	}
	if got := b.m.LoadBalancers[0].Listeners[0].IdleTimeout; got != 120*time.Second {
		t.Fatalf("refused changes changed the idle timeout to %v", got)
	}

	// Offered in another Region, the service's load balancer keeps the
	// default (cross-Region access refuses a custom one).
	set("tcp.idle_timeout.seconds", "350")
	b.m.Services[0].SupportedRegions = []string{"us-east-1", "us-west-2"}
	if status, out := set("tcp.idle_timeout.seconds", "600"); status != 400 || !strings.Contains(out, "other Regions") {
		t.Errorf("a custom idle timeout on a cross-Region service's load balancer: %d %s", status, out)
	}
}
