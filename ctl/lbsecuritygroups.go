package ctl

import (
	"fmt"
	"slices"

	"pvlink.dev/pvlink/snapshot"
)

// A Network Load Balancer's security groups, as ELBv2 has them since 2023:
// given when the load balancer is made (one made without them never gets
// any), changed with SetSecurityGroups. Their inbound rules are evaluated
// on traffic that comes through PrivateLink unless
// EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic is off, against the
// consumer's address and the listener's port: a consumer whose address no
// rule allows has its packets dropped without an answer, which is how a
// service behind PrivateLink goes silent when its provider's rules name
// only its own test addresses. pvlink's forwarders apply them after the
// ENI's own security groups (snapshot.LoadBalancer.Ingress); health checks
// are not subject to inbound rules, as on AWS.

// EnforceOn and EnforceOff are the values of
// EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic.
const (
	EnforceOn  = "on"
	EnforceOff = "off"
)

// Enforce is the load balancer's
// EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic: "" for one without
// security groups, which has no such setting.
func (lb *LBState) Enforce() string {
	switch {
	case len(lb.SecurityGroups) == 0 && !lb.MadeWithSecurityGroups:
		return ""
	case lb.SGPrivateLinkOff:
		return EnforceOff
	}
	return EnforceOn
}

// LBSecurityGroupError refuses a load balancer's security groups: ELBv2's
// InvalidSecurityGroup, or InvalidConfigurationRequest when Config.
type LBSecurityGroupError struct {
	Msg    string
	Config bool
}

func (e *LBSecurityGroupError) Error() string { return e.Msg }

// checkLBSecurityGroups refuses ids that are not security groups of the
// caller's in the load balancer's VPC.
func (s *State) checkLBSecurityGroups(caller string, lb *LBState, ids []string) error {
	for _, id := range ids {
		g, ok := s.SecurityGroupByID(caller, id)
		if !ok {
			return &LBSecurityGroupError{Msg: fmt.Sprintf("security group %s does not exist", id)}
		}
		if g.VPC != lb.VPC {
			return &LBSecurityGroupError{Msg: fmt.Sprintf("security group %s is in VPC %s, load balancer %s in VPC %s", id, cmpOr(s.VPCID(g.VPC), g.VPC), lb.Name, cmpOr(s.VPCID(lb.VPC), lb.VPC))}
		}
	}
	return nil
}

// SetLoadBalancerSecurityGroups is ELBv2's SetSecurityGroups: the groups
// replace the load balancer's, and enforce ("", on or off) sets whether
// their inbound rules apply to PrivateLink traffic ("" keeps it).
func (s *State) SetLoadBalancerSecurityGroups(caller, id string, ids []string, enforce string) error {
	lb, ok := s.LoadBalancerByID(caller, id)
	if !ok {
		return &NotFoundError{"LoadBalancer", id}
	}
	if !lb.MadeWithSecurityGroups {
		return &LBSecurityGroupError{Msg: fmt.Sprintf("load balancer %s was created without security groups: a Network Load Balancer can be given security groups only when it is created", lb.Name), Config: true}
	}
	if err := s.checkLBSecurityGroups(caller, lb, ids); err != nil {
		return err
	}
	switch enforce {
	case "":
	case EnforceOn, EnforceOff:
		lb.SGPrivateLinkOff = enforce == EnforceOff
	default:
		return &LBSecurityGroupError{Msg: fmt.Sprintf("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic %q is not on or off", enforce), Config: true}
	}
	lb.SecurityGroups = slices.Clone(ids)
	return nil
}

// lbRules is the load balancer as a forwarder sees it: with its security
// groups' inbound rules when they apply to PrivateLink traffic, and their
// outbound rules, which its connections to targets and its health checks
// leave by.
func (s *State) lbRules(lb LBState, out *snapshot.LoadBalancer) {
	if len(lb.SecurityGroups) == 0 {
		return
	}
	out.EgressFiltered = true
	for _, g := range s.SecurityGroups {
		if slices.Contains(lb.SecurityGroups, g.ID) {
			out.Egress = s.groupRuleRanges(append(out.Egress, g.EgressRules()...), g.ToGroups)
		}
	}
	if !lb.SGPrivateLinkOff {
		out.SecurityGroups = lb.SecurityGroups
		out.Ingress = s.rulesOf(lb.SecurityGroups)
	}
}

// usedByLoadBalancer names the load balancer that has security group id,
// or "".
func (s *State) usedByLoadBalancer(id string) string {
	for _, lb := range s.LoadBalancers {
		if slices.Contains(lb.SecurityGroups, id) {
			return lb.Name
		}
	}
	return ""
}

// VPCID is the id of the VPC named name, or "".
func (s *State) VPCID(name string) string {
	for _, v := range s.VPCs {
		if v.Name == name {
			return v.ID
		}
	}
	return ""
}

// loadBalancerSecurityGroups checks a topology load balancer's security
// groups (after the groups are read): defined, in its VPC; and the
// enforcement setting, which needs them.
func (v *validator) loadBalancerSecurityGroups(path []any, lb *LoadBalancer) {
	v.securityGroupsIn(path, lb.SecurityGroups, lb.VPC, "the load balancer")
	field := append(path, "enforce_security_group_inbound_rules_on_private_link_traffic")
	switch lb.EnforceOnPrivateLink {
	case "", EnforceOn, EnforceOff:
		if lb.EnforceOnPrivateLink != "" && len(lb.SecurityGroups) == 0 {
			v.fail(field, "applies to a load balancer with security_groups")
		}
	default:
		v.fail(field, "%q is not on or off", lb.EnforceOnPrivateLink)
	}
}

// planLBSecurityGroups gives the planned load balancers their groups' ids.
func planLBSecurityGroups(s *State, t *Topology, groupIDs func(names []string, vpc string) []string) {
	for i, lb := range t.LoadBalancers {
		ls := &s.LoadBalancers[i]
		ls.SecurityGroups = groupIDs(lb.SecurityGroups, lb.VPC)
		ls.MadeWithSecurityGroups = len(lb.SecurityGroups) > 0
		ls.SGPrivateLinkOff = lb.EnforceOnPrivateLink == EnforceOff
	}
}

// describeSecurityGroups is how the status table shows a load balancer's groups.
func (lb *LBState) describeSecurityGroups() string {
	if lb.Enforce() == "" {
		return "-"
	}
	return fmt.Sprintf("%d (PrivateLink %s)", len(lb.SecurityGroups), lb.Enforce())
}
