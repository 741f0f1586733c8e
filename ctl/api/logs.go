package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"pvlink.dev/pvlink/ctl"
)

// CloudWatch Logs, as a flow log's reader meets it. A flow log whose
// destination is cloud-watch-logs writes its log group, a file of the
// fabric's (ctl.FlowLogGroupFile); here the group reads as in AWS, one log
// stream per network interface, named by the interface and the flow log's
// traffic type (eni-...-all, -accept, -reject), an event per record, its
// timestamp the record's start. The reading actions are served, in the
// JSON 1.1 protocol every client speaks to CloudWatch Logs:
// DescribeLogGroups, DescribeLogStreams, GetLogEvents and FilterLogEvents
// (filter patterns of terms, and of space-delimited fields as the VPC
// guide writes them), and Logs Insights queries (logsquery.go). An account
// sees the groups of its own flow logs.
// The groups are the flow logs': writing to them, or making others, is
// refused.

const logsTarget = "Logs_20140328."

// isLogs reports whether r is a CloudWatch Logs call.
func isLogs(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), logsTarget)
}

// logsInput holds the members of the served actions' requests.
type logsInput struct {
	LogGroupName        string   `json:"logGroupName"`
	LogGroupNamePrefix  string   `json:"logGroupNamePrefix"`
	LogGroupNamePattern string   `json:"logGroupNamePattern"`
	LogStreamName       string   `json:"logStreamName"`
	LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
	LogStreamNames      []string `json:"logStreamNames"`
	StartTime           *int64   `json:"startTime"`
	EndTime             *int64   `json:"endTime"`
	StartFromHead       bool     `json:"startFromHead"`
	FilterPattern       string   `json:"filterPattern"`
	Limit               int      `json:"limit"`
	NextToken           string   `json:"nextToken"`
	// Logs Insights (logsquery.go).
	LogGroupNames       []string `json:"logGroupNames"`
	LogGroupIdentifiers []string `json:"logGroupIdentifiers"`
	QueryString         string   `json:"queryString"`
	QueryLanguage       string   `json:"queryLanguage"`
	QueryID             string   `json:"queryId"`
	Status              string   `json:"status"`
	MaxResults          int      `json:"maxResults"`
	LogRecordPointer    string   `json:"logRecordPointer"`
}

func (h *Handler) serveLogs(w http.ResponseWriter, r *http.Request, id string) {
	write := func(status int, v any) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(err error) {
		code, status := elbCode(err)
		write(status, map[string]string{"__type": code, "message": err.Error()})
	}
	creds, body, ok := h.admit(r, "logs", fail)
	if !ok {
		return
	}
	var in logsInput
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			fail(&apiError{400, "SerializationException", "the body is not the action's JSON: " + err.Error()})
			return
		}
	}
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), logsTarget)
	out, err := h.logs(creds.Account, action, in)
	if err != nil {
		h.log.Info("api refused", "service", "logs", "action", action, "account", creds.Account, "err", err)
		fail(err)
		return
	}
	write(http.StatusOK, out)
}

func (h *Handler) logs(caller, action string, in logsInput) (any, error) {
	if in.Limit < 0 {
		return nil, logsInvalid("limit must be positive")
	}
	switch action {
	case "DescribeLogGroups":
		return h.describeLogGroups(caller, in)
	case "DescribeLogStreams":
		return h.describeLogStreams(caller, in)
	case "GetLogEvents":
		return h.getLogEvents(caller, in)
	case "FilterLogEvents":
		return h.filterLogEvents(caller, in)
	case "StartQuery":
		return h.startQuery(caller, in)
	case "GetQueryResults":
		return h.getQueryResults(caller, in)
	case "StopQuery":
		return h.stopQuery(caller, in)
	case "DescribeQueries":
		return h.describeQueries(caller, in)
	case "GetLogRecord":
		return h.getLogRecord(caller, in)
	case "CreateLogGroup", "CreateLogStream", "PutLogEvents", "DeleteLogGroup", "DeleteLogStream", "PutRetentionPolicy":
		return nil, &apiError{400, "InvalidOperationException", "pvlink's log groups are its flow logs' (aws ec2 create-flow-logs --log-destination-type cloud-watch-logs --log-group-name G): " + action + " is not served"}
	}
	return nil, &apiError{400, "InvalidAction", "The action " + action + " is not valid for this web service (pvlink serves DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents, and the Logs Insights actions StartQuery, GetQueryResults, StopQuery, DescribeQueries and GetLogRecord of CloudWatch Logs, for flow logs)"}
}

func logsInvalid(msg string) error { return &apiError{400, "InvalidParameterException", msg} }

// logGroup is a log group an account's flow logs write, or wrote: as in
// AWS, a group outlives the flow log (until the fabric goes).
type logGroup struct {
	name, file, owner string
	created           int64 // ms
}

func (h *Handler) logGroups(caller string) []logGroup {
	m := h.b.Model()
	byName := map[string]*logGroup{}
	var names []string
	for _, fl := range m.FlowLogs {
		if fl.OwnerID != caller || fl.DestinationType != "cloud-watch-logs" {
			continue
		}
		g := byName[fl.LogGroupName]
		if g == nil {
			g = &logGroup{name: fl.LogGroupName, file: fl.Destination, owner: caller, created: fl.Created.UnixMilli()}
			byName[fl.LogGroupName] = g
			names = append(names, fl.LogGroupName)
		}
		g.created = min(g.created, fl.Created.UnixMilli())
	}
	// The groups of flow logs since deleted: files of the fabric's
	// holding the caller's records.
	dir := filepath.Dir(ctl.FlowLogGroupFile(m.Name, "g"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".log")
		if byName[name] != nil {
			continue
		}
		g := &logGroup{name: name, file: file, owner: caller}
		if events, err := g.events(); err == nil && len(events) > 0 {
			g.created = events[0].Ingestion
			byName[name] = g
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]logGroup, len(names))
	for i, n := range names {
		out[i] = *byName[n]
	}
	return out
}

func (h *Handler) logGroup(caller, name string) (logGroup, error) {
	if name == "" {
		return logGroup{}, logsInvalid("logGroupName is required")
	}
	for _, g := range h.logGroups(caller) {
		if g.name == name {
			return g, nil
		}
	}
	return logGroup{}, &apiError{400, "ResourceNotFoundException", "The specified log group does not exist."}
}

// groupEvents is one of the caller's log groups and its events.
func (h *Handler) groupEvents(caller, name string) (logGroup, []logEvent, error) {
	g, err := h.logGroup(caller, name)
	if err != nil {
		return g, nil, err
	}
	events, err := g.events()
	return g, events, err
}

func (g logGroup) arn(region, account string) string {
	return "arn:aws:logs:" + region + ":" + account + ":log-group:" + g.name
}

// logEvent is one record of a log group.
type logEvent struct {
	Stream    string `json:"logStreamName,omitempty"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
	Ingestion int64  `json:"ingestionTime"`
	ID        string `json:"eventId,omitempty"`
}

// events reads a log group's records, in the order they were written: an
// event's timestamp is the record's start, its ingestion the record's end
// (ctld writes a record within seconds of it).
func (g logGroup) events() ([]logEvent, error) {
	f, err := os.Open(g.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing written yet
	}
	if err != nil {
		return nil, &apiError{500, "ServiceUnavailableException", err.Error()}
	}
	defer f.Close()
	// The streams' names, noted by ctld as it writes (a stream appears
	// with its first records, as in AWS).
	streams, err := ctl.FlowLogStreams(g.file)
	if err != nil {
		return nil, &apiError{500, "ServiceUnavailableException", err.Error()}
	}
	stream := func(eni string) string {
		if s, ok := streams[eni]; ok {
			return s
		}
		return ctl.FlowLogStreamName(eni, "ALL")
	}
	var out []logEvent
	// ctld appends while this reads: a last line without its newline is
	// a record still being written, left for the next read.
	rd := bufio.NewReader(f)
	for n := 0; ; n++ {
		line, err := rd.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, &apiError{500, "ServiceUnavailableException", err.Error()}
		}
		line = strings.TrimSuffix(line, "\n")
		fields := strings.Fields(line)
		if len(fields) != 14 || fields[0] != "2" || fields[1] != g.owner {
			// The field names, not a record, or another account's
			// (two accounts' flow logs may name one group).
			continue
		}
		start, err1 := strconv.ParseInt(fields[10], 10, 64)
		end, err2 := strconv.ParseInt(fields[11], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, logEvent{Stream: stream(fields[2]), Timestamp: start * 1000, Message: line, Ingestion: end * 1000, ID: strconv.Itoa(n)})
	}
}

type logGroupOut struct {
	Name    string `json:"logGroupName"`
	Created int64  `json:"creationTime"`
	Arn     string `json:"arn"`
	Group   string `json:"logGroupArn"`
	Stored  int64  `json:"storedBytes"`
	Class   string `json:"logGroupClass"`
}

func (h *Handler) describeLogGroups(caller string, in logsInput) (any, error) {
	if in.LogGroupNamePrefix != "" && in.LogGroupNamePattern != "" {
		return nil, logsInvalid("LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.")
	}
	region := h.b.Model().Region
	var out []logGroupOut
	for _, g := range h.logGroups(caller) {
		if !strings.HasPrefix(g.name, in.LogGroupNamePrefix) || !strings.Contains(g.name, in.LogGroupNamePattern) {
			continue
		}
		var size int64
		if st, err := os.Stat(g.file); err == nil {
			size = st.Size()
		}
		out = append(out, logGroupOut{Name: g.name, Created: g.created, Arn: g.arn(region, caller) + ":*", Group: g.arn(region, caller), Stored: size, Class: "STANDARD"})
	}
	page, next, err := paginate(out, in.NextToken, in.Limit, 50)
	if err != nil {
		return nil, err
	}
	return struct {
		Groups []logGroupOut `json:"logGroups"`
		Next   string        `json:"nextToken,omitempty"`
	}{page, next}, nil
}

type logStreamOut struct {
	Name      string `json:"logStreamName"`
	Created   int64  `json:"creationTime"`
	First     int64  `json:"firstEventTimestamp"`
	Last      int64  `json:"lastEventTimestamp"`
	Ingestion int64  `json:"lastIngestionTime"`
	Arn       string `json:"arn"`
	Stored    int64  `json:"storedBytes"`
}

func (h *Handler) describeLogStreams(caller string, in logsInput) (any, error) {
	g, events, err := h.groupEvents(caller, in.LogGroupName)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	var out []logStreamOut
	for _, e := range events {
		if !strings.HasPrefix(e.Stream, in.LogStreamNamePrefix) {
			continue
		}
		i, ok := index[e.Stream]
		if !ok {
			i = len(out)
			index[e.Stream] = i
			out = append(out, logStreamOut{Name: e.Stream, Created: e.Ingestion, First: e.Timestamp, Last: e.Timestamp,
				Arn: g.arn(h.b.Model().Region, caller) + ":log-stream:" + e.Stream})
		}
		s := &out[i]
		s.First, s.Last = min(s.First, e.Timestamp), max(s.Last, e.Timestamp)
		s.Ingestion = max(s.Ingestion, e.Ingestion)
	}
	slices.SortFunc(out, func(a, b logStreamOut) int { return strings.Compare(a.Name, b.Name) })
	page, next, err := paginate(out, in.NextToken, in.Limit, 50)
	if err != nil {
		return nil, err
	}
	return struct {
		Streams []logStreamOut `json:"logStreams"`
		Next    string         `json:"nextToken,omitempty"`
	}{page, next}, nil
}

// inWindow reports whether an event is in a request's time window
// (startTime inclusive, endTime exclusive, both in ms).
func (in logsInput) inWindow(e logEvent) bool {
	return (in.StartTime == nil || e.Timestamp >= *in.StartTime) && (in.EndTime == nil || e.Timestamp < *in.EndTime)
}

func (h *Handler) getLogEvents(caller string, in logsInput) (any, error) {
	if in.LogStreamName == "" {
		return nil, logsInvalid("logStreamName is required")
	}
	_, all, err := h.groupEvents(caller, in.LogGroupName)
	if err != nil {
		return nil, err
	}
	var events []logEvent
	found := false
	for _, e := range all {
		if e.Stream != in.LogStreamName {
			continue
		}
		found = true
		if in.inWindow(e) {
			e.Stream, e.ID = "", ""
			events = append(events, e)
		}
	}
	if !found {
		return nil, &apiError{400, "ResourceNotFoundException", "The specified log stream does not exist."}
	}
	limit := in.Limit
	if limit == 0 {
		limit = 10000
	}
	// A window [from, to) of the stream's events: from a token's place
	// forwards (f/N) or backwards (b/N), else the head or the tail.
	from, to := 0, len(events)
	switch dir, at, _ := strings.Cut(in.NextToken, "/"); {
	case in.NextToken == "" && in.StartFromHead:
		to = min(len(events), limit)
	case in.NextToken == "":
		from = max(0, len(events)-limit)
	default:
		n, err := strconv.Atoi(at)
		if err != nil || n < 0 || n > len(events) || (dir != "f" && dir != "b") {
			return nil, logsInvalid("The specified nextToken is invalid.")
		}
		if dir == "f" {
			from, to = n, min(len(events), n+limit)
		} else {
			from, to = max(0, n-limit), n
		}
	}
	return struct {
		Events   []logEvent `json:"events"`
		Forward  string     `json:"nextForwardToken"`
		Backward string     `json:"nextBackwardToken"`
	}{append([]logEvent{}, events[from:to]...), "f/" + strconv.Itoa(to), "b/" + strconv.Itoa(from)}, nil
}

func (h *Handler) filterLogEvents(caller string, in logsInput) (any, error) {
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, logsInvalid("logStreamNames and logStreamNamePrefix cannot both be given")
	}
	match, err := parseFilterPattern(in.FilterPattern)
	if err != nil {
		return nil, err
	}
	_, all, err := h.groupEvents(caller, in.LogGroupName)
	if err != nil {
		return nil, err
	}
	searched := map[string]bool{}
	var events []logEvent
	for _, e := range all {
		if len(in.LogStreamNames) > 0 && !slices.Contains(in.LogStreamNames, e.Stream) || !strings.HasPrefix(e.Stream, in.LogStreamNamePrefix) {
			continue
		}
		searched[e.Stream] = true
		if in.inWindow(e) && match(e.Message) {
			events = append(events, e)
		}
	}
	page, next, err := paginate(events, in.NextToken, in.Limit, 10000)
	if err != nil {
		return nil, err
	}
	type streamOut struct {
		Name     string `json:"logStreamName"`
		Complete bool   `json:"searchedCompletely"`
	}
	var streams []streamOut
	for s := range searched {
		streams = append(streams, streamOut{s, true})
	}
	slices.SortFunc(streams, func(a, b streamOut) int { return strings.Compare(a.Name, b.Name) })
	return struct {
		Events   []logEvent  `json:"events"`
		Searched []streamOut `json:"searchedLogStreams"`
		Next     string      `json:"nextToken,omitempty"`
	}{append([]logEvent{}, page...), streams, next}, nil
}

// paginate is a page of items from a token (the index it starts at) and a
// limit (def when 0), and the next page's token when there is one.
func paginate[T any](items []T, token string, limit, def int) ([]T, string, error) {
	from := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", logsInvalid("The specified nextToken is invalid.")
		}
		from = n
	}
	if limit == 0 {
		limit = def
	}
	to := min(len(items), from+limit)
	next := ""
	if to < len(items) {
		next = strconv.Itoa(to)
	}
	return items[from:to], next, nil
}
