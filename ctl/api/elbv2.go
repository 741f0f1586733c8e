package api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

const elbNamespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

// The ELBv2 answers: PascalCase members, lists of <member>s, the result
// inside <ActionResult>.

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

type targetGroup struct {
	ARN                string   `xml:"TargetGroupArn"`
	Name               string   `xml:"TargetGroupName"`
	Protocol           string   `xml:"Protocol"`
	Port               int      `xml:"Port"`
	VPCID              string   `xml:"VpcId"`
	HealthCheckProto   string   `xml:"HealthCheckProtocol"`
	HealthCheckPort    string   `xml:"HealthCheckPort"`
	HealthCheckEnabled bool     `xml:"HealthCheckEnabled"`
	Interval           int      `xml:"HealthCheckIntervalSeconds"`
	Timeout            int      `xml:"HealthCheckTimeoutSeconds"`
	Healthy            int      `xml:"HealthyThresholdCount"`
	Unhealthy          int      `xml:"UnhealthyThresholdCount"`
	HealthCheckPath    string   `xml:"HealthCheckPath,omitempty"`
	Matcher            *matcher `xml:"Matcher,omitempty"`
	LoadBalancerArns   []string `xml:"LoadBalancerArns>member"`
	TargetType         string   `xml:"TargetType"`
	// IPAddressType is the family of its targets' addresses: IPv4 here
	// (the provider side is IPv4).
	IPAddressType string `xml:"IpAddressType"`
}

type listenerAction struct {
	Type           string `xml:"Type"`
	TargetGroupArn string `xml:"TargetGroupArn"`
}

type listener struct {
	ARN            string           `xml:"ListenerArn"`
	LBArn          string           `xml:"LoadBalancerArn"`
	Port           int              `xml:"Port"`
	Protocol       string           `xml:"Protocol"`
	DefaultActions []listenerAction `xml:"DefaultActions>member"`
}

type targetHealth struct {
	ID          string `xml:"Target>Id"`
	Port        int    `xml:"Target>Port"`
	AZ          string `xml:"Target>AvailabilityZone"`
	CheckPort   string `xml:"HealthCheckPort"`
	State       string `xml:"TargetHealth>State"`
	Reason      string `xml:"TargetHealth>Reason,omitempty"`
	Description string `xml:"TargetHealth>Description,omitempty"`
}

type elbResponse struct {
	XMLName   xml.Name
	Namespace string `xml:"xmlns,attr"`
	Result    []byte `xml:",innerxml"`
}

func (m *modelView) lbARN(lb ctl.LBState) string {
	return lb.ARN(m.Region)
}

func (m *modelView) tgARN(tg ctl.TargetGroupState) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s", m.Region, tg.OwnerID, tg.Name, tg.ID)
}

func (m *modelView) listenerARN(lb ctl.LBState, l ctl.Listener) string {
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:listener/net/%s/%s/%s", m.Region, lb.OwnerID, lb.Name, lb.ID, l.ID)
}

// modelView is the model with the ARN and output helpers of ELBv2.
type modelView struct{ *ctl.State }

func (m *modelView) vpcID(name string) string { return m.VPCID(name) }

func (m *modelView) subnetID(vpc, subnet string) string {
	for _, v := range m.VPCs {
		if v.Name == vpc {
			for _, sn := range v.Subnets {
				if sn.Name == subnet {
					return sn.ID
				}
			}
		}
	}
	return ""
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

// ownsLoadBalancer reports whether arn names a load balancer of caller's.
func (m *modelView) ownsLoadBalancer(caller, arn string) bool {
	return slices.ContainsFunc(m.LoadBalancers, func(lb ctl.LBState) bool { return lb.OwnerID == caller && m.lbARN(lb) == arn })
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

func seconds(d snapshot.Duration, def time.Duration) int {
	if d == 0 {
		return int(def / time.Second)
	}
	return int(time.Duration(d) / time.Second)
}

// matcher is ELBv2's Matcher: the HTTP codes a check passes on.
type matcher struct {
	HTTPCode string `xml:"HttpCode"`
}

// healthCheckTarget reads what a health check asks and where
// (HealthCheckProtocol, HealthCheckPort, HealthCheckPath,
// Matcher.HttpCode) into hc; the model checks the whole.
func healthCheckTarget(q query, hc *snapshot.HealthCheck) error {
	if v := q.str("HealthCheckProtocol"); v != "" {
		hc.Protocol = v
		if strings.EqualFold(v, snapshot.CheckTCP) {
			hc.Path, hc.Matcher = "", "" // a TCP check has neither
		}
	}
	switch v := q.str("HealthCheckPort"); v {
	case "":
	case "traffic-port":
		hc.Port = 0
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return &apiError{400, "ValidationError", fmt.Sprintf("HealthCheckPort %q: traffic-port or a port from 1 to 65535", v)}
		}
		hc.Port = uint16(n)
	}
	if v := q.str("HealthCheckPath"); v != "" {
		hc.Path = v
	}
	if v := q.str("Matcher.HttpCode"); v != "" {
		hc.Matcher = v
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (m *modelView) tgOut(tg ctl.TargetGroupState) targetGroup {
	hc := tg.HealthCheck
	out := targetGroup{
		ARN: m.tgARN(tg), Name: tg.Name, Protocol: "TCP", Port: tg.Port, VPCID: m.vpcID(tg.VPC),
		HealthCheckProto: hc.CheckProtocol(), HealthCheckPort: "traffic-port", HealthCheckEnabled: !hc.Disabled,
		HealthCheckPath: hc.Path,
		Interval:        seconds(hc.Interval, 30*time.Second), Timeout: seconds(hc.Timeout, 10*time.Second),
		Healthy: orDefault(hc.HealthyThreshold, 5), Unhealthy: orDefault(hc.UnhealthyThreshold, 2), TargetType: "ip", IPAddressType: "ipv4",
	}
	if hc.Port != 0 {
		out.HealthCheckPort = strconv.Itoa(int(hc.Port))
	}
	if hc.Matcher != "" {
		out.Matcher = &matcher{hc.Matcher}
	}
	for _, lb := range m.LoadBalancers {
		if slices.ContainsFunc(lb.Listeners, func(l ctl.Listener) bool { return l.TargetGroup == tg.Name }) {
			out.LoadBalancerArns = append(out.LoadBalancerArns, m.lbARN(lb))
		}
	}
	return out
}

func (m *modelView) listenerOut(lb ctl.LBState, l ctl.Listener) listener {
	out := listener{ARN: m.listenerARN(lb, l), LBArn: m.lbARN(lb), Port: l.Port, Protocol: "TCP"}
	for _, tg := range m.TargetGroups {
		if tg.Name == l.TargetGroup {
			out.DefaultActions = []listenerAction{{Type: "forward", TargetGroupArn: m.tgARN(tg)}}
		}
	}
	return out
}

// targets reads the ELBv2 target list: Targets.member.N.Id / .Port.
func (q query) targets() ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, t := range q.structs("Targets.member", "Id", "Port") {
		a, err := netip.ParseAddr(t["Id"])
		if err != nil {
			return nil, &apiError{400, "ValidationError", fmt.Sprintf("target %q: pvlink's targets are IP addresses", t["Id"])}
		}
		port, _ := strconv.Atoi(t["Port"])
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	if len(out) == 0 {
		return nil, &apiError{400, "ValidationError", "at least one target (Targets.member.1.Id) is required"}
	}
	return out, nil
}

// elbv2 runs one ELBv2 action for a caller.
func (h *Handler) elbv2(caller string, q query) (any, error) {
	m := &modelView{h.b.Model()}
	switch action := q.str("Action"); action {
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

	case "CreateTargetGroup":
		hc := snapshot.HealthCheck{Disabled: q.str("HealthCheckEnabled") == "false"}
		for name, v := range map[string]*snapshot.Duration{"HealthCheckIntervalSeconds": &hc.Interval, "HealthCheckTimeoutSeconds": &hc.Timeout} {
			if n, err := strconv.Atoi(q.str(name)); err == nil {
				*v = snapshot.Duration(time.Duration(n) * time.Second)
			}
		}
		hc.HealthyThreshold, _ = strconv.Atoi(q.str("HealthyThresholdCount"))
		hc.UnhealthyThreshold, _ = strconv.Atoi(q.str("UnhealthyThresholdCount"))
		if err := healthCheckTarget(q, &hc); err != nil {
			return nil, err
		}
		if t := q.str("TargetType"); t != "" && t != "ip" {
			return nil, &apiError{400, "ValidationError", fmt.Sprintf("TargetType %q: pvlink's targets are IP addresses (TargetType ip)", t)}
		}
		port, _ := strconv.Atoi(q.str("Port"))
		var out targetGroup
		_, err := h.b.Change(func(s *ctl.State) error {
			tg, err := s.CreateTargetGroup(caller, ctl.TargetGroupRequest{Name: q.str("Name"), Protocol: q.str("Protocol"), VPCID: q.str("VpcId"), Port: port, HealthCheck: hc})
			if err == nil {
				out = (&modelView{s}).tgOut(*tg)
			}
			return err
		})
		return struct {
			TGs []targetGroup `xml:"TargetGroups>member"`
		}{[]targetGroup{out}}, err

	case "DescribeTargetGroups":
		arns, names, lb := arnIDs(q.list("TargetGroupArns.member")), q.list("Names.member"), q.str("LoadBalancerArn")
		if lb != "" && !m.ownsLoadBalancer(caller, lb) {
			return nil, &apiError{400, "LoadBalancerNotFound", fmt.Sprintf("Load balancer '%s' not found", lb)}
		}
		var out []targetGroup
		for _, tg := range m.TargetGroups {
			if tg.OwnerID != caller || len(arns) > 0 && !slices.Contains(arns, tg.ID) || len(names) > 0 && !slices.Contains(names, tg.Name) {
				continue
			}
			o := m.tgOut(tg)
			if lb != "" && !slices.Contains(o.LoadBalancerArns, lb) {
				continue
			}
			out = append(out, o)
		}
		if (len(arns) > 0 || len(names) > 0) && len(out) < len(arns)+len(names) {
			return nil, &apiError{400, "TargetGroupNotFound", "One or more target groups not found"}
		}
		return struct {
			TGs []targetGroup `xml:"TargetGroups>member"`
		}{out}, nil

	case "DeleteTargetGroup":
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.DeleteTargetGroup(caller, arnIDs([]string{q.str("TargetGroupArn")})[0])
		})
		return struct{}{}, err

	case "RegisterTargets", "DeregisterTargets":
		targets, err := q.targets()
		if err != nil {
			return nil, err
		}
		id := arnIDs([]string{q.str("TargetGroupArn")})[0]
		_, err = h.b.Change(func(s *ctl.State) error {
			if action == "RegisterTargets" {
				return s.RegisterTargets(caller, id, targets)
			}
			tg, ok := s.TargetGroupByID(caller, id)
			if !ok {
				return &ctl.NotFoundError{Kind: "TargetGroup", ID: id}
			}
			for _, t := range targets {
				if err := s.DeregisterTarget(tg.Name, t, h.now()); err != nil {
					return &apiError{400, "InvalidTarget", err.Error()}
				}
			}
			return nil
		})
		return struct{}{}, err

	case "DescribeTargetHealth":
		id := arnIDs([]string{q.str("TargetGroupArn")})[0]
		tg, ok := m.TargetGroupByID(caller, id)
		if !ok {
			return nil, &apiError{400, "TargetGroupNotFound", fmt.Sprintf("Target group '%s' not found", q.str("TargetGroupArn"))}
		}
		states := h.targetStates()
		var out []targetHealth
		for _, t := range m.Targets {
			if t.TargetGroup != tg.Name {
				continue
			}
			checkPort := t.Port
			if tg.HealthCheck.Port != 0 {
				checkPort = int(tg.HealthCheck.Port)
			}
			th := targetHealth{ID: t.IP, Port: t.Port, AZ: m.AZName(t.AZ), CheckPort: strconv.Itoa(checkPort), State: "unused", Reason: "Target.NotInUse",
				Description: "Target group is not configured to receive traffic from the load balancer"}
			if st, ok := states[tg.Name+"|"+netip.AddrPortFrom(netip.MustParseAddr(t.IP), uint16(t.Port)).String()]; ok {
				th.State, th.Reason, th.Description = st, "", ""
				if st == "unhealthy" || st == "unhealthy.draining" {
					th.Reason, th.Description = "Target.FailedHealthChecks", "Health checks failed"
				}
			}
			if !t.DeregisteredAt.IsZero() && th.State != "unused" {
				th.State, th.Reason, th.Description = "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
			}
			out = append(out, th)
		}
		return struct {
			THs []targetHealth `xml:"TargetHealthDescriptions>member"`
		}{out}, nil

	case "CreateListener":
		actions := q.structs("DefaultActions.member", "Type", "TargetGroupArn")
		if len(actions) != 1 || actions[0]["Type"] != "forward" {
			return nil, &apiError{400, "ValidationError", "a listener takes one default action: forward to a target group"}
		}
		port, _ := strconv.Atoi(q.str("Port"))
		var out listener
		_, err := h.b.Change(func(s *ctl.State) error {
			lbID := arnIDs([]string{q.str("LoadBalancerArn")})[0]
			l, err := s.CreateListener(caller, lbID, q.str("Protocol"), port, arnIDs([]string{actions[0]["TargetGroupArn"]})[0])
			if err == nil {
				lb, _ := s.LoadBalancerByID(caller, lbID)
				out = (&modelView{s}).listenerOut(*lb, *l)
			}
			return err
		})
		return struct {
			Ls []listener `xml:"Listeners>member"`
		}{[]listener{out}}, err

	case "DescribeListeners":
		lbArn, arns := q.str("LoadBalancerArn"), arnIDs(q.list("ListenerArns.member"))
		if lbArn == "" && len(arns) == 0 {
			return nil, &apiError{400, "ValidationError", "name either listeners (ListenerArns) or a load balancer (LoadBalancerArn)"}
		}
		if lbArn != "" && !m.ownsLoadBalancer(caller, lbArn) {
			return nil, &apiError{400, "LoadBalancerNotFound", fmt.Sprintf("Load balancer '%s' not found", lbArn)}
		}
		var out []listener
		for _, lb := range m.LoadBalancers {
			if lb.OwnerID != caller || lbArn != "" && m.lbARN(lb) != lbArn {
				continue
			}
			for _, l := range lb.Listeners {
				if len(arns) == 0 || slices.Contains(arns, l.ID) {
					out = append(out, m.listenerOut(lb, l))
				}
			}
		}
		if len(arns) > 0 && len(out) < len(arns) {
			return nil, &apiError{400, "ListenerNotFound", "One or more listeners not found"}
		}
		return struct {
			Ls []listener `xml:"Listeners>member"`
		}{out}, nil

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

	case "ModifyListener":
		tgID := ""
		if actions := q.structs("DefaultActions.member", "Type", "TargetGroupArn"); len(actions) > 0 {
			if len(actions) != 1 || actions[0]["Type"] != "forward" {
				return nil, &apiError{400, "ValidationError", "a listener takes one default action: forward to a target group"}
			}
			tgID = arnIDs([]string{actions[0]["TargetGroupArn"]})[0]
		}
		port := 0
		if p := q.str("Port"); p != "" {
			var err error
			if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
				return nil, &apiError{400, "ValidationError", fmt.Sprintf("Port %q is not a port from 1 to 65535", p)}
			}
		}
		var out listener
		_, err := h.b.Change(func(s *ctl.State) error {
			lb, l, err := s.ModifyListener(caller, arnIDs([]string{q.str("ListenerArn")})[0], q.str("Protocol"), port, tgID)
			if err == nil {
				out = (&modelView{s}).listenerOut(*lb, *l)
			}
			return err
		})
		return struct {
			Ls []listener `xml:"Listeners>member"`
		}{[]listener{out}}, err

	case "DeleteListener":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteListener(caller, arnIDs([]string{q.str("ListenerArn")})[0]) })
		return struct{}{}, err

	case "DescribeTargetGroupAttributes", "ModifyTargetGroupAttributes":
		id := arnIDs([]string{q.str("TargetGroupArn")})[0]
		if action == "ModifyTargetGroupAttributes" {
			attrs := attributesOf(q)
			if _, err := h.b.Change(func(s *ctl.State) error { return s.SetTargetGroupAttributes(caller, id, attrs) }); err != nil {
				return nil, err
			}
			m = &modelView{h.b.Model()}
		}
		tg, ok := m.TargetGroupByID(caller, id)
		if !ok {
			return nil, &apiError{400, "TargetGroupNotFound", fmt.Sprintf("Target group '%s' not found", q.str("TargetGroupArn"))}
		}
		return attributesOut(ctl.TargetGroupAttributes, tg.Attributes()), nil

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

	case "ModifyTargetGroup":
		id := arnIDs([]string{q.str("TargetGroupArn")})[0]
		_, err := h.b.Change(func(s *ctl.State) error {
			return s.ModifyTargetGroupHealthCheck(caller, id, func(hc *snapshot.HealthCheck) error {
				if err := healthCheckTarget(q, hc); err != nil {
					return err
				}
				if v := q.str("HealthCheckEnabled"); v != "" {
					hc.Disabled = v == "false"
				}
				for name, d := range map[string]*snapshot.Duration{"HealthCheckIntervalSeconds": &hc.Interval, "HealthCheckTimeoutSeconds": &hc.Timeout} {
					if v := q.str(name); v != "" {
						n, err := strconv.Atoi(v)
						if err != nil || n < 2 || n > 300 {
							return &apiError{400, "ValidationError", fmt.Sprintf("%s %q: use 2 to 300 seconds", name, v)}
						}
						*d = snapshot.Duration(time.Duration(n) * time.Second)
					}
				}
				for name, n := range map[string]*int{"HealthyThresholdCount": &hc.HealthyThreshold, "UnhealthyThresholdCount": &hc.UnhealthyThreshold} {
					if v := q.str(name); v != "" {
						c, err := strconv.Atoi(v)
						if err != nil || c < 2 || c > 10 {
							return &apiError{400, "ValidationError", fmt.Sprintf("%s %q: use 2 to 10", name, v)}
						}
						*n = c
					}
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
		m = &modelView{h.b.Model()}
		tg, _ := m.TargetGroupByID(caller, id)
		return struct {
			TGs []targetGroup `xml:"TargetGroups>member"`
		}{[]targetGroup{m.tgOut(*tg)}}, nil

	case "AddTags":
		arns := q.list("ResourceArns.member")
		tags := q.tags("Tags.member")
		_, err := h.b.Change(func(s *ctl.State) error { return s.TagResources(caller, arns, tags) })
		return struct{}{}, elbTagError(err)

	case "RemoveTags":
		arns := q.list("ResourceArns.member")
		var tags []ctl.Tag
		var withValue []bool
		for _, k := range q.list("TagKeys.member") {
			tags, withValue = append(tags, ctl.Tag{Key: k}), append(withValue, false)
		}
		_, err := h.b.Change(func(s *ctl.State) error { return s.UntagResources(caller, arns, tags, withValue) })
		return struct{}{}, elbTagError(err)

	case "DescribeTags":
		type tagged struct {
			ARN  string         `xml:"ResourceArn"`
			Tags []elbTagMember `xml:"Tags>member"`
		}
		var out []tagged
		for _, arn := range q.list("ResourceArns.member") {
			if o, ok := m.Owner(arn); !ok || o != caller {
				return nil, elbTagError(&ctl.NotFoundError{Kind: "ID", ID: arn})
			}
			d := tagged{ARN: arn}
			for _, t := range m.Tags[arn] {
				d.Tags = append(d.Tags, elbTagMember{t.Key, t.Value})
			}
			out = append(out, d)
		}
		return struct {
			Set []tagged `xml:"TagDescriptions>member"`
		}{out}, nil

	case "":
		return nil, &apiError{400, "MissingAction", "The request must contain the parameter Action"}
	default:
		return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves the Network Load Balancer actions of ELBv2)", action)}
	}
}

type elbTagMember struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// elbTagError names an unknown ARN as ELBv2 does.
func elbTagError(err error) error {
	var nf *ctl.NotFoundError
	if errors.As(err, &nf) && nf.Kind == "ID" {
		if strings.Contains(nf.ID, ":targetgroup/") {
			return &apiError{400, "TargetGroupNotFound", fmt.Sprintf("Target groups '%s' not found", nf.ID)}
		}
		return &apiError{400, "LoadBalancerNotFound", fmt.Sprintf("Load balancers '%s' not found", nf.ID)}
	}
	return err
}

// targetStates are the targets' states as the forwarders' health checks
// see them, by group|ip:port: healthy if any node sees it healthy.
func (h *Handler) targetStates() map[string]string {
	out := map[string]string{}
	r := h.b.Status()
	if r == nil {
		return out
	}
	views, err := ctl.TargetViews(r)
	if err != nil {
		return out
	}
	for _, v := range views {
		// A group behind two load balancers: the best of their views.
		key := v.TargetGroup + "|" + v.Target
		if cur, ok := out[key]; !ok || ctl.TargetRank(v.State) > ctl.TargetRank(cur) {
			out[key] = v.State
		}
	}
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

// attributesOf are the Attributes.member.N.Key/Value pairs of a Modify*Attributes call.
func attributesOf(q query) map[string]string {
	attrs := map[string]string{}
	for _, a := range q.structs("Attributes.member", "Key", "Value") {
		attrs[a["Key"]] = a["Value"]
	}
	return attrs
}

type attribute struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// attributesOut lists attrs in the order of keys, as Describe*Attributes
// and Modify*Attributes answer.
func attributesOut(keys []string, attrs map[string]string) any {
	var out []attribute
	for _, k := range keys {
		out = append(out, attribute{k, attrs[k]})
	}
	return struct {
		Attrs []attribute `xml:"Attributes>member"`
	}{out}
}

// elbCode is the ELBv2 error code and HTTP status of a model error.
func elbCode(err error) (string, int) {
	var nf *ctl.NotFoundError
	var me *ctl.ModelError
	var ae *apiError
	var de *ctl.DependencyError
	var dup *ctl.DuplicateError
	var np *ctl.OperationNotPermittedError
	var sg *ctl.LBSecurityGroupError
	switch {
	case errors.As(err, &ae):
		return ae.code, ae.status
	case errors.As(err, &sg) && sg.Config:
		return "InvalidConfigurationRequest", 400
	case errors.As(err, &sg):
		return "InvalidSecurityGroup", 400
	case errors.As(err, &np):
		return "OperationNotPermitted", 400
	case errors.As(err, &de):
		return "ResourceInUse", 400
	case errors.As(err, &dup):
		return "Duplicate" + dup.Kind, 400
	case errors.As(err, &nf):
		switch nf.Kind {
		case "LoadBalancer", "TargetGroup", "Listener":
			return nf.Kind + "NotFound", 400
		case "SubnetID":
			return "SubnetNotFound", 400
		case "VpcID":
			return "ValidationError", 400
		}
		return "ValidationError", 400
	case errors.As(err, &me):
		return "ValidationError", 400
	}
	return "InternalFailure", http.StatusInternalServerError
}

type elbErrorBody struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Namespace string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// elbAuthError is a refused signature as ELBv2 answers it.
func elbAuthError(err error) error {
	var ae *authError
	if !errors.As(err, &ae) {
		return &apiError{400, "IncompleteSignature", err.Error()}
	}
	switch ae.code {
	case authMissing:
		return &apiError{403, "MissingAuthenticationToken", ae.msg}
	case authBadKey:
		return &apiError{403, "InvalidClientTokenId", ae.msg}
	case authBadSig, authExpired:
		return &apiError{403, "SignatureDoesNotMatch", ae.msg}
	}
	return &apiError{400, "IncompleteSignature", ae.msg}
}

// serveWrapped serves the Query protocol of ELBv2 and SNS: the result
// inside <ActionResult>, metadata after it, ErrorResponse for errors.
// admit checks a call's signature for service and the caller's rate, as
// the query-style services (ELBv2, SNS, CloudWatch, STS) answer a refusal:
// through fail. It returns the caller and the body it read.
func (h *Handler) admit(r *http.Request, service string, fail func(error)) (Credentials, []byte, bool) {
	creds, body, _, err := verify(r, service, h.now(), h.lookup)
	if err != nil {
		fail(elbAuthError(err))
		return creds, nil, false
	}
	if !h.allow(creds.Account) {
		fail(&apiError{400, "Throttling", "Rate exceeded"})
		return creds, nil, false
	}
	return creds, body, true
}

func (h *Handler) serveWrapped(w http.ResponseWriter, r *http.Request, id, service, version, namespace string, run func(string, query) (any, error)) {
	fail := func(err error) {
		code, status := elbCode(err)
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		xml.NewEncoder(w).Encode(elbErrorBody{Namespace: namespace, Type: typ, Code: code, Message: err.Error(), RequestID: id})
	}
	creds, body, ok := h.admit(r, service, fail)
	if !ok {
		return
	}
	q, err := parseForm(body)
	if err != nil {
		fail(&apiError{400, "MalformedQueryString", err.Error()})
		return
	}
	if v := q.str("Version"); v != version {
		fail(&apiError{400, "InvalidParameterValue", "Version " + v + " is not served; use " + version})
		return
	}
	out, err := run(creds.Account, q)
	if err != nil {
		h.log.Info("api refused", "service", service, "action", q.str("Action"), "account", creds.Account, "err", err)
		fail(err)
		return
	}
	action := q.str("Action")
	result, err := members(out)
	if err != nil {
		fail(&apiError{500, "InternalFailure", err.Error()})
		return
	}
	inner := "<" + action + "Result>" + string(result) + "</" + action + "Result><ResponseMetadata><RequestId>" + id + "</RequestId></ResponseMetadata>"
	w.Header().Set("Content-Type", "text/xml")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(elbResponse{XMLName: xml.Name{Local: action + "Response"}, Namespace: namespace, Result: []byte(inner)})
}
