package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
)

// sentTraffic is what knownTraffic sent, as the metrics must count it.
type sentTraffic struct {
	conns      map[string]int    // connections, by ENI id
	bytes      map[string]uint64 // both directions, by ENI id
	resets     map[string]int    // connections the consumer ended with a RST, by ENI id
	refused    map[string]int    // SYNs to a port with no listener (each answered with a RST), by ENI id
	pings      map[string]int    // ICMP echo requests (dropped), by ENI id
	start, end time.Time
}

func (s sentTraffic) total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// knownTraffic sends, from the consumer VPC, to the i-th ENI of the first
// endpoint: perENI[i] echoed connections of size bytes, `resets`
// connections the consumer ends with a RST, `refused` SYNs to port 81 (no
// listener) and `pings` pings.
func knownTraffic(t *testing.T, f *fabrictest.Fabric, perENI []int, size int64, resets, refused, pings int) sentTraffic {
	t.Helper()
	consumer := f.Netns(t, "consumer")
	dial := fabrictest.DialFrom(consumer)
	e := f.Status.Endpoints[0]
	s := sentTraffic{conns: map[string]int{}, bytes: map[string]uint64{}, resets: map[string]int{}, refused: map[string]int{}, pings: map[string]int{}, start: time.Now()}
	for i, eni := range e.ENIs {
		addr := netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(e.Ports[0])).String()
		for n := 0; n < perENI[i]; n++ {
			c := &peer.Client{Addr: addr, Bytes: size, Timeout: 20 * time.Second, Dial: dial}
			res, err := c.Run(context.Background())
			if err != nil || !res.Intact {
				t.Fatalf("%s: connection %d: %v", eni.AZ, n, err)
			}
			s.conns[eni.ID]++
			// The stream, its echo, the target's one-line report, and the
			// proxy protocol header the forwarder sent the target.
			s.bytes[eni.ID] += uint64(2*size) + uint64(len(res.Target)+1) + 100
		}
		for n := 0; n < resets; n++ {
			// A connection the consumer ends with a RST once the target
			// has answered.
			conn, err := dial(context.Background(), "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			conn.Write([]byte("x\n"))
			br := bufio.NewReader(conn)
			line, err := br.ReadBytes('\n') // the target's report
			if err == nil {
				_, err = br.ReadBytes('\n') // the echo: nothing is left in flight
			}
			if err != nil {
				t.Fatalf("%s: reset connection %d: %v", eni.AZ, n, err)
			}
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
			s.conns[eni.ID]++
			s.resets[eni.ID]++
			s.bytes[eni.ID] += 2 + uint64(len(line)) + 2 + 100
		}
		for n := 0; n < refused; n++ {
			_, err := dial(context.Background(), "tcp", eni.IP+":81")
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("%s: port 81: %v, want a refusal", eni.AZ, err)
			}
			s.refused[eni.ID]++
		}
		if got := ping(t, consumer, netip.MustParseAddr(eni.IP), pings); got != 0 {
			t.Fatalf("%s: %d pings answered", eni.AZ, got)
		}
		s.pings[eni.ID] += pings
	}
	s.end = time.Now()
	return s
}

// cloudwatch runs `aws cloudwatch ARGS...` and decodes its answer.
func (a *awsCLI) cloudwatch(v any, args ...string) {
	a.t.Helper()
	out, err := a.runService("cloudwatch", args...)
	if err != nil {
		a.t.Fatalf("aws cloudwatch %s (as %s): %v\n%s", strings.Join(args, " "), a.account.Name, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		a.t.Fatalf("aws cloudwatch %s: %v\n%s", args[0], err, out)
	}
}

type cwStatistics struct {
	Label      string
	Datapoints []struct {
		Timestamp                               time.Time
		Sum, Maximum, Minimum, SampleCount, Avg float64
		Unit                                    string
	}
}

// sum adds up the datapoints' Sums, and checks each lies in the minutes
// the traffic was sent in.
func (c cwStatistics) sum(t *testing.T, s sentTraffic) float64 {
	t.Helper()
	var n float64
	for _, d := range c.Datapoints {
		if d.Timestamp.Before(s.start.Truncate(time.Minute)) || d.Timestamp.After(s.end) {
			t.Errorf("%s: a datapoint at %s, outside the minutes of the traffic (%s to %s)", c.Label, d.Timestamp, s.start, s.end)
		}
		n += d.Sum
	}
	return n
}

func dimensionArgs(kv ...string) []string {
	out := []string{"--dimensions"}
	for i := 0; i < len(kv); i += 2 {
		out = append(out, fmt.Sprintf("Name=%s,Value=%s", kv[i], kv[i+1]))
	}
	return out
}

func TestCloudWatchAnswersTheGuidesCommandsWithTheFabricsNumbers(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer, provider := awsAs(t, f, "consumer"), awsAs(t, f, "provider")
	e, svc := f.Status.Endpoints[0], f.Status.Services[0]

	// The provider enables the built-in Contributor Insights rules, as the
	// guide does, before the traffic.
	serviceARN := fmt.Sprintf("arn:aws:ec2:%s:%s:vpc-endpoint-service/%s", f.Status.Region, svc.OwnerID, svc.ID)
	var managed struct {
		ManagedRules []struct{ TemplateName, ResourceARN string }
	}
	provider.cloudwatch(&managed, "list-managed-insight-rules", "--resource-arn", serviceARN)
	if len(managed.ManagedRules) != 4 {
		t.Fatalf("list-managed-insight-rules: %+v", managed)
	}
	var failures struct{ Failures []any }
	for _, m := range managed.ManagedRules {
		provider.cloudwatch(&failures, "put-managed-insight-rules", "--managed-rules", "TemplateName="+m.TemplateName+",ResourceARN="+serviceARN)
		if len(failures.Failures) != 0 {
			t.Fatalf("put-managed-insight-rules %s: %+v", m.TemplateName, failures)
		}
	}

	s := knownTraffic(t, f, []int{5, 3}, 64<<10, 2, 2, 3)

	window := []string{"--start-time", s.start.Add(-time.Minute).UTC().Format(time.RFC3339), "--end-time", time.Now().Add(time.Minute).UTC().Format(time.RFC3339), "--period", "60"}
	endpointDims := []string{"Endpoint Type", "Interface", "Service Name", e.Service, "VPC Endpoint Id", e.ID, "VPC Id", e.VPCID}
	stat := func(a *awsCLI, ns, metric string, dims []string, stats ...string) cwStatistics {
		var out cwStatistics
		args := append([]string{"get-metric-statistics", "--namespace", ns, "--metric-name", metric}, dimensionArgs(dims...)...)
		args = append(append(args, window...), append([]string{"--statistics"}, stats...)...)
		a.cloudwatch(&out, args...)
		return out
	}

	// The endpoint's owner: the endpoint metrics, by endpoint and by subnet.
	for _, m := range []struct {
		name string
		want int
	}{{"NewConnections", s.total(s.conns)}, {"PacketsDropped", s.total(s.pings)}, {"RstPacketsReceived", s.total(s.resets)}} {
		if got := stat(consumer, "AWS/PrivateLinkEndpoints", m.name, endpointDims, "Sum").sum(t, s); got != float64(m.want) {
			t.Errorf("AWS/PrivateLinkEndpoints %s of %s: %v, sent %d", m.name, e.ID, got, m.want)
		}
	}
	for _, eni := range e.ENIs {
		got := stat(consumer, "AWS/PrivateLinkEndpoints", "NewConnections", append(slicesClone(endpointDims), "Subnet Id", eni.SubnetID), "Sum").sum(t, s)
		if got != float64(s.conns[eni.ID]) {
			t.Errorf("NewConnections of subnet %s (%s): %v, sent %d", eni.SubnetID, eni.AZ, got, s.conns[eni.ID])
		}
	}
	var wantBytes uint64
	for _, b := range s.bytes {
		wantBytes += b
	}
	if got := stat(consumer, "AWS/PrivateLinkEndpoints", "BytesProcessed", endpointDims, "Sum").sum(t, s); !within(got, float64(wantBytes), 0.01) {
		t.Errorf("BytesProcessed: %v, sent %d", got, wantBytes)
	}

	// The service's owner: the service metrics, with each dimension set.
	if got := stat(provider, "AWS/PrivateLinkServices", "NewConnections", []string{"Service Id", svc.ID}, "Sum").sum(t, s); got != float64(s.total(s.conns)) {
		t.Errorf("AWS/PrivateLinkServices NewConnections: %v, sent %d", got, s.total(s.conns))
	}
	if got := stat(provider, "AWS/PrivateLinkServices", "NewConnections", []string{"Service Id", svc.ID, "VPC Endpoint Id", e.ID}, "Sum").sum(t, s); got != float64(s.total(s.conns)) {
		t.Errorf("AWS/PrivateLinkServices NewConnections of %s: %v, sent %d", e.ID, got, s.total(s.conns))
	}
	for _, eni := range e.ENIs {
		if got := stat(provider, "AWS/PrivateLinkServices", "NewConnections", []string{"Az", eni.AZ, "Service Id", svc.ID}, "Sum").sum(t, s); got != float64(s.conns[eni.ID]) {
			t.Errorf("AWS/PrivateLinkServices NewConnections in %s: %v, sent %d", eni.AZ, got, s.conns[eni.ID])
		}
	}
	if got := stat(provider, "AWS/PrivateLinkServices", "EndpointsCount", []string{"Service Id", svc.ID}, "Maximum"); len(got.Datapoints) == 0 || got.Datapoints[0].Maximum != 1 {
		t.Errorf("EndpointsCount: %+v, want 1", got)
	}
	var data struct {
		MetricDataResults []struct {
			ID     string `json:"Id"`
			Values []float64
		}
	}
	q := fmt.Sprintf(`[{"Id":"bytes","MetricStat":{"Metric":{"Namespace":"AWS/PrivateLinkServices","MetricName":"BytesProcessed","Dimensions":[{"Name":"Service Id","Value":%q}]},"Period":60,"Stat":"Sum"}}]`, svc.ID)
	provider.cloudwatch(&data, "get-metric-data", "--metric-data-queries", q, window[0], window[1], window[2], window[3])
	var gotBytes float64
	for _, v := range data.MetricDataResults[0].Values {
		gotBytes += v
	}
	if !within(gotBytes, float64(wantBytes), 0.01) {
		t.Errorf("get-metric-data BytesProcessed of the service: %v, sent %d", gotBytes, wantBytes)
	}

	// The rules rank the service's endpoints: here its one endpoint, with
	// every connection and byte.
	var rules struct {
		InsightRules []struct{ Name, State string }
	}
	provider.cloudwatch(&rules, "describe-insight-rules")
	for _, c := range []struct {
		template string
		want     float64
		within   float64
	}{{"VpcEndpointService-NewConnectionsByEndpointId-v1", float64(s.total(s.conns)), 0}, {"VpcEndpointService-BytesByEndpointId-v1", float64(wantBytes), 0.01}} {
		name := c.template + "-" + svc.ID
		if !slices.ContainsFunc(rules.InsightRules, func(r struct{ Name, State string }) bool { return r.Name == name && r.State == "ENABLED" }) {
			t.Errorf("describe-insight-rules has no enabled %s: %+v", name, rules)
		}
		var report struct {
			AggregationStatistic string
			Contributors         []struct {
				Keys                      []string
				ApproximateAggregateValue float64
			}
		}
		provider.cloudwatch(&report, "get-insight-rule-report", "--rule-name", name, window[0], window[1], window[2], window[3], window[4], window[5])
		if len(report.Contributors) != 1 || report.Contributors[0].Keys[0] != e.ID || !within(report.Contributors[0].ApproximateAggregateValue, c.want, c.within) {
			t.Errorf("get-insight-rule-report %s: %+v, want %s with %v", name, report, e.ID, c.want)
		}
	}

	// list-metrics: each account sees its own side.
	type listed struct {
		Metrics []struct{ Namespace, MetricName string }
	}
	names := func(a *awsCLI, ns string) map[string]bool {
		var l listed
		a.cloudwatch(&l, "list-metrics", "--namespace", ns)
		out := map[string]bool{}
		for _, m := range l.Metrics {
			out[m.MetricName] = true
		}
		return out
	}
	for _, c := range []struct {
		a     *awsCLI
		ns    string
		names []string
	}{
		{consumer, "AWS/PrivateLinkEndpoints", []string{"ActiveConnections", "BytesProcessed", "NewConnections", "PacketsDropped", "RstPacketsReceived"}},
		{provider, "AWS/PrivateLinkServices", []string{"ActiveConnections", "BytesProcessed", "EndpointsCount", "NewConnections", "RstPacketsSent"}},
	} {
		got := names(c.a, c.ns)
		for _, n := range c.names {
			if !got[n] {
				t.Errorf("list-metrics --namespace %s (as %s): no %s in %v", c.ns, c.a.account.Name, n, got)
			}
		}
	}
	if got := names(consumer, "AWS/PrivateLinkServices"); len(got) != 0 {
		t.Errorf("the consumer lists the provider's service metrics: %v", got)
	}

	// What CloudWatch refuses, refused the same way.
	out, err := consumer.runService("cloudwatch", "get-metric-statistics", "--namespace", "AWS/PrivateLinkEndpoints", "--metric-name", "NewConnections", "--start-time", window[1], "--end-time", window[3], "--period", "90", "--statistics", "Sum")
	if err == nil || !strings.Contains(out, "InvalidParameterValue") {
		t.Errorf("a 90 s period: %v\n%s", err, out)
	}
}

func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
