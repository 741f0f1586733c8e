package api

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// The EC2 answers, with botocore's locationNames: lists are <item>s.

type dnsEntry struct {
	DNSName      string `xml:"dnsName"`
	HostedZoneID string `xml:"hostedZoneId"`
}

type vpcEndpoint struct {
	ID                  string     `xml:"vpcEndpointId"`
	Type                string     `xml:"vpcEndpointType"`
	VPCID               string     `xml:"vpcId"`
	ServiceName         string     `xml:"serviceName"`
	ServiceRegion       string     `xml:"serviceRegion,omitempty"`
	State               string     `xml:"state"`
	Policy              string     `xml:"policyDocument,omitempty"`
	SubnetIDs           []string   `xml:"subnetIdSet>item"`
	IPAddressType       string     `xml:"ipAddressType"`
	DNSRecordIPType     string     `xml:"dnsOptions>dnsRecordIpType"`
	PrivateDNSEnabled   bool       `xml:"privateDnsEnabled"`
	RequesterManaged    bool       `xml:"requesterManaged"`
	NetworkInterfaceIDs []string   `xml:"networkInterfaceIdSet>item"`
	DNSEntries          []dnsEntry `xml:"dnsEntrySet>item"`
	Created             string     `xml:"creationTimestamp,omitempty"`
	Groups              []groupID  `xml:"groupSet>item"`
	Tags                []tagItem  `xml:"tagSet>item"`
	OwnerID             string     `xml:"ownerId"`
}

// groupID names a security group an endpoint or interface has.
type groupID struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

// groupsOf are an endpoint's security groups, with their names.
func groupsOf(m *ctl.State, e ctl.EndpointState) []groupID {
	var out []groupID
	for _, id := range e.SecurityGroups {
		g := groupID{ID: id}
		for _, sg := range m.SecurityGroups {
			if sg.ID == id {
				g.Name = sg.Name
			}
		}
		out = append(out, g)
	}
	return out
}

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagsOf(m *ctl.State, id string) []tagItem {
	var out []tagItem
	for _, t := range m.Tags[id] {
		out = append(out, tagItem{t.Key, t.Value})
	}
	return out
}

type serviceType struct {
	ServiceType string `xml:"serviceType"`
}

// supportedRegion is a Region a service is offered in.
type supportedRegion struct {
	Region string `xml:"region"`
	State  string `xml:"serviceState"`
}

type serviceConfiguration struct {
	SupportedRegions   []supportedRegion `xml:"supportedRegionSet>item"`
	Remote             bool              `xml:"remoteAccessEnabled"`
	ServiceType        []serviceType     `xml:"serviceType>item"`
	ID                 string            `xml:"serviceId"`
	Name               string            `xml:"serviceName"`
	State              string            `xml:"serviceState"`
	AZs                []string          `xml:"availabilityZoneSet>item"`
	AZIDs              []string          `xml:"availabilityZoneIdSet>item"`
	AcceptanceRequired bool              `xml:"acceptanceRequired"`
	ManagesEndpoints   bool              `xml:"managesVpcEndpoints"`
	NLBArns            []string          `xml:"networkLoadBalancerArnSet>item"`
	IPAddressTypes     []string          `xml:"supportedIpAddressTypeSet>item"`
	BaseDNSNames       []string          `xml:"baseEndpointDnsNameSet>item"`
	PrivateDNSName     string            `xml:"privateDnsName,omitempty"`
	PrivateDNSConfig   *pdnsConfig       `xml:"privateDnsNameConfiguration,omitempty"`
	Payer              string            `xml:"payerResponsibility,omitempty"`
	Tags               []tagItem         `xml:"tagSet>item"`
}

type pdnsConfig struct {
	State string `xml:"state"`
	Type  string `xml:"type"`
	Value string `xml:"value"`
	Name  string `xml:"name"`
}

type serviceDetail struct {
	ServiceRegion      string        `xml:"serviceRegion,omitempty"`
	Name               string        `xml:"serviceName"`
	ID                 string        `xml:"serviceId"`
	ServiceType        []serviceType `xml:"serviceType>item"`
	AZs                []string      `xml:"availabilityZoneSet>item"`
	AZIDs              []string      `xml:"availabilityZoneIdSet>item"`
	Owner              string        `xml:"owner"`
	BaseDNSNames       []string      `xml:"baseEndpointDnsNameSet>item"`
	PolicySupported    bool          `xml:"vpcEndpointPolicySupported"`
	AcceptanceRequired bool          `xml:"acceptanceRequired"`
	ManagesEndpoints   bool          `xml:"managesVpcEndpoints"`
	IPAddressTypes     []string      `xml:"supportedIpAddressTypeSet>item"`
	PrivateDNSName     string        `xml:"privateDnsName,omitempty"`
	PrivateDNSState    string        `xml:"privateDnsNameVerificationState,omitempty"`
	Payer              string        `xml:"payerResponsibility,omitempty"`
}

type connection struct {
	ServiceID     string     `xml:"serviceId"`
	EndpointID    string     `xml:"vpcEndpointId"`
	ConnectionID  string     `xml:"vpcEndpointConnectionId"`
	Region        string     `xml:"vpcEndpointRegion,omitempty"`
	EndpointOwner string     `xml:"vpcEndpointOwner"`
	State         string     `xml:"vpcEndpointState"`
	Created       string     `xml:"creationTimestamp,omitempty"`
	DNSEntries    []dnsEntry `xml:"dnsEntrySet>item"`
	NLBArns       []string   `xml:"networkLoadBalancerArnSet>item"`
	IPAddressType string     `xml:"ipAddressType"`
}

type unsuccessful struct {
	Code       string `xml:"error>code"`
	Message    string `xml:"error>message"`
	ResourceID string `xml:"resourceId"`
}

type allowedPrincipal struct {
	Type      string `xml:"principalType"`
	Principal string `xml:"principal"`
	ServiceID string `xml:"serviceId"`
}

type ipRange struct {
	CIDR string `xml:"cidrIp"`
}

type ipv6Range struct {
	CIDR string `xml:"cidrIpv6"`
}

type ipPermission struct {
	Protocol string      `xml:"ipProtocol"`
	From     int         `xml:"fromPort"`
	To       int         `xml:"toPort"`
	V4       []ipRange   `xml:"ipRanges>item"`
	V6       []ipv6Range `xml:"ipv6Ranges>item"`
}

type securityGroup struct {
	OwnerID     string         `xml:"ownerId"`
	Name        string         `xml:"groupName"`
	ID          string         `xml:"groupId"`
	Description string         `xml:"groupDescription"`
	VPCID       string         `xml:"vpcId"`
	Ingress     []ipPermission `xml:"ipPermissions>item"`
	Egress      []ipPermission `xml:"ipPermissionsEgress>item"`
}

func securityGroupOut(g ctl.SecurityGroupState, vpcID string) securityGroup {
	return securityGroup{OwnerID: g.OwnerID, Name: g.Name, ID: g.ID, Description: g.Description, VPCID: vpcID,
		Ingress: permissionsOut(g.Ingress), Egress: permissionsOut(g.EgressRules())}
}

// permissionsOut are rules as EC2 lists them: one permission per rule.
func permissionsOut(rules []snapshot.SGRule) []ipPermission {
	var out []ipPermission
	for _, r := range rules {
		var p ipPermission
		p.Protocol, p.From, p.To = ruleFields(r)
		if r.Source.Addr().Is4() {
			p.V4 = []ipRange{{r.Source.String()}}
		} else {
			p.V6 = []ipv6Range{{r.Source.String()}}
		}
		out = append(out, p)
	}
	return out
}

type notification struct {
	ID         string   `xml:"connectionNotificationId"`
	ServiceID  string   `xml:"serviceId,omitempty"`
	EndpointID string   `xml:"vpcEndpointId,omitempty"`
	Type       string   `xml:"connectionNotificationType"`
	ARN        string   `xml:"connectionNotificationArn"`
	Events     []string `xml:"connectionEvents>item"`
	State      string   `xml:"connectionNotificationState"`
}

func notificationOut(n ctl.NotificationState) notification {
	return notification{ID: n.ID, ServiceID: n.ServiceID, EndpointID: n.EndpointID, Type: "Topic", ARN: n.TopicARN, Events: n.Events, State: n.State}
}

type ipv6Block struct {
	CIDR  string `xml:"ipv6CidrBlock"`
	State string `xml:"ipv6CidrBlockState>state"`
}

type vpc struct {
	ID        string      `xml:"vpcId"`
	CIDR      string      `xml:"cidrBlock"`
	State     string      `xml:"state"`
	OwnerID   string      `xml:"ownerId"`
	IPv6      []ipv6Block `xml:"ipv6CidrBlockAssociationSet>item"`
	IsDefault bool        `xml:"isDefault"`
	Tags      []tagItem   `xml:"tagSet>item"`
}

// vpcAttribute is DescribeVpcAttribute's answer: the one attribute asked.
type vpcAttribute struct {
	VPCID        string    `xml:"vpcId"`
	DNSSupport   *attrBool `xml:"enableDnsSupport,omitempty"`
	DNSHostnames *attrBool `xml:"enableDnsHostnames,omitempty"`
	NAUMetrics   *attrBool `xml:"enableNetworkAddressUsageMetrics,omitempty"`
}

// attrBool is EC2's AttributeBooleanValue.
type attrBool struct {
	Value bool `xml:"value"`
}

// regionVPC is the caller's VPC id in the Region of the request, or EC2's
// InvalidVpcID.NotFound.
func regionVPC(m *ctl.State, caller, region, id string) (*ctl.VPCState, error) {
	for i := range m.VPCs {
		if v := &m.VPCs[i]; v.ID == id && v.OwnerID == caller && cmpOr(v.Region, m.Region) == region {
			return v, nil
		}
	}
	return nil, &apiError{400, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", id)}
}

func vpcOut(v ctl.VPCState) vpc {
	out := vpc{ID: v.ID, CIDR: v.CIDR, State: "available", OwnerID: v.OwnerID}
	if v.IPv6CIDR != "" {
		out.IPv6 = []ipv6Block{{v.IPv6CIDR, "associated"}}
	}
	return out
}

type subnet struct {
	IPv6    []ipv6Block `xml:"ipv6CidrBlockAssociationSet>item"`
	AZ      string      `xml:"availabilityZone"`
	AZID    string      `xml:"availabilityZoneId"`
	CIDR    string      `xml:"cidrBlock"`
	State   string      `xml:"state"`
	ID      string      `xml:"subnetId"`
	VPCID   string      `xml:"vpcId"`
	OwnerID string      `xml:"ownerId"`
	Tags    []tagItem   `xml:"tagSet>item"`
}

type networkInterface struct {
	AZ               string    `xml:"availabilityZone"`
	Description      string    `xml:"description"`
	InterfaceType    string    `xml:"interfaceType"`
	ID               string    `xml:"networkInterfaceId"`
	OwnerID          string    `xml:"ownerId"`
	PrivateIP        string    `xml:"privateIpAddress,omitempty"`
	IPv6             []string  `xml:"ipv6AddressesSet>item>ipv6Address"`
	RequesterID      string    `xml:"requesterId"`
	RequesterManaged bool      `xml:"requesterManaged"`
	Status           string    `xml:"status"`
	SubnetID         string    `xml:"subnetId"`
	VPCID            string    `xml:"vpcId"`
	Groups           []groupID `xml:"groupSet>item"`
	Tags             []tagItem `xml:"tagSet>item"`
}

type availabilityZone struct {
	State  string `xml:"zoneState"`
	Region string `xml:"regionName"`
	Name   string `xml:"zoneName"`
	ID     string `xml:"zoneId"`
	Type   string `xml:"zoneType"`
}

type regionItem struct {
	Endpoint string `xml:"regionEndpoint"`
	Name     string `xml:"regionName"`
	OptIn    string `xml:"optInStatus"`
}

// ec2Response is every EC2 answer: the action's name, the request id, and
// the action's members.
type ec2Response struct {
	XMLName   xml.Name
	Namespace string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Members   []byte `xml:",innerxml"`
}

// members encodes a struct's fields as elements with no element of its own
// around them (its fields are the answer's members).
func members(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	var b bytes.Buffer
	if err := xml.NewEncoder(&b).EncodeElement(v, xml.StartElement{Name: xml.Name{Local: "m"}}); err != nil {
		return nil, err
	}
	out := bytes.TrimPrefix(b.Bytes(), []byte("<m>"))
	return bytes.TrimSuffix(out, []byte("</m>")), nil
}

func (h *Handler) endpointOut(m *ctl.State, e ctl.EndpointState) vpcEndpoint {
	out := vpcEndpoint{
		ID: e.ID, Type: "Interface", VPCID: e.VPCID, ServiceName: e.Service, State: e.State,
		IPAddressType: e.IPAddressType, DNSRecordIPType: cmpOr(e.DNSRecordIPType, cmpOr(e.IPAddressType, "ipv4")), RequesterManaged: false, OwnerID: e.OwnerID,
		Policy: e.PolicyDocument, PrivateDNSEnabled: e.PrivateDNSEnabled, ServiceRegion: cmpOr(e.ServiceRegion, m.Region),
	}
	if !e.Created.IsZero() {
		out.Created = e.Created.UTC().Format(time.RFC3339Nano)
	}
	out.Tags = tagsOf(m, e.ID)
	out.Groups = groupsOf(m, e)
	for _, eni := range e.ENIs {
		out.SubnetIDs = append(out.SubnetIDs, eni.SubnetID)
		out.NetworkInterfaceIDs = append(out.NetworkInterfaceIDs, eni.ID)
	}
	for _, n := range m.DNSNames(e) {
		out.DNSEntries = append(out.DNSEntries, dnsEntry{DNSName: n, HostedZoneID: "Z7HUB22UULQXV"})
	}
	return out
}

// azNames are the names of the fabric's AZ ids (ctl.ZoneName).
func azNames(m *ctl.State, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = m.AZName(id)
	}
	return out
}

// subnetAZ is the AZ id CreateSubnet asks for: by name (AvailabilityZone,
// us-east-1a) or by id (AvailabilityZoneId, use1-az1), not both. A name
// the fabric does not have is passed on as it is, for CreateSubnet to
// refuse in its own words.
func subnetAZ(s *ctl.State, name, id string) (string, error) {
	switch {
	case name != "" && id != "":
		return "", &apiError{400, "InvalidParameterCombination", "Only one of AvailabilityZone or AvailabilityZoneId may be given"}
	case id != "":
		return id, nil
	}
	for _, r := range s.RegionNames() {
		if az := s.AZID(r, name); az != "" {
			return az, nil
		}
	}
	return name, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *Handler) serviceConfig(m *ctl.State, s ctl.ServiceState) serviceConfiguration {
	out := serviceConfiguration{
		ServiceType: []serviceType{{"Interface"}}, ID: s.ID, Name: s.ServiceName, State: s.State,
		AZs: azNames(m, m.ServiceAZs(&s)), AZIDs: m.ServiceAZs(&s), AcceptanceRequired: s.AcceptanceRequired, IPAddressTypes: s.SupportedIPAddressTypes,
		BaseDNSNames: []string{s.ID + "." + cmpOr(s.Region, m.Region) + ".vpce.amazonaws.com"}, Tags: tagsOf(m, s.ID), Payer: s.PayerResponsibility,
	}
	if p := s.PrivateDNS; p != nil {
		out.PrivateDNSName = p.Name
		out.PrivateDNSConfig = &pdnsConfig{State: p.State, Type: "TXT", Value: p.TXTValue, Name: p.TXTName}
	}
	for _, lb := range s.LoadBalancers {
		out.NLBArns = append(out.NLBArns, m.LoadBalancerARN(lb))
	}
	out.SupportedRegions = append(out.SupportedRegions, supportedRegion{cmpOr(s.Region, m.Region), "Available"})
	for _, r := range s.SupportedRegions {
		out.SupportedRegions = append(out.SupportedRegions, supportedRegion{r, "Available"})
	}
	out.Remote = len(s.SupportedRegions) > 0
	return out
}

// visible reports whether a caller sees a service in
// DescribeVpcEndpointServices: its owner, and the principals it allows.
func visible(s ctl.ServiceState, caller string) bool {
	return s.OwnerID == caller || ctl.PrincipalAllowed(s.AllowedPrincipals, ctl.RootARN(caller))
}

// ec2 runs one EC2 action for a caller.
func (h *Handler) ec2(caller, region string, q query) (any, error) {
	m := h.b.Model()
	switch action := q.str("Action"); action {
	case "DescribeVpcEndpoints":
		f := q.filters()
		if err := unknownFilters(f, "vpc-endpoint-id", "vpc-id", "service-name", "vpc-endpoint-state", "vpc-endpoint-type", "ip-address-type", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("VpcEndpointId")
		var out []vpcEndpoint
		for _, e := range m.Endpoints {
			if e.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, e.ID) || cmpOr(e.Region, m.Region) != region {
				continue
			}
			if match(f, withTags(map[string][]string{"vpc-endpoint-id": {e.ID}, "vpc-id": {e.VPCID}, "service-name": {e.Service}, "vpc-endpoint-state": {e.State}, "vpc-endpoint-type": {"Interface"}, "ip-address-type": {e.IPAddressType}}, m.Tags[e.ID])) {
				out = append(out, h.endpointOut(m, e))
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(e vpcEndpoint) bool { return e.ID == id }) {
				return nil, &apiError{400, "InvalidVpcEndpointId.NotFound", fmt.Sprintf("The Vpc Endpoint Id '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		return struct {
			Set  []vpcEndpoint `xml:"vpcEndpointSet>item"`
			Next string        `xml:"nextToken,omitempty"`
		}{out, next}, err

	case "DescribeVpcEndpointServiceConfigurations":
		f := q.filters()
		if err := unknownFilters(f, "service-name", "service-id", "service-state", "supported-ip-address-types", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("ServiceId")
		var out []serviceConfiguration
		var found []string
		for _, s := range m.Services {
			if s.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, s.ID) {
				continue
			}
			found = append(found, s.ID)
			if match(f, withTags(map[string][]string{"service-name": {s.ServiceName}, "service-id": {s.ID}, "service-state": {s.State},
				"supported-ip-address-types": s.SupportedIPAddressTypes}, m.Tags[s.ID])) {
				out = append(out, h.serviceConfig(m, s))
			}
		}
		for _, id := range ids {
			if !slices.Contains(found, id) {
				return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		return struct {
			Set  []serviceConfiguration `xml:"serviceConfigurationSet>item"`
			Next string                 `xml:"nextToken,omitempty"`
		}{out, next}, err

	case "DescribeVpcEndpointServices":
		f := q.filters()
		if err := unknownFilters(f, "owner", "service-name", "service-region", "service-type", "supported-ip-address-types", tagFilters); err != nil {
			return nil, err
		}
		names := q.list("ServiceName")
		var details []serviceDetail
		var list []string
		for _, s := range m.Services {
			if !visible(s, caller) || len(names) > 0 && !slices.Contains(names, s.ServiceName) {
				continue
			}
			// What can be reached from this Region: its own services and
			// those of other Regions that support it.
			host := cmpOr(s.Region, m.Region)
			if host != region && !slices.Contains(s.SupportedRegions, region) {
				continue
			}
			list = append(list, s.ServiceName)
			if !match(f, withTags(map[string][]string{"owner": {s.OwnerID}, "service-name": {s.ServiceName}, "service-region": {host},
				"service-type": {"Interface"}, "supported-ip-address-types": s.SupportedIPAddressTypes}, m.Tags[s.ID])) {
				continue
			}
			details = append(details, serviceDetail{
				Name: s.ServiceName, ID: s.ID, ServiceType: []serviceType{{"Interface"}}, AZs: azNames(m, m.ServiceAZs(&s)), AZIDs: m.ServiceAZs(&s), ServiceRegion: host,
				Owner: s.OwnerID, BaseDNSNames: []string{s.ID + "." + host + ".vpce.amazonaws.com"},
				// A TCP service has no actions to authorize.
				PolicySupported: false, AcceptanceRequired: s.AcceptanceRequired, IPAddressTypes: s.SupportedIPAddressTypes,
				Payer: s.PayerResponsibility,
			})
			if p := s.PrivateDNS; p != nil {
				details[len(details)-1].PrivateDNSName, details[len(details)-1].PrivateDNSState = p.Name, p.State
			}
		}
		for _, n := range names {
			if !slices.Contains(list, n) {
				return nil, &apiError{400, "InvalidServiceName", fmt.Sprintf("The Vpc Endpoint Service '%s' does not exist", n)}
			}
		}
		details, next, err := page(q, details)
		list = nil
		for _, d := range details {
			list = append(list, d.Name)
		}
		return struct {
			Names   []string        `xml:"serviceNameSet>item"`
			Details []serviceDetail `xml:"serviceDetailSet>item"`
			Next    string          `xml:"nextToken,omitempty"`
		}{list, details, next}, err

	case "DescribeVpcEndpointConnections":
		f := q.filters()
		if err := unknownFilters(f, "service-id", "vpc-endpoint-owner", "vpc-endpoint-id", "vpc-endpoint-state"); err != nil {
			return nil, err
		}
		var out []connection
		for _, e := range m.Endpoints {
			s, ok := m.ServiceByID(e.ServiceID)
			if !ok || s.OwnerID != caller {
				continue
			}
			if !match(f, map[string][]string{"service-id": {e.ServiceID}, "vpc-endpoint-owner": {e.OwnerID}, "vpc-endpoint-id": {e.ID}, "vpc-endpoint-state": {e.State}}) {
				continue
			}
			c := connection{ServiceID: e.ServiceID, EndpointID: e.ID, EndpointOwner: e.OwnerID, State: e.State, IPAddressType: e.IPAddressType,
				// The connection's id, the endpoint's hex after vpce-con-, and the
				// Region the endpoint is in (a cross-Region one's is not the service's).
				ConnectionID: "vpce-con-" + strings.TrimPrefix(e.ID, "vpce-"), Region: cmpOr(e.Region, m.Region)}
			if !e.Created.IsZero() {
				c.Created = e.Created.UTC().Format(time.RFC3339Nano)
			}
			for _, n := range m.DNSNames(e) {
				c.DNSEntries = append(c.DNSEntries, dnsEntry{DNSName: n, HostedZoneID: "Z7HUB22UULQXV"})
			}
			for _, lb := range s.LoadBalancers {
				c.NLBArns = append(c.NLBArns, m.LoadBalancerARN(lb))
			}
			out = append(out, c)
		}
		out, next, err := page(q, out)
		return struct {
			Set  []connection `xml:"vpcEndpointConnectionSet>item"`
			Next string       `xml:"nextToken,omitempty"`
		}{out, next}, err

	case "AcceptVpcEndpointConnections", "RejectVpcEndpointConnections":
		serviceID, ids := q.str("ServiceId"), q.list("VpcEndpointId")
		if serviceID == "" || len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "ServiceId and at least one VpcEndpointId are required"}
		}
		if s, ok := m.ServiceByID(serviceID); !ok || s.OwnerID != caller {
			return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", serviceID)}
		}
		verb := ctl.Accept
		if action == "RejectVpcEndpointConnections" {
			verb = ctl.Reject
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.AnswerConnection(caller, serviceID, id, verb) })

	case "DeleteVpcEndpoints":
		ids := q.list("VpcEndpointId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "at least one VpcEndpointId is required"}
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.DeleteOwnEndpoint(caller, id) })

	case "CreateVpcEndpoint":
		if t := q.str("VpcEndpointType"); t != "" && t != "Interface" {
			return nil, &apiError{400, "InvalidParameter", fmt.Sprintf("VpcEndpointType %s: pvlink makes Interface endpoints", t)}
		}
		if q.str("VpcId") == "" || q.str("ServiceName") == "" {
			return nil, &apiError{400, "MissingParameter", "VpcId and ServiceName are required"}
		}
		req := ctl.EndpointRequest{Region: region, ServiceRegion: q.str("ServiceRegion"),
			VPCID: q.str("VpcId"), ServiceName: q.str("ServiceName"), SubnetIDs: q.list("SubnetId"), IPAddressType: q.str("IpAddressType"),
			IPv4: map[string]string{}, IPv6: map[string]string{}, DNSRecordIPType: q.str("DnsOptions.DnsRecordIpType"), PolicyDocument: q.str("PolicyDocument")}
		for _, c := range q.structs("SubnetConfiguration", "SubnetId", "Ipv4", "Ipv6") {
			if !slices.Contains(req.SubnetIDs, c["SubnetId"]) {
				req.SubnetIDs = append(req.SubnetIDs, c["SubnetId"])
			}
			req.IPv4[c["SubnetId"]], req.IPv6[c["SubnetId"]] = c["Ipv4"], c["Ipv6"]
		}
		req.SecurityGroups = q.list("SecurityGroupId")
		token := q.str("ClientToken")
		var id string
		_, err := h.b.Change(func(s *ctl.State) error {
			if token != "" {
				for _, e := range s.Endpoints {
					if e.OwnerID == caller && e.ClientToken == token {
						id = e.ID // the same request again: the same endpoint
						return nil
					}
				}
			}
			e, err := s.CreateEndpoint(caller, req)
			if err != nil {
				return err
			}
			e.ClientToken, id = token, e.ID
			if q.str("PrivateDnsEnabled") == "true" {
				if err := s.EnablePrivateDNS(e, true); err != nil {
					return err
				}
			}
			return tagOnCreate(s, caller, q, "vpc-endpoint", e.ID)
		})
		if err != nil {
			return nil, err
		}
		m = h.b.Model()
		e, _ := m.EndpointByID(id)
		return struct {
			Endpoint vpcEndpoint `xml:"vpcEndpoint"`
			Token    string      `xml:"clientToken,omitempty"`
		}{h.endpointOut(m, *e), token}, nil

	case "ModifyVpcEndpointServicePermissions":
		serviceID := q.str("ServiceId")
		add, remove := q.list("AddAllowedPrincipals"), q.list("RemoveAllowedPrincipals")
		if _, err := h.b.Change(func(s *ctl.State) error { return s.ModifyPermissions(caller, serviceID, add, remove) }); err != nil {
			return nil, err
		}
		type added struct {
			Type      string `xml:"principalType"`
			Principal string `xml:"principal"`
			ServiceID string `xml:"serviceId"`
		}
		var out []added
		for _, p := range add {
			out = append(out, added{principalType(p), p, serviceID})
		}
		return struct {
			Added  []added `xml:"addedPrincipalSet>item"`
			Return bool    `xml:"return"`
		}{out, true}, nil

	case "DescribeVpcEndpointServicePermissions":
		serviceID := q.str("ServiceId")
		s, ok := m.ServiceByID(serviceID)
		if !ok || s.OwnerID != caller {
			return nil, &apiError{400, "InvalidVpcEndpointServiceId.NotFound", fmt.Sprintf("The Vpc Endpoint Service Id '%s' does not exist", serviceID)}
		}
		f := q.filters()
		if err := unknownFilters(f, "principal", "principal-type"); err != nil {
			return nil, err
		}
		var out []allowedPrincipal
		for _, p := range s.AllowedPrincipals {
			if match(f, map[string][]string{"principal": {p}, "principal-type": {principalType(p)}}) {
				out = append(out, allowedPrincipal{principalType(p), p, s.ID})
			}
		}
		return struct {
			Set []allowedPrincipal `xml:"allowedPrincipals>item"`
		}{out}, nil

	case "DescribeVpcs":
		f := q.filters()
		if err := unknownFilters(f, "vpc-id", "owner-id", "cidr", "state", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("VpcId")
		var out []vpc
		for _, v := range m.VPCs {
			if v.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, v.ID) || cmpOr(v.Region, m.Region) != region {
				continue
			}
			if match(f, withTags(map[string][]string{"vpc-id": {v.ID}, "owner-id": {v.OwnerID}, "cidr": {v.CIDR}, "state": {"available"}}, m.Tags[v.ID])) {
				o := vpcOut(v)
				o.Tags = tagsOf(m, v.ID)
				out = append(out, o)
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(v vpc) bool { return v.ID == id }) {
				return nil, &apiError{400, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []vpc  `xml:"vpcSet>item"`
			Next string `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "DescribeSubnets":
		f := q.filters()
		if err := unknownFilters(f, "vpc-id", "subnet-id", "availability-zone-id", "availability-zone", tagFilters); err != nil {
			return nil, err
		}
		var out []subnet
		for _, v := range m.VPCs {
			if v.OwnerID != caller || cmpOr(v.Region, m.Region) != region {
				continue
			}
			for _, sn := range v.Subnets {
				if match(f, withTags(map[string][]string{"vpc-id": {v.ID}, "subnet-id": {sn.ID}, "availability-zone-id": {sn.AZ}, "availability-zone": {m.AZName(sn.AZ)}}, m.Tags[sn.ID])) {
					o := subnet{AZ: m.AZName(sn.AZ), AZID: sn.AZ, CIDR: sn.CIDR, State: "available", ID: sn.ID, VPCID: v.ID, OwnerID: v.OwnerID, Tags: tagsOf(m, sn.ID)}
					if sn.IPv6CIDR != "" {
						o.IPv6 = []ipv6Block{{sn.IPv6CIDR, "associated"}}
					}
					out = append(out, o)
				}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []subnet `xml:"subnetSet>item"`
			Next string   `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "DescribeAvailabilityZones":
		// The AZs of the Region the request was made in.
		f := q.filters()
		if err := unknownFilters(f, "zone-name", "zone-id", "region-name", "state", "zone-type"); err != nil {
			return nil, err
		}
		names, ids := q.list("ZoneName"), q.list("ZoneId")
		var out []availabilityZone
		for _, az := range m.RegionAZs(region) {
			z := availabilityZone{State: "available", Region: region, Name: ctl.ZoneName(region, az), ID: az, Type: "availability-zone"}
			if len(names) > 0 && !slices.Contains(names, z.Name) || len(ids) > 0 && !slices.Contains(ids, z.ID) {
				continue
			}
			if match(f, map[string][]string{"zone-name": {z.Name}, "zone-id": {z.ID}, "region-name": {z.Region}, "state": {z.State}, "zone-type": {z.Type}}) {
				out = append(out, z)
			}
		}
		return struct {
			Set []availabilityZone `xml:"availabilityZoneInfo>item"`
		}{out}, nil

	case "DescribeRegions":
		f := q.filters()
		if err := unknownFilters(f, "region-name", "endpoint", "opt-in-status"); err != nil {
			return nil, err
		}
		names := q.list("RegionName")
		var out []regionItem
		for _, r := range m.RegionNames() {
			o := regionItem{Endpoint: "ec2." + r + ".amazonaws.com", Name: r, OptIn: "opt-in-not-required"}
			if (len(names) == 0 || slices.Contains(names, r)) && match(f, map[string][]string{"region-name": {r}, "endpoint": {o.Endpoint}, "opt-in-status": {o.OptIn}}) {
				out = append(out, o)
			}
		}
		return struct {
			Set []regionItem `xml:"regionInfo>item"`
		}{out}, nil

	case "CreateVpc":
		var out vpc
		_, err := h.b.Change(func(s *ctl.State) error {
			v, err := s.CreateVPC(caller, q.str("CidrBlock"), q.str("AmazonProvidedIpv6CidrBlock") == "true")
			if err != nil {
				return err
			}
			if region != s.Region {
				v.Region = region // a VPC of the Region the request was made in
			}
			out = vpcOut(*v)
			err = tagOnCreate(s, caller, q, "vpc", v.ID)
			out.Tags = tagsOf(s, v.ID)
			return err
		})
		return struct {
			VPC vpc `xml:"vpc"`
		}{out}, err

	case "DescribeVpcAttribute":
		attr := q.str("Attribute")
		if attr == "" || q.str("VpcId") == "" {
			return nil, &apiError{400, "MissingParameter", "VpcId and Attribute are required"}
		}
		v, err := regionVPC(m, caller, region, q.str("VpcId"))
		if err != nil {
			return nil, err
		}
		on, err := v.VPCAttribute(attr)
		if err != nil {
			return nil, &apiError{400, "InvalidParameterValue", err.Error()}
		}
		out := vpcAttribute{VPCID: v.ID}
		val := &attrBool{on}
		switch attr {
		case ctl.AttrDNSSupport:
			out.DNSSupport = val
		case ctl.AttrDNSHostnames:
			out.DNSHostnames = val
		default:
			out.NAUMetrics = val
		}
		return out, nil

	case "ModifyVpcAttribute":
		var attr, value string
		for _, a := range []string{ctl.AttrDNSSupport, ctl.AttrDNSHostnames, ctl.AttrNAUMetrics} {
			p := strings.ToUpper(a[:1]) + a[1:] + ".Value"
			if v := q.str(p); v != "" {
				if attr != "" {
					return nil, &apiError{400, "InvalidParameterCombination", "modify one attribute per request: the DNS resolution and DNS hostnames attributes cannot be modified in the same request"}
				}
				attr, value = a, v
			}
		}
		if attr == "" {
			return nil, &apiError{400, "MissingParameter", "one of EnableDnsSupport, EnableDnsHostnames or EnableNetworkAddressUsageMetrics is required"}
		}
		if value != "true" && value != "false" {
			return nil, &apiError{400, "InvalidParameterValue", fmt.Sprintf("%s: %q is not true or false", attr, value)}
		}
		on := value == "true"
		if _, err := regionVPC(m, caller, region, q.str("VpcId")); err != nil {
			return nil, err
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.SetVPCAttribute(caller, q.str("VpcId"), attr, on) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteVpc":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteVPC(caller, q.str("VpcId")) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "CreateSubnet":
		var out subnet
		_, err := h.b.Change(func(s *ctl.State) error {
			az, err := subnetAZ(s, q.str("AvailabilityZone"), q.str("AvailabilityZoneId"))
			if err != nil {
				return err
			}
			sn, err := s.CreateSubnet(caller, q.str("VpcId"), q.str("CidrBlock"), q.str("Ipv6CidrBlock"), az)
			if err != nil {
				return err
			}
			out = subnet{AZ: s.AZName(sn.AZ), AZID: sn.AZ, CIDR: sn.CIDR, State: "available", ID: sn.ID, VPCID: q.str("VpcId"), OwnerID: caller}
			if sn.IPv6CIDR != "" {
				out.IPv6 = []ipv6Block{{sn.IPv6CIDR, "associated"}}
			}
			err = tagOnCreate(s, caller, q, "subnet", out.ID)
			out.Tags = tagsOf(s, out.ID)
			return err
		})
		return struct {
			Subnet subnet `xml:"subnet"`
		}{out}, err

	case "DeleteSubnet":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteSubnet(caller, q.str("SubnetId")) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "CreateVpcEndpointServiceConfiguration":
		if len(q.list("GatewayLoadBalancerArn")) > 0 {
			return nil, &apiError{400, "InvalidParameter", "pvlink serves endpoint services of Network Load Balancers, not Gateway Load Balancers"}
		}
		var id string
		_, err := h.b.Change(func(s *ctl.State) error {
			svc, err := s.CreateService(caller, arnIDs(q.list("NetworkLoadBalancerArn")), q.str("AcceptanceRequired") == "true", q.list("SupportedIpAddressType"))
			if err != nil {
				return err
			}
			id = svc.ID
			if err := s.SetSupportedRegions(svc, q.list("SupportedRegion"), nil); err != nil {
				return err
			}
			if n := q.str("PrivateDnsName"); n != "" {
				if err := s.SetPrivateDNSName(svc, n); err != nil {
					return err
				}
			}
			return tagOnCreate(s, caller, q, "vpc-endpoint-service", id)
		})
		if err != nil {
			return nil, err
		}
		m = h.b.Model()
		svc, _ := m.ServiceByID(id)
		return struct {
			Config serviceConfiguration `xml:"serviceConfiguration"`
			Token  string               `xml:"clientToken,omitempty"`
		}{h.serviceConfig(m, *svc), q.str("ClientToken")}, nil

	case "ModifyVpcEndpointServicePayerResponsibility":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.SetPayerResponsibility(caller, q.str("ServiceId"), q.str("PayerResponsibility"))
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "ModifyVpcEndpointServiceConfiguration":
		var acceptance *bool
		if v := q.str("AcceptanceRequired"); v != "" {
			b := v == "true"
			acceptance = &b
		}
		_, err := h.b.Change(func(s *ctl.State) error {
			if err := s.ModifyService(caller, q.str("ServiceId"), acceptance, arnIDs(q.list("AddNetworkLoadBalancerArn")), arnIDs(q.list("RemoveNetworkLoadBalancerArn")),
				q.list("AddSupportedIpAddressType"), q.list("RemoveSupportedIpAddressType")); err != nil {
				return err
			}
			svc, _ := s.ServiceByID(q.str("ServiceId"))
			if err := s.SetSupportedRegions(svc, q.list("AddSupportedRegion"), q.list("RemoveSupportedRegion")); err != nil {
				return err
			}
			if n := q.str("PrivateDnsName"); n != "" {
				return s.SetPrivateDNSName(svc, n)
			}
			if q.str("RemovePrivateDnsName") == "true" {
				return s.SetPrivateDNSName(svc, "")
			}
			return nil
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteVpcEndpointServiceConfigurations":
		ids := q.list("ServiceId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "at least one ServiceId is required"}
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.DeleteService(caller, id) })

	case "CreateVpcEndpointConnectionNotification":
		var out notification
		_, err := h.b.Change(func(s *ctl.State) error {
			n, err := s.CreateNotification(caller, ctl.NotificationRequest{ServiceID: q.str("ServiceId"), EndpointID: q.str("VpcEndpointId"),
				TopicARN: q.str("ConnectionNotificationArn"), Events: q.list("ConnectionEvents")})
			if err == nil {
				out = notificationOut(*n)
			}
			return err
		})
		return struct {
			N     notification `xml:"connectionNotification"`
			Token string       `xml:"clientToken,omitempty"`
		}{out, q.str("ClientToken")}, err

	case "DescribeVpcEndpointConnectionNotifications":
		f := q.filters()
		if err := unknownFilters(f, "connection-notification-arn", "connection-notification-id", "connection-notification-state",
			"connection-notification-type", "service-id", "vpc-endpoint-id"); err != nil {
			return nil, err
		}
		id := q.str("ConnectionNotificationId")
		var out []notification
		found := false
		for _, n := range m.Notifications {
			if n.OwnerID != caller || id != "" && n.ID != id {
				continue
			}
			found = true
			o := notificationOut(n)
			if match(f, map[string][]string{"connection-notification-arn": {o.ARN}, "connection-notification-id": {o.ID}, "connection-notification-state": {o.State},
				"connection-notification-type": {o.Type}, "service-id": {o.ServiceID}, "vpc-endpoint-id": {o.EndpointID}}) {
				out = append(out, o)
			}
		}
		if id != "" && !found {
			return nil, &apiError{400, "InvalidConnectionNotification", fmt.Sprintf("The connection notification '%s' does not exist", id)}
		}
		return struct {
			Set []notification `xml:"connectionNotificationSet>item"`
		}{out}, nil

	case "ModifyVpcEndpointConnectionNotification":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.ModifyNotification(caller, q.str("ConnectionNotificationId"), q.str("ConnectionNotificationArn"), q.list("ConnectionEvents"))
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteVpcEndpointConnectionNotifications":
		ids := q.list("ConnectionNotificationId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "at least one ConnectionNotificationId is required"}
		}
		return h.batch(ids, func(s *ctl.State, id string) error { return s.DeleteNotification(caller, id) })

	case "CreateSecurityGroup":
		var id string
		_, err := h.b.Change(func(s *ctl.State) error {
			g, err := s.CreateSecurityGroup(caller, q.str("VpcId"), q.str("GroupName"), q.str("GroupDescription"))
			if err != nil {
				return err
			}
			id = g.ID
			return nil
		})
		return struct {
			ID string `xml:"groupId"`
		}{id}, err

	case "DeleteSecurityGroup":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteSecurityGroup(caller, q.str("GroupId")) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress":
		perms, group, egress := q.permissions(), q.str("GroupId"), strings.HasSuffix(action, "Egress")
		if ids := q.list("SecurityGroupRuleId"); len(ids) > 0 && strings.HasPrefix(action, "Revoke") {
			byID, err := rulePermissions(m, caller, group, egress, ids)
			if err != nil {
				return nil, err
			}
			perms = append(perms, byID...)
		}
		change := map[string]func(*ctl.State, string, string, []ctl.Permission) error{
			"AuthorizeSecurityGroupIngress": (*ctl.State).AuthorizeIngress, "RevokeSecurityGroupIngress": (*ctl.State).RevokeIngress,
			"AuthorizeSecurityGroupEgress": (*ctl.State).AuthorizeEgress, "RevokeSecurityGroupEgress": (*ctl.State).RevokeEgress,
		}[action]
		if _, err := h.b.Change(func(s *ctl.State) error { return change(s, caller, group, perms) }); err != nil {
			return nil, err
		}
		out := struct {
			Return bool     `xml:"return"`
			Added  []sgRule `xml:"securityGroupRuleSet>item,omitempty"`
		}{Return: true}
		if strings.HasPrefix(action, "Authorize") {
			out.Added = addedRules(m, h.b.Model(), caller, group, egress) // the rules it added, with their ids
		}
		return out, nil

	case "DescribeSecurityGroupRules":
		return describeSecurityGroupRules(m, caller, q)

	case "DescribeSecurityGroups":
		f := q.filters()
		if err := unknownFilters(f, "vpc-id", "group-id", "group-name", tagFilters); err != nil {
			return nil, err
		}
		ids := q.list("GroupId")
		var out []securityGroup
		for _, g := range m.SecurityGroups {
			if g.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, g.ID) {
				continue
			}
			vpcID := ""
			for _, v := range m.VPCs {
				if v.Name == g.VPC {
					vpcID = v.ID
				}
			}
			if match(f, withTags(map[string][]string{"vpc-id": {vpcID}, "group-id": {g.ID}, "group-name": {g.Name}}, m.Tags[g.ID])) {
				out = append(out, securityGroupOut(g, vpcID))
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(g securityGroup) bool { return g.ID == id }) {
				return nil, &apiError{400, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []securityGroup `xml:"securityGroupInfo>item"`
			Next string          `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "ModifyVpcEndpoint":
		id := q.str("VpcEndpointId")
		if t := q.str("IpAddressType"); t != "" {
			return nil, &apiError{400, "InvalidParameter", fmt.Sprintf("IpAddressType %s: pvlink fixes an endpoint's IP address type when it is made (its ENIs' addresses follow it); make another endpoint for another type", t)}
		}
		_, err := h.b.Change(func(s *ctl.State) error {
			e, ok := s.EndpointByID(id)
			if !ok || e.OwnerID != caller {
				return &ctl.NotFoundError{Kind: "VpcEndpointId", ID: id}
			}
			if err := s.SetEndpointSubnets(e, q.list("AddSubnetId"), q.list("RemoveSubnetId")); err != nil {
				return err
			}
			if q.str("ResetPolicy") == "true" {
				e.PolicyDocument = ""
			}
			if v := q.str("PrivateDnsEnabled"); v != "" {
				if err := s.EnablePrivateDNS(e, v == "true"); err != nil {
					return err
				}
			}
			if err := ctl.SetPolicy(e, q.str("PolicyDocument")); err != nil {
				return err
			}
			return s.SetEndpointGroups(caller, e, q.list("AddSecurityGroupId"), q.list("RemoveSecurityGroupId"))
		})
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "StartVpcEndpointServicePrivateDnsVerification":
		if _, err := h.b.VerifyPrivateDNS(caller, q.str("ServiceId")); err != nil {
			return nil, err
		}
		return struct {
			Return bool `xml:"return"`
		}{true}, nil

	case "CreateTags":
		tags := q.tags("Tag")
		_, err := h.b.Change(func(s *ctl.State) error { return s.TagResources(caller, q.list("ResourceId"), tags) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DeleteTags":
		var tags []ctl.Tag
		var withValue []bool
		for _, t := range q.structs("Tag", "Key", "Value") {
			tags = append(tags, ctl.Tag{Key: t["Key"], Value: t["Value"]})
			_, has := t["Value"]
			withValue = append(withValue, has)
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.UntagResources(caller, q.list("ResourceId"), tags, withValue) })
		return struct {
			Return bool `xml:"return"`
		}{true}, err

	case "DescribeTags":
		f := q.filters()
		if err := unknownFilters(f, "resource-id", "resource-type", "key", "value"); err != nil {
			return nil, err
		}
		type tagDescription struct {
			Key  string `xml:"key"`
			ID   string `xml:"resourceId"`
			Type string `xml:"resourceType"`
			Val  string `xml:"value"`
		}
		var out []tagDescription
		ids := make([]string, 0, len(m.Tags))
		for id := range m.Tags {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if o, ok := ownerOf(m, id); !ok || o != caller {
				continue
			}
			for _, t := range m.Tags[id] {
				if match(f, map[string][]string{"resource-id": {id}, "resource-type": {ctl.ResourceType(id)}, "key": {t.Key}, "value": {t.Value}}) {
					out = append(out, tagDescription{t.Key, id, ctl.ResourceType(id), t.Value})
				}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []tagDescription `xml:"tagSet>item"`
			Next string           `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "DescribeNetworkInterfaces":
		f := q.filters()
		if err := unknownFilters(f, "network-interface-id", "vpc-id", "subnet-id", "availability-zone", "interface-type", "requester-managed", "description"); err != nil {
			return nil, err
		}
		ids := q.list("NetworkInterfaceId")
		var out []networkInterface
		for _, e := range m.Endpoints {
			if e.OwnerID != caller {
				continue
			}
			for _, eni := range e.ENIs {
				if len(ids) > 0 && !slices.Contains(ids, eni.ID) {
					continue
				}
				ni := networkInterface{AZ: m.AZName(eni.AZ), Description: "VPC Endpoint Interface " + e.ID, InterfaceType: "vpc_endpoint", ID: eni.ID,
					OwnerID: e.OwnerID, PrivateIP: eni.IP, RequesterID: "727180483921", RequesterManaged: true, Status: "in-use",
					SubnetID: eni.SubnetID, VPCID: e.VPCID, Groups: groupsOf(m, e)}
				if eni.IPv6 != "" {
					ni.IPv6 = []string{eni.IPv6}
				}
				if match(f, map[string][]string{"network-interface-id": {eni.ID}, "vpc-id": {e.VPCID}, "subnet-id": {eni.SubnetID}, "availability-zone": {m.AZName(eni.AZ)},
					"interface-type": {"vpc_endpoint"}, "requester-managed": {"true"}, "description": {ni.Description}}) {
					out = append(out, ni)
				}
			}
		}
		for _, id := range ids {
			if !slices.ContainsFunc(out, func(n networkInterface) bool { return n.ID == id }) {
				return nil, &apiError{400, "InvalidNetworkInterfaceID.NotFound", fmt.Sprintf("The networkInterface ID '%s' does not exist", id)}
			}
		}
		out, next, err := page(q, out)
		if err != nil {
			return nil, err
		}
		return struct {
			Set  []networkInterface `xml:"networkInterfaceSet>item"`
			Next string             `xml:"nextToken,omitempty"`
		}{out, next}, nil

	case "":
		return nil, &apiError{400, "MissingAction", "The request must contain the parameter Action"}
	default:
		if out, err, ok := h.flowLogAction(caller, action, q); ok {
			return out, err
		}
		return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves the PrivateLink and flow log actions of EC2)", action)}
	}
}

// tagOnCreate applies a create call's TagSpecification for its resource
// type to the resource it made.
func tagOnCreate(s *ctl.State, caller string, q query, resourceType, id string) error {
	for i := 1; ; i++ {
		prefix := "TagSpecification." + strconv.Itoa(i)
		typ := q.str(prefix + ".ResourceType")
		if typ == "" {
			return nil
		}
		if typ != resourceType {
			return &apiError{400, "InvalidParameterValue", fmt.Sprintf("TagSpecification.%d.ResourceType %q: this call makes a %s", i, typ, resourceType)}
		}
		if tags := q.tags(prefix + ".Tag"); len(tags) > 0 {
			if err := s.TagResources(caller, []string{id}, tags); err != nil {
				return err
			}
		}
	}
}

// ownerOf is the account that owns a tagged resource.
func ownerOf(m *ctl.State, id string) (string, bool) { return m.Owner(id) }

// principalType is how AWS types an allowed principal.
func principalType(p string) string {
	switch {
	case p == "*":
		return "All"
	case strings.HasSuffix(p, ":root"):
		return "Account"
	case strings.Contains(p, ":user/"):
		return "User"
	}
	return "Role"
}

// batch runs an operation on each id as one change: the ids it refuses
// come back as unsuccessful items, the rest are committed together, as
// AWS's batch actions answer.
func (h *Handler) batch(ids []string, op func(*ctl.State, string) error) (any, error) {
	var failed []unsuccessful
	_, err := h.b.Change(func(s *ctl.State) error {
		failed = nil
		for _, id := range ids {
			if err := op(s, id); err != nil {
				code, _ := ec2Code(err)
				failed = append(failed, unsuccessful{Code: code, Message: err.Error(), ResourceID: id})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		Set []unsuccessful `xml:"unsuccessful>item"`
	}{failed}, nil
}

// arnIDs takes the ids ARNs end with (load balancers, target groups).
func arnIDs(arns []string) []string {
	out := make([]string, len(arns))
	for i, a := range arns {
		out[i] = a[strings.LastIndexByte(a, '/')+1:]
	}
	return out
}

// ec2Code is the EC2 error code and HTTP status of a model error.
func ec2Code(err error) (string, int) {
	var nf *ctl.NotFoundError
	var me *ctl.ModelError
	var qe *ctl.QuotaError
	var ae *apiError
	var de *ctl.DependencyError
	var dup *ctl.DuplicateError
	var ue *ctl.UnauthorizedError
	switch {
	case errors.As(err, &ae):
		return ae.code, ae.status
	case errors.As(err, &ue):
		return "UnauthorizedOperation", 403
	case errors.As(err, &de):
		return "DependencyViolation", 400
	case errors.As(err, &dup):
		switch dup.Kind {
		case "Subnet":
			return "InvalidSubnet.Conflict", 400
		case "SecurityGroup":
			return "InvalidGroup.Duplicate", 400
		case "Permission":
			return "InvalidPermission.Duplicate", 400
		case "FlowLogAlreadyExists":
			return "FlowLogAlreadyExists", 400
		}
		return "InvalidParameterValue", 400
	case errors.As(err, &nf):
		switch nf.Kind {
		case "ServiceName":
			return "InvalidServiceName", 400
		case "ConnectionNotification":
			return "InvalidConnectionNotification", 400
		case "ID":
			return "InvalidID", 400
		case "GroupId":
			return "InvalidGroup.NotFound", 400
		case "FlowLogId":
			return "InvalidFlowLogId.NotFound", 400
		case "LoadBalancer":
			return "InvalidParameterValue", 400 // an NLB ARN EC2 does not know
		default:
			return "Invalid" + nf.Kind + ".NotFound", 400
		}
	case errors.As(err, &qe):
		return "VpcEndpointLimitExceeded", 400
	case errors.As(err, &me):
		return "InvalidParameter", 400
	}
	return "InternalError", http.StatusInternalServerError
}
