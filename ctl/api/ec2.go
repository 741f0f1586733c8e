package api

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"pvlink.dev/pvlink/ctl"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// The EC2 answers, with botocore's locationNames: lists are <item>s.

type serviceType struct {
	ServiceType string `xml:"serviceType"`
}

type unsuccessful struct {
	Code       string `xml:"error>code"`
	Message    string `xml:"error>message"`
	ResourceID string `xml:"resourceId"`
}

// ec2Response is every EC2 answer: the action's name, the request id, and
// the action's members.
type ec2Response struct {
	XMLName   xml.Name
	Namespace string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Members   []byte `xml:",innerxml"`
}

// members encodes a struct's fields as elements with no element of its own
// around them (its fields are the answer's members).
func members(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	var b bytes.Buffer
	if err := xml.NewEncoder(&b).EncodeElement(v, xml.StartElement{Name: xml.Name{Local: "m"}}); err != nil {
		return nil, err
	}
	out := bytes.TrimPrefix(b.Bytes(), []byte("<m>"))
	return bytes.TrimSuffix(out, []byte("</m>")), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errNotThisArea is what an area's actions (ec2_*.go) answer for an
// action that is not theirs.
var errNotThisArea = errors.New("not an action of this area")

// ec2 runs one EC2 action for a caller: each area's actions are in a file
// of their own (ec2_endpoints.go, ec2_services.go, ...).
func (h *Handler) ec2(caller, region string, q query) (any, error) {
	if q.str("DryRun") != "true" {
		return h.ec2Run(caller, region, q)
	}
	// A dry run: the action runs against a copy of the model that is then
	// dropped, so it refuses what it would refuse and changes nothing;
	// what it would do is answered as AWS answers a permitted dry run.
	dry := &Handler{b: &dryRun{Backend: h.b, m: h.b.Model()}, log: h.log, now: h.now}
	if _, err := dry.ec2Run(caller, region, q); err != nil {
		return nil, err
	}
	return nil, &apiError{412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."}
}

// dryRun is the backend of a dry run: its changes go to a copy of the
// model that only the dry run sees (an action reads back what it made),
// which is then dropped; nothing is verified over DNS.
type dryRun struct {
	Backend
	m *ctl.State
}

func (d *dryRun) Model() *ctl.State { return d.m }

func (d *dryRun) Change(op func(*ctl.State) error) (uint64, error) {
	next := d.m.Clone()
	if err := op(next); err != nil {
		return 0, err
	}
	next.Version++
	d.m = next
	return next.Version, nil
}

func (d *dryRun) VerifyPrivateDNS(caller, serviceID string) (string, error) { return "", nil }

// ec2Run runs one EC2 action.
func (h *Handler) ec2Run(caller, region string, q query) (any, error) {
	m := h.b.Model()
	action := q.str("Action")
	for _, area := range []func(*ctl.State, string, string, string, query) (any, error){
		h.ec2Endpoints, h.ec2Services, h.ec2Notifications, h.ec2SecurityGroups, h.ec2PrefixLists, h.ec2VPCs, h.ec2Tags,
	} {
		if out, err := area(m, caller, region, action, q); err != errNotThisArea {
			return out, err
		}
	}
	switch action {
	case "":
		return nil, &apiError{400, "MissingAction", "The request must contain the parameter Action"}
	default:
		if out, err, ok := h.flowLogAction(caller, action, q); ok {
			return out, err
		}
		return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves the PrivateLink and flow log actions of EC2)", action)}
	}
}

// batch runs an operation on each id as one change: the ids it refuses
// come back as unsuccessful items, the rest are committed together, as
// AWS's batch actions answer.
func (h *Handler) batch(ids []string, op func(*ctl.State, string) error) (any, error) {
	var failed []unsuccessful
	_, err := h.b.Change(func(s *ctl.State) error {
		failed = nil
		for _, id := range ids {
			if err := op(s, id); err != nil {
				code, _ := ec2Code(err)
				failed = append(failed, unsuccessful{Code: code, Message: err.Error(), ResourceID: id})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		Set []unsuccessful `xml:"unsuccessful>item"`
	}{failed}, nil
}

// arnIDs takes the ids ARNs end with (load balancers, target groups).
func arnIDs(arns []string) []string {
	out := make([]string, len(arns))
	for i, a := range arns {
		out[i] = a[strings.LastIndexByte(a, '/')+1:]
	}
	return out
}

// ec2Code is the EC2 error code and HTTP status of a model error.
func ec2Code(err error) (string, int) {
	var nf *ctl.NotFoundError
	var me *ctl.ModelError
	var qe *ctl.QuotaError
	var ae *apiError
	var de *ctl.DependencyError
	var dup *ctl.DuplicateError
	var ue *ctl.UnauthorizedError
	var cd *ctl.CannotDeleteError
	var vm *ctl.VersionMismatchError
	switch {
	case errors.As(err, &ae):
		return ae.code, ae.status
	case errors.As(err, &vm):
		return "PrefixListVersionMismatch", 400
	case ctl.IsPrefixListModification(err):
		return "InvalidPrefixListModification", 400
	case errors.As(err, &cd):
		return "CannotDelete", 400
	case errors.As(err, &ue):
		return "UnauthorizedOperation", 403
	case errors.As(err, &de):
		return "DependencyViolation", 400
	case errors.As(err, &dup):
		switch dup.Kind {
		case "Subnet":
			return "InvalidSubnet.Conflict", 400
		case "SecurityGroup":
			return "InvalidGroup.Duplicate", 400
		case "Permission":
			return "InvalidPermission.Duplicate", 400
		case "FlowLogAlreadyExists":
			return "FlowLogAlreadyExists", 400
		}
		return "InvalidParameterValue", 400
	case errors.As(err, &nf):
		switch nf.Kind {
		case "ServiceName":
			return "InvalidServiceName", 400
		case "ConnectionNotification":
			return "InvalidConnectionNotification", 400
		case "ID":
			return "InvalidID", 400
		case "GroupId":
			return "InvalidGroup.NotFound", 400
		case "FlowLogId":
			return "InvalidFlowLogId.NotFound", 400
		case "LoadBalancer":
			return "InvalidParameterValue", 400 // an NLB ARN EC2 does not know
		default:
			return "Invalid" + nf.Kind + ".NotFound", 400
		}
	case errors.As(err, &qe):
		return "VpcEndpointLimitExceeded", 400
	case errors.As(err, &me):
		return "InvalidParameter", 400
	}
	return "InternalError", http.StatusInternalServerError
}
