package api

import (
	"fmt"
	"slices"
	"time"

	"pvlink.dev/pvlink/ctl"
)

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

// visible reports whether a caller sees a service in
// DescribeVpcEndpointServices: its owner, and the principals it allows.
func visible(s ctl.ServiceState, caller string) bool {
	return s.OwnerID == caller || ctl.PrincipalAllowed(s.AllowedPrincipals, ctl.RootARN(caller))
}

// ec2Endpoints runs the consumer's actions: its interface endpoints, the
// services it may reach and the endpoints' network interfaces. Any other
// action it answers with errNotThisArea.
func (h *Handler) ec2Endpoints(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
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

	case "DescribeNetworkInterfaces":
		f := q.filters()
		if err := unknownFilters(f, "network-interface-id", "vpc-id", "subnet-id", "availability-zone", "interface-type", "requester-managed", "description", "group-id", "group-name"); err != nil {
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
				var groupIDs, groupNames []string
				for _, g := range ni.Groups {
					groupIDs, groupNames = append(groupIDs, g.ID), append(groupNames, g.Name)
				}
				if match(f, map[string][]string{"network-interface-id": {eni.ID}, "vpc-id": {e.VPCID}, "subnet-id": {eni.SubnetID}, "availability-zone": {m.AZName(eni.AZ)},
					"interface-type": {"vpc_endpoint"}, "requester-managed": {"true"}, "description": {ni.Description}, "group-id": groupIDs, "group-name": groupNames}) {
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

	default:
		return nil, errNotThisArea
	}
}
