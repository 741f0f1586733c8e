package ctl

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Topology is a fabric as a user writes it: VPCs with subnets, Network Load
// Balancers with listeners and target groups, endpoint services in front of
// the load balancers, and interface endpoints in consumer VPCs. Field names
// follow the EC2 and ELBv2 APIs so that an AWS user recognises them.
type Topology struct {
	Name   string `yaml:"name"`
	Region string `yaml:"region"`
	// Accounts are the AWS accounts of the fabric; each VPC belongs to
	// one. Without any, the fabric has one account, DefaultAccountID.
	Accounts []Account `yaml:"accounts"`
	Zones    []string  `yaml:"availability_zones"`
	// Regions are the fabric's other Regions, each with its own AZs; the
	// one above (region, availability_zones) is the home Region, where a
	// VPC is unless it names another.
	Regions        []RegionSpec    `yaml:"regions"`
	VPCs           []VPC           `yaml:"vpcs"`
	LoadBalancers  []LoadBalancer  `yaml:"load_balancers"`
	TargetGroups   []TargetGroup   `yaml:"target_groups"`
	Services       []Service       `yaml:"endpoint_services"`
	Endpoints      []Endpoint      `yaml:"endpoints"`
	SecurityGroups []SecurityGroup `yaml:"security_groups"`
	// ForwarderWorkers is how many forwarder processes serve each AZ
	// (default 1): more cores for one AZ, and more provider connections
	// than one process's open-file limit allows.
	ForwarderWorkers int `yaml:"forwarder_workers"`
	// FlowCapacity is the flows each forwarder's table holds (default
	// 262,144); it is fixed while a forwarder runs.
	FlowCapacity int `yaml:"flow_capacity"`
	// API throttles each account's calls to the AWS-compatible API.
	API APISettings `yaml:"api"`
	// SNSTopics receive connection notifications: each an account's
	// topic with HTTP subscribers (loopback URLs).
	SNSTopics []SNSTopic `yaml:"sns_topics"`
	// PublicDNSZones are the zones of the fabric's public DNS server.
	PublicDNSZones []PublicZone `yaml:"public_dns_zones"`
}

// RegionSpec is a Region of the fabric beside the home one.
type RegionSpec struct {
	Name  string   `yaml:"name"`
	Zones []string `yaml:"availability_zones"`
	// OptIn: accounts must opt into the Region (opted_in_regions) before
	// offering a service there or reaching one hosted there.
	OptIn bool `yaml:"opt_in"`
}

// SNSTopic is a topic and its HTTP subscribers.
type SNSTopic struct {
	Name        string   `yaml:"name"`
	Account     string   `yaml:"account"`
	Subscribers []string `yaml:"subscribers"`
}

// APISettings are the AWS-compatible API's settings.
type APISettings struct {
	// RequestsPerSecond and Burst bound each account's calls (a token
	// bucket, as EC2 throttles); past them a call is answered
	// RequestLimitExceeded (EC2) or Throttling (ELBv2), which the AWS CLI
	// and SDKs retry. Defaults: 20 per second, bursts of 50.
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
	Burst             int     `yaml:"burst" json:"burst"`
}

// SecurityGroup is a set of ingress rules for an endpoint's ENIs (egress
// does not matter: the endpoint only answers).
type SecurityGroup struct {
	Name    string   `yaml:"name"`
	VPC     string   `yaml:"vpc"`
	Ingress []SGRule `yaml:"ingress"`
	// Egress replaces EC2's default outbound rule (everything) when
	// given, [] for none. Outbound rules matter on a load balancer's
	// groups: its connections to targets and its health checks leave by
	// them.
	Egress *[]SGRule `yaml:"egress"`
}

// SGRule allows a protocol (tcp, or -1 for all), a port range and a source
// CIDR (IPv4 or IPv6), with EC2's field names.
type SGRule struct {
	IPProtocol string `yaml:"ip_protocol"`
	FromPort   int    `yaml:"from_port"`
	ToPort     int    `yaml:"to_port"`
	CIDRIPv4   string `yaml:"cidr_ipv4"`
	CIDRIPv6   string `yaml:"cidr_ipv6"`
}

// Account is an AWS account: a name to refer to it by, and its 12-digit id.
type Account struct {
	Name string `yaml:"name" json:"name"`
	ID   string `yaml:"id" json:"id"`
	// The account's access key for the AWS-compatible API; made (and
	// kept in the store) when the topology gives none.
	AccessKeyID     string `yaml:"access_key_id" json:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key" json:"secret_access_key"`
	// IAMPolicy is what the account's principals may do of cross-Region
	// access (vpce:AllowMultiRegion); none is the implicit deny.
	IAMPolicy []PolicyStatement `yaml:"iam_policy" json:"iam_policy,omitempty"`
	// OptedInRegions are the opt-in Regions the account has enabled.
	OptedInRegions []string `yaml:"opted_in_regions" json:"opted_in_regions,omitempty"`
}

// DefaultAccountID is the account of a topology that names none.
const DefaultAccountID = "111122223333"

// VPC is a network namespace.
type VPC struct {
	Name string `yaml:"name"`
	// Account owns the VPC and what is in it (the first account by
	// default).
	Account string `yaml:"account"`
	// Region is the VPC's Region (the home Region by default).
	Region   string   `yaml:"region"`
	CIDR     string   `yaml:"cidr"`
	IPv6CIDR string   `yaml:"ipv6_cidr"`
	Subnets  []Subnet `yaml:"subnets"`
	// EnableDNSSupport and EnableDNSHostnames are the VPC's DNS
	// attributes. Both are on unless the file says otherwise (as the
	// console's VPC wizard makes them); DNS hostnames are off when DNS
	// support is. Left out on a later apply, they keep what they are
	// (ModifyVpcAttribute may have changed them).
	EnableDNSSupport   *bool `yaml:"enable_dns_support"`
	EnableDNSHostnames *bool `yaml:"enable_dns_hostnames"`
}

// Subnet is an address range of a VPC in one AZ. HostIP is the address the
// namespace itself holds in the subnet (an "instance" in it); it defaults to
// the first address after the four AWS reserves.
type Subnet struct {
	Name     string `yaml:"name"`
	AZ       string `yaml:"availability_zone"`
	CIDR     string `yaml:"cidr"`
	HostIP   string `yaml:"host_ip"`
	IPv6CIDR string `yaml:"ipv6_cidr"`
	HostIPv6 string `yaml:"host_ipv6"`
}

// LoadBalancer is a Network Load Balancer: one node per subnet mapping.
type LoadBalancer struct {
	Name string `yaml:"name"`
	VPC  string `yaml:"vpc"`
	// IPAddressType: ipv4 (default) or dualstack. A service supports IPv6
	// endpoints only if its load balancers are dualstack (their targets
	// need not speak IPv6: pvlink's nodes reach them over IPv4).
	IPAddressType  string          `yaml:"ip_address_type"`
	CrossZone      bool            `yaml:"cross_zone"`
	SubnetMappings []SubnetMapping `yaml:"subnet_mappings"`
	Listeners      []Listener      `yaml:"listeners"`
	// SecurityGroups (names of security_groups in its VPC) filter what
	// reaches its listeners; through PrivateLink too, by the consumer's
	// address, unless EnforceOnPrivateLink is off.
	SecurityGroups       []string `yaml:"security_groups"`
	EnforceOnPrivateLink string   `yaml:"enforce_security_group_inbound_rules_on_private_link_traffic"`
}

// SubnetMapping places a load-balancer node in a subnet, as in ELBv2's
// SubnetMappings; PrivateIPv4Address defaults to the next free address.
type SubnetMapping struct {
	Subnet             string `yaml:"subnet"`
	PrivateIPv4Address string `yaml:"private_ipv4_address"`
}

// Listener forwards a TCP port of the load balancer to a target group.
type Listener struct {
	ID          string `yaml:"-" json:"id,omitempty"` // the last part of its ARN
	Protocol    string `yaml:"protocol"`
	Port        int    `yaml:"port"`
	TargetGroup string `yaml:"target_group"`
	// IdleTimeout is the listener's TCP idle timeout, as ELBv2's listener
	// attribute tcp.idle_timeout.seconds (AWS allows 60s to 6000s,
	// pvlink from 1s); unset, its target group's idle_timeout, else 350s.
	IdleTimeout time.Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
}

// TargetGroup is a set of IP targets in one VPC.
type TargetGroup struct {
	Name            string `yaml:"name"`
	VPC             string `yaml:"vpc"`
	Protocol        string `yaml:"protocol"`
	Port            int    `yaml:"port"`
	ProxyProtocolV2 bool   `yaml:"proxy_protocol_v2"`
	// ProxyProtocolV2Placement is when the header goes out:
	// on_first_ack_with_payload (the NLB default: with the client's first
	// bytes) or on_first_ack (right after the handshake).
	ProxyProtocolV2Placement string   `yaml:"proxy_protocol_v2_header_placement"`
	Targets                  []Target `yaml:"targets"`

	// IdleTimeout is the NLB's TCP idle timeout (350s; AWS allows 60s to
	// 6000s, pvlink from 1s so tests need not wait).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// DeregistrationDelay is how long a deregistered target drains (300s
	// when absent; 0s: it leaves at once).
	DeregistrationDelay *time.Duration `yaml:"deregistration_delay"`
	// ConnectionTermination cuts a drained target's connections.
	ConnectionTermination bool         `yaml:"connection_termination"`
	HealthCheck           *HealthCheck `yaml:"health_check"`
	// ConnectionLimit is how many connections one load-balancer node holds
	// to one target IP:port (about 55,000 through PrivateLink).
	ConnectionLimit int `yaml:"connection_limit"`
	// UnhealthyConnectionTermination (true by default) resets the
	// connections of a target that fails its health checks; off, they
	// stay for UnhealthyDrainingInterval (the target unhealthy.draining)
	// or, with none, for as long as they last.
	UnhealthyConnectionTermination *bool         `yaml:"unhealthy_connection_termination"`
	UnhealthyDrainingInterval      time.Duration `yaml:"unhealthy_draining_interval"`
	// PreserveClientIP is kept and shown; through PrivateLink targets see
	// the node's address whatever it says, as on AWS.
	PreserveClientIP bool `yaml:"preserve_client_ip"`
	// CrossZone overrides the load balancers' cross_zone for this group's
	// targets; left out, theirs applies.
	CrossZone *bool `yaml:"cross_zone"`
	// Routing failover: below this many healthy targets in a node's scope
	// (1 by default), or this percentage of them (off by default), new
	// connections go to all of them, unhealthy ones included.
	MinHealthyTargets    int `yaml:"unhealthy_state_routing_min_healthy_targets"`
	MinHealthyPercentage int `yaml:"unhealthy_state_routing_min_healthy_percentage"`
}

// HealthCheck is a target group's health check (NLB defaults: TCP on the
// traffic port, every 30s, 10s timeout, healthy after 5 passes, unhealthy
// after 2 failures; an HTTP or HTTPS check asks for / and passes on
// 200-399).
type HealthCheck struct {
	Enabled            *bool         `yaml:"enabled"`
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	HealthyThreshold   int           `yaml:"healthy_threshold"`
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"`
	Protocol           string        `yaml:"protocol"`
	Port               int           `yaml:"port"` // 0: the traffic port
	Path               string        `yaml:"path"`
	Matcher            string        `yaml:"matcher"`
}

// Target is an IP target; Port defaults to the target group's port. pvlink
// starts a `pvlink target` server for it unless External is set.
type Target struct {
	IP       string `yaml:"ip"`
	Port     int    `yaml:"port"`
	External bool   `yaml:"external"`
}

// Service is an endpoint service fronted by load balancers.
type Service struct {
	Name               string   `yaml:"name"`
	LoadBalancers      []string `yaml:"load_balancers"`
	AcceptanceRequired bool     `yaml:"acceptance_required"`
	// AllowedPrincipals may create endpoints to the service: ARNs
	// (arn:aws:iam::ACCOUNT:root for a whole account, :role/NAME,
	// :user/NAME) or "*". None, as in AWS, means nobody.
	AllowedPrincipals []string `yaml:"allowed_principals"`
	// SupportedIPAddressTypes: ipv4 (default) and/or ipv6. IPv6 and
	// dualstack endpoints need ipv6; the targets may stay IPv4.
	SupportedIPAddressTypes []string `yaml:"supported_ip_address_types"`
	// PrivateDNSName is a name of the provider's (api.example.com) that
	// endpoints with private DNS on answer inside their VPC, once the
	// provider has shown it owns the domain (a TXT record pvlink hands
	// out, published in a public DNS zone, checked over DNS).
	PrivateDNSName string `yaml:"private_dns_name"`
	// SupportedRegions are the Regions, beside its host Region (its load
	// balancers'), whose consumers may create endpoints to it
	// (cross-Region access).
	SupportedRegions []string `yaml:"supported_regions"`
}

// PublicZone is a DNS zone of the fabric's "public" DNS, controlled by an
// account: where a provider publishes the TXT record that verifies its
// private DNS name.
type PublicZone struct {
	Name    string         `yaml:"name"`
	Account string         `yaml:"account"`
	Records []PublicRecord `yaml:"records"`
}

// PublicRecord is one record of a public zone: A, AAAA or TXT.
type PublicRecord struct {
	Name  string `yaml:"name" json:"name"`
	Type  string `yaml:"type" json:"type"`
	Value string `yaml:"value" json:"value"`
}

// Endpoint is an interface VPC endpoint: one ENI per subnet configuration.
type Endpoint struct {
	Name    string `yaml:"name"`
	VPC     string `yaml:"vpc"`
	Service string `yaml:"service"`
	// Principal creates the endpoint: an ARN in the account of the VPC
	// (its root by default). The service must allow it.
	Principal            string                `yaml:"principal"`
	IPAddressType        string                `yaml:"ip_address_type"`
	SubnetConfigurations []SubnetConfiguration `yaml:"subnet_configurations"`
	// SecurityGroups name the groups whose ingress rules the ENIs enforce
	// ("default" is the VPC's default group); none means the VPC's default
	// group, as in EC2: its own VPC's ranges only.
	SecurityGroups []string `yaml:"security_groups"`
	// PrivateDNSEnabled makes the service's verified private DNS name
	// answer, in this VPC, with the endpoint's ENIs.
	PrivateDNSEnabled bool `yaml:"private_dns_enabled"`
	// DNSRecordIPType: ipv4, ipv6 or dualstack (the endpoint's type by
	// default): A, AAAA or both for its names.
	DNSRecordIPType string `yaml:"dns_record_ip_type"`
	// ServiceRegion is the service's Region when it is not the endpoint's
	// own (cross-Region access); the service must support the endpoint's
	// Region.
	ServiceRegion string `yaml:"service_region"`
}

// SubnetConfiguration chooses the ENI's subnet and, optionally, its address.
type SubnetConfiguration struct {
	Subnet string `yaml:"subnet"`
	IPv4   string `yaml:"ipv4"`
	IPv6   string `yaml:"ipv6"`
}

// TopologyError is a fault in a topology file, with where it is.
type TopologyError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *TopologyError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadTopology reads and validates a topology file. Nothing is created: a
// file that is refused here leaves the machine untouched.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return ParseTopology(path, data)
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)
var goTypeRe = regexp.MustCompile(` in type [\w.]+`)

// ParseTopology decodes and validates a topology; file names the source in
// errors.
func ParseTopology(file string, data []byte) (*Topology, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &TopologyError{File: file, Msg: "the file is empty"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Topology
	if err := dec.Decode(&t); err != nil {
		te := yamlError(file, err)
		if te.Line > 0 {
			te.Field = pathString(pathAtLine(root.Content[0], te.Line, nil))
		}
		return nil, te
	}
	v := &validator{file: file, root: root.Content[0]}
	v.topology(&t)
	if v.err != nil {
		return nil, v.err
	}
	return &t, nil
}

func yamlError(file string, err error) *TopologyError {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	first = goTypeRe.ReplaceAllString(first, "")
	if m := yamlLineRe.FindStringSubmatch(first); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &TopologyError{File: file, Line: line, Msg: m[2]}
	}
	return &TopologyError{File: file, Msg: first}
}

// pathAtLine finds the path of the innermost mapping key on a line, so that
// a decoding error can name the field as well as the line.
func pathAtLine(n *yaml.Node, line int, path []any) []any {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := append(append([]any{}, path...), k.Value)
			if deeper := pathAtLine(v, line, p); deeper != nil {
				return deeper
			}
			if k.Line == line {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if deeper := pathAtLine(c, line, append(append([]any{}, path...), i)); deeper != nil {
				return deeper
			}
		}
	}
	return nil
}

// lineOf finds the line of a field given as a path of mapping keys and
// sequence indices; it falls back to the deepest node it could reach.
func lineOf(root *yaml.Node, path []any) int {
	n := root
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						line = n.Content[i].Line
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}
