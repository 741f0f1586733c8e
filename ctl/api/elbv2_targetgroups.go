package api

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

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

type targetHealth struct {
	ID          string `xml:"Target>Id"`
	Port        int    `xml:"Target>Port"`
	AZ          string `xml:"Target>AvailabilityZone"`
	CheckPort   string `xml:"HealthCheckPort"`
	State       string `xml:"TargetHealth>State"`
	Reason      string `xml:"TargetHealth>Reason,omitempty"`
	Description string `xml:"TargetHealth>Description,omitempty"`
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

// elbTargetGroups runs the actions on target groups: their targets, health
// checks and attributes. Any other action it answers with errNotThisArea.
func (h *Handler) elbTargetGroups(m *modelView, caller, action string, q query) (any, error) {
	switch action {
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
		// Targets named in the call: those only, in that order, one not
		// registered (or whose deregistration is over) said to be so.
		var asked []netip.AddrPort
		if len(q.structs("Targets.member", "Id", "Port")) > 0 {
			var err error
			if asked, err = q.targets(); err != nil {
				return nil, err
			}
			for i, a := range asked {
				if a.Port() == 0 {
					asked[i] = netip.AddrPortFrom(a.Addr(), uint16(tg.Port))
				}
			}
		}
		states := h.targetStates()
		found := map[netip.AddrPort]targetHealth{}
		var out []targetHealth
		for _, t := range m.Targets {
			if t.TargetGroup != tg.Name {
				continue
			}
			if !t.DeregisteredAt.IsZero() && h.now().After(t.DeregisteredAt.Add(tg.DrainFor())) {
				continue // drained: no longer the group's
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
			found[netip.AddrPortFrom(netip.MustParseAddr(t.IP), uint16(t.Port))] = th
		}
		if asked != nil {
			out = out[:0]
			for _, a := range asked {
				th, ok := found[a]
				if !ok {
					th = targetHealth{ID: a.Addr().String(), Port: int(a.Port()), State: "unused", Reason: "Target.NotRegistered",
						Description: "Target is not registered to the target group"}
				}
				out = append(out, th)
			}
		}
		return struct {
			THs []targetHealth `xml:"TargetHealthDescriptions>member"`
		}{out}, nil

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

	default:
		return nil, errNotThisArea
	}
}
