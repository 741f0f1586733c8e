package ctl

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"pvlink.dev/pvlink/snapshot"
)

// One scrape point for a whole fabric: ctld's /metrics gives its own
// metrics (the model's: endpoints per service, endpoint states, forwarder
// liveness and snapshot versions) and every running forwarder's, each
// series labelled with the forwarder's az and worker, so that one scrape
// job covers the fabric however many processes it runs.

var (
	descEndpointsCount = prometheus.NewDesc("pvlink_service_endpoints",
		"EndpointsCount (AWS/PrivateLinkServices): endpoints connected to the service (available).", []string{"service_id", "service_name"}, nil)
	descEndpointState = prometheus.NewDesc("pvlink_endpoint_state",
		"1 for an endpoint's current state (pendingAcceptance, pending, available, rejected, deleting, ...).", []string{"vpc_endpoint_id", "service_id", "vpc_id", "state"}, nil)
	descForwarderUp = prometheus.NewDesc("pvlink_forwarder_up",
		"1 if the forwarder process of an AZ (and worker) runs and answers.", []string{"az", "worker"}, nil)
	descForwarderRestarts = prometheus.NewDesc("pvlink_forwarder_restarts_total",
		"Times ctld restarted a forwarder process that had died.", []string{"az", "worker"}, nil)
	descSnapshotApplied = prometheus.NewDesc("pvlink_forwarder_snapshot_version",
		"Version of the model whose snapshot the forwarder runs (compare pvlink_model_version).", []string{"az", "worker"}, nil)
	descModelVersion = prometheus.NewDesc("pvlink_model_version",
		"Version of the fabric's committed model.", nil, nil)
	descThrottled = prometheus.NewDesc("pvlink_api_throttled_calls_total",
		"API calls refused by the per-account throttle.", nil, nil)
	descFault = prometheus.NewDesc("pvlink_fault_active",
		"1 while a fault made with pvlink fault takes the AZ down (kind az-down, or region-down for every AZ of the Region).", []string{"kind", "az"}, nil)
	descSamples = prometheus.NewDesc("pvlink_cloudwatch_samples_total",
		"Datapoints ctld has published into its CloudWatch history.", nil, nil)
)

type modelCollector struct{ d *Daemon }

func (c modelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEndpointsCount, descEndpointState, descForwarderUp, descForwarderRestarts, descSnapshotApplied, descModelVersion, descThrottled, descSamples, descFault} {
		ch <- d
	}
}

func (c modelCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.d.report()
	for _, svc := range r.Services {
		n := 0
		for _, e := range r.Endpoints {
			if e.ServiceID == svc.ID && e.State == snapshot.StateAvailable {
				n++
			}
		}
		ch <- prometheus.MustNewConstMetric(descEndpointsCount, prometheus.GaugeValue, float64(n), svc.ID, svc.ServiceName)
	}
	for _, e := range r.Endpoints {
		ch <- prometheus.MustNewConstMetric(descEndpointState, prometheus.GaugeValue, 1, e.ID, e.ServiceID, e.VPCID, e.State)
	}
	for _, f := range r.Forwarders {
		w := strconv.Itoa(f.Worker)
		ch <- prometheus.MustNewConstMetric(descForwarderUp, prometheus.GaugeValue, b2f(f.Alive && f.Metrics != ""), f.AZ, w)
		ch <- prometheus.MustNewConstMetric(descForwarderRestarts, prometheus.CounterValue, float64(f.Restarts), f.AZ, w)
		ch <- prometheus.MustNewConstMetric(descSnapshotApplied, prometheus.GaugeValue, float64(f.ConfigVersion), f.AZ, w)
	}
	m := c.d.current()
	for _, az := range r.AvailabilityZones {
		azDown, regionDown := 0.0, 0.0
		for _, f := range r.Faults {
			if f.Kind == "az-down" && f.AZ == az {
				azDown = 1
			}
			if f.Kind == "region-down" && slices.Contains(m.RegionAZs(f.Region), az) {
				regionDown = 1
			}
		}
		ch <- prometheus.MustNewConstMetric(descFault, prometheus.GaugeValue, azDown, "az-down", az)
		ch <- prometheus.MustNewConstMetric(descFault, prometheus.GaugeValue, regionDown, "region-down", az)
	}
	ch <- prometheus.MustNewConstMetric(descModelVersion, prometheus.GaugeValue, float64(r.Version))
	ch <- prometheus.MustNewConstMetric(descThrottled, prometheus.CounterValue, float64(r.API.Throttled))
	ch <- prometheus.MustNewConstMetric(descSamples, prometheus.CounterValue, float64(c.d.cw.hist.Samples()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// forwardersGatherer reads every running forwarder's metrics and labels
// each series with the forwarder's az and worker.
type forwardersGatherer struct{ d *Daemon }

func (g forwardersGatherer) Gather() ([]*dto.MetricFamily, error) {
	families := map[string]*dto.MetricFamily{}
	client := http.Client{Timeout: 5 * time.Second}
	var errs []error
	for _, f := range g.d.report().Forwarders {
		if !f.Alive || f.Metrics == "" {
			continue // pvlink_forwarder_up says so
		}
		got, err := scrapeOne(&client, f.Metrics)
		if err != nil {
			errs = append(errs, fmt.Errorf("forwarder %s: %w", f.Label(), err))
			continue
		}
		for name, mf := range got {
			for _, m := range mf.Metric {
				m.Label = withLabel(m.Label, "az", f.AZ)
				m.Label = withLabel(m.Label, "worker", strconv.Itoa(f.Worker))
			}
			if have := families[name]; have != nil {
				have.Metric = append(have.Metric, mf.Metric...)
			} else {
				families[name] = mf
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(families))
	for _, mf := range families {
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	if len(errs) > 0 {
		// The others are still served; the failed ones show as down.
		return out, prometheus.MultiError(errs)
	}
	return out, nil
}

func scrapeOne(client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// withLabel sets a label, keeping the pairs sorted by name.
func withLabel(pairs []*dto.LabelPair, name, value string) []*dto.LabelPair {
	for _, p := range pairs {
		if p.GetName() == name {
			p.Value = proto.String(value)
			return pairs
		}
	}
	pairs = append(pairs, &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)})
	slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return pairs
}

// metricsHandler serves the fabric's scrape point.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(modelCollector{d})
	own := prometheus.NewRegistry()
	own.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gather := prometheus.Gatherers{reg, labelled{own, "component", "ctld"}, forwardersGatherer{d}}
	return promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// labelled adds a constant label to everything a gatherer gives.
type labelled struct {
	g           prometheus.Gatherer
	name, value string
}

func (l labelled) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := l.g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			m.Label = withLabel(m.Label, l.name, l.value)
		}
	}
	return mfs, err
}
