package ctl

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// NetnsName is the network namespace of a fabric's VPC.
func NetnsName(fabric, vpc string) string { return "pvl-" + fabric + "-" + vpc }

// Plan turns a validated topology into the State of a fabric that is not
// created yet: every id, name and address decided, nothing touched.
func Plan(t *Topology) *State {
	s := &State{Name: t.Name, Region: t.Region, Created: time.Now().UTC(), Version: 1, Workers: max(t.ForwarderWorkers, 1), FlowCapacity: t.FlowCapacity, API: t.API, AvailabilityZones: append([]string{}, t.Zones...)}
	for _, r := range t.Regions {
		s.Regions = append(s.Regions, RegionState{Name: r.Name, AZs: append([]string{}, r.Zones...), OptIn: r.OptIn})
		s.AvailabilityZones = append(s.AvailabilityZones, r.Zones...)
	}
	vpcRegion := map[string]string{}
	for _, v := range t.VPCs {
		vpcRegion[v.Name] = cmpOr(v.Region, t.Region)
	}
	s.Accounts = append([]Account{}, t.Accounts...)
	accountID := map[string]string{}
	for _, a := range t.Accounts {
		accountID[a.Name] = a.ID
	}
	for _, z := range t.PublicDNSZones {
		s.PublicZones = append(s.PublicZones, PublicZoneState{Name: strings.TrimSuffix(strings.ToLower(z.Name), "."), OwnerID: accountID[z.Account], Records: z.Records})
	}
	for _, tp := range t.SNSTopics {
		s.Topics = append(s.Topics, TopicState{Name: tp.Name, ARN: s.TopicARN(accountID[tp.Account], tp.Name), OwnerID: accountID[tp.Account], Subscribers: tp.Subscribers})
	}
	subnetByName := map[string]SubnetState{}
	vpcID := map[string]string{}
	vpcOwner := map[string]string{}
	for _, v := range t.VPCs {
		vs := VPCState{Name: v.Name, ID: newID("vpc-"), OwnerID: accountID[v.Account], Netns: NetnsName(t.Name, v.Name), CIDR: v.CIDR, IPv6CIDR: v.IPv6CIDR, Region: regionOrHome(vpcRegion[v.Name], t.Region)}
		vs.DNSSupportOff, vs.DNSHostnamesOff = topologyVPCDNS(v)
		vpcOwner[v.Name] = vs.OwnerID
		for _, sn := range v.Subnets {
			ss := SubnetState{Name: sn.Name, ID: newID("subnet-"), AZ: sn.AZ, CIDR: sn.CIDR, HostIP: sn.HostIP, IPv6CIDR: sn.IPv6CIDR, HostIPv6: sn.HostIPv6}
			vs.Subnets = append(vs.Subnets, ss)
			subnetByName[sn.Name] = ss
		}
		vpcID[v.Name] = vs.ID
		s.VPCs = append(s.VPCs, vs)
	}
	for _, tg := range t.TargetGroups {
		ts := TargetGroupState{
			Name: tg.Name, ID: newHexID(16), OwnerID: vpcOwner[tg.VPC], VPC: tg.VPC, Port: tg.Port, ProxyProtocolV2: tg.ProxyProtocolV2, Placement: tg.ProxyProtocolV2Placement,
			ConnectionTermination: tg.ConnectionTermination, ConnectionLimit: tg.ConnectionLimit,
			KeepUnhealthy: tg.UnhealthyConnectionTermination != nil && !*tg.UnhealthyConnectionTermination, PreserveClientIP: tg.PreserveClientIP,
			MinHealthyCount: tg.MinHealthyTargets, MinHealthyPercent: tg.MinHealthyPercentage,
		}
		if tg.UnhealthyDrainingInterval > 0 {
			ts.UnhealthyDraining = tg.UnhealthyDrainingInterval.String()
		}
		if tg.CrossZone != nil {
			ts.CrossZone = strconv.FormatBool(*tg.CrossZone)
		}
		if tg.IdleTimeout > 0 {
			ts.IdleTimeout = tg.IdleTimeout.String()
		}
		if tg.DeregistrationDelay != nil { // "0s" too: no draining
			ts.DeregistrationDelay = tg.DeregistrationDelay.String()
		}
		if hc := tg.HealthCheck; hc != nil {
			ts.HealthCheck = snapshot.HealthCheck{
				Disabled: hc.Enabled != nil && !*hc.Enabled,
				Interval: snapshot.Duration(hc.Interval), Timeout: snapshot.Duration(hc.Timeout),
				HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold,
				Protocol: hc.Protocol, Port: uint16(hc.Port), Path: hc.Path, Matcher: hc.Matcher,
			}
			settleHealthCheck(&ts.HealthCheck) // the validator refused what it would refuse
		}
		s.TargetGroups = append(s.TargetGroups, ts)
		for _, tgt := range tg.Targets {
			s.Targets = append(s.Targets, TargetState{
				IP: tgt.IP, Port: tgt.Port, AZ: azOfAddr(s, tg.VPC, tgt.IP),
				Netns: NetnsName(t.Name, tg.VPC), TargetGroup: tg.Name, External: tgt.External,
			})
		}
	}
	lbPorts := map[string][]int{}
	lbVPC := map[string]string{}
	for _, lb := range t.LoadBalancers {
		lbVPC[lb.Name] = lb.VPC
		ls := LBState{Name: lb.Name, ID: newHexID(16), OwnerID: vpcOwner[lb.VPC], VPC: lb.VPC, IPAddressType: lb.IPAddressType, Netns: NetnsName(t.Name, lb.VPC), CrossZone: lb.CrossZone, Listeners: append([]Listener{}, lb.Listeners...)}
		for i := range ls.Listeners {
			ls.Listeners[i].ID = newHexID(16)
		}
		for _, m := range lb.SubnetMappings {
			sn := subnetByName[m.Subnet]
			ls.Nodes = append(ls.Nodes, LBNodeState{AZ: sn.AZ, Subnet: m.Subnet, IP: m.PrivateIPv4Address})
		}
		for _, l := range lb.Listeners {
			lbPorts[lb.Name] = append(lbPorts[lb.Name], l.Port)
		}
		s.LoadBalancers = append(s.LoadBalancers, ls)
	}
	sgID := map[string]string{}
	for _, sg := range t.SecurityGroups {
		g := SecurityGroupState{ID: newID("sg-"), Name: sg.Name, VPC: sg.VPC, OwnerID: vpcOwner[sg.VPC], Ingress: sgRules(sg.Ingress)}
		if sg.Egress != nil {
			g.EgressSet, g.Egress = true, sgRules(*sg.Egress)
		}
		sgID[sg.Name] = g.ID
		s.SecurityGroups = append(s.SecurityGroups, g)
	}
	defaultID := map[string]string{} // by VPC
	for _, v := range s.VPCs {
		g := newDefaultGroup(v)
		defaultID[v.Name] = g.ID
		s.SecurityGroups = append(s.SecurityGroups, g)
	}
	// groupIDs are the ids of security groups named in VPC vpc: "default"
	// is its default group.
	groupIDs := func(names []string, vpc string) []string {
		var out []string
		for _, n := range names {
			if n == defaultGroupName {
				out = append(out, defaultID[vpc])
			} else {
				out = append(out, sgID[n])
			}
		}
		return out
	}
	planLBSecurityGroups(s, t, groupIDs)
	svcByName := map[string]ServiceState{}
	for _, svc := range t.Services {
		id := newID("vpce-svc-")
		host := vpcRegion[lbVPC[svc.LoadBalancers[0]]]
		var supported []string
		for _, r := range svc.SupportedRegions {
			if r != host && !slices.Contains(supported, r) {
				supported = append(supported, r)
			}
		}
		ss := ServiceState{
			Region: regionOrHome(host, t.Region), SupportedRegions: supported,
			Name: svc.Name, ID: id, OwnerID: vpcOwner[lbVPC[svc.LoadBalancers[0]]], ServiceName: fmt.Sprintf("com.amazonaws.vpce.%s.%s", host, id),
			State: "Available", LoadBalancers: svc.LoadBalancers,
			AcceptanceRequired: svc.AcceptanceRequired, AllowedPrincipals: svc.AllowedPrincipals,
			SupportedIPAddressTypes: svc.SupportedIPAddressTypes,
		}
		if svc.PrivateDNSName != "" {
			s.SetPrivateDNSName(&ss, svc.PrivateDNSName)
		}
		svcByName[svc.Name] = ss
		s.Services = append(s.Services, ss)
	}
	for _, e := range t.Endpoints {
		svc := svcByName[e.Service]
		state := snapshot.StatePending // available once the forwarders carry it
		if svc.AcceptanceRequired {
			state = snapshot.StatePendingAcceptance
		}
		es := EndpointState{
			ID: newID("vpce-"), Name: e.Name, OwnerID: vpcOwner[e.VPC], Principal: e.Principal,
			Region: vpcRegion[e.VPC], ServiceRegion: cmpOr(e.ServiceRegion, vpcRegion[lbVPC[svc.LoadBalancers[0]]]),
			Service: svc.ServiceName, ServiceID: svc.ID,
			VPC: e.VPC, VPCID: vpcID[e.VPC], State: state, IPAddressType: e.IPAddressType,
			SecurityGroups: groupIDs(e.SecurityGroups, e.VPC), DNSRecordIPType: e.DNSRecordIPType, PrivateDNSEnabled: e.PrivateDNSEnabled,
		}
		if len(es.SecurityGroups) == 0 {
			es.SecurityGroups = []string{defaultID[e.VPC]} // as EC2 does
		}
		ports := map[int]bool{}
		for _, lb := range svc.LoadBalancers {
			for _, port := range lbPorts[lb] {
				ports[port] = true
			}
		}
		for port := range ports {
			es.Ports = append(es.Ports, port)
		}
		sort.Ints(es.Ports)
		for _, c := range e.SubnetConfigurations {
			sn := subnetByName[c.Subnet]
			id := newID("eni-")
			es.ENIs = append(es.ENIs, ENIState{
				ID: id, AZ: sn.AZ, Subnet: c.Subnet, SubnetID: sn.ID, IP: c.IPv4, IPv6: c.IPv6,
				// An interface name has at most 15 characters: "eni-" and
				// the first 11 hex digits of the ENI id.
				Tun: id[:15], Netns: NetnsName(t.Name, e.VPC),
			})
		}
		s.Endpoints = append(s.Endpoints, es)
	}
	return s
}

// regionOrHome is "" for the home Region (kept out of the JSON of a
// one-Region fabric), else the Region.
func regionOrHome(r, home string) string {
	if r == home {
		return ""
	}
	return r
}

// sgRules turns a group's rules into the forwarder's. Rules for protocols
// that never reach an endpoint (UDP, ICMP) are left out.
func sgRules(rules []SGRule) []snapshot.SGRule {
	var out []snapshot.SGRule
	for _, r := range rules {
		var proto uint8
		switch r.IPProtocol {
		case "tcp":
			proto = 6
		case "-1":
			proto = 0
		default:
			continue
		}
		cidr := r.CIDRIPv4
		if cidr == "" {
			cidr = r.CIDRIPv6
		}
		out = append(out, snapshot.SGRule{Proto: proto, FromPort: uint16(r.FromPort), ToPort: uint16(r.ToPort), Source: netip.MustParsePrefix(cidr).Masked()})
	}
	return out
}

// rulesOf flattens the inbound rules of security groups (an endpoint's, a
// load balancer's) into the forwarder's: a rule whose source is a group
// becomes one rule per range of its members.
func (s *State) rulesOf(ids []string) []snapshot.SGRule {
	var out []snapshot.SGRule
	for _, g := range s.SecurityGroups {
		if !slices.Contains(ids, g.ID) {
			continue
		}
		out = s.groupRuleRanges(append(out, g.Ingress...), g.FromGroups)
	}
	return out
}

// groupRuleRanges adds to out the rules whose peer is a group or a prefix
// list as the forwarders take them: one per range of the group's members,
// or of the list's current version.
func (s *State) groupRuleRanges(out []snapshot.SGRule, rules []GroupRule) []snapshot.SGRule {
	for _, r := range rules {
		peers := s.groupMembers(r.Group)
		if IsPrefixList(r.Group) {
			peers = s.prefixListRanges(r.Group)
		}
		for _, peer := range peers {
			if rule := (snapshot.SGRule{Proto: r.Proto, FromPort: r.FromPort, ToPort: r.ToPort, Source: peer}); !slices.Contains(out, rule) {
				out = append(out, rule)
			}
		}
	}
	return out
}

func optAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return mustAddr(s)
}

func parseDuration(s string) snapshot.Duration {
	d, _ := time.ParseDuration(s)
	return snapshot.Duration(d)
}

func azOfAddr(s *State, vpc, ip string) string {
	for _, v := range s.VPCs {
		if v.Name != vpc {
			continue
		}
		for _, sn := range v.Subnets {
			if prefixContains(sn.CIDR, ip) {
				return sn.AZ
			}
		}
	}
	return ""
}

// ForwarderZones are the AZs in which the fabric has ENIs, sorted: one
// forwarder each.
func (s *State) ForwarderZones() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range s.Endpoints {
		for _, eni := range e.ENIs {
			if !seen[eni.AZ] {
				seen[eni.AZ] = true
				out = append(out, eni.AZ)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ForwarderConfig compiles the snapshot the forwarder of az serves.
func (s *State) ForwarderConfig(az string) *snapshot.Config {
	c := &snapshot.Config{
		Version: s.Version, Fabric: s.Name, Region: s.Region, AZ: az, Workers: s.Workers, FlowCapacity: s.FlowCapacity,
		LoadBalancers: map[string]snapshot.LoadBalancer{},
		TargetGroups:  map[string]snapshot.TargetGroup{},
	}
	lbs := map[string]LBState{}
	for _, lb := range s.LoadBalancers {
		lbs[lb.Name] = lb
	}
	svcs := map[string]ServiceState{}
	for _, svc := range s.Services {
		svcs[svc.ID] = svc
	}
	for _, e := range s.Endpoints {
		if e.State == snapshot.StateDeleting {
			continue // its ENIs leave the forwarders first
		}
		svc := svcs[e.ServiceID]
		for _, eni := range e.ENIs {
			if eni.AZ != az {
				continue
			}
			de := snapshot.ENI{
				ID: eni.ID, Tun: eni.Tun, Netns: eni.Netns, IPv4: optAddr(eni.IP), IPv6: optAddr(eni.IPv6),
				EndpointID: e.ID, ServiceID: e.ServiceID, ServiceName: e.Service,
				VPCID: e.VPCID, SubnetID: eni.SubnetID, State: e.State,
				SecurityGroups: e.SecurityGroups, Ingress: s.rulesOf(e.SecurityGroups),
				FlowLogInterval: s.flowLogInterval(e, eni),
				Blackholed:      s.IsAZDown(eni.AZ),
			}
			ports := map[int]bool{}
			for _, name := range svc.LoadBalancers {
				lb := lbs[name]
				node, ok := lb.node(az)
				crossZone, crossRegion := lb.CrossZone, false
				if !ok && e.crossRegion() && len(lb.Nodes) > 0 {
					// Cross-Region: the consumer's AZs are not the
					// provider's. Connections leave from a node of the
					// host Region and go to targets in any of its AZs;
					// health checks move them between AZs, never across
					// Regions.
					node, ok, crossZone, crossRegion = lb.Nodes[0], true, true, true
					for _, n := range lb.Nodes {
						if !s.IsAZDown(n.AZ) { // a node of an AZ that is up
							node = n
							break
						}
					}
				}
				if !ok {
					continue // this load balancer has no node in az
				}
				slb := snapshot.LoadBalancer{Name: lb.Name, ARN: lb.ARN(cmpOr(svc.Region, s.Region)), Netns: lb.Netns, NodeIP: mustAddr(node.IP), CrossZone: crossZone, CrossRegion: crossRegion}
				s.lbRules(lb, &slb)
				c.LoadBalancers[lb.Name] = slb
				for _, l := range lb.Listeners {
					if ports[l.Port] {
						continue // the first load balancer with a port has it
					}
					ports[l.Port] = true
					de.Listeners = append(de.Listeners, snapshot.Listener{Port: uint16(l.Port), LoadBalancer: lb.Name, TargetGroup: l.TargetGroup, IdleTimeout: snapshot.Duration(l.IdleTimeout)})
					c.TargetGroups[l.TargetGroup] = s.targetGroup(l.TargetGroup)
				}
			}
			c.ENIs = append(c.ENIs, de)
		}
	}
	return c
}

func (lb LBState) node(az string) (LBNodeState, bool) {
	for _, n := range lb.Nodes {
		if n.AZ == az {
			return n, true
		}
	}
	return LBNodeState{}, false
}

func (s *State) targetGroup(name string) snapshot.TargetGroup {
	tg := snapshot.TargetGroup{Name: name}
	for _, g := range s.TargetGroups {
		if g.Name == name {
			tg.ProxyProtocolV2 = g.ProxyProtocolV2
			tg.ProxyProtocolV2Placement = g.Placement
			tg.IdleTimeout = parseDuration(g.IdleTimeout)
			tg.DeregistrationDelay = parseDuration(g.DeregistrationDelay)
			if g.DeregistrationDelay != "" && tg.DeregistrationDelay == 0 {
				tg.DeregistrationDelay = snapshot.NoDelay // set to 0, not left at the default
			}
			tg.ConnectionTermination = g.ConnectionTermination
			tg.HealthCheck = g.HealthCheck
			tg.ConnLimit = g.ConnectionLimit
			tg.KeepUnhealthy, tg.UnhealthyDraining = g.KeepUnhealthy, parseDuration(g.UnhealthyDraining)
			tg.CrossZone = g.CrossZone
			tg.MinHealthyCount, tg.MinHealthyPercent = g.MinHealthyCount, g.MinHealthyPercent
		}
	}
	for _, t := range s.Targets {
		if t.TargetGroup == name {
			tg.Targets = append(tg.Targets, snapshot.Target{IP: mustAddr(t.IP), Port: uint16(t.Port), AZ: t.AZ, DeregisteredAt: t.DeregisteredAt, Blackholed: s.IsAZDown(t.AZ)})
		}
	}
	return tg
}
