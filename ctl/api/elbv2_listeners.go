package api

import (
	"fmt"
	"slices"
	"strconv"

	"pvlink.dev/pvlink/ctl"
)

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

func (m *modelView) listenerOut(lb ctl.LBState, l ctl.Listener) listener {
	out := listener{ARN: m.listenerARN(lb, l), LBArn: m.lbARN(lb), Port: l.Port, Protocol: "TCP"}
	for _, tg := range m.TargetGroups {
		if tg.Name == l.TargetGroup {
			out.DefaultActions = []listenerAction{{Type: "forward", TargetGroupArn: m.tgARN(tg)}}
		}
	}
	return out
}

// elbListeners runs the actions on listeners. Any other action it answers
// with errNotThisArea.
func (h *Handler) elbListeners(m *modelView, caller, action string, q query) (any, error) {
	switch action {
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

	case "DescribeListenerAttributes", "ModifyListenerAttributes":
		id := arnIDs([]string{q.str("ListenerArn")})[0]
		if action == "ModifyListenerAttributes" {
			attrs := attributesOf(q)
			if len(attrs) == 0 {
				return nil, &apiError{400, "ValidationError", "name the attributes to change (Attributes.member.N.Key and .Value)"}
			}
			if _, err := h.b.Change(func(s *ctl.State) error { return s.SetListenerAttributes(caller, id, attrs) }); err != nil {
				return nil, err
			}
			m = &modelView{h.b.Model()}
		}
		_, l, ok := m.ListenerByID(caller, id)
		if !ok {
			return nil, &apiError{400, "ListenerNotFound", fmt.Sprintf("Listener '%s' not found", q.str("ListenerArn"))}
		}
		return attributesOut(ctl.ListenerAttributeKeys, m.ListenerAttributes(*l)), nil

	case "DeleteListener":
		_, err := h.b.Change(func(s *ctl.State) error { return s.DeleteListener(caller, arnIDs([]string{q.str("ListenerArn")})[0]) })
		return struct{}{}, err

	default:
		return nil, errNotThisArea
	}
}
