package api

import (
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"time"

	"pvlink.dev/pvlink/ctl/logsinsights"
)

// CloudWatch Logs Insights over the flow logs' groups: StartQuery runs a
// query (Logs Insights QL, ctl/logsinsights) at once over the events of
// its window, GetQueryResults answers it Complete, DescribeQueries lists
// an account's queries, StopQuery finds nothing left to stop, and
// GetLogRecord reads the event a result's @ptr names. A flow log record's
// fields are discovered as AWS discovers them (srcAddr, dstPort, action,
// ...). Queries and their results are ctld's, in memory: a ctld started
// again has none.

// maxQueries is how many queries ctld keeps (the oldest go first).
const maxQueries = 500

// flowLogFields are the names Logs Insights gives a default-format flow
// log record's fields, in their order.
var flowLogFields = []string{"version", "accountId", "interfaceId", "srcAddr", "dstAddr", "srcPort", "dstPort",
	"protocol", "packets", "bytes", "startTime", "endTime", "action", "logStatus"}

type insightsQuery struct {
	id, owner, query string
	groups           []string
	created          time.Time
	result           logsinsights.Result
	scanned, bytes   int
}

// queryStore holds the queries run, oldest first.
type queryStore struct {
	mu  sync.Mutex
	all []*insightsQuery
}

func (s *queryStore) add(q *insightsQuery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, q)
	if len(s.all) > maxQueries {
		s.all = slices.Delete(s.all, 0, len(s.all)-maxQueries)
	}
}

func (s *queryStore) get(owner, id string) (*insightsQuery, error) {
	if id == "" {
		return nil, logsInvalid("queryId is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.all {
		if q.id == id && q.owner == owner {
			return q, nil
		}
	}
	return nil, &apiError{400, "ResourceNotFoundException", "The specified query does not exist: " + id}
}

// logRecordPointer names a group's event for GetLogRecord.
func logRecordPointer(group, eventID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(group + "\n" + eventID))
}

// insightsEvent is a log event as a query sees it.
func insightsEvent(owner, group string, e logEvent) logsinsights.Event {
	f := map[string]string{
		"@timestamp":     logsinsights.FormatTimestamp(time.UnixMilli(e.Timestamp)),
		"@ingestionTime": logsinsights.FormatTimestamp(time.UnixMilli(e.Ingestion)),
		"@message":       e.Message,
		"@logStream":     e.Stream,
		"@log":           owner + ":" + group,
	}
	if vs := strings.Fields(e.Message); len(vs) == len(flowLogFields) {
		for i, v := range vs {
			f[flowLogFields[i]] = v
		}
	}
	return logsinsights.Event{Fields: f, Ptr: logRecordPointer(group, e.ID)}
}

// queryGroups are the names of the groups a StartQuery names, in exactly
// one of its three ways.
func queryGroups(in logsInput) ([]string, error) {
	ways := 0
	var names []string
	if in.LogGroupName != "" {
		ways++
		names = []string{in.LogGroupName}
	}
	if len(in.LogGroupNames) > 0 {
		ways++
		names = in.LogGroupNames
	}
	if len(in.LogGroupIdentifiers) > 0 {
		ways++
		for _, id := range in.LogGroupIdentifiers {
			// An ARN: arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*].
			if rest, ok := strings.CutPrefix(id, "arn:"); ok {
				parts := strings.SplitN(rest, ":", 5)
				if len(parts) != 5 || !strings.HasPrefix(parts[4], "log-group:") {
					return nil, logsInvalid("logGroupIdentifiers: " + id + " is not a log group's ARN")
				}
				id = strings.TrimSuffix(strings.TrimPrefix(parts[4], "log-group:"), ":*")
			}
			names = append(names, id)
		}
	}
	if ways != 1 {
		return nil, logsInvalid("A StartQuery operation must include exactly one of the following parameters: logGroupName, logGroupNames, or logGroupIdentifiers.")
	}
	if len(names) > 50 {
		return nil, logsInvalid("a query may name at most 50 log groups")
	}
	return names, nil
}

func (h *Handler) startQuery(caller string, in logsInput) (any, error) {
	if in.QueryLanguage != "" && in.QueryLanguage != "CWLI" {
		return nil, logsInvalid("pvlink's Logs Insights speaks the Logs Insights query language (CWLI), not " + in.QueryLanguage)
	}
	groups, err := queryGroups(in)
	if err != nil {
		return nil, err
	}
	switch {
	case in.StartTime == nil || in.EndTime == nil:
		return nil, logsInvalid("startTime and endTime are required (seconds since the epoch)")
	case *in.EndTime < *in.StartTime:
		return nil, logsInvalid("endTime is before startTime")
	case in.QueryString == "":
		return nil, logsInvalid("queryString is required")
	case len(in.QueryString) > 10000:
		return nil, logsInvalid("queryString is longer than 10000 characters")
	case in.Limit > 10000:
		return nil, logsInvalid("limit is at most 10000")
	}
	q, err := logsinsights.Parse(in.QueryString)
	if err != nil {
		return nil, &apiError{400, "MalformedQueryException", "the query: " + err.Error()}
	}
	// The window is inclusive at both ends, in whole seconds.
	from, to := *in.StartTime*1000, *in.EndTime*1000+999
	var events []logsinsights.Event
	run := &insightsQuery{id: requestID(), owner: caller, query: in.QueryString, groups: groups, created: h.now()}
	for _, name := range groups {
		_, all, err := h.groupEvents(caller, name)
		if err != nil {
			return nil, err
		}
		for _, e := range all {
			if e.Timestamp >= from && e.Timestamp <= to {
				events = append(events, insightsEvent(caller, name, e))
				run.bytes += len(e.Message)
			}
		}
	}
	// Oldest first, as the query takes them (the groups' events are each
	// in the order they were written).
	slices.SortStableFunc(events, func(a, b logsinsights.Event) int {
		return strings.Compare(a.Fields["@timestamp"], b.Fields["@timestamp"])
	})
	limit := in.Limit
	if limit == 0 {
		limit = 10000
	}
	run.scanned = len(events)
	run.result = q.Run(events, limit)
	h.queries.add(run)
	return struct {
		ID string `json:"queryId"`
	}{run.id}, nil
}

func (h *Handler) getQueryResults(caller string, in logsInput) (any, error) {
	q, err := h.queries.get(caller, in.QueryID)
	if err != nil {
		return nil, err
	}
	rows := q.result.Rows
	if rows == nil {
		rows = [][]logsinsights.Field{}
	}
	return struct {
		Language string                 `json:"queryLanguage"`
		Results  [][]logsinsights.Field `json:"results"`
		Stats    map[string]float64     `json:"statistics"`
		Status   string                 `json:"status"`
	}{"CWLI", rows, map[string]float64{
		"recordsMatched": float64(q.result.Matched), "recordsScanned": float64(q.scanned), "bytesScanned": float64(q.bytes),
	}, "Complete"}, nil
}

// stopQuery: every query has completed by the time StartQuery answers.
func (h *Handler) stopQuery(caller string, in logsInput) (any, error) {
	if _, err := h.queries.get(caller, in.QueryID); err != nil {
		return nil, err
	}
	return struct {
		Success bool `json:"success"`
	}{false}, nil
}

type queryInfoOut struct {
	Language string `json:"queryLanguage"`
	ID       string `json:"queryId"`
	Query    string `json:"queryString"`
	Status   string `json:"status"`
	Created  int64  `json:"createTime"`
	Group    string `json:"logGroupName"`
}

func (h *Handler) describeQueries(caller string, in logsInput) (any, error) {
	if in.MaxResults < 0 || in.MaxResults > 1000 {
		return nil, logsInvalid("maxResults is from 1 to 1000")
	}
	h.queries.mu.Lock()
	var out []queryInfoOut
	for i := len(h.queries.all) - 1; i >= 0; i-- {
		q := h.queries.all[i]
		if q.owner != caller || in.LogGroupName != "" && !slices.Contains(q.groups, in.LogGroupName) || in.Status != "" && in.Status != "Complete" {
			continue
		}
		out = append(out, queryInfoOut{"CWLI", q.id, q.query, "Complete", q.created.UnixMilli(), q.groups[0]})
	}
	h.queries.mu.Unlock()
	page, next, err := paginate(out, in.NextToken, in.MaxResults, 1000)
	if err != nil {
		return nil, err
	}
	if page == nil {
		page = []queryInfoOut{}
	}
	return struct {
		Queries []queryInfoOut `json:"queries"`
		Next    string         `json:"nextToken,omitempty"`
	}{page, next}, nil
}

func (h *Handler) getLogRecord(caller string, in logsInput) (any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(in.LogRecordPointer)
	group, id, ok := strings.Cut(string(raw), "\n")
	if in.LogRecordPointer == "" || err != nil || !ok {
		return nil, logsInvalid("logRecordPointer is not a @ptr a query returned")
	}
	_, all, err := h.groupEvents(caller, group)
	if err != nil {
		return nil, err
	}
	for _, e := range all {
		if e.ID == id {
			return struct {
				Record map[string]string `json:"logRecord"`
			}{insightsEvent(caller, group, e).Fields}, nil
		}
	}
	return nil, &apiError{400, "ResourceNotFoundException", "The log record the pointer names does not exist."}
}
