package api

import (
	"fmt"
	"slices"
	"time"

	"pvlink.dev/pvlink/ctl"
)

type lbAddress struct {
	IPAddress string `xml:"IpAddress"`
}

type lbZone struct {
	ZoneName  string      `xml:"ZoneName"`
	SubnetID  string      `xml:"SubnetId"`
	Addresses []lbAddress `xml:"LoadBalancerAddresses>member"`
}

type loadBalancer struct {
	ARN           string   `xml:"LoadBalancerArn"`
	DNSName       string   `xml:"DNSName"`
	HostedZoneID  string   `xml:"CanonicalHostedZoneId,omitempty"`
	Created       string   `xml:"CreatedTime,omitempty"`
	Name          string   `xml:"LoadBalancerName"`
	Scheme        string   `xml:"Scheme"`
	VPCID         string   `xml:"VpcId"`
	State         string   `xml:"State>Code"`
	Type          string   `xml:"Type"`
	Zones         []lbZone `xml:"AvailabilityZones>member"`
	IPAddressType string   `xml:"IpAddressType"`
	// SecurityGroups and Enforce... only for one made with groups.
	SecurityGroups []string `xml:"SecurityGroups>member"`
	Enforce        string   `xml:"EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic,omitempty"`
}

// nlbHostedZones are the Route 53 zones AWS names as a Network Load
// Balancer's CanonicalHostedZoneId, by Region (the Elastic Load Balancing
// endpoints table of the AWS General Reference): what a Route 53 alias to
// the load balancer's DNS name names. A Region not listed shows none.
var nlbHostedZones = map[string]string{
	"us-east-1":      "Z26RNL4JYFTOTI",
	"us-east-2":      "ZLMOA37VPKANP",
	"us-west-1":      "Z24FKFUX50B4VW",
	"us-west-2":      "Z18D5FSROUN65G",
	"eu-west-1":      "Z2IFOLAFXWLO4F",
	"eu-central-1":   "Z3F0SRJ5LGBH90",
	"ap-northeast-1": "Z31USIVHYNEOWT",
	"ap-south-1":     "ZVDDRBQ08TROA",
	"ap-southeast-2": "ZCT6FZBF4DROD",
}

func (m *modelView) lbOut(lb ctl.LBState) loadBalancer {
	out := loadBalancer{
		ARN: m.lbARN(lb), DNSName: fmt.Sprintf("%s-%s.elb.%s.amazonaws.com", lb.Name, lb.ID, m.Region), Name: lb.Name,
		Scheme: "internal", VPCID: m.vpcID(lb.VPC), State: lb.State, Type: "network", IPAddressType: lb.IPAddressType,
	}
	if out.IPAddressType == "" {
		out.IPAddressType = "ipv4"
	}
	if !lb.Created.IsZero() {
		out.Created = lb.Created.UTC().Format(time.RFC3339Nano)
	}
	out.HostedZoneID = nlbHostedZones[m.Region]
	if out.State == "" {
		out.State = ctl.LBActive
	}
	for _, n := range lb.Nodes {
		out.Zones = append(out.Zones, lbZone{ZoneName: m.AZName(n.AZ), SubnetID: m.subnetID(lb.VPC, n.Subnet), Addresses: []lbAddress{{n.IP}}})
	}
	out.SecurityGroups, out.Enforce = lb.SecurityGroups, lb.Enforce()
	return out
}

// subnetsOf are a call's subnets, as Subnets.member.N or as
// SubnetMappings.member.N.SubnetId.
func subnetsOf(q query) []string {
	subnets := q.list("Subnets.member")
	for _, sm := range q.structs("SubnetMappings.member", "SubnetId") {
		subnets = append(subnets, sm["SubnetId"])
	}
	return subnets
}

// elbLoadBalancers runs the actions on load balancers: their subnets, security
// groups, address type and attributes. Any other action it answers with
// errNotThisArea.
func (h *Handler) elbLoadBalancers(m *modelView, caller, action string, q query) (any, error) {
	switch action {
	case "CreateLoadBalancer":
		if t := q.str("Type"); t != "network" {
			return nil, &apiError{400, "ValidationError", fmt.Sprintf("Type %q: pvlink makes Network Load Balancers (Type network)", t)}
		}
		var out loadBalancer
		_, err := h.b.Change(func(s *ctl.State) error {
			lb, err := s.CreateLoadBalancer(caller, q.str("Name"), q.str("IpAddressType"), subnetsOf(q))
			if err != nil {
				return err
			}
			if sgs := q.list("SecurityGroups.member"); len(sgs) > 0 {
				lb.MadeWithSecurityGroups = true
				if err := s.SetLoadBalancerSecurityGroups(caller, lb.ID, sgs, ""); err != nil {
					return err
				}
			}
			out = (&modelView{s}).lbOut(*lb)
			return nil
		})
		return struct {
			LBs []loadBalancer `xml:"LoadBalancers>member"`
		}{[]loadBalancer{out}}, err

	case "SetSecurityGroups":
		id := arnIDs([]string{q.str("LoadBalancerArn")})[0]
		var lb ctl.LBState
		_, err := h.b.Change(func(s *ctl.State) error {
			err := s.SetLoadBalancerSecurityGroups(caller, id, q.list("SecurityGroups.member"), q.str("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"))
			if l, ok := s.LoadBalancerByID(caller, id); ok {
				lb = *l
			}
			return err
		})
		return struct {
			IDs     []string `xml:"SecurityGroupIds>member"`
			Enforce string   `xml:"EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic,omitempty"`
		}{lb.SecurityGroups, lb.Enforce()}, err

	case "DescribeLoadBalancers":
		arns, names := arnIDs(q.list("LoadBalancerArns.member")), q.list("Names.member")
		var out []loadBalancer
		for _, lb := range m.LoadBalancers {
			if lb.OwnerID == caller && (len(arns) == 0 || slices.Contains(arns, lb.ID)) && (len(names) == 0 || slices.Contains(names, lb.Name)) {
				out = append(out, m.lbOut(lb))
			}
		}
		if (len(arns) > 0 || len(names) > 0) && len(out) < len(arns)+len(names) {
			return nil, &apiError{400, "LoadBalancerNotFound", "One or more load balancers not found"}
		}
		return struct {
			LBs []loadBalancer `xml:"LoadBalancers>member"`
		}{out}, nil

	case "SetSubnets":
		var out loadBalancer
		_, err := h.b.Change(func(s *ctl.State) error {
			lb, err := s.SetLoadBalancerSubnets(caller, arnIDs([]string{q.str("LoadBalancerArn")})[0], subnetsOf(q))
			if err == nil {
				out = (&modelView{s}).lbOut(*lb)
			}
			return err
		})
		return struct {
			Zones         []lbZone `xml:"AvailabilityZones>member"`
			IPAddressType string   `xml:"IpAddressType"`
		}{out.Zones, out.IPAddressType}, err

	case "DeleteLoadBalancer":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.DeleteLoadBalancer(caller, arnIDs([]string{q.str("LoadBalancerArn")})[0])
		})
		return struct{}{}, err

	case "SetIpAddressType":
		var typ string
		_, err := h.b.Change(func(s *ctl.State) error {
			lb, err := s.SetLoadBalancerIPAddressType(caller, arnIDs([]string{q.str("LoadBalancerArn")})[0], q.str("IpAddressType"))
			if err == nil {
				typ = lb.IPAddressType
			}
			return err
		})
		return struct {
			IPAddressType string `xml:"IpAddressType"`
		}{typ}, err

	case "DescribeLoadBalancerAttributes", "ModifyLoadBalancerAttributes":
		id := arnIDs([]string{q.str("LoadBalancerArn")})[0]
		if action == "ModifyLoadBalancerAttributes" {
			attrs := attributesOf(q)
			if _, err := h.b.Change(func(s *ctl.State) error { return s.SetLoadBalancerAttributes(caller, id, attrs) }); err != nil {
				return nil, err
			}
			m = &modelView{h.b.Model()}
		}
		lb, ok := m.LoadBalancerByID(caller, id)
		if !ok {
			return nil, &apiError{400, "LoadBalancerNotFound", fmt.Sprintf("Load balancer '%s' not found", q.str("LoadBalancerArn"))}
		}
		return attributesOut(ctl.LoadBalancerAttributes, lb.Attributes()), nil

	default:
		return nil, errNotThisArea
	}
}
