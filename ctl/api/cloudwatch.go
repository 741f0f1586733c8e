package api

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"time"

	"pvlink.dev/pvlink/ctl/cloudwatch"
)

// CloudWatch's Query API (Version 2010-08-01), the part that reads the
// PrivateLink metrics: ListMetrics, GetMetricStatistics, GetMetricData.
// An account reads the endpoint metrics of the endpoints it owns and the
// service metrics of the services it owns, as in AWS, where each side's
// metrics are published to its own account.

const cwNamespace = "http://monitoring.amazonaws.com/doc/2010-08-01/"

// maxDatapoints is the most datapoints one GetMetricStatistics answer
// holds, as in CloudWatch.
const maxDatapoints = 1440

// listMetricsPage is how many metrics a ListMetrics page holds.
const listMetricsPage = 500

func (h *Handler) cloudwatch(caller string, q query) (any, error) {
	switch action := q.str("Action"); action {
	case "ListMetrics":
		return h.listMetrics(caller, q)
	case "GetMetricStatistics":
		return h.getMetricStatistics(caller, q)
	case "GetMetricData":
		return h.getMetricData(caller, q)
	}
	if out, err, ok := h.insightAction(caller, q); ok {
		return out, err
	}
	return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves ListMetrics, GetMetricStatistics, GetMetricData and PrivateLink's managed Contributor Insights rules of CloudWatch)", q.str("Action"))}
}

type cwDimension struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

type cwMetric struct {
	Namespace  string        `xml:"Namespace"`
	MetricName string        `xml:"MetricName"`
	Dimensions []cwDimension `xml:"Dimensions>member"`
}

func (h *Handler) listMetrics(caller string, q query) (any, error) {
	var filters []cloudwatch.DimensionFilter
	for _, d := range q.structs("Dimensions.member", "Name", "Value") {
		if d["Name"] == "" {
			return nil, &apiError{400, "InvalidParameterValue", "a dimension filter needs a Name"}
		}
		filters = append(filters, cloudwatch.DimensionFilter{Name: d["Name"], Value: d["Value"]})
	}
	since := time.Time{}
	if v := q.str("RecentlyActive"); v != "" {
		if v != "PT3H" {
			return nil, &apiError{400, "InvalidParameterValue", "RecentlyActive " + v + ": the only value is PT3H"}
		}
		since = h.now().Add(-3 * time.Hour)
	}
	metrics := h.b.CloudWatch().List(caller, q.str("Namespace"), q.str("MetricName"), filters, since)
	start := 0
	if tok := q.str("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(metrics) {
			return nil, &apiError{400, "InvalidNextToken", "The token '" + tok + "' is invalid"}
		}
		start = n
	}
	end := min(start+listMetricsPage, len(metrics))
	out := struct {
		Metrics   []cwMetric `xml:"Metrics>member"`
		NextToken string     `xml:"NextToken,omitempty"`
	}{Metrics: []cwMetric{}}
	for _, m := range metrics[start:end] {
		cm := cwMetric{Namespace: m.Namespace, MetricName: m.Name}
		for _, d := range m.Dimensions {
			cm.Dimensions = append(cm.Dimensions, cwDimension{d.Name, d.Value})
		}
		out.Metrics = append(out.Metrics, cm)
	}
	if end < len(metrics) {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return out, nil
}

// cwTime reads a timestamp as botocore sends it (ISO 8601).
func cwTime(q query, name string) (time.Time, error) {
	v := q.str(name)
	if v == "" {
		return time.Time{}, &apiError{400, "MissingParameter", "The parameter " + name + " is required."}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(int64(n), 0), nil
	}
	return time.Time{}, &apiError{400, "InvalidParameterValue", name + " " + v + " is not an ISO 8601 time"}
}

// cwWindow reads StartTime, EndTime and Period.
func cwWindow(q query) (start, end time.Time, period time.Duration, err error) {
	if start, err = cwTime(q, "StartTime"); err != nil {
		return
	}
	if end, err = cwTime(q, "EndTime"); err != nil {
		return
	}
	period, err = cwPeriod(q.str("Period"), "Period")
	return
}

func cwPeriod(v, name string) (time.Duration, error) {
	if v == "" {
		return 0, &apiError{400, "MissingParameter", "The parameter " + name + " is required."}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 60 || n%60 != 0 {
		return 0, &apiError{400, "InvalidParameterValue", "The parameter " + name + " " + v + " must be a multiple of 60: PrivateLink publishes one-minute datapoints"}
	}
	return time.Duration(n) * time.Second, nil
}

// metricOf reads a metric's identity: Namespace, MetricName and
// Dimensions.member.N under prefix.
func metricOf(q query, prefix string) (ns, name string, dims []cloudwatch.Dimension, err error) {
	ns, name = q.str(prefix+"Namespace"), q.str(prefix+"MetricName")
	if ns == "" || name == "" {
		return "", "", nil, &apiError{400, "MissingParameter", "The parameters " + prefix + "Namespace and " + prefix + "MetricName are required."}
	}
	for _, d := range q.structs(prefix+"Dimensions.member", "Name", "Value") {
		if d["Name"] == "" || d["Value"] == "" {
			return "", "", nil, &apiError{400, "InvalidParameterValue", "a dimension needs a Name and a Value"}
		}
		dims = append(dims, cloudwatch.Dimension{Name: d["Name"], Value: d["Value"]})
	}
	return ns, name, dims, nil
}

type cwDatapoint struct {
	Timestamp   string   `xml:"Timestamp"`
	SampleCount *float64 `xml:"SampleCount,omitempty"`
	Average     *float64 `xml:"Average,omitempty"`
	Sum         *float64 `xml:"Sum,omitempty"`
	Minimum     *float64 `xml:"Minimum,omitempty"`
	Maximum     *float64 `xml:"Maximum,omitempty"`
	Unit        string   `xml:"Unit"`
}

func (h *Handler) getMetricStatistics(caller string, q query) (any, error) {
	ns, name, dims, err := metricOf(q, "")
	if err != nil {
		return nil, err
	}
	if len(q.list("ExtendedStatistics.member")) > 0 {
		return nil, &apiError{400, "InvalidParameterCombination", "ExtendedStatistics: PrivateLink's metrics are kept as statistic sets, which have no percentiles"}
	}
	stats := q.list("Statistics.member")
	if len(stats) == 0 {
		return nil, &apiError{400, "InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics, but not both."}
	}
	for _, s := range stats {
		if _, err := (cloudwatch.Stats{}).Statistic(s); err != nil {
			return nil, &apiError{400, "InvalidParameterValue", err.Error()}
		}
	}
	start, end, period, err := cwWindow(q)
	if err != nil {
		return nil, err
	}
	if n := end.Sub(start) / period; n > maxDatapoints {
		return nil, &apiError{400, "InvalidParameterCombination", fmt.Sprintf("You have requested up to %d datapoints, which exceeds the limit of %d.", n, maxDatapoints)}
	}
	points, err := h.b.CloudWatch().Statistics(caller, ns, name, dims, start, end, period)
	if err != nil {
		return nil, &apiError{400, "InvalidParameterValue", err.Error()}
	}
	out := struct {
		Label      string        `xml:"Label"`
		Datapoints []cwDatapoint `xml:"Datapoints>member"`
	}{Label: name, Datapoints: []cwDatapoint{}}
	unit := q.str("Unit")
	for _, p := range points {
		if unit != "" && unit != p.Unit {
			continue
		}
		d := cwDatapoint{Timestamp: p.Timestamp.UTC().Format(time.RFC3339), Unit: p.Unit}
		for _, s := range stats {
			v, _ := p.Statistic(s)
			switch s {
			case "SampleCount":
				d.SampleCount = &v
			case "Average":
				d.Average = &v
			case "Sum":
				d.Sum = &v
			case "Minimum":
				d.Minimum = &v
			case "Maximum":
				d.Maximum = &v
			}
		}
		out.Datapoints = append(out.Datapoints, d)
	}
	return out, nil
}

type cwResult struct {
	ID         string    `xml:"Id"`
	Label      string    `xml:"Label"`
	Timestamps []string  `xml:"Timestamps>member"`
	Values     []float64 `xml:"Values>member"`
	StatusCode string    `xml:"StatusCode"`
}

func (h *Handler) getMetricData(caller string, q query) (any, error) {
	start, err := cwTime(q, "StartTime")
	if err != nil {
		return nil, err
	}
	end, err := cwTime(q, "EndTime")
	if err != nil {
		return nil, err
	}
	descending := true
	switch v := q.str("ScanBy"); v {
	case "", "TimestampDescending":
	case "TimestampAscending":
		descending = false
	default:
		return nil, &apiError{400, "InvalidParameterValue", "ScanBy " + v + ": use TimestampDescending or TimestampAscending"}
	}
	hist := h.b.CloudWatch()
	out := struct {
		Results  []cwResult `xml:"MetricDataResults>member"`
		Messages []string   `xml:"Messages>member"`
	}{Results: []cwResult{}}
	ids := map[string]bool{}
	for i := 1; ; i++ {
		p := "MetricDataQueries.member." + strconv.Itoa(i) + "."
		id := q.str(p + "Id")
		if id == "" {
			if i == 1 {
				return nil, &apiError{400, "MissingParameter", "The parameter MetricDataQueries is required."}
			}
			break
		}
		if ids[id] {
			return nil, &apiError{400, "ValidationError", "The Id " + id + " is used twice."}
		}
		ids[id] = true
		if q.str(p+"Expression") != "" {
			return nil, &apiError{400, "ValidationError", "query " + id + ": pvlink answers MetricStat queries; it does not evaluate metric math expressions"}
		}
		ns, name, dims, err := metricOf(q, p+"MetricStat.Metric.")
		if err != nil {
			return nil, err
		}
		period, err := cwPeriod(q.str(p+"MetricStat.Period"), p+"MetricStat.Period")
		if err != nil {
			return nil, err
		}
		stat := q.str(p + "MetricStat.Stat")
		if _, err := (cloudwatch.Stats{}).Statistic(stat); err != nil {
			return nil, &apiError{400, "ValidationError", "query " + id + ": " + err.Error()}
		}
		points, err := hist.Statistics(caller, ns, name, dims, start, end, period)
		if err != nil {
			return nil, &apiError{400, "ValidationError", err.Error()}
		}
		if descending {
			slices.Reverse(points)
		}
		label := q.str(p + "Label")
		if label == "" {
			label = name
		}
		if q.str(p+"ReturnData") == "false" {
			continue
		}
		r := cwResult{ID: id, Label: label, StatusCode: "Complete", Timestamps: []string{}, Values: []float64{}}
		unit := q.str(p + "MetricStat.Unit")
		for _, pt := range points {
			if unit != "" && unit != pt.Unit {
				continue
			}
			v, _ := pt.Statistic(stat)
			r.Timestamps = append(r.Timestamps, pt.Timestamp.UTC().Format(time.RFC3339))
			r.Values = append(r.Values, v)
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}
