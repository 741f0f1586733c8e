package ctl

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The ELBv2 attributes of load balancers and target groups: each a string
// key and value, as DescribeLoadBalancerAttributes and
// DescribeTargetGroupAttributes list them. pvlink lists an attribute only
// where what it says is true of the fabric, and refuses a value it would
// not honour, with the reason.

// boolAttr is attribute k's value v as ELBv2 takes a boolean: true or false.
func boolAttr(k, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, refuse("attribute %s: %q is not true or false", k, v)
}

// OperationNotPermittedError refuses what a setting of the resource
// forbids (ELBv2's OperationNotPermitted): deleting a load balancer whose
// deletion protection is on.
type OperationNotPermittedError struct{ Msg string }

func (e *OperationNotPermittedError) Error() string { return e.Msg }

// LoadBalancerAttributes are the attribute keys of a Network Load Balancer
// pvlink lists, in order.
var LoadBalancerAttributes = []string{
	"deletion_protection.enabled",
	"load_balancing.cross_zone.enabled",
	"access_logs.s3.enabled",
	"access_logs.s3.bucket",
	"access_logs.s3.prefix",
	"dns_record.client_routing_policy",
	"zonal_shift.config.enabled",
}

// Attributes are a load balancer's attributes, as strings.
func (lb *LBState) Attributes() map[string]string {
	return map[string]string{
		"deletion_protection.enabled":       strconv.FormatBool(lb.DeletionProtection),
		"load_balancing.cross_zone.enabled": strconv.FormatBool(lb.CrossZone),
		"access_logs.s3.enabled":            "false",
		"access_logs.s3.bucket":             "",
		"access_logs.s3.prefix":             "",
		"dns_record.client_routing_policy":  "any_availability_zone",
		"zonal_shift.config.enabled":        "false",
	}
}

// SetLoadBalancerAttributes changes attributes of a load balancer of the
// caller's. Deletion protection and cross-zone load balancing are pvlink's
// to honour (the forwarders pick targets in every AZ of the load balancer
// with cross-zone on); the others keep the only value pvlink can stand
// behind, and another value is refused with the reason.
func (s *State) SetLoadBalancerAttributes(caller, id string, attrs map[string]string) error {
	lb, ok := s.LoadBalancerByID(caller, id)
	if !ok {
		return &NotFoundError{"LoadBalancer", id}
	}
	for k, v := range attrs {
		var err error
		only := func(want, why string) {
			if v != want {
				err = refuse("attribute %s: %s (only %q)", k, why, want)
			}
		}
		switch k {
		case "deletion_protection.enabled":
			lb.DeletionProtection, err = boolAttr(k, v)
		case "load_balancing.cross_zone.enabled":
			lb.CrossZone, err = boolAttr(k, v)
		case "access_logs.s3.enabled":
			if _, err = boolAttr(k, v); err == nil {
				only("false", "pvlink has no S3 to write access logs to; `pvlink flowlogs` prints the ENIs' flow log records")
			}
		case "access_logs.s3.bucket", "access_logs.s3.prefix":
			only("", "pvlink has no S3 to write access logs to")
		case "dns_record.client_routing_policy":
			only("any_availability_zone", "the load balancer's DNS name is not served by the fabric's resolver, so no AZ affinity applies to it")
		case "zonal_shift.config.enabled":
			if _, err = boolAttr(k, v); err == nil {
				only("false", "pvlink has no zonal shift; `pvlink fault az-down` takes an AZ out")
			}
		default:
			err = refuse("load balancer attribute key %q is not recognized (pvlink lists %s)", k, strings.Join(LoadBalancerAttributes, ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkProtectedLeaving refuses a model change that would drop a load
// balancer whose deletion protection is on.
func (s *State) checkProtectedLeaving(next *State) error {
	for _, lb := range s.LoadBalancers {
		if lb.DeletionProtection && !next.hasLoadBalancer(lb.ID) {
			return &OperationNotPermittedError{fmt.Sprintf("load balancer %s has deletion protection enabled: turn it off (modify-load-balancer-attributes --attributes Key=deletion_protection.enabled,Value=false) before removing it", lb.Name)}
		}
	}
	return nil
}

func (s *State) hasLoadBalancer(id string) bool {
	for _, lb := range s.LoadBalancers {
		if lb.ID == id {
			return true
		}
	}
	return false
}

// TargetGroupAttributes are the attributes ELBv2 lets a target group of a
// Network Load Balancer set, as pvlink serves them.
var TargetGroupAttributes = []string{
	"proxy_protocol_v2.enabled",
	"deregistration_delay.timeout_seconds",
	"deregistration_delay.connection_termination.enabled",
	"stickiness.enabled",
	"stickiness.type",
	"target_health_state.unhealthy.connection_termination.enabled",
	"target_health_state.unhealthy.draining_interval_seconds",
	"preserve_client_ip.enabled",
	"load_balancing.cross_zone.enabled",
	"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
	"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
	"target_group_health.dns_failover.minimum_healthy_targets.count",
	"target_group_health.dns_failover.minimum_healthy_targets.percentage",
}

// percentOrOff is a percentage attribute's value: off for 0.
func percentOrOff(p int) string {
	if p == 0 {
		return "off"
	}
	return strconv.Itoa(p)
}

// percentAttr takes off or a whole percentage from 1 to 100.
func percentAttr(k, v string) (int, error) {
	if v == "off" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, refuse("attribute %s: %q is not off or a whole percentage from 1 to 100", k, v)
	}
	return n, nil
}

// useLBConfig is a target group's cross-zone value that defers to its load
// balancers'.
const useLBConfig = "use_load_balancer_configuration"

// DrainFor is how long a deregistered target of the group drains: its
// deregistration delay, 300 s unless set ("0s": none).
func (tg *TargetGroupState) DrainFor() time.Duration {
	if d, err := time.ParseDuration(tg.DeregistrationDelay); err == nil && d >= 0 {
		return d
	}
	return 300 * time.Second
}

// Attributes are a target group's attributes, as strings.
func (tg *TargetGroupState) Attributes() map[string]string {
	dereg, unhealthyDraining := int(tg.DrainFor()/time.Second), 0
	if d, err := time.ParseDuration(tg.UnhealthyDraining); err == nil && d > 0 {
		unhealthyDraining = int(d / time.Second)
	}
	return map[string]string{
		"proxy_protocol_v2.enabled":                                                      strconv.FormatBool(tg.ProxyProtocolV2),
		"deregistration_delay.timeout_seconds":                                           strconv.Itoa(dereg),
		"deregistration_delay.connection_termination.enabled":                            strconv.FormatBool(tg.ConnectionTermination),
		"stickiness.enabled":                                                             "false",
		"stickiness.type":                                                                "source_ip",
		"target_health_state.unhealthy.connection_termination.enabled":                   strconv.FormatBool(!tg.KeepUnhealthy),
		"target_health_state.unhealthy.draining_interval_seconds":                        strconv.Itoa(unhealthyDraining),
		"preserve_client_ip.enabled":                                                     strconv.FormatBool(tg.PreserveClientIP),
		"load_balancing.cross_zone.enabled":                                              cmpOr(tg.CrossZone, useLBConfig),
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count":      strconv.Itoa(max(1, tg.MinHealthyCount)),
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": percentOrOff(tg.MinHealthyPercent),
		"target_group_health.dns_failover.minimum_healthy_targets.count":                 "1",
		"target_group_health.dns_failover.minimum_healthy_targets.percentage":            "off",
	}
}

// SetTargetGroupAttributes changes attributes of a target group of the
// caller's; each value is checked as ELBv2 checks it.
func (s *State) SetTargetGroupAttributes(caller, id string, attrs map[string]string) error {
	tg, ok := s.TargetGroupByID(caller, id)
	if !ok {
		return &NotFoundError{"TargetGroup", id}
	}
	for k, v := range attrs {
		boolean := func() (bool, error) { return boolAttr(k, v) }
		seconds := func(lo, hi int) (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return 0, refuse("attribute %s: %q is not a whole number of seconds from %d to %d", k, v, lo, hi)
			}
			return n, nil
		}
		var err error
		switch k {
		case "proxy_protocol_v2.enabled":
			tg.ProxyProtocolV2, err = boolean()
		case "deregistration_delay.connection_termination.enabled":
			tg.ConnectionTermination, err = boolean()
		case "deregistration_delay.timeout_seconds":
			var n int
			if n, err = seconds(0, 3600); err == nil {
				tg.DeregistrationDelay = (time.Duration(n) * time.Second).String()
			}
		case "tcp.idle_timeout.seconds":
			err = refuse("attribute %s is a listener attribute of a Network Load Balancer, not a target group's: set it with ModifyListenerAttributes (aws elbv2 modify-listener-attributes --listener-arn ARN --attributes Key=%s,Value=N)", k, k)
		case "target_health_state.unhealthy.connection_termination.enabled":
			var terminate bool
			terminate, err = boolean()
			tg.KeepUnhealthy = !terminate
		case "target_health_state.unhealthy.draining_interval_seconds":
			var n int
			if n, err = seconds(0, 360000); err == nil {
				tg.UnhealthyDraining = ""
				if n > 0 {
					tg.UnhealthyDraining = (time.Duration(n) * time.Second).String()
				}
			}
		case "load_balancing.cross_zone.enabled":
			switch v {
			case "true", "false":
				tg.CrossZone = v
			case useLBConfig:
				tg.CrossZone = ""
			default:
				err = refuse("attribute %s: %q is not true, false or %s", k, v, useLBConfig)
			}
		case "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count":
			n, cerr := strconv.Atoi(v)
			if cerr != nil || n < 1 {
				err = refuse("attribute %s: %q is not a whole number of targets from 1", k, v)
			}
			tg.MinHealthyCount = n
		case "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage":
			tg.MinHealthyPercent, err = percentAttr(k, v)
		case "target_group_health.dns_failover.minimum_healthy_targets.count", "target_group_health.dns_failover.minimum_healthy_targets.percentage":
			if v != map[bool]string{true: "1", false: "off"}[strings.HasSuffix(k, ".count")] {
				err = refuse("attribute %s: pvlink's endpoint names follow the forwarders that carry traffic, not target health; only its default is taken", k)
			}
		case "preserve_client_ip.enabled":
			// Kept and shown: PrivateLink traffic reaches targets from
			// the node's address whatever it says, as on AWS.
			tg.PreserveClientIP, err = boolean()
		case "stickiness.enabled":
			if v != "false" {
				err = refuse("attribute stickiness.enabled: pvlink's target groups choose targets by a hash of the flow, without stickiness")
			}
		case "stickiness.type":
			if v != "source_ip" {
				err = refuse("attribute stickiness.type: only source_ip exists for a Network Load Balancer")
			}
		default:
			err = refuse("attribute %q is not one of %s", k, strings.Join(TargetGroupAttributes, ", "))
		}
		if err != nil {
			return err
		}
	}
	if tg.UnhealthyDraining != "" && !tg.KeepUnhealthy {
		return refuse("attribute target_health_state.unhealthy.draining_interval_seconds can be set only while target_health_state.unhealthy.connection_termination.enabled is false")
	}
	return nil
}
