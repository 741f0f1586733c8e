package ctl

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// The model's operations. Each works on a copy of the committed model
// (Clone), checks its rules and changes the copy; ctld commits the copy
// only when the operation returned nil, so a refused operation changes
// nothing. The topology file (ApplyTopology) and the lifecycle verbs are
// front-ends over these.

// ModelError is an operation refused because it breaks a rule: the caller
// gets the sentence, the model stays as it was.
type ModelError struct{ Msg string }

func (e *ModelError) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &ModelError{Msg: fmt.Sprintf(format, args...)} }

// Clone returns a deep copy of the model.
func (s *State) Clone() *State {
	data, err := json.Marshal(s)
	if err != nil {
		panic(err) // State holds only JSON-safe values
	}
	var c State
	if err := json.Unmarshal(data, &c); err != nil {
		panic(err)
	}
	return &c
}

// connected reports whether an endpoint holds a connection to its service:
// requested, accepted or in use.
func connected(state string) bool {
	switch state {
	case snapshot.StatePendingAcceptance, snapshot.StatePending, snapshot.StateAvailable:
		return true
	}
	return false
}

// Endpoint finds an endpoint by id or name.
func (s *State) Endpoint(ref string) (*EndpointState, error) {
	for i := range s.Endpoints {
		if e := &s.Endpoints[i]; e.ID == ref || e.Name == ref {
			return e, nil
		}
	}
	return nil, refuse("endpoint %s does not exist in fabric %s", ref, s.Name)
}

// serviceRef finds a service by id or name.
func (s *State) serviceRef(ref string) (*ServiceState, error) {
	for i := range s.Services {
		if sv := &s.Services[i]; sv.ID == ref || sv.Name == ref {
			return sv, nil
		}
	}
	return nil, &NotFoundError{"VpcEndpointServiceId", ref}
}

// AcceptEndpoint accepts a connection request: the endpoint becomes
// available and carries traffic.
func (s *State) AcceptEndpoint(ref string) error {
	e, err := s.Endpoint(ref)
	if err != nil {
		return err
	}
	if e.State != snapshot.StatePendingAcceptance {
		return refuse("endpoint %s is %s: only a connection request that is pendingAcceptance can be accepted", e.ID, e.State)
	}
	// pending until every forwarder carries it (Settle), as AWS shows it
	// while it provisions an accepted endpoint.
	e.State = snapshot.StatePending
	return nil
}

// RejectEndpoint rejects a connection request, or a connection already in
// use: the endpoint stops carrying traffic and its open flows are reset.
func (s *State) RejectEndpoint(ref string) error {
	e, err := s.Endpoint(ref)
	if err != nil {
		return err
	}
	if !connected(e.State) {
		return refuse("endpoint %s is %s: only a pending or available endpoint can be rejected", e.ID, e.State)
	}
	e.State = snapshot.StateRejected
	return nil
}

// DeleteEndpoint deletes an endpoint with its ENIs: it is deleting (its
// ENIs leave the forwarders, its flows are reset) until the host has let
// go of it, then it is gone (Settle).
func (s *State) DeleteEndpoint(ref string) error {
	e, err := s.Endpoint(ref)
	if err != nil {
		return err
	}
	e.State = snapshot.StateDeleting
	return nil
}

// Unsettled reports whether the model has states that the host's catching
// up ends: endpoints pending or deleting, load balancers provisioning.
func (s *State) Unsettled() bool {
	for _, e := range s.Endpoints {
		if e.State == snapshot.StatePending || e.State == snapshot.StateDeleting {
			return true
		}
	}
	for _, lb := range s.LoadBalancers {
		if lb.State == LBProvisioning {
			return true
		}
	}
	return false
}

// Settle moves what the host has caught up with to its next state: pending
// endpoints become available, deleting ones go, provisioning load
// balancers become active. ctld calls it once every forwarder runs the
// model's version.
func (s *State) Settle() error {
	for i := range s.Endpoints {
		if s.Endpoints[i].State == snapshot.StatePending {
			s.Endpoints[i].State = snapshot.StateAvailable
		}
	}
	s.Endpoints = slices.DeleteFunc(s.Endpoints, func(e EndpointState) bool { return e.State == snapshot.StateDeleting })
	// An endpoint's notifications go with it.
	s.Notifications = slices.DeleteFunc(s.Notifications, func(n NotificationState) bool {
		_, ok := s.EndpointByID(n.EndpointID)
		return n.EndpointID != "" && !ok
	})
	for i := range s.LoadBalancers {
		if s.LoadBalancers[i].State == LBProvisioning {
			s.LoadBalancers[i].State = LBActive
		}
	}
	return nil
}

// Load balancer states, as ELBv2 spells them.
const (
	LBProvisioning = "provisioning"
	LBActive       = "active"
)

// RegisterTarget registers an IP target in a target group, or registers
// again one that is draining. The target's AZ is its subnet's.
func (s *State) RegisterTarget(group string, addr netip.AddrPort, external bool) error {
	var tg *TargetGroupState
	for i := range s.TargetGroups {
		if s.TargetGroups[i].Name == group {
			tg = &s.TargetGroups[i]
		}
	}
	if tg == nil {
		return refuse("target group %s does not exist in fabric %s", group, s.Name)
	}
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), uint16(tg.Port))
	}
	for i := range s.Targets {
		t := &s.Targets[i]
		if t.TargetGroup == group && t.IP == addr.Addr().String() && t.Port == int(addr.Port()) {
			if t.DeregisteredAt.IsZero() {
				return refuse("target %s is already registered in target group %s", addr, group)
			}
			t.DeregisteredAt = time.Time{}
			return nil
		}
	}
	az := azOfAddr(s, tg.VPC, addr.Addr().String())
	if az == "" {
		return refuse("target %s is not in a subnet of VPC %s, the VPC of target group %s", addr.Addr(), tg.VPC, group)
	}
	if !addr.Addr().Is4() {
		return refuse("target %s: pvlink's targets are IPv4 addresses", addr)
	}
	// An address held by a load-balancer node or a subnet's host cannot be
	// a target that pvlink runs.
	for _, v := range s.VPCs {
		if v.Name != tg.VPC {
			continue
		}
		for _, sn := range v.Subnets {
			if sn.HostIP == addr.Addr().String() {
				return refuse("target %s is the address of subnet %s's host, not free for a target", addr.Addr(), sn.Name)
			}
		}
	}
	for _, lb := range s.LoadBalancers {
		for _, n := range lb.Nodes {
			if n.IP == addr.Addr().String() {
				return refuse("target %s is the address of load balancer %s's node in %s", addr.Addr(), lb.Name, n.AZ)
			}
		}
	}
	s.Targets = append(s.Targets, TargetState{
		IP: addr.Addr().String(), Port: int(addr.Port()), AZ: az,
		Netns: NetnsName(s.Name, tg.VPC), TargetGroup: group, External: external,
	})
	return nil
}

// ApplyTopology makes the model what a validated topology says, as
// `kubectl apply` does: resources keep their ids when their names stay,
// new ones get new ids, missing ones go. What the file does not hold (an
// endpoint's acceptance, a target's deregistration) is kept for resources
// that stay.
func (s *State) ApplyTopology(t *Topology, file string) error {
	if s.Name != "" && t.Name != s.Name {
		return refuse("the topology is fabric %s; this is fabric %s", t.Name, s.Name)
	}
	next := Plan(t)
	next.File = file
	next.Version = s.Version
	next.Created = s.Created
	if next.Created.IsZero() {
		next.Created = time.Now().UTC()
	}
	carried := next.carryIDs(s)
	if err := next.keepVPCDNS(s, t); err != nil {
		return err
	}
	for i := range next.Endpoints {
		// A new endpoint was requested now (AWS's CreationTimestamp).
		if e := &next.Endpoints[i]; e.Created.IsZero() {
			e.Created = time.Now().UTC()
		}
	}
	for i := range next.LoadBalancers {
		// And a new load balancer made now (AWS's CreatedTime).
		if lb := &next.LoadBalancers[i]; lb.Created.IsZero() {
			lb.Created = time.Now().UTC()
		}
	}
	next.giveKeys(s)
	next.keepAPIResources(s)
	next.Tags = s.Tags
	next.dropTagsOfGone()
	if err := s.checkProtectedLeaving(next); err != nil {
		return err
	}
	if err := s.checkLoadBalancersLeaving(next); err != nil {
		return err
	}
	// Offering a service in another Region takes the provider's
	// permission (and its opting in, for an opt-in Region).
	for _, svc := range next.Services {
		for _, r := range svc.SupportedRegions {
			if svc.Origin != "api" {
				if err := next.mayMultiRegion(svc.OwnerID, KeySupportedRegion, r); err != nil {
					return fmt.Errorf("endpoint service %s: %w", svc.Name, err)
				}
			}
		}
	}
	// Private DNS on an endpoint needs its service's name verified (an
	// endpoint that has it keeps it, whatever the verification became).
	oldPDNS := map[string]bool{}
	for _, e := range s.Endpoints {
		oldPDNS[e.ID] = e.PrivateDNSEnabled
	}
	for i := range next.Endpoints {
		e := &next.Endpoints[i]
		if e.PrivateDNSEnabled && !oldPDNS[e.ID] {
			e.PrivateDNSEnabled = false
			if err := next.EnablePrivateDNS(e, true); err != nil {
				return fmt.Errorf("endpoint %s: %w", e.Name, err)
			}
		}
	}
	for _, z := range s.PublicZones {
		if !slices.ContainsFunc(next.PublicZones, func(o PublicZoneState) bool { return o.Name == z.Name }) {
			next.PublicZones = append(next.PublicZones, z) // made with a command, not the file
		}
	}
	// A new endpoint is a connection request: only a principal the
	// service allows may make one. Endpoints already there stay, whatever
	// the service's principals have become (removing a permission does
	// not cut accepted connections).
	for _, e := range next.Endpoints {
		if carried[e.ID] || e.Origin == "api" {
			continue
		}
		svc := next.serviceByID(e.ServiceID)
		if e.crossRegion() && !slices.Contains(svc.SupportedRegions, e.Region) {
			return refuse("endpoint %s: service %s (in %s) does not support Region %s (its supported Regions: %s)", e.Name, svc.Name, e.ServiceRegion, e.Region, strings.Join(append([]string{e.ServiceRegion}, svc.SupportedRegions...), ", "))
		}
		if e.crossRegion() {
			if err := next.mayMultiRegion(e.OwnerID, KeyServiceRegion, e.ServiceRegion); err != nil {
				return fmt.Errorf("endpoint %s: %w", e.Name, err)
			}
		}
		if !PrincipalAllowed(svc.AllowedPrincipals, e.Principal) {
			return refuse("endpoint %s: principal %s is not allowed to connect to endpoint service %s (allowed principals: %s)", e.Name, e.Principal, svc.Name, principalList(svc.AllowedPrincipals))
		}
	}
	*s = *next
	return nil
}

// keepAPIResources carries what was made through the API, which a topology
// does not declare (it manages only what it declares): VPCs, load
// balancers, target groups and their targets, services and endpoints, each
// while what it stands on remains.
func (next *State) keepAPIResources(old *State) {
	vpcByID := func(id string) bool {
		return slices.ContainsFunc(next.VPCs, func(v VPCState) bool { return v.ID == id })
	}
	vpcByName := func(name string) bool {
		return slices.ContainsFunc(next.VPCs, func(v VPCState) bool { return v.Name == name })
	}
	for _, v := range old.VPCs {
		if v.Origin == "api" && !vpcByName(v.Name) {
			next.VPCs = append(next.VPCs, v)
		}
	}
	for _, g := range old.SecurityGroups {
		if g.Origin == "api" && vpcByName(g.VPC) {
			next.SecurityGroups = append(next.SecurityGroups, g)
		}
	}
	for _, tg := range old.TargetGroups {
		if tg.Origin == "api" && vpcByName(tg.VPC) {
			next.TargetGroups = append(next.TargetGroups, tg)
		}
	}
	for _, t := range old.Targets {
		if t.Origin == "api" && slices.ContainsFunc(next.TargetGroups, func(g TargetGroupState) bool { return g.Name == t.TargetGroup }) &&
			!slices.ContainsFunc(next.Targets, func(o TargetState) bool { return o.TargetGroup == t.TargetGroup && o.IP == t.IP && o.Port == t.Port }) {
			next.Targets = append(next.Targets, t)
		}
	}
	for _, lb := range old.LoadBalancers {
		if lb.Origin == "api" && vpcByName(lb.VPC) {
			next.LoadBalancers = append(next.LoadBalancers, lb)
		}
	}
	for _, sv := range old.Services {
		if sv.Origin == "api" && !slices.ContainsFunc(sv.LoadBalancers, func(name string) bool {
			return !slices.ContainsFunc(next.LoadBalancers, func(lb LBState) bool { return lb.Name == name })
		}) {
			next.Services = append(next.Services, sv)
		}
	}
	// Flow logs are made through the API only; they stay (one whose
	// resource went covers nothing).
	next.FlowLogs = old.FlowLogs
	// So are prefix lists (the groups whose rules name them stay too).
	next.PrefixLists = old.PrefixLists
	next.Faults = slices.DeleteFunc(slices.Clone(old.Faults), func(f FaultState) bool {
		// The AZ or Region went with the topology.
		return f.AZ != "" && !slices.Contains(next.AvailabilityZones, f.AZ) || f.Region != "" && !next.HasRegion(f.Region)
	})
	next.InsightRules = slices.DeleteFunc(slices.Clone(old.InsightRules), func(r InsightRuleState) bool {
		_, ok := next.ServiceByID(r.ServiceID)
		return !ok // a rule goes with its service
	})
	for _, t := range old.Topics {
		if t.Origin == "api" && !slices.ContainsFunc(next.Topics, func(o TopicState) bool { return o.ARN == t.ARN }) {
			next.Topics = append(next.Topics, t)
		}
	}
	for _, e := range old.Endpoints {
		if e.Origin != "api" || !vpcByID(e.VPCID) {
			continue
		}
		if _, ok := next.ServiceByID(e.ServiceID); !ok {
			continue
		}
		keep := true
		for _, v := range next.VPCs {
			if v.ID == e.VPCID {
				for _, eni := range e.ENIs {
					if _, ok := v.subnet(eni.SubnetID); !ok {
						keep = false
					}
				}
			}
		}
		if keep {
			next.Endpoints = append(next.Endpoints, e)
		}
	}
	// Notifications are made through the API only; they stay while their
	// service or endpoint does.
	for _, n := range old.Notifications {
		_, svc := next.ServiceByID(n.ServiceID)
		_, ep := next.EndpointByID(n.EndpointID)
		if svc || ep {
			next.Notifications = append(next.Notifications, n)
		}
	}
}

func principalList(ps []string) string {
	if len(ps) == 0 {
		return "none"
	}
	return strings.Join(ps, ", ")
}

func (s *State) serviceByID(id string) ServiceState {
	for _, sv := range s.Services {
		if sv.ID == id {
			return sv
		}
	}
	return ServiceState{}
}

// carryIDs gives the resources of next that old already has (by name) their
// old ids and state, and returns the ids of the endpoints it carried.
func (next *State) carryIDs(old *State) map[string]bool {
	carriedEP := map[string]bool{}
	subnetIDs := map[string]string{}
	for i := range next.VPCs {
		v := &next.VPCs[i]
		for _, ov := range old.VPCs {
			if ov.Name == v.Name {
				v.ID = ov.ID
				for _, osn := range ov.Subnets {
					subnetIDs[osn.Name] = osn.ID
				}
			}
		}
		for j := range v.Subnets {
			if id, ok := subnetIDs[v.Subnets[j].Name]; ok {
				v.Subnets[j].ID = id
			}
		}
	}
	vpcIDs := map[string]string{}
	for _, v := range next.VPCs {
		vpcIDs[v.Name] = v.ID
	}
	oldSvc := map[string]ServiceState{}
	for _, os := range old.Services {
		oldSvc[os.Name] = os
	}
	// Endpoints name their service by the id Plan made; point them at the
	// carried one.
	carried := map[string]ServiceState{} // planned id -> service as carried
	for i := range next.Services {
		sv := &next.Services[i]
		planned := sv.ID
		if os, ok := oldSvc[sv.Name]; ok {
			sv.ID, sv.ServiceName, sv.State = os.ID, os.ServiceName, os.State
			// The same private DNS name keeps its record and verification.
			if sv.PrivateDNS != nil && os.PrivateDNS != nil && os.PrivateDNS.Name == sv.PrivateDNS.Name {
				sv.PrivateDNS = os.PrivateDNS
			}
		}
		carried[planned] = *sv
	}
	oldEP := map[string]EndpointState{}
	for _, oe := range old.Endpoints {
		oldEP[oe.Name] = oe
	}
	for i := range next.Endpoints {
		e := &next.Endpoints[i]
		e.VPCID = vpcIDs[e.VPC]
		if sv, ok := carried[e.ServiceID]; ok {
			e.ServiceID, e.Service = sv.ID, sv.ServiceName
		}
		oe, ok := oldEP[e.Name]
		if ok && oe.ServiceID == e.ServiceID && oe.VPC == e.VPC {
			e.ID, e.State, e.Created = oe.ID, oe.State, oe.Created
			carriedEP[e.ID] = true
			for j := range e.ENIs {
				eni := &e.ENIs[j]
				for _, oeni := range oe.ENIs {
					if oeni.Subnet == eni.Subnet {
						eni.ID, eni.Tun = oeni.ID, oeni.Tun
					}
				}
			}
		}
		for j := range e.ENIs {
			e.ENIs[j].SubnetID = subnetID(next, e.ENIs[j].Subnet)
		}
	}
	for i := range next.Targets {
		t := &next.Targets[i]
		for _, ot := range old.Targets {
			if ot.TargetGroup == t.TargetGroup && ot.IP == t.IP && ot.Port == t.Port {
				t.DeregisteredAt = ot.DeregisteredAt
			}
		}
	}
	// Security groups keep their ids by name; endpoints follow.
	sgIDs := map[string]string{} // planned -> carried
	for i := range next.SecurityGroups {
		g := &next.SecurityGroups[i]
		for _, og := range old.SecurityGroups {
			if og.Name == g.Name && og.VPC == g.VPC && og.Origin == "" {
				sgIDs[g.ID], g.ID = og.ID, og.ID
				if g.Default && og.Default {
					// The file does not declare a default group's rules:
					// they are what the API made them.
					g.Ingress, g.FromGroups, g.ToGroups, g.EgressSet, g.Egress = og.Ingress, og.FromGroups, og.ToGroups, og.EgressSet, og.Egress
					g.Descriptions, g.RuleIDs = og.Descriptions, og.RuleIDs
				}
			}
		}
	}
	for i := range next.Endpoints {
		for j, id := range next.Endpoints[i].SecurityGroups {
			if c, ok := sgIDs[id]; ok {
				next.Endpoints[i].SecurityGroups[j] = c
			}
		}
	}
	for i := range next.LoadBalancers {
		for j, id := range next.LoadBalancers[i].SecurityGroups {
			if c, ok := sgIDs[id]; ok {
				next.LoadBalancers[i].SecurityGroups[j] = c
			}
		}
	}
	// Load balancers, their listeners and target groups keep the ids
	// their ARNs end with.
	for i := range next.LoadBalancers {
		lb := &next.LoadBalancers[i]
		for _, ol := range old.LoadBalancers {
			if ol.Name != lb.Name {
				continue
			}
			// Deletion protection is set through the API only: the
			// file does not speak of it.
			lb.ID, lb.Created, lb.DeletionProtection = ol.ID, ol.Created, ol.DeletionProtection
			for j := range lb.Listeners {
				for _, oli := range ol.Listeners {
					if oli.Port == lb.Listeners[j].Port {
						lb.Listeners[j].ID = oli.ID
					}
				}
			}
		}
	}
	for i := range next.TargetGroups {
		for _, og := range old.TargetGroups {
			if og.Name == next.TargetGroups[i].Name {
				next.TargetGroups[i].ID = og.ID
			}
		}
	}
	return carriedEP
}

func subnetID(s *State, subnet string) string {
	for _, v := range s.VPCs {
		for _, sn := range v.Subnets {
			if sn.Name == subnet {
				return sn.ID
			}
		}
	}
	return ""
}

// checkLoadBalancersLeaving refuses a change that takes a load balancer
// from a service while endpoints are connected to it.
func (s *State) checkLoadBalancersLeaving(next *State) error {
	nextSvc := map[string]ServiceState{}
	for _, sv := range next.Services {
		nextSvc[sv.ID] = sv
	}
	for _, sv := range s.Services {
		var users []string
		for _, e := range s.Endpoints {
			if e.ServiceID == sv.ID && connected(e.State) {
				users = append(users, e.ID)
			}
		}
		if len(users) == 0 {
			continue
		}
		ns, ok := nextSvc[sv.ID]
		for _, lb := range sv.LoadBalancers {
			if !ok || !slices.Contains(ns.LoadBalancers, lb) {
				return refuse("load balancer %s cannot leave endpoint service %s while endpoints are connected to it (%s): reject or delete them first", lb, sv.Name, strings.Join(users, ", "))
			}
		}
	}
	return nil
}

// DeregisterTarget starts the deregistration of a target from a target
// group, as ELBv2's DeregisterTargets: it drains for the group's delay.
func (s *State) DeregisterTarget(group string, addr netip.AddrPort, now time.Time) error {
	for i := range s.Targets {
		t := &s.Targets[i]
		if t.TargetGroup != group || t.IP != addr.Addr().String() || (addr.Port() != 0 && t.Port != int(addr.Port())) {
			continue
		}
		if !t.DeregisteredAt.IsZero() {
			return refuse("target %s of %s is already deregistered (since %s)", addr, group, t.DeregisteredAt.Format(time.RFC3339))
		}
		t.DeregisteredAt = now.UTC()
		return nil
	}
	return refuse("target %s is not registered in target group %s", addr, group)
}
