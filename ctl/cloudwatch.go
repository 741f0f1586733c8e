package ctl

import (
	"log/slog"
	"sync"
	"time"

	"pvlink.dev/pvlink/ctl/cloudwatch"
	"pvlink.dev/pvlink/snapshot"
)

// The CloudWatch side of ctld: every SampleEvery it reads every running
// forwarder's counters, turns their growth since the last reading into
// datapoints of AWS/PrivateLinkEndpoints, AWS/PrivateLinkServices and
// AWS/NetworkELB with AWS's dimensions, and keeps them for the API (GetMetricStatistics,
// GetMetricData, ListMetrics) and `pvlink top`.

// SampleEvery is how often ctld reads the forwarders' counters: at every
// multiple of it on the clock (:00, :10, ...), so a reading falls on each
// minute's first instant and no regular interval spans two minutes.
const SampleEvery = 10 * time.Second

// nextSample is when the reading after now is due.
func nextSample(now time.Time) time.Time { return now.Truncate(SampleEvery).Add(SampleEvery) }

// metricsRetention is how long one-minute datapoints are kept.
const metricsRetention = 24 * time.Hour

// The dimension sets AWS publishes each metric with (the guide's
// "Endpoint metrics and dimensions" and "Endpoint service metrics and
// dimensions").
var (
	endpointCombos = [][]string{
		{"Endpoint Type", "Service Name", "VPC Endpoint Id", "VPC Id"},
		{"Endpoint Type", "Service Name", "Subnet Id", "VPC Endpoint Id", "VPC Id"},
	}
	serviceCombos = [][]string{
		{"Service Id"},
		{"Az", "Service Id"},
		{"Load Balancer Arn", "Service Id"},
		{"Az", "Load Balancer Arn", "Service Id"},
		{"Service Id", "VPC Endpoint Id"},
	}
)

type metricDef struct{ name, unit string }

var (
	endpointMetrics = []metricDef{{"ActiveConnections", "Count"}, {"BytesProcessed", "Bytes"}, {"NewConnections", "Count"}, {"PacketsDropped", "Count"}, {"RstPacketsReceived", "Count"}}
	serviceMetrics  = []metricDef{{"ActiveConnections", "Count"}, {"BytesProcessed", "Bytes"}, {"NewConnections", "Count"}, {"RstPacketsSent", "Count"}}
)

// sampler reads the forwarders and publishes into hist.
type sampler struct {
	hist   *cloudwatch.History
	log    *slog.Logger
	status func() *Report

	mu   sync.Mutex // one sample at a time
	prev map[string]uint64
	last time.Time
}

func newSampler(status func() *Report, log *slog.Logger) *sampler {
	return &sampler{hist: cloudwatch.NewHistory(metricsRetention), log: log, status: status, prev: map[string]uint64{}}
}

// row is one source of values with all its dimensions.
type row struct {
	owner  string
	dims   map[string]string
	values map[string]float64
	moved  bool // traffic in the interval: the reporting criterion
}

// sampleIfOlder samples unless the last sample is younger than age: a
// query sees the numbers of the moment it is asked.
func (s *sampler) sampleIfOlder(age time.Duration) {
	s.mu.Lock()
	fresh := time.Since(s.last) < age
	s.mu.Unlock()
	if !fresh {
		s.sample(time.Now())
	}
}

// sample reads every running forwarder once and publishes the growth of
// its counters since the last reading. The growth happened somewhere in
// the interval since that reading, and is stamped with the interval's
// middle: a reading a little late for a minute's first instant (the tick
// was slow, or a query came just before it) puts what it read in the
// minute most of its interval lay in, the minute the traffic was sent.
func (s *sampler) sample(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The first reading, when ctld starts, is the baseline: forwarders
	// that ran before it counted what an earlier ctld published.
	baseline := s.last.IsZero()
	at := now
	if !baseline && now.After(s.last) {
		at = s.last.Add(now.Sub(s.last) / 2)
	}
	s.last = now
	r := s.status()
	if r == nil || len(r.Endpoints) == 0 && len(r.Services) == 0 {
		return
	}
	owners := map[string]string{}
	for _, e := range r.Endpoints {
		// As the guide says, endpoint metrics are not published for
		// consumers that use cross-Region access: no owner, no datapoints.
		if cmpOr(e.Region, r.Region) == cmpOr(e.ServiceRegion, r.Region) {
			owners["vpce/"+e.ID] = e.OwnerID
		}
	}
	for _, svc := range r.Services {
		owners["svc/"+svc.ID] = svc.OwnerID
	}
	seen := map[string]bool{}
	delta := func(key string, v uint64) float64 {
		seen[key] = true
		p, ok := s.prev[key]
		s.prev[key] = v
		if !ok {
			// A counter first seen counts from zero: a forwarder's
			// counters start with it, after the last sample at most
			// SampleEvery ago (or they are a restarted one's).
			return float64(v)
		}
		if v < p {
			return float64(v) // the forwarder restarted
		}
		return float64(v - p)
	}
	eps := map[string]*row{}
	lbs := map[string]*row{}
	nodes := newNLBNodes(r)
	var order []string
	for _, f := range r.Forwarders {
		if !f.Alive || f.Metrics == "" {
			continue
		}
		var doc []snapshot.ENICounters
		if err := ForwarderJSON(f, "/counters", &doc); err != nil {
			s.log.Debug("metrics: a forwarder did not answer", "forwarder", f.Label(), "err", err)
			continue
		}
		for _, c := range doc {
			k := f.Label() + "/" + c.ENI + "/"
			e := eps[f.AZ+"/"+c.ENI]
			if e == nil {
				e = &row{owner: owners["vpce/"+c.EndpointID], values: map[string]float64{}, dims: map[string]string{
					"Endpoint Type": "Interface", "Service Name": c.ServiceName, "VPC Endpoint Id": c.EndpointID,
					"VPC Id": c.VPCID, "Subnet Id": c.SubnetID,
				}}
				eps[f.AZ+"/"+c.ENI] = e
				order = append(order, f.AZ+"/"+c.ENI)
			}
			e.values["ActiveConnections"] += float64(c.ActiveConnections)
			e.values["NewConnections"] += delta(k+"new", c.NewConnections)
			e.values["BytesProcessed"] += delta(k+"bytes", c.BytesProcessed)
			e.values["PacketsDropped"] += delta(k+"dropped", c.PacketsDropped)
			e.values["RstPacketsReceived"] += delta(k+"rst_in", c.RstPacketsReceived)
			for _, l := range c.LoadBalancers {
				lk := k + l.Name + "/"
				b := lbs[f.AZ+"/"+c.ENI+"/"+l.Name]
				if b == nil {
					b = &row{owner: owners["svc/"+c.ServiceID], values: map[string]float64{}, dims: map[string]string{
						"Service Id": c.ServiceID, "Az": f.AZ, "Load Balancer Arn": l.ARN, "VPC Endpoint Id": c.EndpointID,
					}}
					lbs[f.AZ+"/"+c.ENI+"/"+l.Name] = b
				}
				n := lbDeltas{
					active: float64(l.ActiveConnections), newConns: delta(lk+"new", l.NewConnections),
					bytes: delta(lk+"bytes", l.BytesProcessed), portErrors: delta(lk+"port_errors", l.PortAllocationErrors),
					clientResets: delta(lk+"rst_client", l.ClientResets), targetResets: delta(lk+"rst_target", l.TargetResets),
					elbResets: delta(lk+"rst_elb", l.ELBResets),
				}
				b.values["ActiveConnections"] += n.active
				b.values["NewConnections"] += n.newConns
				b.values["BytesProcessed"] += n.bytes
				b.values["RstPacketsSent"] += delta(lk+"rst_out", l.RstPacketsSent)
				nodes.add(f.AZ, l.Name, n)
			}
		}
	}
	for k := range s.prev {
		if !seen[k] {
			delete(s.prev, k) // its ENI or forwarder is gone
		}
	}
	if baseline {
		return
	}
	var epRows, lbRows []*row
	for _, k := range order {
		epRows = append(epRows, eps[k])
	}
	for _, b := range lbs {
		lbRows = append(lbRows, b)
	}
	for _, rs := range [][]*row{epRows, lbRows} {
		for _, x := range rs {
			for _, v := range x.values {
				x.moved = x.moved || v != 0
			}
		}
	}
	s.publish(at, cloudwatch.NamespaceEndpoints, endpointCombos, endpointMetrics, epRows)
	s.publish(at, cloudwatch.NamespaceServices, serviceCombos, serviceMetrics, lbRows)
	s.publish(at, cloudwatch.NamespaceNLB, nlbTrafficCombos, nlbTrafficMetrics, nodes.list())

	// EndpointsCount: the endpoints connected to each service.
	var counts []*row
	for _, svc := range r.Services {
		n := 0
		for _, e := range r.Endpoints {
			if e.ServiceID == svc.ID && e.State == snapshot.StateAvailable {
				n++
			}
		}
		counts = append(counts, &row{owner: svc.OwnerID, dims: map[string]string{"Service Id": svc.ID},
			values: map[string]float64{"EndpointsCount": float64(n)}, moved: n > 0})
	}
	s.publish(at, cloudwatch.NamespaceServices, [][]string{{"Service Id"}}, []metricDef{{"EndpointsCount", "Count"}}, counts)
	s.hostCounts(at, r)
}

// publish sums the rows that saw traffic over each dimension set and puts
// one value of each metric per group.
func (s *sampler) publish(now time.Time, ns string, combos [][]string, metrics []metricDef, rows []*row) {
	for _, combo := range combos {
		type group struct {
			owner  string
			dims   []cloudwatch.Dimension
			values map[string]float64
		}
		groups := map[string]*group{}
		var keys []string
		for _, r := range rows {
			if !r.moved || r.owner == "" {
				continue
			}
			key := r.owner
			for _, d := range combo {
				key += "\x00" + r.dims[d]
			}
			g := groups[key]
			if g == nil {
				g = &group{owner: r.owner, values: map[string]float64{}}
				for _, d := range combo {
					g.dims = append(g.dims, cloudwatch.Dimension{Name: d, Value: r.dims[d]})
				}
				groups[key] = g
				keys = append(keys, key)
			}
			for name, v := range r.values {
				g.values[name] += v
			}
		}
		for _, k := range keys {
			g := groups[k]
			for _, m := range metrics {
				s.hist.Put(now, cloudwatch.Metric{Namespace: ns, Name: m.name, Dimensions: g.dims, Unit: m.unit, Owner: g.owner}, g.values[m.name])
			}
		}
	}
}

// run samples at every SampleEvery of the clock until stop is closed.
func (s *sampler) run(stop <-chan struct{}) {
	t := time.NewTimer(time.Until(nextSample(time.Now())))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			now := time.Now()
			s.sample(now)
			t.Reset(time.Until(nextSample(now)))
		}
	}
}
