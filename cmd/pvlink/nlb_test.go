package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
	"pvlink.dev/pvlink/snapshot"
)

// poolTopology: the demo fabric whose listener on port 80 goes to a group
// of two targets in use1-az1 that the test serves itself, with short NLB
// timers. extra is YAML for the target group's attributes.
func poolTopology(t *testing.T, extra string) string {
	topo := demoTopology(t)
	topo = strings.Replace(topo, "load_balancers:\n", `  - name: pool
    vpc: provider
    port: 9000
`+extra+`
    targets:
      - {ip: 198.19.1.20, external: true}
      - {ip: 198.19.1.21, external: true}

load_balancers:
`, 1)
	return strings.Replace(topo, "{protocol: TCP, port: 80, target_group: web}", "{protocol: TCP, port: 80, target_group: pool}", 1)
}

// echoTarget is a target the test runs in the provider namespace: it echoes
// lines and remembers its connections.
type echoTarget struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	ended map[net.Conn]chan error // how each connection's echo ended
}

func startEcho(t *testing.T, ns, addr string) *echoTarget {
	e := &echoTarget{addr: addr, ln: listenIn(t, ns, addr), ended: map[net.Conn]chan error{}}
	go func() {
		for {
			c, err := e.ln.Accept()
			if err != nil {
				return
			}
			done := make(chan error, 1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.ended[c] = done
			e.mu.Unlock()
			go func() {
				_, err := io.Copy(c, c)
				done <- err
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoTarget) close() {
	e.ln.Close()
	e.closeConns()
}

// closeConns closes the connections the target has accepted so far.
func (e *echoTarget) closeConns() {
	e.mu.Lock()
	for _, c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
}

// endOf waits for how a connection's echo ended: nil for a FIN, or the
// error (a reset).
func (e *echoTarget) endOf(c net.Conn, wait time.Duration) (error, bool) {
	e.mu.Lock()
	done := e.ended[c]
	e.mu.Unlock()
	select {
	case err := <-done:
		return err, true
	case <-time.After(wait):
		return nil, false
	}
}

func (e *echoTarget) lastConn() net.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.conns) == 0 {
		return nil
	}
	return e.conns[len(e.conns)-1]
}

// roundTrip connects from the consumer to the az1 ENI, sends a line, reads
// the echo, and returns the open connection and which target served it.
func roundTrip(t *testing.T, f *fabrictest.Fabric, targets ...*echoTarget) (net.Conn, *echoTarget, error) {
	t.Helper()
	eni := f.Status.Endpoints[0].ENIs[0]
	c, err := fabrictest.DialFrom(f.Netns(t, "consumer"))(context.Background(), "tcp", eni.IP+":80")
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "ping\n" {
		c.Close()
		return nil, nil, fmt.Errorf("echo: %q, %v", line, err)
	}
	c.SetDeadline(time.Time{})
	local := c.LocalAddr().String()
	// Which target got it: the one whose last accepted connection is newest
	// is ambiguous under concurrency (health checks connect too), so ask
	// the forwarder.
	for _, fl := range flowsOf(t, f) {
		if fl.Src == local {
			for _, tg := range targets {
				if tg.addr == fl.Target {
					return c, tg, nil
				}
			}
		}
	}
	return c, nil, nil
}

func flowsOf(t *testing.T, f *fabrictest.Fabric) []snapshot.FlowInfo {
	t.Helper()
	var out []snapshot.FlowInfo
	f.GetJSON(t, "use1-az1", "/flows", &out)
	return out
}

func statsOf(t *testing.T, f *fabrictest.Fabric) snapshot.Stats {
	t.Helper()
	var s snapshot.Stats
	f.GetJSON(t, "use1-az1", "/stats", &s)
	return s
}

func targetState(t *testing.T, f *fabrictest.Fabric, addr string) string {
	t.Helper()
	var ts []snapshot.TargetInfo
	f.GetJSON(t, "use1-az1", "/targets", &ts)
	for _, x := range ts {
		if x.Target == addr {
			return x.State
		}
	}
	return "absent"
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// The idle timeout is the listener's (ELBv2's listener attribute
// tcp.idle_timeout.seconds), which wins over its target group's: the
// flow is forgotten after the listener's 2 s, not the group's 300 s.
func TestIdleFlowIsForgottenAndTheNextSegmentGetsRST(t *testing.T) {
	// 2 s: long enough that a loaded machine lists the flow before it
	// goes, short enough for a test.
	topo := poolTopology(t, "    idle_timeout: 300s\n    health_check: {enabled: false}")
	topo = strings.Replace(topo, "target_group: pool}", "target_group: pool, idle_timeout: 2s}", 1)
	f := fabrictest.Up(t, topo)
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	c, served, err := roundTrip(t, f, a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fls := flowsOf(t, f)
	if served == nil || len(fls) != 1 || fls[0].IdleTimeout != 2 {
		t.Fatalf("flow not listed, or not with the listener's 2 s idle timeout: %+v", fls)
	}
	// The flow's NAT binding is the node's address and port the target
	// saw the connection come from.
	if saw := served.lastConn().RemoteAddr().String(); fls[0].Node != saw {
		t.Errorf("flow lists node %q; the target saw %s", fls[0].Node, saw)
	}
	took := waitUntil(t, 6*time.Second, "the idle flow leaves the table", func() bool { return len(flowsOf(t, f)) == 0 })
	t.Logf("flow forgotten %s after going idle (timeout 2s)", took)
	if statsOf(t, f).IdleExpired != 1 {
		t.Errorf("idle_expired = %d", statsOf(t, f).IdleExpired)
	}
	// The target's next segment finds no socket on the node: RST.
	tc := served.lastConn()
	if err, ended := served.endOf(tc, 100*time.Millisecond); ended {
		t.Fatalf("the node closed the target's connection at the timeout (%v): an NLB forgets silently", err)
	}
	tc.Write([]byte("late\n"))
	if err, ended := served.endOf(tc, 3*time.Second); !ended || !isReset(err) {
		t.Errorf("target after the timeout: ended=%v err=%v, want connection reset", ended, err)
	}
	// The consumer's next segment gets a RST.
	c.Write([]byte("anyone?\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(make([]byte, 16)); !isReset(err) {
		t.Errorf("consumer after the timeout: %d bytes, %v; want connection reset", n, err)
	}

	// Through a current AWS SDK: the listener lists its 2 s, takes 60 s
	// (AWS's least) for the flows that come after, and refuses less, as
	// the target group refuses the attribute altogether.
	ctx := context.Background()
	elb := elbClient(f, accountNamed(t, f, "provider"), f.Status.Region)
	lbs, err := elb.DescribeLoadBalancers(ctx, &elasticloadbalancingv2.DescribeLoadBalancersInput{})
	if err != nil || len(lbs.LoadBalancers) != 1 {
		t.Fatalf("DescribeLoadBalancers: %v, %+v", err, lbs)
	}
	ls, err := elb.DescribeListeners(ctx, &elasticloadbalancingv2.DescribeListenersInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn})
	if err != nil || len(ls.Listeners) != 1 {
		t.Fatalf("DescribeListeners: %v, %+v", err, ls)
	}
	arn := ls.Listeners[0].ListenerArn
	idleOf := func(attrs []elbtypes.ListenerAttribute) string {
		for _, a := range attrs {
			if aws.ToString(a.Key) == "tcp.idle_timeout.seconds" {
				return aws.ToString(a.Value)
			}
		}
		return ""
	}
	got, err := elb.DescribeListenerAttributes(ctx, &elasticloadbalancingv2.DescribeListenerAttributesInput{ListenerArn: arn})
	if err != nil || idleOf(got.Attributes) != "2" {
		t.Fatalf("DescribeListenerAttributes: %v, %+v", err, got)
	}
	set := func(v string) ([]elbtypes.ListenerAttribute, error) {
		out, err := elb.ModifyListenerAttributes(ctx, &elasticloadbalancingv2.ModifyListenerAttributesInput{ListenerArn: arn,
			Attributes: []elbtypes.ListenerAttribute{{Key: aws.String("tcp.idle_timeout.seconds"), Value: aws.String(v)}}})
		if err != nil {
			return nil, err
		}
		return out.Attributes, nil
	}
	if _, err := set("30"); err == nil || !strings.Contains(err.Error(), "60 to 6000") {
		t.Errorf("an idle timeout of 30 s: %v, want a refusal", err)
	}
	if attrs, err := set("60"); err != nil || idleOf(attrs) != "60" {
		t.Fatalf("ModifyListenerAttributes to 60: %v, %+v", err, attrs)
	}
	tgArn := ls.Listeners[0].DefaultActions[0].TargetGroupArn
	if _, err := elb.ModifyTargetGroupAttributes(ctx, &elasticloadbalancingv2.ModifyTargetGroupAttributesInput{TargetGroupArn: tgArn,
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("tcp.idle_timeout.seconds"), Value: aws.String("60")}}}); err == nil || !strings.Contains(err.Error(), "listener attribute") {
		t.Errorf("the idle timeout as a target group attribute: %v, want a refusal naming the listener attribute", err)
	}
	waitUntil(t, 5*time.Second, "a new flow under the listener's 60 s", func() bool {
		c, _, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, fl := range flowsOf(t, f) {
			if fl.Src == c.LocalAddr().String() {
				return fl.IdleTimeout == 60
			}
		}
		return false
	})
}

func TestUnhealthyTargetLosesItsFlowsAndNewConnectionsGoElsewhere(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    health_check: {interval: 100ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2}"))
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	waitUntil(t, 5*time.Second, "both targets healthy", func() bool {
		return targetState(t, f, a.addr) == "healthy" && targetState(t, f, b.addr) == "healthy"
	})
	// Open connections until each target has one.
	var onA net.Conn
	seen := map[*echoTarget]bool{}
	for i := 0; i < 50 && (onA == nil || !seen[b]); i++ {
		c, tg, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		seen[tg] = true
		if tg == a && onA == nil {
			onA = c
		}
	}
	if onA == nil || !seen[b] {
		t.Fatalf("50 connections did not reach both targets: %v", seen)
	}
	// Target A stops answering new connections (its listener closes) but
	// keeps the open one: only the forwarder's reset can end that flow.
	killed := time.Now()
	a.ln.Close()
	took := waitUntil(t, 3*time.Second, "target A unhealthy", func() bool { return targetState(t, f, a.addr) == "unhealthy" })
	t.Logf("killed target marked unhealthy after %s (2 failed checks, 100ms apart)", took)
	if limit := 2*100*time.Millisecond + 100*time.Millisecond + 500*time.Millisecond; time.Since(killed) > limit+time.Second {
		t.Errorf("took %s to notice", time.Since(killed))
	}
	// Its flow was reset.
	onA.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := onA.Read(make([]byte, 1)); !isReset(err) {
		t.Errorf("flow on the unhealthy target: %v, want a reset", err)
	}
	// Every new connection goes to B.
	for i := 0; i < 20; i++ {
		c, tg, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatalf("connection %d after A died: %v", i, err)
		}
		c.Close()
		if tg != b {
			t.Fatalf("connection %d went to %v", i, tg)
		}
	}
}

// connectionOn opens connections until one is served by target want, and
// returns it; the others stay open until the test ends.
func connectionOn(t *testing.T, f *fabrictest.Fabric, want *echoTarget, targets ...*echoTarget) net.Conn {
	t.Helper()
	for range 50 {
		c, tg, err := roundTrip(t, f, targets...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if tg == want {
			return c
		}
	}
	t.Fatalf("50 connections did not reach %s", want.addr)
	return nil
}

// stillEchoes reports whether a connection carries a line both ways.
func stillEchoes(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("still\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "still\n"
}

// With unhealthy connection termination off, a target that fails its
// checks keeps its connections while it is unhealthy.draining (new ones
// go elsewhere), through the AWS CLI's attributes; at the end of the
// interval they are reset.
func TestAnUnhealthyTargetKeepsItsConnectionsWhileItDrains(t *testing.T) {
	const interval = 3 * time.Second
	f := fabrictest.Up(t, poolTopology(t, "    health_check: {interval: 100ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2}"))
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	waitUntil(t, 5*time.Second, "both targets healthy", func() bool {
		return targetState(t, f, a.addr) == "healthy" && targetState(t, f, b.addr) == "healthy"
	})
	elb := awsAs(t, f, "provider").elb()
	var tgs struct {
		TargetGroups []struct{ TargetGroupArn, TargetGroupName string }
	}
	elb.do(&tgs, "describe-target-groups", "--names", "pool")
	arn := tgs.TargetGroups[0].TargetGroupArn
	elb.refused("ValidationError", "modify-target-group-attributes", "--target-group-arn", arn,
		"--attributes", "Key=target_health_state.unhealthy.draining_interval_seconds,Value=3")
	elb.do(nil, "modify-target-group-attributes", "--target-group-arn", arn, "--attributes",
		"Key=target_health_state.unhealthy.connection_termination.enabled,Value=false",
		"Key=target_health_state.unhealthy.draining_interval_seconds,Value=3")
	// The forwarder runs the change once it has the model's version.
	f.Refresh(t)
	waitUntil(t, 5*time.Second, "the forwarder to take the change", func() bool { return statsOf(t, f).ConfigVersion >= f.Status.Version })
	onA := connectionOn(t, f, a, a, b)

	// A's listener closes; its open connection stays.
	a.ln.Close()
	failed := time.Now()
	waitUntil(t, 3*time.Second, "target A unhealthy.draining", func() bool { return targetState(t, f, a.addr) == "unhealthy.draining" })
	var th struct {
		TargetHealthDescriptions []struct {
			Target       struct{ Id string }
			TargetHealth struct{ State, Reason string }
		}
	}
	elb.do(&th, "describe-target-health", "--target-group-arn", arn)
	for _, d := range th.TargetHealthDescriptions {
		if d.Target.Id == "198.19.1.20" && (d.TargetHealth.State != "unhealthy.draining" || d.TargetHealth.Reason != "Target.FailedHealthChecks") {
			t.Fatalf("describe-target-health: %+v", th)
		}
	}
	if !stillEchoes(onA) {
		t.Fatal("the connection to the draining target stopped echoing")
	}
	for i := range 10 {
		c, tg, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatalf("connection %d while A drains: %v", i, err)
		}
		c.Close()
		if tg != b {
			t.Fatalf("connection %d while A drains went to %v", i, tg)
		}
	}
	// The interval ends: unhealthy, and the connection is reset.
	waitUntil(t, interval+3*time.Second, "target A unhealthy", func() bool { return targetState(t, f, a.addr) == "unhealthy" })
	if since := time.Since(failed); since < interval-500*time.Millisecond {
		t.Fatalf("A left unhealthy.draining %s after failing, before its %s interval", since, interval)
	}
	t.Logf("unhealthy.draining for about %s (interval %s)", time.Since(failed).Round(10*time.Millisecond), interval)
	onA.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := onA.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("the connection after the interval: %v, want a reset", err)
	}
}

func TestDeregisteredTargetDrainsThenItsFlowsAreCut(t *testing.T) {
	// The delay leaves room for the draining checks below on a loaded
	// machine (a -race build took longer than 1 s to get through them).
	const delay = 3 * time.Second
	f := fabrictest.Up(t, poolTopology(t, "    deregistration_delay: 3s\n    connection_termination: true\n    health_check: {enabled: false}"))
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	var onA net.Conn
	for i := 0; i < 50 && onA == nil; i++ {
		c, tg, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if tg == a {
			onA = c
		}
	}
	if onA == nil {
		t.Fatal("no connection reached target A")
	}
	deregistered := time.Now()
	out, err := fabrictest.Run(t, "fabric", "deregister-target", f.Name, "--target-group", "pool", "--target", a.addr)
	if err != nil {
		t.Fatalf("deregister: %v\n%s", err, out)
	}
	if s := targetState(t, f, a.addr); s != "draining" {
		t.Fatalf("after deregistration the target is %s", s)
	}
	// Draining: no new flows, the old one still works.
	for i := 0; i < 10; i++ {
		c, tg, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if tg != b {
			t.Fatalf("a new connection went to the draining target")
		}
	}
	onA.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := onA.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(onA).ReadString('\n'); err != nil || line != "still\n" {
		t.Fatalf("flow on the draining target: %q, %v", line, err)
	}
	// After the delay, with connection termination, it is cut.
	if took := time.Since(deregistered); took >= delay {
		t.Fatalf("the draining checks took %s, longer than the %s delay: this run says nothing", took, delay)
	}
	waitUntil(t, delay+5*time.Second, "target unused", func() bool { return targetState(t, f, a.addr) == "unused" })
	onA.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := onA.Read(make([]byte, 1)); !isReset(err) {
		t.Errorf("flow after draining: %v, want a reset", err)
	}
	if took := time.Since(deregistered); took < delay {
		t.Errorf("cut after %s, before the %s delay", took, delay)
	}
}

func TestConnectionLimitPerTargetRefusesAndCounts(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    connection_limit: 3\n    health_check: {enabled: false}"))
	provider := f.Netns(t, "provider")
	// One target only, so every connection counts against it.
	a := startEcho(t, provider, "198.19.1.20:9000")
	out, err := fabrictest.Run(t, "fabric", "deregister-target", f.Name, "--target-group", "pool", "--target", "198.19.1.21:9000")
	if err != nil {
		t.Fatal(err, out)
	}
	for i := 0; i < 3; i++ {
		c, tg, err := roundTrip(t, f, a)
		if err != nil || tg != a {
			t.Fatalf("connection %d: %v (target %v)", i+1, err, tg)
		}
		defer c.Close()
	}
	c, _, err := roundTrip(t, f, a)
	if err == nil {
		c.Close()
		t.Fatal("a 4th connection to a target limited to 3 went through")
	}
	if !isReset(err) && !strings.Contains(err.Error(), "refused") {
		t.Errorf("4th connection: %v, want refused", err)
	}
	if n := statsOf(t, f).PortAllocationErrors; n != 1 {
		t.Errorf("PortAllocationErrorCount = %d, want 1", n)
	}
	if m := f.Metrics(t, "use1-az1"); !strings.Contains(m, `pvlink_port_allocation_errors_total{az="use1-az1",target_group="web-nlb/pool"} 1`) {
		t.Error("pvlink_port_allocation_errors_total is not 1 in the metrics")
	}
	// CloudWatch's AWS/NetworkELB has the load balancer's flows and the
	// refusal, by load balancer and by the AZ of the node that carried
	// them (ctld samples the nodes when asked).
	for _, m := range []struct {
		metric, stat string
		dims         []string
		want         float64
	}{
		{"NewFlowCount", "Sum", nil, 3},
		{"NewFlowCount_TCP", "Sum", []string{"AvailabilityZone", "us-east-1a"}, 3},
		{"ActiveFlowCount", "Maximum", nil, 3},
		{"PortAllocationErrorCount", "Sum", nil, 1},
		{"PortAllocationErrorCount", "Sum", []string{"AvailabilityZone", "us-east-1a"}, 1},
	} {
		if got := nlbStatistic(t, f, m.metric, m.stat, m.dims...); got != m.want {
			t.Errorf("AWS/NetworkELB %s %s %v: %v, want %v", m.metric, m.stat, m.dims, got, m.want)
		}
	}
	// Three round trips of "ping\n" each way.
	if got := nlbStatistic(t, f, "ProcessedBytes", "Sum"); got < 30 {
		t.Errorf("AWS/NetworkELB ProcessedBytes: %v, want the round trips' 30 bytes at least", got)
	}
}

// nlbStatistic is the provider's `aws cloudwatch get-metric-statistics` of
// an AWS/NetworkELB metric of the fabric's one load balancer over the last
// two minutes, with extra dimensions beside LoadBalancer: the largest
// Maximum, or the Sums added up.
func nlbStatistic(t *testing.T, f *fabrictest.Fabric, metric, stat string, extra ...string) float64 {
	t.Helper()
	if len(f.Status.LoadBalancers) != 1 {
		t.Fatalf("%d load balancers, want 1", len(f.Status.LoadBalancers))
	}
	lb := f.Status.LoadBalancers[0]
	var out cwStatistics
	args := append([]string{"get-metric-statistics", "--namespace", "AWS/NetworkELB", "--metric-name", metric},
		dimensionArgs(append([]string{"LoadBalancer", "net/" + lb.Name + "/" + lb.ID}, extra...)...)...)
	args = append(args, "--start-time", time.Now().Add(-2*time.Minute).UTC().Format(time.RFC3339),
		"--end-time", time.Now().Add(time.Minute).UTC().Format(time.RFC3339), "--period", "60", "--statistics", stat)
	awsAs(t, f, "provider").cloudwatch(&out, args...)
	v := 0.0
	for _, d := range out.Datapoints {
		if stat == "Sum" {
			v += d.Sum
		} else {
			v = max(v, d.Maximum)
		}
	}
	return v
}

// TestKeepalivesFromEitherSideKeepAnIdleFlow: with a 3 s idle timeout, three
// flows stay idle for 7 s: one with no keepalives is forgotten (its next
// segment gets a RST); one whose consumer sends keepalives every second and
// one whose target does are kept, as an NLB, which sees both sides, keeps
// them.
func TestKeepalivesFromEitherSideKeepAnIdleFlow(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    idle_timeout: 3s\n    health_check: {enabled: false}"))
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	keepalive := net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 20}
	open := func(what string) net.Conn {
		c, served, err := roundTrip(t, f, a, b)
		if err != nil || served == nil {
			t.Fatalf("%s: %v (served by %v)", what, err, served)
		}
		t.Cleanup(func() { c.Close() })
		switch what {
		case "consumer keepalives":
			if err := c.(*net.TCPConn).SetKeepAliveConfig(keepalive); err != nil {
				t.Fatal(err)
			}
		case "target keepalives":
			if err := served.lastConn().(*net.TCPConn).SetKeepAliveConfig(keepalive); err != nil {
				t.Fatal(err)
			}
		default:
			c.(*net.TCPConn).SetKeepAlive(false)
		}
		return c
	}
	quiet, fromConsumer, fromTarget := open("no keepalives"), open("consumer keepalives"), open("target keepalives")
	time.Sleep(7 * time.Second)
	for _, tc := range []struct {
		what  string
		c     net.Conn
		alive bool
	}{{"no keepalives", quiet, false}, {"consumer keepalives", fromConsumer, true}, {"target keepalives", fromTarget, true}} {
		tc.c.SetDeadline(time.Now().Add(3 * time.Second))
		tc.c.Write([]byte("still?\n"))
		line, err := bufio.NewReader(tc.c).ReadString('\n')
		switch {
		case tc.alive && (err != nil || line != "still?\n"):
			t.Errorf("%s: after 7 s idle the flow is gone (%q, %v), want it kept", tc.what, line, err)
		case !tc.alive && !isReset(err):
			t.Errorf("%s: after 7 s idle got %q, %v; want a RST", tc.what, line, err)
		}
	}
	if n := statsOf(t, f).IdleExpired; n != 1 {
		t.Errorf("idle_expired = %d, want 1 (the flow without keepalives)", n)
	}
}

// A target group's own cross-zone setting (the AWS CLI's
// load_balancing.cross_zone.enabled on the group) overrides its load
// balancer's: the demo's load balancer keeps cross-zone off, and with the
// group's on, connections through the use1-az1 ENI reach the use1-az2
// target too; back to use_load_balancer_configuration, only their own AZ's.
func TestATargetGroupsCrossZoneOverridesItsLoadBalancers(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]
	elb := awsAs(t, f, "provider").elb()
	var tgs struct {
		TargetGroups []struct{ TargetGroupArn string }
	}
	elb.do(&tgs, "describe-target-groups", "--names", "web")
	arn := tgs.TargetGroups[0].TargetGroupArn
	setCrossZone := func(v string) {
		t.Helper()
		var out struct{ Attributes []struct{ Key, Value string } }
		elb.do(&out, "modify-target-group-attributes", "--target-group-arn", arn, "--attributes", "Key=load_balancing.cross_zone.enabled,Value="+v)
		for _, a := range out.Attributes {
			if a.Key == "load_balancing.cross_zone.enabled" && a.Value != v {
				t.Fatalf("cross-zone after setting %s: %s", v, a.Value)
			}
		}
		f.Refresh(t)
		waitUntil(t, 5*time.Second, "the forwarder to take the change", func() bool { return statsOf(t, f).ConfigVersion >= f.Status.Version })
	}
	azsSeen := func(n int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for range n {
			out, err := inNetns(t, consumer, fabrictest.Binary(t), "client", eni.IP+":80", "--message", "which AZ?\n")
			if err != nil {
				t.Fatalf("pvlink client: %v\n%s", err, out)
			}
			var res peer.Result
			if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var s peer.Seen
			json.Unmarshal(res.Target, &s)
			seen[s.AZ]++
		}
		return seen
	}
	if seen := azsSeen(10); len(seen) != 1 || seen["use1-az1"] != 10 {
		t.Fatalf("with cross-zone off everywhere the use1-az1 ENI reached %v", seen)
	}
	setCrossZone("true")
	if seen := azsSeen(24); seen["use1-az2"] == 0 || seen["use1-az1"] == 0 {
		t.Fatalf("with the group's cross-zone on, 24 connections reached %v; want both AZs' targets", seen)
	}
	setCrossZone("use_load_balancer_configuration")
	if seen := azsSeen(10); len(seen) != 1 || seen["use1-az1"] != 10 {
		t.Fatalf("back to the load balancer's setting the use1-az1 ENI reached %v", seen)
	}
	elb.refused("ValidationError", "modify-target-group-attributes", "--target-group-arn", arn, "--attributes", "Key=load_balancing.cross_zone.enabled,Value=sometimes")
}

// healthServer answers a target's HTTP health checks with the status the
// test sets, on a port of its own.
type healthServer struct {
	status atomic.Int32
	asked  atomic.Int64
}

func startHealth(t *testing.T, ns, addr string) *healthServer {
	h := &healthServer{}
	h.status.Store(200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.asked.Add(1)
			w.WriteHeader(int(h.status.Load()))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})}
	go srv.Serve(listenIn(t, ns, addr))
	t.Cleanup(func() { srv.Close() })
	return h
}

// An HTTP health check on a port of its own, as the AWS CLI shows and
// changes it: a target whose /healthz answers 503 is unhealthy (its flow
// reset, new connections elsewhere) though its traffic port still
// answers; back to 200, healthy; a TCP check on that port passes either way.
func TestAnHTTPHealthCheckOnItsOwnPort(t *testing.T) {
	f := fabrictest.Up(t, poolTopology(t, "    health_check: {interval: 100ms, timeout: 100ms, healthy_threshold: 2, unhealthy_threshold: 2, protocol: HTTP, port: 9001, path: /healthz}"))
	provider := f.Netns(t, "provider")
	a, b := startEcho(t, provider, "198.19.1.20:9000"), startEcho(t, provider, "198.19.1.21:9000")
	ha, _ := startHealth(t, provider, "198.19.1.20:9001"), startHealth(t, provider, "198.19.1.21:9001")
	waitUntil(t, 5*time.Second, "both targets healthy", func() bool {
		return targetState(t, f, a.addr) == "healthy" && targetState(t, f, b.addr) == "healthy"
	})
	if ha.asked.Load() == 0 {
		t.Fatal("target A's /healthz was never asked")
	}
	elb := awsAs(t, f, "provider").elb()
	var tgs struct {
		TargetGroups []struct {
			TargetGroupArn, HealthCheckProtocol, HealthCheckPort, HealthCheckPath string
			Matcher                                                               struct{ HttpCode string }
		}
	}
	elb.do(&tgs, "describe-target-groups", "--names", "pool")
	tg := tgs.TargetGroups[0]
	if tg.HealthCheckProtocol != "HTTP" || tg.HealthCheckPort != "9001" || tg.HealthCheckPath != "/healthz" || tg.Matcher.HttpCode != "200-399" {
		t.Fatalf("describe-target-groups: %+v", tg)
	}
	onA := connectionOn(t, f, a, a, b)
	ha.status.Store(503)
	waitUntil(t, 3*time.Second, "target A unhealthy on its 503", func() bool { return targetState(t, f, a.addr) == "unhealthy" })
	onA.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := onA.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("the flow on target A: %v, want a reset", err)
	}
	for i := range 10 {
		c, served, err := roundTrip(t, f, a, b)
		if err != nil {
			t.Fatalf("connection %d with A unhealthy: %v", i, err)
		}
		c.Close()
		if served != b {
			t.Fatalf("connection %d with A unhealthy went to %v", i, served)
		}
	}
	// CloudWatch's AWS/NetworkELB counts it, by load balancer and group
	// and by AZ (ctld samples the nodes when asked).
	var tgID string
	for _, g := range f.Status.TargetGroups {
		if g.Name == "pool" {
			tgID = g.ID
		}
	}
	hostCount := func(metric string, extra ...string) float64 {
		return nlbStatistic(t, f, metric, "Maximum", append([]string{"TargetGroup", "targetgroup/pool/" + tgID}, extra...)...)
	}
	waitUntil(t, 15*time.Second, "UnHealthyHostCount 1", func() bool { return hostCount("UnHealthyHostCount") == 1 })
	// By AZ too. (The maximum of UnHealthyHostCount, not of
	// HealthyHostCount: a sample from before A failed, in the same
	// minute, would count both healthy.)
	if got := hostCount("UnHealthyHostCount", "AvailabilityZone", "us-east-1a"); got != 1 {
		t.Fatalf("UnHealthyHostCount of us-east-1a: %v, want 1 (A)", got)
	}
	if got := hostCount("HealthyHostCount", "AvailabilityZone", "us-east-1a"); got < 1 {
		t.Fatalf("HealthyHostCount of us-east-1a: %v, want B at least", got)
	}
	ha.status.Store(200)
	waitUntil(t, 3*time.Second, "target A healthy on its 200", func() bool { return targetState(t, f, a.addr) == "healthy" })
	// A TCP check of the same port: a 503 no longer counts.
	elb.do(nil, "modify-target-group", "--target-group-arn", tg.TargetGroupArn, "--health-check-protocol", "TCP")
	var after struct {
		TargetGroups []struct{ HealthCheckProtocol, HealthCheckPort, HealthCheckPath string }
	}
	elb.do(&after, "describe-target-groups", "--names", "pool")
	if g := after.TargetGroups[0]; g.HealthCheckProtocol != "TCP" || g.HealthCheckPath != "" || g.HealthCheckPort != "9001" {
		t.Fatalf("after modify-target-group --health-check-protocol TCP: %+v", g)
	}
	ha.status.Store(503)
	time.Sleep(500 * time.Millisecond) // five checks' worth
	if s := targetState(t, f, a.addr); s != "healthy" {
		t.Fatalf("a TCP check found target A %s", s)
	}
	elb.refused("ValidationError", "modify-target-group", "--target-group-arn", tg.TargetGroupArn, "--health-check-protocol", "HTTP", "--matcher", "HttpCode=700")
}
