package ctl

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// RunDir is where fabrics keep their runtime files, one folder each. It is
// on tmpfs, so a reboot (which also takes the namespaces) clears it.
var RunDir = "/run/pvlink"

// DataDir is where ctld keeps each fabric's store, one folder each. It
// survives a reboot; the runtime folder and the namespaces do not, and ctld
// makes them again from the store.
var DataDir = "/var/lib/pvlink"

// State is the model of one fabric: every resource with its id, settings
// and lifecycle state. ctld holds the committed copy and is the only one to
// change it; it says nothing of processes, which the realizer finds.
type State struct {
	Name    string    `json:"name"`
	File    string    `json:"file,omitempty"`
	Version uint64    `json:"version"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`
	// AvailabilityZones are the AZs of every Region of the fabric, by id
	// (use1-az1, ...): the home Region's first.
	AvailabilityZones []string `json:"availability_zones"`
	// Regions are the fabric's Regions beside the home one (Region).
	Regions []RegionState `json:"regions,omitempty"`
	// Workers is the forwarder processes per AZ (0 means 1).
	Workers int `json:"forwarder_workers,omitempty"`
	// FlowCapacity sizes each forwarder's flow table (0: the default); a
	// running forwarder cannot change it.
	FlowCapacity int `json:"flow_capacity,omitempty"`
	// API is the AWS-compatible API's throttle.
	API APISettings `json:"api"`

	Accounts       []Account            `json:"accounts"`
	VPCs           []VPCState           `json:"vpcs"`
	LoadBalancers  []LBState            `json:"load_balancers"`
	TargetGroups   []TargetGroupState   `json:"target_groups"`
	Services       []ServiceState       `json:"services"`
	Endpoints      []EndpointState      `json:"endpoints"`
	Targets        []TargetState        `json:"targets"`
	SecurityGroups []SecurityGroupState `json:"security_groups,omitempty"`
	PrefixLists    []PrefixListState    `json:"prefix_lists,omitempty"`
	PublicZones    []PublicZoneState    `json:"public_dns_zones,omitempty"`
	Topics         []TopicState         `json:"topics,omitempty"`
	Notifications  []NotificationState  `json:"notifications,omitempty"`
	FlowLogs       []FlowLogState       `json:"flow_logs,omitempty"`
	InsightRules   []InsightRuleState   `json:"insight_rules,omitempty"`
	Faults         []FaultState         `json:"faults,omitempty"`
	// Tags by resource id.
	Tags map[string][]Tag `json:"tags,omitempty"`
}

// VPCState is a VPC and the namespace that is it.
type VPCState struct {
	Origin   string        `json:"origin,omitempty"` // "api": made through the API
	Name     string        `json:"name"`
	ID       string        `json:"id"`
	OwnerID  string        `json:"owner_id"` // the account that owns it
	Netns    string        `json:"netns"`
	CIDR     string        `json:"cidr"`
	IPv6CIDR string        `json:"ipv6_cidr,omitempty"`
	Subnets  []SubnetState `json:"subnets"`
	// Region is the VPC's ("" is the home Region).
	Region string `json:"region,omitempty"`
	// DNSSupportOff and DNSHostnamesOff are the VPC attributes
	// enableDnsSupport and enableDnsHostnames, turned off (vpcdns.go). The
	// zero value, both on, is what a topology's VPC starts with; a VPC
	// made through the API starts with DNS hostnames off, as on AWS.
	DNSSupportOff   bool `json:"dns_support_off,omitempty"`
	DNSHostnamesOff bool `json:"dns_hostnames_off,omitempty"`
}

// RegionState is a Region of the fabric and its AZs.
type RegionState struct {
	Name  string   `json:"name"`
	AZs   []string `json:"availability_zones"`
	OptIn bool     `json:"opt_in,omitempty"`
}

// SubnetState is a subnet and the namespace's own address in it.
type SubnetState struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	AZ       string `json:"az"`
	CIDR     string `json:"cidr"`
	HostIP   string `json:"host_ip"`
	IPv6CIDR string `json:"ipv6_cidr,omitempty"`
	HostIPv6 string `json:"host_ipv6,omitempty"`
}

// LBState is a Network Load Balancer and its nodes.
type LBState struct {
	Origin string `json:"origin,omitempty"`
	State  string `json:"state,omitempty"` // provisioning, active ("" from a topology: active)
	// IPAddressType is ipv4 or dualstack.
	IPAddressType string `json:"ip_address_type,omitempty"`
	Name          string `json:"name"`
	ID            string `json:"id"` // the last part of its ARN
	OwnerID       string `json:"owner_id"`
	VPC           string `json:"vpc"`
	Netns         string `json:"netns"`
	CrossZone     bool   `json:"cross_zone"`
	// DeletionProtection refuses its deletion, by the API or by a
	// topology that leaves it out, until it is turned off.
	DeletionProtection bool `json:"deletion_protection,omitempty"`
	// SecurityGroups are its groups' ids; only a load balancer made with
	// some may have them (lbsecuritygroups.go). SGPrivateLinkOff is
	// EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic off.
	SecurityGroups         []string `json:"security_groups,omitempty"`
	MadeWithSecurityGroups bool     `json:"made_with_security_groups,omitempty"`
	SGPrivateLinkOff       bool     `json:"sg_private_link_off,omitempty"`
	// Created is when it was made (AWS's CreatedTime).
	Created   time.Time     `json:"created,omitzero"`
	Nodes     []LBNodeState `json:"nodes"`
	Listeners []Listener    `json:"listeners"`
}

// TargetGroupState is a target group's settings; its targets are in
// State.Targets.
type TargetGroupState struct {
	Origin          string `json:"origin,omitempty"`
	Name            string `json:"name"`
	ID              string `json:"id"` // the last part of its ARN
	OwnerID         string `json:"owner_id"`
	VPC             string `json:"vpc"`
	Port            int    `json:"port"`
	ProxyProtocolV2 bool   `json:"proxy_protocol_v2"`
	Placement       string `json:"proxy_protocol_v2_header_placement"`

	IdleTimeout           string               `json:"idle_timeout,omitempty"`
	DeregistrationDelay   string               `json:"deregistration_delay,omitempty"`
	ConnectionTermination bool                 `json:"connection_termination,omitempty"`
	HealthCheck           snapshot.HealthCheck `json:"health_check"`
	ConnectionLimit       int                  `json:"connection_limit,omitempty"`
	// KeepUnhealthy is unhealthy target connection termination off;
	// UnhealthyDraining its draining interval (a duration, "" for none).
	KeepUnhealthy     bool   `json:"keep_unhealthy_connections,omitempty"`
	UnhealthyDraining string `json:"unhealthy_draining_interval,omitempty"`
	// PreserveClientIP is the attribute, kept and shown: through
	// PrivateLink the source a target sees is always the node's address.
	PreserveClientIP bool `json:"preserve_client_ip,omitempty"`
	// CrossZone is "true" or "false" where the group overrides its load
	// balancer's cross-zone setting; "" is use_load_balancer_configuration.
	CrossZone string `json:"cross_zone,omitempty"`
	// Routing failover thresholds (0: the defaults, 1 target and off).
	MinHealthyCount   int `json:"min_healthy_count,omitempty"`
	MinHealthyPercent int `json:"min_healthy_percent,omitempty"`
}

// LBNodeState is a load-balancer node: the source address targets see.
type LBNodeState struct {
	AZ     string `json:"az"`
	Subnet string `json:"subnet"`
	IP     string `json:"ip"`
}

// ServiceState is an endpoint service.
type ServiceState struct {
	Origin             string   `json:"origin,omitempty"`
	Name               string   `json:"name"`
	ID                 string   `json:"id"`
	OwnerID            string   `json:"owner_id"` // its load balancers' account
	ServiceName        string   `json:"service_name"`
	State              string   `json:"state"`
	LoadBalancers      []string `json:"load_balancers"`
	AcceptanceRequired bool     `json:"acceptance_required"`
	AllowedPrincipals  []string `json:"allowed_principals"`
	// SupportedIPAddressTypes: ipv4, and ipv6 when its load balancers
	// are dualstack.
	SupportedIPAddressTypes []string `json:"supported_ip_address_types"`
	// Region is the service's host Region ("" is the home Region);
	// SupportedRegions the others whose consumers may reach it.
	Region           string   `json:"region,omitempty"`
	SupportedRegions []string `json:"supported_regions,omitempty"`
	// PrivateDNS is the service's private DNS name and its verification.
	PrivateDNS *PrivateDNSName `json:"private_dns,omitempty"`
	// PayerResponsibility is ServiceOwner once the provider took on its
	// endpoints' charges (ModifyVpcEndpointServicePayerResponsibility);
	// shown, no more: pvlink charges nobody.
	PayerResponsibility string `json:"payer_responsibility,omitempty"`
	// ClientToken makes CreateVpcEndpointServiceConfiguration idempotent
	// for its caller.
	ClientToken string `json:"client_token,omitempty"`
}

// EndpointState is an interface endpoint and its ENIs.
type EndpointState struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	OwnerID   string `json:"owner_id"`  // its VPC's account
	Principal string `json:"principal"` // who created it
	// Origin is "api" for an endpoint created through the API: a topology
	// applied later leaves it alone (it manages only what it declares).
	Origin  string    `json:"origin,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// ClientToken makes CreateVpcEndpoint idempotent for its caller.
	ClientToken   string `json:"client_token,omitempty"`
	Service       string `json:"service"` // the service's full name
	ServiceID     string `json:"service_id"`
	VPC           string `json:"vpc"`
	VPCID         string `json:"vpc_id"`
	State         string `json:"state"`
	IPAddressType string `json:"ip_address_type"`
	// DNSRecordIPType says which records its names get: ipv4, ipv6 or
	// dualstack (from its IP address type by default).
	DNSRecordIPType string `json:"dns_record_ip_type,omitempty"`
	// Region is the endpoint's (its VPC's) Region and ServiceRegion its
	// service's: they differ for cross-Region access.
	Region        string `json:"region"`
	ServiceRegion string `json:"service_region"`
	// PolicyDocument is the endpoint policy as given (stored and
	// returned; a TCP service has no actions for it to authorize).
	PolicyDocument string `json:"policy_document,omitempty"`
	// PrivateDNSEnabled: the service's private DNS name answers with
	// this endpoint's ENIs inside its VPC.
	PrivateDNSEnabled bool `json:"private_dns_enabled,omitempty"`
	// DNSNames are its regional name, then one zonal name per AZ (filled
	// in for reports).
	DNSNames []string   `json:"dns_names,omitempty"`
	Ports    []int      `json:"ports"`
	ENIs     []ENIState `json:"enis"`
	// SecurityGroups are the ids of the groups whose ingress rules the
	// ENIs enforce (none: everything may reach them).
	SecurityGroups []string `json:"security_groups,omitempty"`
}

// ENIState is an endpoint network interface: a TUN in the consumer netns.
type ENIState struct {
	ID       string `json:"id"`
	AZ       string `json:"az"`
	Subnet   string `json:"subnet"`
	SubnetID string `json:"subnet_id"`
	IP       string `json:"ip,omitempty"`
	IPv6     string `json:"ipv6,omitempty"`
	Tun      string `json:"tun"`
	Netns    string `json:"netns"`
}

// TargetState is a target and, when pvlink runs it, its server process.
type TargetState struct {
	Origin      string `json:"origin,omitempty"`
	IP          string `json:"ip"`
	Port        int    `json:"port"`
	AZ          string `json:"az"`
	Netns       string `json:"netns"`
	TargetGroup string `json:"target_group"`
	External    bool   `json:"external,omitempty"`
	// DeregisteredAt is when deregistration began.
	DeregisteredAt time.Time `json:"deregistered_at,omitzero"`
}

// ForwarderState is a forwarder process of one AZ (one of its workers).
type ForwarderState struct {
	AZ      string `json:"az"`
	Worker  int    `json:"worker"`
	Workers int    `json:"workers,omitempty"`
}

// Label names the process for people: the AZ, and the worker when the AZ
// has several.
func (f ForwarderState) Label() string {
	if f.Workers > 1 {
		return fmt.Sprintf("%s/w%d", f.AZ, f.Worker)
	}
	return f.AZ
}

// Dir is the runtime folder of a fabric: ctld's socket and log, and the
// sockets, pid files, snapshots and logs of the processes it runs.
func Dir(name string) string { return filepath.Join(RunDir, name) }

// StoreDir is the folder of a fabric's store.
func StoreDir(name string) string { return filepath.Join(DataDir, name) }

// newID makes an AWS-shaped id: prefix and 17 hex digits.
func newID(prefix string) string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + hex.EncodeToString(b[:])[:17]
}

// newHexID is n hex digits, as the last part of an ELBv2 ARN.
func newHexID(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

func mustAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		panic(fmt.Sprintf("validated address %q does not parse: %v", s, err))
	}
	return a
}

func prefixContains(cidr, ip string) bool {
	p, err1 := netip.ParsePrefix(cidr)
	a, err2 := netip.ParseAddr(ip)
	return err1 == nil && err2 == nil && p.Contains(a)
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// SecurityGroupState is a security group of a VPC: the ingress rules of the
// endpoints that name it.
type SecurityGroupState struct {
	Origin      string            `json:"origin,omitempty"`
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	VPC         string            `json:"vpc"`
	OwnerID     string            `json:"owner_id"`
	Ingress     []snapshot.SGRule `json:"ingress"`
	// FromGroups are the inbound rules whose source is a security group
	// (EC2's UserIdGroupPairs): they let in what the group's members send.
	FromGroups []GroupRule `json:"from_groups,omitempty"`
	// ToGroups are the outbound rules whose destination is a security
	// group: they let out what goes to the group's members.
	ToGroups []GroupRule `json:"to_groups,omitempty"`
	// Default marks the VPC's default group (defaultgroups.go).
	Default bool `json:"default,omitempty"`
	// Descriptions are its rules' descriptions, by rule
	// (sgdescriptions.go).
	Descriptions map[string]string `json:"descriptions,omitempty"`
	// RuleIDs are the ids of rules that do not have the one their
	// content derives: rules changed in place, which keep theirs
	// (sgruleids.go).
	RuleIDs map[string]string `json:"rule_ids,omitempty"`
	// EgressSet says Egress holds the group's outbound rules; until one
	// is changed a group has EC2's default, everything out
	// (EgressRules).
	EgressSet bool              `json:"egress_set,omitempty"`
	Egress    []snapshot.SGRule `json:"egress,omitempty"`
}

// LoadBalancerARN is the ARN of the load balancer named name, as ELBv2
// writes it; "" if the model has no such load balancer.
func (s *State) LoadBalancerARN(name string) string {
	for _, lb := range s.LoadBalancers {
		if lb.Name == name {
			return lb.ARN(s.Region)
		}
	}
	return ""
}

// ARN is the load balancer's ARN in region.
func (lb LBState) ARN(region string) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:loadbalancer/net/%s/%s", region, lb.OwnerID, lb.Name, lb.ID)
}

// RegionNames are the fabric's Regions, the home one first.
func (s *State) RegionNames() []string {
	out := []string{s.Region}
	for _, r := range s.Regions {
		out = append(out, r.Name)
	}
	return out
}

// HasRegion reports whether r is one of the fabric's Regions.
func (s *State) HasRegion(r string) bool {
	for _, n := range s.RegionNames() {
		if n == r {
			return true
		}
	}
	return false
}

// RegionAZs are the AZs of Region r.
func (s *State) RegionAZs(r string) []string {
	other := map[string]bool{}
	for _, reg := range s.Regions {
		if reg.Name == r {
			return reg.AZs
		}
		for _, az := range reg.AZs {
			other[az] = true
		}
	}
	var out []string
	for _, az := range s.AvailabilityZones {
		if !other[az] {
			out = append(out, az)
		}
	}
	return out
}
