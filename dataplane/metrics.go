package dataplane

import (
	"runtime"

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
	descRstSent = prometheus.NewDesc("pvlink_endpoint_rst_packets_sent_total",
		"TCP RST packets sent to the consumer through the endpoint network interface.", endpointLabels, nil)

	// AWS/PrivateLinkServices, one series per ENI and load balancer.
	serviceLabels = []string{"service_id", "az", "load_balancer_arn", "vpc_endpoint_id"}

	descSvcActive = prometheus.NewDesc("pvlink_service_active_connections",
		"ActiveConnections (AWS/PrivateLinkServices): open connections from endpoints to the service's load balancer.", serviceLabels, nil)
	descSvcBytes = prometheus.NewDesc("pvlink_service_bytes_processed_total",
		"BytesProcessed (AWS/PrivateLinkServices): payload bytes between endpoints and the service, both directions.", serviceLabels, nil)
	descSvcNew = prometheus.NewDesc("pvlink_service_new_connections_total",
		"NewConnections (AWS/PrivateLinkServices): connections established from endpoints to the service.", serviceLabels, nil)
	descSvcRst = prometheus.NewDesc("pvlink_service_rst_packets_sent_total",
		"RstPacketsSent (AWS/PrivateLinkServices): RST packets the service sent to endpoints.", serviceLabels, nil)
	descSvcResets = prometheus.NewDesc("pvlink_load_balancer_resets_total",
		"TCP_Client_Reset_Count, TCP_Target_Reset_Count and TCP_ELB_Reset_Count (AWS/NetworkELB): RST packets by origin: a consumer's relayed to its target (client), a target's relayed to its consumer (target), the load balancer's own towards either (load_balancer).", append(append([]string{}, serviceLabels...), "origin"), nil)

	descDropReason = prometheus.NewDesc("pvlink_ingress_dropped_packets_total",
		"Packets dropped by the ingress filter, by reason.", append(append([]string{}, endpointLabels...), "reason"), nil)

	descConfigVersion = prometheus.NewDesc("pvlink_forwarder_config_version",
		"Version of the configuration snapshot in force.", []string{"az"}, nil)
	descConnErrors = prometheus.NewDesc("pvlink_forwarder_refused_connections_total",
		"Consumer connections refused with a RST, by reason.", []string{"az", "reason"}, nil)
	descFlows = prometheus.NewDesc("pvlink_forwarder_flows",
		"Flows in the flow table.", []string{"az"}, nil)
	descFlowEnds = prometheus.NewDesc("pvlink_forwarder_ended_flows_total",
		"Flows the forwarder ended itself, by reason (idle timeout, target reset).", []string{"az", "reason"}, nil)
	descPortErrors = prometheus.NewDesc("pvlink_port_allocation_errors_total",
		"PortAllocationErrorCount: connections refused because a target IP:port had all its node's connections in use.", []string{"az", "target_group"}, nil)
	descSynDrops = prometheus.NewDesc("pvlink_forwarder_dropped_syns_total",
		"Connection attempts dropped without an answer, by reason: the forwarder's in-flight limit, a handshake not finished in time, an ACK with a bad SYN cookie, a full cookie accept queue.", []string{"az", "reason"}, nil)
	descCookieConns = prometheus.NewDesc("pvlink_forwarder_syn_cookie_connections_total",
		"Connections let in by a SYN cookie while an ENI was flooded.", []string{"az"}, nil)
	descCookieMode = prometheus.NewDesc("pvlink_endpoint_syn_cookies",
		"1 while the endpoint network interface answers SYNs with cookies (a SYN flood).", endpointLabels, nil)
	descPressure = prometheus.NewDesc("pvlink_forwarder_memory_pressure",
		"1 while the forwarder's live heap is over its memory budget's high mark and connections are held to small buffers.", []string{"az"}, nil)
	descHeldIn = prometheus.NewDesc("pvlink_forwarder_held_from_consumers_bytes",
		"Consumers' bytes the forwarder holds until their targets take them.", []string{"az"}, nil)
	descLargeBuffers = prometheus.NewDesc("pvlink_forwarder_large_buffer_connections",
		"Connections moving fast enough to be given large buffers; the others hold at most 128 KiB each way.", []string{"az"}, nil)
	descTargetState = prometheus.NewDesc("pvlink_target_state",
		"1 for a target's current state as this node sees it (initial, healthy, unhealthy, draining, unused).", []string{"az", "target_group", "target", "state"}, nil)
	descTargetConns = prometheus.NewDesc("pvlink_target_connections",
		"Connections open from this node to a target.", []string{"az", "target_group", "target"}, nil)
)

type collector struct{ f *Forwarder }

// Collector returns the forwarder's Prometheus collector.
func (f *Forwarder) Collector() prometheus.Collector { return collector{f} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRstSent, descSvcActive, descSvcBytes, descSvcNew, descSvcRst, descSvcResets, descActive, descBytes, descNew, descDropped, descRst, descDropReason, descConfigVersion, descConnErrors, descSynDrops, descCookieConns, descCookieMode, descLargeBuffers, descPressure, descHeldIn, descFlows, descFlowEnds, descPortErrors, descTargetState, descTargetConns} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	f := c.f
	for _, e := range f.eniList() {
		lv := []string{e.endpointID, "Interface", e.serviceName, e.vpcID, e.subnetID, f.az, e.id}
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(e.active.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(e.bytesIn.Load()+e.bytesOut.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descNew, prometheus.CounterValue, float64(e.newConns.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(e.packetsDropped()), lv...)
		ch <- prometheus.MustNewConstMetric(descRst, prometheus.CounterValue, float64(e.rstReceived.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descRstSent, prometheus.CounterValue, float64(e.rstSent.Load()), lv...)
		ch <- prometheus.MustNewConstMetric(descCookieMode, prometheus.GaugeValue, b2f(e.cookieMode()), lv...)
		for _, c := range e.lbs.list() {
			sv := []string{e.cfg.ServiceID, f.az, c.arn, e.endpointID}
			ch <- prometheus.MustNewConstMetric(descSvcActive, prometheus.GaugeValue, float64(c.active.Load()), sv...)
			ch <- prometheus.MustNewConstMetric(descSvcBytes, prometheus.CounterValue, float64(c.bytes.Load()), sv...)
			ch <- prometheus.MustNewConstMetric(descSvcNew, prometheus.CounterValue, float64(c.newConns.Load()), sv...)
			ch <- prometheus.MustNewConstMetric(descSvcRst, prometheus.CounterValue, float64(c.rstSent.Load()), sv...)
			ch <- prometheus.MustNewConstMetric(descSvcResets, prometheus.CounterValue, float64(c.clientResets.Load()), append(sv, "client")...)
			ch <- prometheus.MustNewConstMetric(descSvcResets, prometheus.CounterValue, float64(c.targetResets.Load()), append(sv, "target")...)
			ch <- prometheus.MustNewConstMetric(descSvcResets, prometheus.CounterValue, float64(c.elbResets.Load()), append(sv, "load_balancer")...)
		}
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
		{"no_route", f.stats.noRoute.Load()},
		{"target_connect_failed", f.stats.dialErrors.Load()},
		{"netstack", f.stats.endpointErrors.Load()},
		{"flow_table_full", f.stats.flowTableFull.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(descConnErrors, prometheus.CounterValue, float64(r.v), f.az, r.name)
	}
	tcp := f.stack.Stats().TCP
	for _, r := range []struct {
		name string
		v    uint64
	}{
		{"in_flight_limit", tcp.ForwardMaxInFlightDrop.Value()},
		{"handshake_timeout", f.stats.handshakeTimeouts.Load()},
		{"invalid_syn_cookie", tcp.ListenOverflowInvalidSynCookieRcvd.Value()},
		{"accept_queue_full", tcp.ListenOverflowSynDrop.Value() + tcp.ListenOverflowAckDrop.Value()},
	} {
		ch <- prometheus.MustNewConstMetric(descSynDrops, prometheus.CounterValue, float64(r.v), f.az, r.name)
	}
	ch <- prometheus.MustNewConstMetric(descPressure, prometheus.GaugeValue, b2f(f.pressure.Load()), f.az)
	ch <- prometheus.MustNewConstMetric(descHeldIn, prometheus.GaugeValue, float64(f.heldIn.Load()), f.az)
	ch <- prometheus.MustNewConstMetric(descLargeBuffers, prometheus.GaugeValue, float64(f.bigConns.Load()), f.az)
	ch <- prometheus.MustNewConstMetric(descCookieConns, prometheus.CounterValue, float64(f.stats.cookieConns.Load()), f.az)
	ch <- prometheus.MustNewConstMetric(descFlows, prometheus.GaugeValue, float64(f.flows.Len()), f.az)
	ch <- prometheus.MustNewConstMetric(descFlowEnds, prometheus.CounterValue, float64(f.stats.idleExpired.Load()), f.az, "idle_timeout")
	ch <- prometheus.MustNewConstMetric(descFlowEnds, prometheus.CounterValue, float64(f.stats.targetResets.Load()), f.az, "target_reset")
	ch <- prometheus.MustNewConstMetric(descFlowEnds, prometheus.CounterValue, float64(f.stats.endpointResets.Load()), f.az, "endpoint_reset")
	f.applyMu.Lock()
	for name, g := range f.groups {
		ch <- prometheus.MustNewConstMetric(descPortErrors, prometheus.CounterValue, float64(g.PortAllocationErrors()), f.az, name)
		for _, t := range g.Targets() {
			ch <- prometheus.MustNewConstMetric(descTargetState, prometheus.GaugeValue, 1, f.az, name, t.Addr.String(), t.Health().String())
			ch <- prometheus.MustNewConstMetric(descTargetConns, prometheus.GaugeValue, float64(t.Conns()), f.az, name, t.Addr.String())
		}
	}
	f.applyMu.Unlock()
}

// PortAllocationErrors sums PortAllocationErrorCount over target groups.
func (f *Forwarder) PortAllocationErrors() uint64 {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	var n uint64
	for _, g := range f.groups {
		n += g.PortAllocationErrors()
	}
	return n
}

// Stats returns the forwarder-wide counters.
func (f *Forwarder) Stats() Stats {
	return Stats{
		Flows: f.flows.Len(), FlowTableFull: f.stats.flowTableFull.Load(),
		IdleExpired: f.stats.idleExpired.Load(), TargetResets: f.stats.targetResets.Load(),
		EndpointResets:       f.stats.endpointResets.Load(),
		PortAllocationErrors: f.PortAllocationErrors(), NoListener: f.stats.noListener.Load(),
		NoTarget: f.stats.noTarget.Load(), NotAvailable: f.stats.notAvailable.Load(), EndpointErrors: f.stats.endpointErrors.Load(),
		NoRoute:    f.stats.noRoute.Load(),
		DialErrors: f.stats.dialErrors.Load(), ConfigVersion: f.stats.configVersion.Load(),
		HandshakeTimeouts: f.stats.handshakeTimeouts.Load(), CookieModes: f.stats.cookieModes.Load(),
		CookieConns: f.stats.cookieConns.Load(), CookieENIs: f.cookieENIs(),
		LargeBuffers: f.bigConns.Load(), HeldFromConsumers: f.heldIn.Load(),
		MemoryPressure: f.pressure.Load(), MemoryPressures: f.stats.memoryPressure.Load(),
		Netstack: func() map[string]uint64 {
			tcp := f.stack.Stats().TCP
			return map[string]uint64{
				"current_established":         tcp.CurrentEstablished.Value(),
				"forward_max_in_flight_drop":  tcp.ForwardMaxInFlightDrop.Value(),
				"listen_overflow_syn_drop":    tcp.ListenOverflowSynDrop.Value(),
				"listen_overflow_ack_drop":    tcp.ListenOverflowAckDrop.Value(),
				"listen_overflow_syn_cookies": tcp.ListenOverflowSynCookieSent.Value(),
				"syn_cookies_received":        tcp.ListenOverflowSynCookieRcvd.Value(),
				"invalid_syn_cookies":         tcp.ListenOverflowInvalidSynCookieRcvd.Value(),
				"invalid_segments_received":   tcp.InvalidSegmentsReceived.Value(),
				"segment_send_errors":         tcp.SegmentSendErrors.Value(),
				"established_resets":          tcp.EstablishedResets.Value(),
				"failed_connection_attempts":  tcp.FailedConnectionAttempts.Value(),
				"failed_port_reservations":    tcp.FailedPortReservations.Value(),
				// How the consumer side repairs losses, and how
				// often a repair was for nothing.
				"retransmits":          tcp.Retransmits.Value(),
				"fast_retransmits":     tcp.FastRetransmit.Value(),
				"sack_recoveries":      tcp.SACKRecovery.Value(),
				"tail_loss_probes":     tcp.TLPRecovery.Value(),
				"retransmit_timeouts":  tcp.Timeouts.Value(),
				"spurious_recoveries":  tcp.SpuriousRecovery.Value(),
				"spurious_rto":         tcp.SpuriousRTORecovery.Value(),
				"segments_dsack_acked": tcp.SegmentsAckedWithDSACK.Value(),
			}
		}(),
		Runtime: f.runtimeStats(),
	}
}

func (f *Forwarder) runtimeStats() RuntimeStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return RuntimeStats{
		Goroutines: runtime.NumGoroutine(), IdleWorkers: int(f.runner.idle.Load()),
		HeapInuseBytes: m.HeapInuse, StackBytes: m.StackInuse, HeapObjects: m.HeapObjects, SysBytes: m.Sys,
	}
}

// Counters returns the counters of every ENI.
func (f *Forwarder) Counters() []ENICounters {
	enis := f.eniList()
	out := make([]ENICounters, 0, len(enis))
	for _, e := range enis {
		var lbs []LBCounters
		for _, c := range e.lbs.list() {
			lbs = append(lbs, LBCounters{
				Name: c.name, ARN: c.arn, ActiveConnections: c.active.Load(),
				NewConnections: c.newConns.Load(), BytesProcessed: c.bytes.Load(), RstPacketsSent: c.rstSent.Load(),
				PortAllocationErrors: c.portErrors.Load(),
				ClientResets:         c.clientResets.Load(), TargetResets: c.targetResets.Load(), ELBResets: c.elbResets.Load(),
			})
		}
		out = append(out, ENICounters{
			ENI: e.id, EndpointID: e.endpointID, ServiceID: e.cfg.ServiceID, ServiceName: e.serviceName,
			VPCID: e.vpcID, SubnetID: e.subnetID, RstPacketsSent: e.rstSent.Load(), LoadBalancers: lbs,
			ActiveConnections: e.active.Load(), NewConnections: e.newConns.Load(),
			BytesProcessed: e.bytesIn.Load() + e.bytesOut.Load(), PacketsDropped: e.packetsDropped(),
			BytesFromConsumers: e.bytesIn.Load(), BytesToConsumers: e.bytesOut.Load(),
			RstPacketsReceived: e.rstReceived.Load(),
			TunReads:           e.tunReads.Load(), TunPackets: e.tunPackets.Load(),
			LargestWirePacket: e.maxWire.Load(), TunWrites: e.tunWrites.Load(), TunWritePackets: e.tunWritePackets.Load(),
			AcksCarried: e.acksCarried.Load(),
		})
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cookieENIs lists the ENIs answering SYNs with cookies now.
func (f *Forwarder) cookieENIs() []string {
	var out []string
	for _, e := range f.eniList() {
		if e.cookieMode() {
			out = append(out, e.id)
		}
	}
	return out
}
