package api

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
)

// VPC Flow Logs' EC2 actions: CreateFlowLogs, DescribeFlowLogs,
// DeleteFlowLogs, for VPCs, subnets and network interfaces, with a file on
// this host as the destination.

type flowLogOut struct {
	Created         string    `xml:"creationTime"`
	DeliverStatus   string    `xml:"deliverLogsStatus"`
	ID              string    `xml:"flowLogId"`
	Status          string    `xml:"flowLogStatus"`
	LogGroupName    string    `xml:"logGroupName,omitempty"`
	ResourceID      string    `xml:"resourceId"`
	TrafficType     string    `xml:"trafficType"`
	DestinationType string    `xml:"logDestinationType"`
	Destination     string    `xml:"logDestination,omitempty"`
	LogFormat       string    `xml:"logFormat"`
	Interval        int       `xml:"maxAggregationInterval"`
	Tags            []tagItem `xml:"tagSet>item"`
}

// flowLogAction serves a flow log action; ok is false for any other.
func (h *Handler) flowLogAction(caller, action string, q query) (out any, err error, ok bool) {
	switch action {
	case "CreateFlowLogs":
		out, err = h.createFlowLogs(caller, q)
	case "DescribeFlowLogs":
		out, err = h.describeFlowLogs(caller, q)
	case "DeleteFlowLogs":
		ids := q.list("FlowLogId")
		if len(ids) == 0 {
			return nil, &apiError{400, "MissingParameter", "The request must contain the parameter FlowLogId"}, true
		}
		var failed map[string]error
		_, err = h.b.Change(func(s *ctl.State) error {
			failed = s.DeleteFlowLogs(caller, ids)
			return nil
		})
		if err == nil {
			out = struct {
				Set []unsuccessful `xml:"unsuccessful>item"`
			}{unsuccessfulItems(ids, failed)}
		}
	default:
		return nil, nil, false
	}
	return out, err, true
}

func unsuccessfulItems(ids []string, failed map[string]error) []unsuccessful {
	var out []unsuccessful
	for _, id := range ids {
		if err := failed[id]; err != nil {
			code, _ := ec2Code(err)
			out = append(out, unsuccessful{Code: code, Message: err.Error(), ResourceID: id})
		}
	}
	return out
}

func (h *Handler) createFlowLogs(caller string, q query) (any, error) {
	spec := ctl.FlowLogSpec{
		ResourceIDs: q.list("ResourceId"), ResourceType: q.str("ResourceType"), TrafficType: q.str("TrafficType"),
		DestinationType: q.str("LogDestinationType"), Destination: q.str("LogDestination"),
		LogGroupName: q.str("LogGroupName"), LogFormat: q.str("LogFormat"),
	}
	if spec.ResourceType == "" || len(spec.ResourceIDs) == 0 {
		return nil, &apiError{400, "MissingParameter", "The request must contain the parameters ResourceId and ResourceType"}
	}
	if v := q.str("MaxAggregationInterval"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, &apiError{400, "InvalidParameterValue", "MaxAggregationInterval " + v + " is not a number"}
		}
		spec.Interval = n
	}
	if dest := strings.TrimPrefix(spec.Destination, "file://"); spec.DestinationType == "s3" && dest != "" {
		if err := ctl.IsFlowLogFile(dest); err != nil {
			return nil, &apiError{400, "InvalidParameter", "LogDestination: " + err.Error()}
		}
	}
	var ids []string
	var failed map[string]error
	tags := q.tags("TagSpecification.1.Tag")
	token := q.str("ClientToken")
	_, err := h.b.Change(func(s *ctl.State) error {
		if token != "" {
			for _, fl := range s.FlowLogs {
				if fl.OwnerID == caller && fl.ClientToken == token {
					ids = append(ids, fl.ID) // the same request again
				}
			}
			if len(ids) > 0 {
				return nil
			}
		}
		var err error
		ids, failed, err = s.CreateFlowLogs(caller, spec, h.now())
		if err != nil {
			return err
		}
		for i := range s.FlowLogs {
			if slices.Contains(ids, s.FlowLogs[i].ID) {
				s.FlowLogs[i].ClientToken = token
			}
		}
		if len(ids) > 0 && len(tags) > 0 {
			return s.TagResources(caller, ids, tags)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		Token string         `xml:"clientToken,omitempty"`
		IDs   []string       `xml:"flowLogIdSet>item"`
		Set   []unsuccessful `xml:"unsuccessful>item"`
	}{token, ids, unsuccessfulItems(spec.ResourceIDs, failed)}, nil
}

func (h *Handler) describeFlowLogs(caller string, q query) (any, error) {
	m := h.b.Model()
	f := q.filters()
	if err := unknownFilters(f, "flow-log-id", "resource-id", "traffic-type", "log-destination-type", "log-group-name", "deliver-log-status"); err != nil {
		return nil, err
	}
	ids := q.list("FlowLogId")
	var out []flowLogOut
	for _, fl := range m.FlowLogs {
		if fl.OwnerID != caller || len(ids) > 0 && !slices.Contains(ids, fl.ID) {
			continue
		}
		if !match(f, map[string][]string{"flow-log-id": {fl.ID}, "resource-id": {fl.ResourceID}, "traffic-type": {fl.TrafficType},
			"log-destination-type": {fl.DestinationType}, "log-group-name": {fl.LogGroupName}, "deliver-log-status": {"SUCCESS"}}) {
			continue
		}
		o := flowLogOut{
			Created: fl.Created.Format(time.RFC3339Nano), DeliverStatus: "SUCCESS", ID: fl.ID, Status: "ACTIVE",
			LogGroupName: fl.LogGroupName, ResourceID: fl.ResourceID, TrafficType: fl.TrafficType,
			DestinationType: fl.DestinationType, LogFormat: ctl.FlowLogFormat, Interval: fl.Interval, Tags: tagsOf(m, fl.ID),
		}
		if fl.DestinationType == "s3" {
			o.Destination = fl.Destination
		}
		out = append(out, o)
	}
	page, next, err := page(q, out)
	if err != nil {
		return nil, err
	}
	return struct {
		Set  []flowLogOut `xml:"flowLogSet>item"`
		Next string       `xml:"nextToken,omitempty"`
	}{page, next}, nil
}
