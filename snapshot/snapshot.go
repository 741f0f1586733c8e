// Package snapshot holds what ctld and a forwarder say to each other: the
// versioned configuration snapshot of one Availability Zone, the
// forwarder's answers (status, the outcome of a push) and the JSON
// documents it serves (stats, counters, flows, targets). It is a leaf: the
// standard library only (and x/sys for the TUN flags), so that the control
// side uses these types without linking the data plane or gVisor.
package snapshot

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// Config is one immutable, versioned snapshot of what a forwarder serves:
// the ENIs of its Availability Zone and, behind their ports, the load
// balancers and target groups of the endpoint services. ctl compiles one per
// AZ; a forwarder swaps to a new one atomically.
type Config struct {
	Version uint64 `json:"version"`
	Fabric  string `json:"fabric"`
	Region  string `json:"region"`
	AZ      string `json:"az"`

	// FlowCapacity bounds the flow table (0 = DefaultFlowCapacity).
	FlowCapacity int `json:"flow_capacity,omitempty"`
	// Workers is how many forwarder processes serve the AZ together, each
	// on its own queue of every ENI's multi-queue TUN (the kernel keeps a
	// flow on one queue). Each holds its share of a target's connection
	// limit. 0 means 1.
	Workers       int                     `json:"workers,omitempty"`
	ENIs          []ENI                   `json:"enis"`
	LoadBalancers map[string]LoadBalancer `json:"load_balancers"`
	TargetGroups  map[string]TargetGroup  `json:"target_groups"`
}

// MaxWorkers bounds the forwarder processes of one AZ.
const MaxWorkers = 16

// Endpoint states as the EC2 API spells them. Only an available endpoint
// carries traffic.
const (
	StatePendingAcceptance = "pendingAcceptance"
	StatePending           = "pending"
	StateAvailable         = "available"
	StateDeleting          = "deleting"
	StateRejected          = "rejected"
)

// Carries reports whether an endpoint in state carries traffic: an
// available one, and one accepted and being provisioned (pending), which
// becomes available once every forwarder carries it.
func Carries(state string) bool { return state == StateAvailable || state == StatePending }

// ENI is an endpoint network interface: a TUN device in the consumer VPC's
// namespace whose address the forwarder's netstack owns.
type ENI struct {
	ID          string     `json:"id"`
	Tun         string     `json:"tun"`
	Netns       string     `json:"netns"`
	IPv4        netip.Addr `json:"ipv4,omitzero"`
	IPv6        netip.Addr `json:"ipv6,omitzero"`
	EndpointID  string     `json:"endpoint_id"`
	ServiceID   string     `json:"service_id"`
	ServiceName string     `json:"service_name"`
	VPCID       string     `json:"vpc_id"`
	SubnetID    string     `json:"subnet_id"`
	State       string     `json:"state"`
	Listeners   []Listener `json:"listeners"`
	// With SecurityGroups set, only consumer packets matching one of
	// Ingress reach the ENI; the rest are dropped and counted.
	SecurityGroups []string `json:"security_groups,omitempty"`
	Ingress        []SGRule `json:"ingress,omitempty"`
	// FlowLogInterval, when set, has the forwarder aggregate the ENI's
	// traffic into flow log records over this interval.
	FlowLogInterval Duration `json:"flow_log_interval,omitempty"`
	// Blackholed: the ENI's AZ is down by a fault; every packet to or from
	// it vanishes.
	Blackholed bool `json:"blackholed,omitempty"`
}

// SGRule is one security group ingress rule: a protocol (6 for TCP, 0 for
// all), a destination port range and a source prefix.
type SGRule struct {
	Proto    uint8        `json:"proto"`
	FromPort uint16       `json:"from_port"`
	ToPort   uint16       `json:"to_port"`
	Source   netip.Prefix `json:"source"`
}

// Allows reports whether the rule lets a packet in.
func (r SGRule) Allows(proto uint8, src netip.Addr, port uint16) bool {
	return (r.Proto == 0 || r.Proto == proto) && port >= r.FromPort && port <= r.ToPort && r.Source.Contains(src)
}

// Listener maps an ENI port to a load balancer's listener.
type Listener struct {
	Port         uint16 `json:"port"`
	LoadBalancer string `json:"load_balancer"`
	TargetGroup  string `json:"target_group"`
	// IdleTimeout is the listener's TCP idle timeout (ELBv2's listener
	// attribute tcp.idle_timeout.seconds); 0: its target group's.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
}

// LoadBalancer is the part of an NLB a forwarder needs: where its node in
// this AZ lives, so that provider-side connections come from that address.
type LoadBalancer struct {
	Name string `json:"name"`
	// ARN labels the service metrics (AWS/PrivateLinkServices' Load
	// Balancer Arn).
	ARN       string     `json:"arn,omitempty"`
	Netns     string     `json:"netns"`
	NodeIP    netip.Addr `json:"node_ip"`
	CrossZone bool       `json:"cross_zone"`
	// CrossRegion: the node is another Region's, reached by a cross-Region
	// endpoint; CrossZone is on whatever the target groups say (the
	// consumer's AZs are not the provider's).
	CrossRegion bool `json:"cross_region,omitempty"`
	// SecurityGroups are the load balancer's, when their inbound rules
	// are enforced on PrivateLink traffic: then only consumer packets to
	// its listeners matching one of Ingress (from the consumer's address,
	// to the listener's port) get through; the rest are dropped and
	// counted. Empty: no filter.
	SecurityGroups []string `json:"security_groups,omitempty"`
	Ingress        []SGRule `json:"ingress,omitempty"`
	// EgressFiltered: the load balancer has security groups, and its
	// connections to targets and its health checks leave only by one of
	// Egress (to the target's address and port); one no rule allows gets
	// no answer, as a SYN dropped on its way out.
	EgressFiltered bool     `json:"egress_filtered,omitempty"`
	Egress         []SGRule `json:"egress,omitempty"`
}

// EgressAllows reports whether the load balancer's outbound rules let a
// TCP connection to target out.
func (lb LoadBalancer) EgressAllows(target netip.AddrPort) bool {
	if !lb.EgressFiltered {
		return true
	}
	for _, r := range lb.Egress {
		if r.Allows(6, target.Addr(), target.Port()) {
			return true
		}
	}
	return false
}

// TargetGroup is a set of targets and how connections to them are made.
type TargetGroup struct {
	Name            string `json:"name"`
	ProxyProtocolV2 bool   `json:"proxy_protocol_v2"`
	// ProxyProtocolV2Placement is PlacementFirstAckWithPayload (default)
	// or PlacementFirstAck.
	ProxyProtocolV2Placement string   `json:"proxy_protocol_v2_header_placement,omitempty"`
	Targets                  []Target `json:"targets"`

	// IdleTimeout ends a flow with no traffic for this long (NLB: 350 s,
	// 60-6000 s); a later segment from either side then gets a RST.
	IdleTimeout Duration `json:"idle_timeout"`
	// HealthCheck: TCP connect from the node. Zero values take the NLB
	// defaults (30 s, 10 s, 5, 2).
	HealthCheck HealthCheck `json:"health_check"`
	// DeregistrationDelay is how long a deregistered target drains
	// (0: the NLB default, 300 s; NoDelay: none, it leaves at once);
	// ConnectionTermination cuts its flows at the end.
	DeregistrationDelay   Duration `json:"deregistration_delay"`
	ConnectionTermination bool     `json:"connection_termination"`
	// ConnLimit is the connections one node holds to one target IP:port
	// (NLB through PrivateLink: about 55,000; 0 means that).
	ConnLimit int `json:"conn_limit,omitempty"`
	// KeepUnhealthy: a target that fails its health checks keeps its
	// connections (target_health_state.unhealthy.connection_termination
	// off), for UnhealthyDraining (unhealthy.draining; then they are
	// reset) or, with none, for as long as they last.
	KeepUnhealthy     bool     `json:"keep_unhealthy_connections,omitempty"`
	UnhealthyDraining Duration `json:"unhealthy_draining_interval,omitempty"`
	// CrossZone, "true" or "false", overrides the load balancer's
	// cross-zone setting for this group's targets ("": the load
	// balancer's, use_load_balancer_configuration).
	CrossZone string `json:"cross_zone,omitempty"`
	// Routing failover: below this many healthy targets (at least 1), or
	// this percentage of them (0: off), a node sends new connections to
	// all its targets, unhealthy ones included.
	MinHealthyCount   int `json:"min_healthy_count,omitempty"`
	MinHealthyPercent int `json:"min_healthy_percent,omitempty"`
}

// HealthCheck are a target group's health check settings.
type HealthCheck struct {
	Disabled           bool     `json:"disabled,omitempty"`
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	HealthyThreshold   int      `json:"healthy_threshold"`
	UnhealthyThreshold int      `json:"unhealthy_threshold"`
	// Protocol is TCP ("") or HTTP or HTTPS; Port the port checked (0:
	// the target's own, traffic-port). An HTTP or HTTPS check asks for
	// Path ("/") and passes on a status Matcher names ("200-399"; also
	// "200" or "200,202"), as an NLB's do (healthcheck.go).
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port,omitempty"`
	Path     string `json:"path,omitempty"`
	Matcher  string `json:"matcher,omitempty"`
}

// Duration is a time.Duration written as a string ("350s") in JSON.
type Duration time.Duration

// NoDelay is a delay set to none, where 0 stands for the default.
const NoDelay Duration = -1

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Where the proxy protocol header goes, as an NLB's attribute names it.
const (
	// PlacementFirstAckWithPayload sends the header with the client's first
	// bytes: a target that speaks first waits for the client.
	PlacementFirstAckWithPayload = "on_first_ack_with_payload"
	// PlacementFirstAck sends the header as soon as the connection is up.
	PlacementFirstAck = "on_first_ack"
)

// Target is an IP target in an AZ.
type Target struct {
	IP   netip.Addr `json:"ip"`
	Port uint16     `json:"port"`
	AZ   string     `json:"az"`
	// DeregisteredAt, when set, is when deregistration began: the target
	// drains from then on.
	DeregisteredAt time.Time `json:"deregistered_at,omitzero"`
	// Blackholed: the target's AZ is down by a fault; connections to it
	// and its health checks go unanswered.
	Blackholed bool `json:"blackholed,omitempty"`
}

// LoadConfig reads a snapshot written by ctl and checks that it is usable.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read forwarder config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("forwarder config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("forwarder config %s: %w", path, err)
	}
	return &c, nil
}

// Validate refuses a snapshot the forwarder could not serve.
func (c *Config) Validate() error {
	if c.AZ == "" {
		return fmt.Errorf("az is empty")
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		return fmt.Errorf("workers %d: use 1 to %d", c.Workers, MaxWorkers)
	}
	seen := map[netip.Addr]bool{}
	for _, e := range c.ENIs {
		if e.Tun == "" || e.Netns == "" || !e.IPv4.Is4() && !e.IPv6.Is6() {
			return fmt.Errorf("ENI %s needs tun, netns and an IPv4 or IPv6 address", e.ID)
		}
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if !a.IsValid() {
				continue
			}
			if seen[a] {
				return fmt.Errorf("ENI %s: address %s is used twice", e.ID, a)
			}
			seen[a] = true
		}
		for _, l := range e.Listeners {
			lb, ok := c.LoadBalancers[l.LoadBalancer]
			if !ok {
				return fmt.Errorf("ENI %s port %d: load balancer %q is not in the config", e.ID, l.Port, l.LoadBalancer)
			}
			if lb.Netns == "" || !lb.NodeIP.IsValid() {
				return fmt.Errorf("load balancer %s has no node in %s", lb.Name, c.AZ)
			}
			if _, ok := c.TargetGroups[l.TargetGroup]; !ok {
				return fmt.Errorf("ENI %s port %d: target group %q is not in the config", e.ID, l.Port, l.TargetGroup)
			}
		}
	}
	return nil
}
