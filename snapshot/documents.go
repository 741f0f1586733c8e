package snapshot

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// The forwarder's answers on its control socket, and the JSON documents it
// serves on its metrics port.

// Status is what a running forwarder tells its control channel about
// itself.
type Status struct {
	PID           int       `json:"pid"`
	AZ            string    `json:"az"`
	Metrics       string    `json:"metrics"`
	ConfigVersion uint64    `json:"config_version"`
	Started       time.Time `json:"started"`
	// TUNQueues are the descriptors of the process's TUN queues, by TUN:
	// ctld keeps a copy of each (pidfd_getfd), so that the queue outlives
	// the process and a worker started again takes the same one.
	TUNQueues map[string]int `json:"tun_queues,omitempty"`
}

// ApplyResult is the forwarder's answer to a pushed snapshot: the version
// in force afterwards, and why the snapshot was refused if it was.
type ApplyResult struct {
	Version uint64 `json:"version"`
	Error   string `json:"error,omitempty"`
}

// ENICounters is a snapshot of one ENI's counters, for status and tests.
type ENICounters struct {
	ENI               string `json:"eni"`
	EndpointID        string `json:"endpoint_id"`
	ServiceID         string `json:"service_id"`
	ServiceName       string `json:"service_name"`
	VPCID             string `json:"vpc_id"`
	SubnetID          string `json:"subnet_id"`
	ActiveConnections int64  `json:"active_connections"`
	NewConnections    uint64 `json:"new_connections"`
	BytesProcessed    uint64 `json:"bytes_processed"`
	// BytesFromConsumers and BytesToConsumers split BytesProcessed by
	// direction.
	BytesFromConsumers uint64 `json:"bytes_from_consumers"`
	BytesToConsumers   uint64 `json:"bytes_to_consumers"`
	PacketsDropped     uint64 `json:"packets_dropped"`
	RstPacketsReceived uint64 `json:"rst_packets_received"`
	// RstPacketsSent counts the RSTs sent to the consumer.
	RstPacketsSent uint64 `json:"rst_packets_sent"`
	// LoadBalancers split the ENI's traffic by the load balancer whose
	// listener took it: the service side (AWS/PrivateLinkServices).
	LoadBalancers []LBCounters `json:"load_balancers,omitempty"`
	TunReads      uint64       `json:"tun_reads"`
	TunPackets    uint64       `json:"tun_packets"`
	// LargestWirePacket is the largest packet sent to the consumer, or
	// that a segmentation-offload frame sent stands for (headers plus
	// segment size): at most 8500 on a VPC endpoint.
	LargestWirePacket int64 `json:"largest_wire_packet"`
	// TunWrites and TunWritePackets count frames written to the TUN and
	// the packets they stand for: more packets than writes means the
	// consumer's kernel cut segmentation-offload frames.
	TunWrites       uint64 `json:"tun_writes"`
	TunWritePackets uint64 `json:"tun_write_packets"`
	// AcksCarried counts pure ACKs the link held back and never sent: a
	// segment with data or a FIN carried them.
	AcksCarried uint64 `json:"acks_carried"`
}

// Add sums another worker's counters of the same ENI into c.
func (c *ENICounters) Add(o ENICounters) {
	c.ActiveConnections += o.ActiveConnections
	c.NewConnections += o.NewConnections
	c.BytesProcessed += o.BytesProcessed
	c.BytesFromConsumers += o.BytesFromConsumers
	c.BytesToConsumers += o.BytesToConsumers
	c.PacketsDropped += o.PacketsDropped
	c.RstPacketsReceived += o.RstPacketsReceived
	c.TunReads += o.TunReads
	c.TunPackets += o.TunPackets
	c.LargestWirePacket = max(c.LargestWirePacket, o.LargestWirePacket)
	c.TunWrites += o.TunWrites
	c.TunWritePackets += o.TunWritePackets
	c.AcksCarried += o.AcksCarried
	c.RstPacketsSent += o.RstPacketsSent
next:
	for _, l := range o.LoadBalancers {
		for i := range c.LoadBalancers {
			if c.LoadBalancers[i].Name == l.Name {
				c.LoadBalancers[i].Add(l)
				continue next
			}
		}
		c.LoadBalancers = append(c.LoadBalancers, l)
	}
}

// LBCounters are an ENI's counters for one load balancer of its service.
type LBCounters struct {
	Name              string `json:"name"`
	ARN               string `json:"arn"`
	ActiveConnections int64  `json:"active_connections"`
	NewConnections    uint64 `json:"new_connections"`
	BytesProcessed    uint64 `json:"bytes_processed"`
	RstPacketsSent    uint64 `json:"rst_packets_sent"`
	// PortAllocationErrors counts the connections through the ENI that
	// the load balancer refused because their target had every
	// connection of the node in use.
	PortAllocationErrors uint64 `json:"port_allocation_errors,omitempty"`
	// The RSTs by who made them (AWS/NetworkELB's TCP_*_Reset_Count): a
	// consumer's relayed to its target, a target's relayed to its
	// consumer, and the load balancer's own, towards either.
	ClientResets uint64 `json:"tcp_client_resets,omitempty"`
	TargetResets uint64 `json:"tcp_target_resets,omitempty"`
	ELBResets    uint64 `json:"tcp_elb_resets,omitempty"`
}

// Add sums another worker's counters of the same ENI and load balancer.
func (c *LBCounters) Add(o LBCounters) {
	c.ActiveConnections += o.ActiveConnections
	c.NewConnections += o.NewConnections
	c.BytesProcessed += o.BytesProcessed
	c.RstPacketsSent += o.RstPacketsSent
	c.PortAllocationErrors += o.PortAllocationErrors
	c.ClientResets += o.ClientResets
	c.TargetResets += o.TargetResets
	c.ELBResets += o.ELBResets
}

// Stats are the forwarder-wide counters, for tests and `pvlink flows`.
type Stats struct {
	Flows                int    `json:"flows"`
	FlowTableFull        uint64 `json:"flow_table_full"`
	IdleExpired          uint64 `json:"idle_expired"`
	TargetResets         uint64 `json:"target_resets"`
	EndpointResets       uint64 `json:"endpoint_resets"`
	PortAllocationErrors uint64 `json:"port_allocation_errors"`
	NoListener           uint64 `json:"no_listener"`
	NoTarget             uint64 `json:"no_target"`
	NotAvailable         uint64 `json:"endpoint_not_available"`
	EndpointErrors       uint64 `json:"netstack_endpoint_errors"`
	NoRoute              uint64 `json:"no_route"`
	DialErrors           uint64 `json:"dial_errors"`
	ConfigVersion        uint64 `json:"config_version"`
	// The SYN flood defence: handshakes given up unfinished, times an ENI
	// turned SYN cookies on, connections a cookie let in, and the ENIs
	// answering with cookies now.
	HandshakeTimeouts uint64   `json:"handshake_timeouts"`
	CookieModes       uint64   `json:"syn_cookie_modes"`
	CookieConns       uint64   `json:"syn_cookie_connections"`
	CookieENIs        []string `json:"syn_cookie_enis,omitempty"`
	// LargeBuffers is how many connections move fast enough to be given
	// large buffers.
	LargeBuffers int64 `json:"large_buffer_connections"`
	// MemoryPressure: the forwarder is over its memory budget's high mark
	// and holds connections to small buffers; MemoryPressures counts the
	// times it went over.
	MemoryPressure  bool   `json:"memory_pressure"`
	MemoryPressures uint64 `json:"memory_pressure_events"`
	// HeldFromConsumers is the consumers' bytes the forwarder holds until
	// their targets take them.
	HeldFromConsumers int64 `json:"held_from_consumers_bytes"`
	// Netstack is what gVisor's TCP counted, for finding where SYNs go.
	Netstack map[string]uint64 `json:"netstack"`
	// Runtime is where the process's memory is, from the Go runtime.
	Runtime RuntimeStats `json:"runtime"`
}

// RuntimeStats is the part of the Go runtime's accounting that explains a
// forwarder's RSS: the heap in use, the goroutines and their stacks.
type RuntimeStats struct {
	Goroutines int `json:"goroutines"`
	// IdleWorkers are the goroutines of the relay's pool waiting for work;
	// they exit after 10-20 s without any.
	IdleWorkers    int    `json:"idle_pool_workers"`
	HeapInuseBytes uint64 `json:"heap_inuse_bytes"`
	StackBytes     uint64 `json:"stack_inuse_bytes"`
	HeapObjects    uint64 `json:"heap_objects"`
	SysBytes       uint64 `json:"sys_bytes"`
}

// FlowInfo is one flow as `pvlink flows` lists it.
type FlowInfo struct {
	Proto       string    `json:"proto"`
	Src         string    `json:"src"`
	Dst         string    `json:"dst"`
	ENI         string    `json:"eni"`
	EndpointID  string    `json:"endpoint_id"`
	Node        string    `json:"node"`
	Target      string    `json:"target"`
	TargetState string    `json:"target_state"`
	Started     time.Time `json:"started"`
	IdleSeconds float64   `json:"idle_seconds"`
	IdleTimeout float64   `json:"idle_timeout_seconds"`
	BytesIn     uint64    `json:"bytes_in"`
	BytesOut    uint64    `json:"bytes_out"`
	SegmentsIn  uint64    `json:"segments_in"`
}

// TargetInfo is a target's state on this node.
type TargetInfo struct {
	Group  string `json:"group"`
	Target string `json:"target"`
	AZ     string `json:"az"`
	State  string `json:"state"`
	Conns  int64  `json:"connections"`
}

// TargetReady is what a target server ctld started writes once it listens
// (its --ready-file): its pid, its address, and the inode of the network
// namespace it listens in (0 for the host's), by which ctld sees that a
// VPC's namespace was made again around a target still in the old one.
type TargetReady struct {
	PID        int    `json:"pid"`
	Listen     string `json:"listen"`
	NetnsInode uint64 `json:"netns_inode,omitempty"`
}

// WriteJSONFile writes v as JSON to path atomically (write then rename), so
// a reader never sees half a file.
func WriteJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// FlowLogRecord is one flow direction's traffic on an ENI over an
// aggregation interval, as a VPC Flow Logs record has it: accepted or
// rejected by the ENI, start and end in Unix seconds.
type FlowLogRecord struct {
	Seq      uint64 `json:"seq"`
	ENI      string `json:"eni"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	SrcPort  uint16 `json:"src_port"`
	DstPort  uint16 `json:"dst_port"`
	Protocol uint8  `json:"protocol"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
	Action   string `json:"action"` // ACCEPT or REJECT
}

// FlowLogBatch is a forwarder's answer to GET /flowlogs?after=SEQ: the
// records after SEQ that it still holds. Boot changes when the forwarder
// restarts (its sequence starts again); Lost counts records pushed out
// before anyone read them.
type FlowLogBatch struct {
	Boot    int64           `json:"boot"`
	Last    uint64          `json:"last"`
	Lost    uint64          `json:"lost"`
	Records []FlowLogRecord `json:"records"`
}
