package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The endpoint metrics of AWS/PrivateLinkEndpoints, one series per ENI,
// labelled with CloudWatch's dimensions. Counters live in eniState as
// atomics; this collector only reads them at scrape time, so the data path
// never calls into Prometheus.
var (
	endpointLabels = []string{"vpc_endpoint_id", "endpoint_type", "service_name", "vpc_id", "subnet_id", "az", "eni"}

	descActive = prometheus.NewDesc("pvlink_endpoint_active_connections",
		"ActiveConnections: open connections through the endpoint network interface.", endpointLabels, nil)
	descBytes = prometheus.NewDesc("pvlink_endpoint_bytes_processed_total",
		"BytesProcessed: payload bytes relayed between consumer and provider, both directions.", endpointLabels, nil)
	descNew = prometheus.NewDesc("pvlink_endpoint_new_connections_total",
		"NewConnections: connections established through the endpoint network interface.", endpointLabels, nil)
	descDropped = prometheus.NewDesc("pvlink_endpoint_packets_dropped_total",
		"PacketsDropped: packets from the consumer dropped by the endpoint.", endpointLabels, nil)
	descRst = prometheus.NewDesc("pvlink_endpoint_rst_packets_received_total",
		"RstPacketsReceived: TCP RST packets received from the consumer.", endpointLabels, nil)
	descDropReason = prometheus.NewDesc("pvlink_ingress_dropped_packets_total",
		"Packets dropped by the ingress filter, by reason.", append(append([]string{}, endpointLabels...), "reason"), nil)

	descConfigVersion = prometheus.NewDesc("pvlink_forwarder_config_version",
		"Version of the configuration snapshot in force.", []string{"az"}, nil)
	descConnErrors = prometheus.NewDesc("pvlink_forwarder_refused_connections_total",
		"Consumer connections refused with a RST, by reason.", []string{"az", "reason"}, nil)
)

type collector struct{ f *Forwarder }

// Collector returns the forwarder's Prometheus collector.
func (f *Forwarder) Collector() prometheus.Collector { return collector{f} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descBytes, descNew, descDropped, descRst, descDropReason, descConfigVersion, descConnErrors} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	f := c.f
	for _, e := range f.enis {
		lv := []string{e.endpointID, "Interface", e.serviceName, e.vpcID, e.subnetID, f.az, e.id}
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(e.active.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(e.bytes.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descNew, prometheus.CounterValue, float64(e.newConns.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(e.packetsDropped()), lv...)
		ch <- prometheus.MustNewConstMetric(descRst, prometheus.CounterValue, float64(e.rstReceived.Load()), lv...)
		for r := range e.drops {
			ch <- prometheus.MustNewConstMetric(descDropReason, prometheus.CounterValue, float64(e.drops[r].Load()), append(lv, dropReasonNames[r])...)
		}
	}
	ch <- prometheus.MustNewConstMetric(descConfigVersion, prometheus.GaugeValue, float64(f.stats.configVersion.Load()), f.az)
	for _, r := range []struct {
		name string
		v    uint64
	}{
		{"no_listener", f.stats.noListener.Load()},
		{"endpoint_not_available", f.stats.notAvailable.Load()},
		{"no_target", f.stats.noTarget.Load()},
		{"target_connect_failed", f.stats.dialErrors.Load()},
		{"netstack", f.stats.endpointErrors.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(descConnErrors, prometheus.CounterValue, float64(r.v), f.az, r.name)
	}
}

// ENICounters is a snapshot of one ENI's counters, for status and tests.
type ENICounters struct {
	ENI                string `json:"eni"`
	EndpointID         string `json:"endpoint_id"`
	ActiveConnections  int64  `json:"active_connections"`
	NewConnections     uint64 `json:"new_connections"`
	BytesProcessed     uint64 `json:"bytes_processed"`
	PacketsDropped     uint64 `json:"packets_dropped"`
	RstPacketsReceived uint64 `json:"rst_packets_received"`
}

// Counters returns the counters of every ENI.
func (f *Forwarder) Counters() []ENICounters {
	out := make([]ENICounters, 0, len(f.enis))
	for _, e := range f.enis {
		out = append(out, ENICounters{
			ENI: e.id, EndpointID: e.endpointID,
			ActiveConnections: e.active.Load(), NewConnections: e.newConns.Load(),
			BytesProcessed: e.bytes.Load(), PacketsDropped: e.packetsDropped(),
			RstPacketsReceived: e.rstReceived.Load(),
		})
	}
	return out
}
