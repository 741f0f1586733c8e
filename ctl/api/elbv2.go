package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"pvlink.dev/pvlink/ctl"
)

const elbNamespace = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

// The ELBv2 answers: PascalCase members, lists of <member>s, the result
// inside <ActionResult> (queryproto.go).

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

// ownsLoadBalancer reports whether arn names a load balancer of caller's.
func (m *modelView) ownsLoadBalancer(caller, arn string) bool {
	return slices.ContainsFunc(m.LoadBalancers, func(lb ctl.LBState) bool { return lb.OwnerID == caller && m.lbARN(lb) == arn })
}

// elbv2 runs one ELBv2 action for a caller.
func (h *Handler) elbv2(caller string, q query) (any, error) {
	m := &modelView{h.b.Model()}
	action := q.str("Action")
	for _, area := range []func(*modelView, string, string, query) (any, error){
		h.elbLoadBalancers, h.elbTargetGroups, h.elbListeners, h.elbTags,
	} {
		if out, err := area(m, caller, action, q); err != errNotThisArea {
			return out, err
		}
	}
	switch action {
	case "":
		return nil, &apiError{400, "MissingAction", "The request must contain the parameter Action"}
	default:
		return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves the Network Load Balancer actions of ELBv2)", action)}
	}
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
