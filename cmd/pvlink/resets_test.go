package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// TestResetsAreCountedByWhoMadeThem: AWS/NetworkELB counts a load
// balancer's RSTs by origin. Through one ENI, with a 3 s idle timeout: a
// consumer that resets its connection with bytes in flight each way
// (TCP_Client_Reset_Count: the target sees the reset); a target that resets one, and a target that refuses one
// (TCP_Target_Reset_Count: the consumer sees each); a flow forgotten at its
// idle timeout, whose next consumer segment the node answers with a RST,
// and a flow cut when its target's deregistration delay ends, a RST each
// way (TCP_ELB_Reset_Count: three). The provider reads the three counts
// with the aws CLI, by load balancer and by AZ, and the forwarder's
// Prometheus metrics have them by origin.
func TestResetsAreCountedByWhoMadeThem(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    idle_timeout: 3s\n    deregistration_delay: 1s\n    connection_termination: true\n    health_check: {enabled: false}"))
	provider := f.Netns(t, "provider")
	a := startEcho(t, provider, "198.19.1.20:9000")
	// One target, so that every connection reaches a.
	if out, err := fabrictest.Run(t, "fabric", "deregister-target", f.Name, "--target-group", "pool", "--target", "198.19.1.21:9000"); err != nil {
		t.Fatal(err, out)
	}
	open := func(what string) net.Conn {
		c, tg, err := roundTrip(t, f, a)
		if err != nil || tg != a {
			t.Fatalf("%s: %v (target %v)", what, err, tg)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// readEnd is how the consumer's side of c ends, within a few seconds.
	readEnd := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := bufio.NewReader(c).ReadString('\n')
		return err
	}

	// The consumer resets while bytes are in flight both ways (it sends
	// until everything is full, reading none of the echo): both of the
	// relay's directions are busy when its RST comes, and the target gets
	// one RST.
	c := open("client reset")
	served := a.lastConn()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < 64<<20; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			break // full: the deadline
		}
	}
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err, ok := a.endOf(served, 5*time.Second); !ok || !isReset(err) {
		t.Errorf("the target's end of a connection its consumer reset: %v (ended: %v), want a reset", err, ok)
	}

	// The target resets: the consumer gets the RST.
	c = open("target reset")
	if err := a.lastConn().(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	a.lastConn().Close()
	if err := readEnd(c); !isReset(err) {
		t.Errorf("the consumer's end of a connection its target reset: %v, want a reset", err)
	}

	// The flow is forgotten at its idle timeout: the consumer's next
	// segment gets the node's RST.
	c = open("idle")
	waitUntil(t, 10*time.Second, "the idle flow forgotten", func() bool { return len(flowsOf(t, f)) == 0 })
	c.Write([]byte("late\n"))
	if err := readEnd(c); !isReset(err) {
		t.Errorf("the consumer's segment after the idle timeout: %v, want a reset", err)
	}

	// The target is deregistered, and its flow cut once the delay is over:
	// the node resets both sides.
	c = open("deregistered")
	served = a.lastConn()
	if out, err := fabrictest.Run(t, "fabric", "deregister-target", f.Name, "--target-group", "pool", "--target", a.addr); err != nil {
		t.Fatal(err, out)
	}
	if err := readEnd(c); !isReset(err) {
		t.Errorf("the consumer's end of a flow cut after its target's deregistration: %v, want a reset", err)
	}
	if err, ok := a.endOf(served, 5*time.Second); !ok || !isReset(err) {
		t.Errorf("the target's end of a flow cut after its deregistration: %v (ended: %v), want a reset", err, ok)
	}

	// A target where nothing listens refuses: the consumer's connect gets
	// the target's RST.
	const nobody = "198.19.1.21:9000"
	var tgs struct {
		TargetGroups []struct{ TargetGroupArn string }
	}
	elb := awsAs(t, f, "provider").elb()
	elb.do(&tgs, "describe-target-groups", "--names", "pool")
	elb.do(nil, "register-targets", "--target-group-arn", tgs.TargetGroups[0].TargetGroupArn, "--targets", "Id=198.19.1.21,Port=9000")
	// Without health checks it stays initial, and takes the flows: the
	// only target not deregistered.
	waitUntil(t, 10*time.Second, "the new target at the node", func() bool { return targetState(t, f, nobody) == "initial" })
	if c, _, err := roundTrip(t, f); err == nil {
		c.Close()
		t.Fatal("a connection to a target that listens no more went through")
	} else if !isReset(err) && !strings.Contains(err.Error(), "refused") {
		t.Errorf("a connection to a target that refuses: %v, want refused", err)
	}

	want := map[string]float64{"TCP_Client_Reset_Count": 1, "TCP_Target_Reset_Count": 2, "TCP_ELB_Reset_Count": 3}
	for metric, n := range want {
		if got := nlbStatistic(t, f, metric, "Sum"); got != n {
			t.Errorf("AWS/NetworkELB %s: %v, want %v", metric, got, n)
		}
		if got := nlbStatistic(t, f, metric, "Sum", "AvailabilityZone", "us-east-1a"); got != n {
			t.Errorf("AWS/NetworkELB %s in us-east-1a: %v, want %v", metric, got, n)
		}
	}
	byOrigin := resetsByOrigin(t, f.Metrics(t, "use1-az1"))
	for origin, n := range map[string]float64{"client": 1, "target": 2, "load_balancer": 3} {
		if byOrigin[origin] != n {
			t.Errorf("pvlink_load_balancer_resets_total{origin=%q}: %v, want %v", origin, byOrigin[origin], n)
		}
	}
}

// resetsByOrigin reads pvlink_load_balancer_resets_total from a forwarder's
// Prometheus text, summed by origin.
func resetsByOrigin(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, m := range fams["pvlink_load_balancer_resets_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "origin" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}
