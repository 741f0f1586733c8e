package api

import (
	"fmt"
	"slices"
	"strings"

	"pvlink.dev/pvlink/ctl"
)

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

// azNames are the names of the fabric's AZ ids (ctl.ZoneName).
func azNames(m *ctl.State, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = m.AZName(id)
	}
	return out
}

// ec2VPCs runs the actions on VPCs, their subnets and attributes, and the
// Availability Zones and Regions. Any other action it answers with
// errNotThisArea.
func (h *Handler) ec2VPCs(m *ctl.State, caller, region, action string, q query) (any, error) {
	switch action {
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

	default:
		return nil, errNotThisArea
	}
}
