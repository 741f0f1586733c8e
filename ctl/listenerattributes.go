package ctl

import (
	"slices"
	"strconv"
	"time"
)

// A Network Load Balancer's listener has one attribute, as in ELBv2
// (DescribeListenerAttributes, ModifyListenerAttributes): its TCP idle
// timeout. A listener that sets none has its target group's (a topology's
// target_groups[].idle_timeout), else the NLB default, 350 s.

// ListenerAttributeKeys are the attributes a listener lists.
var ListenerAttributeKeys = []string{"tcp.idle_timeout.seconds"}

// defaultIdleTimeout is an NLB's TCP idle timeout.
const defaultIdleTimeout = 350 * time.Second

// ListenerByID finds a listener of a load balancer of the caller's, by the
// last part of its ARN.
func (s *State) ListenerByID(caller, id string) (*LBState, *Listener, bool) {
	for i := range s.LoadBalancers {
		lb := &s.LoadBalancers[i]
		if lb.OwnerID != caller {
			continue
		}
		if j := slices.IndexFunc(lb.Listeners, func(l Listener) bool { return l.ID == id }); j >= 0 {
			return lb, &lb.Listeners[j], true
		}
	}
	return nil, nil, false
}

// IdleTimeout is the TCP idle timeout in force on listener l: its own,
// else its target group's, else 350 s.
func (s *State) IdleTimeout(l Listener) time.Duration {
	if l.IdleTimeout > 0 {
		return l.IdleTimeout
	}
	for _, tg := range s.TargetGroups {
		if tg.Name == l.TargetGroup {
			if d := time.Duration(parseDuration(tg.IdleTimeout)); d > 0 {
				return d
			}
		}
	}
	return defaultIdleTimeout
}

// ListenerAttributes are listener l's attributes, as strings.
func (s *State) ListenerAttributes(l Listener) map[string]string {
	return map[string]string{"tcp.idle_timeout.seconds": strconv.Itoa(int(s.IdleTimeout(l) / time.Second))}
}

// SetListenerAttributes changes attributes of a listener of the caller's;
// each value is checked as ELBv2 checks it. A custom idle timeout is
// refused on a load balancer whose service is offered in other Regions,
// as cross-Region access refuses such a load balancer.
func (s *State) SetListenerAttributes(caller, id string, attrs map[string]string) error {
	lb, l, ok := s.ListenerByID(caller, id)
	if !ok {
		return &NotFoundError{"Listener", id}
	}
	for k, v := range attrs {
		switch k {
		case "tcp.idle_timeout.seconds":
			n, err := strconv.Atoi(v)
			if err != nil || n < 60 || n > 6000 {
				return refuse("attribute %s: %q is not a whole number of seconds from 60 to 6000", k, v)
			}
			d := time.Duration(n) * time.Second
			if custom(d) {
				if svc := s.crossRegionService(lb.Name); svc != "" {
					return refuse("a custom TCP idle timeout is not supported on a Network Load Balancer whose service %s is offered in other Regions (cross-Region access)", svc)
				}
			}
			l.IdleTimeout = d
		default:
			return refuse("attribute %q is not a listener attribute of a Network Load Balancer (it has %s)", k, ListenerAttributeKeys[0])
		}
	}
	return nil
}

// crossRegionService names a service of load balancer lbName offered in a
// Region other than its host Region, or "".
func (s *State) crossRegionService(lbName string) string {
	for _, svc := range s.Services {
		host := cmpOr(svc.Region, s.Region)
		if slices.Contains(svc.LoadBalancers, lbName) && slices.ContainsFunc(svc.SupportedRegions, func(r string) bool { return r != host }) {
			return svc.ID
		}
	}
	return ""
}
