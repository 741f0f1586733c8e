package ctl

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// VPC Flow Logs: a flow log records the traffic of the ENIs of a VPC, a
// subnet or one network interface, in the default version 2 format, into
// a file on this host. The forwarders aggregate; ctld collects their
// records and writes them (flowlogwriter.go).

// FlowLogFormat is the default (version 2) record format, the only one
// pvlink writes.
const FlowLogFormat = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"

// FlowLogState is one flow log.
type FlowLogState struct {
	ID           string    `json:"id"`
	OwnerID      string    `json:"owner_id"`
	Created      time.Time `json:"created"`
	ResourceID   string    `json:"resource_id"`
	ResourceType string    `json:"resource_type"` // VPC, Subnet or NetworkInterface
	TrafficType  string    `json:"traffic_type"`  // ACCEPT, REJECT or ALL
	// DestinationType is s3 or cloud-watch-logs, as the API names them;
	// Destination is the file the records go to either way (a log group
	// is a file of the fabric's).
	DestinationType string `json:"destination_type"`
	Destination     string `json:"destination"`
	LogGroupName    string `json:"log_group_name,omitempty"`
	// Interval is the maximum aggregation interval, in seconds (AWS: 60
	// or 600; pvlink takes 1 to 600).
	Interval int `json:"max_aggregation_interval"`
	// ClientToken makes CreateFlowLogs idempotent for its caller: the
	// same token again answers the flow logs it made.
	ClientToken string `json:"client_token,omitempty"`
}

// FlowLogSpec is what CreateFlowLogs asks for, for each resource.
type FlowLogSpec struct {
	ResourceIDs     []string
	ResourceType    string
	TrafficType     string
	DestinationType string
	Destination     string
	LogGroupName    string
	LogFormat       string
	Interval        int
}

// FlowLogGroupFile is where the records of a log group go: a file of the
// fabric's.
func FlowLogGroupFile(fabric, group string) string {
	return filepath.Join(Dir(fabric), "flow-logs", group+".log")
}

// CreateFlowLogs makes one flow log per resource; a resource that does not
// exist or is not the caller's is refused alone (the answer's unsuccessful
// items), as in EC2.
func (s *State) CreateFlowLogs(caller string, spec FlowLogSpec, now time.Time) (ids []string, failed map[string]error, err error) {
	switch spec.ResourceType {
	case "VPC", "Subnet", "NetworkInterface":
	default:
		return nil, nil, refuse("ResourceType %q: pvlink records flow logs of a VPC, a Subnet or a NetworkInterface", spec.ResourceType)
	}
	switch spec.TrafficType {
	case "ACCEPT", "REJECT", "ALL":
	case "":
		spec.TrafficType = "ALL"
	default:
		return nil, nil, refuse("TrafficType %q: use ACCEPT, REJECT or ALL", spec.TrafficType)
	}
	if spec.LogFormat != "" && strings.Join(strings.Fields(spec.LogFormat), " ") != FlowLogFormat {
		return nil, nil, refuse("LogFormat: pvlink writes the default format only (%s)", FlowLogFormat)
	}
	if spec.Interval == 0 {
		// One minute, so that records come while one looks (AWS's API
		// takes 600 when none is given).
		spec.Interval = 60
	}
	if spec.Interval < 1 || spec.Interval > 600 {
		return nil, nil, refuse("MaxAggregationInterval %d: use 60 or 600 (pvlink also takes 1 to 600 seconds)", spec.Interval)
	}
	switch spec.DestinationType {
	case "", "cloud-watch-logs":
		spec.DestinationType = "cloud-watch-logs"
		if spec.LogGroupName == "" {
			return nil, nil, refuse("LogGroupName is required for a flow log to cloud-watch-logs (pvlink writes the group to %s)", FlowLogGroupFile(s.Name, "GROUP"))
		}
		if strings.ContainsAny(spec.LogGroupName, "/\x00") || spec.LogGroupName == "." || spec.LogGroupName == ".." {
			return nil, nil, refuse("LogGroupName %q: pvlink keeps a log group as a file, so no '/'", spec.LogGroupName)
		}
		spec.Destination = FlowLogGroupFile(s.Name, spec.LogGroupName)
	case "s3":
		// An S3 ARN has nowhere to go here: the destination is a file.
		dest := strings.TrimPrefix(spec.Destination, "file://")
		if !filepath.IsAbs(dest) {
			return nil, nil, refuse("LogDestination %q: give the absolute path of a file on this host (or file:///path)", spec.Destination)
		}
		spec.Destination = filepath.Clean(dest)
	default:
		return nil, nil, refuse("LogDestinationType %q: pvlink writes to a file, as s3 (LogDestination: a path) or cloud-watch-logs (LogGroupName)", spec.DestinationType)
	}
	if len(spec.ResourceIDs) == 0 {
		return nil, nil, refuse("ResourceIds: give at least one resource")
	}
	failed = map[string]error{}
	for _, id := range spec.ResourceIDs {
		if err := s.flowLogResource(caller, spec.ResourceType, id); err != nil {
			failed[id] = err
			continue
		}
		if slices.ContainsFunc(s.FlowLogs, func(f FlowLogState) bool {
			return f.ResourceID == id && f.TrafficType == spec.TrafficType && f.Destination == spec.Destination
		}) {
			failed[id] = &DuplicateError{Kind: "FlowLogAlreadyExists", Msg: "This flow log already exists: same resource, traffic type and destination"}
			continue
		}
		f := FlowLogState{
			ID: newID("fl-"), OwnerID: caller, Created: now.UTC(), ResourceID: id, ResourceType: spec.ResourceType,
			TrafficType: spec.TrafficType, DestinationType: spec.DestinationType, Destination: spec.Destination,
			LogGroupName: spec.LogGroupName, Interval: spec.Interval,
		}
		s.FlowLogs = append(s.FlowLogs, f)
		ids = append(ids, f.ID)
	}
	return ids, failed, nil
}

// flowLogResource checks that the caller owns a VPC, subnet or ENI.
func (s *State) flowLogResource(caller, typ, id string) error {
	for _, v := range s.VPCs {
		switch typ {
		case "VPC":
			if v.ID == id && v.OwnerID == caller {
				return nil
			}
		case "Subnet":
			for _, sn := range v.Subnets {
				if sn.ID == id && v.OwnerID == caller {
					return nil
				}
			}
		}
	}
	if typ == "NetworkInterface" {
		for _, e := range s.Endpoints {
			for _, eni := range e.ENIs {
				if eni.ID == id && e.OwnerID == caller {
					return nil
				}
			}
		}
		return &NotFoundError{Kind: "NetworkInterfaceID", ID: id}
	}
	if typ == "Subnet" {
		return &NotFoundError{Kind: "SubnetID", ID: id}
	}
	return &NotFoundError{Kind: "VpcID", ID: id}
}

// DeleteFlowLogs deletes the caller's flow logs; an id that is not one is
// refused alone.
func (s *State) DeleteFlowLogs(caller string, ids []string) map[string]error {
	failed := map[string]error{}
	for _, id := range ids {
		i := slices.IndexFunc(s.FlowLogs, func(f FlowLogState) bool { return f.ID == id && f.OwnerID == caller })
		if i < 0 {
			failed[id] = &NotFoundError{Kind: "FlowLogId", ID: id}
			continue
		}
		s.FlowLogs = slices.Delete(s.FlowLogs, i, i+1)
	}
	return failed
}

// FlowLogsOf gives the flow logs that cover an ENI of an endpoint.
func (s *State) FlowLogsOf(e EndpointState, eni ENIState) []FlowLogState {
	var out []FlowLogState
	for _, f := range s.FlowLogs {
		if f.ResourceID == eni.ID || f.ResourceID == eni.SubnetID || f.ResourceID == e.VPCID {
			out = append(out, f)
		}
	}
	return out
}

// flowLogInterval is the aggregation interval of an ENI: the shortest of
// its flow logs', 0 when none covers it.
func (s *State) flowLogInterval(e EndpointState, eni ENIState) snapshot.Duration {
	best := 0
	for _, f := range s.FlowLogsOf(e, eni) {
		if best == 0 || f.Interval < best {
			best = f.Interval
		}
	}
	return snapshot.Duration(time.Duration(best) * time.Second)
}

// FlowLogLine is a record in the default format, as the flow log's
// account sees it.
func FlowLogLine(account string, r snapshot.FlowLogRecord) string {
	return fmt.Sprintf("2 %s %s %s %s %d %d %d %d %d %d %d %s OK", account, r.ENI, r.Src, r.Dst, r.SrcPort, r.DstPort, r.Protocol, r.Packets, r.Bytes, r.Start, r.End, r.Action)
}

// FlowLogHeader is the first line of a flow log file, as in S3.
const FlowLogHeader = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
