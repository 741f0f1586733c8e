package api

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/cloudwatch"
)

// PrivateLink's built-in Contributor Insights rules through CloudWatch's
// API: ListManagedInsightRules, PutManagedInsightRules,
// DescribeInsightRules, Enable/Disable/DeleteInsightRules and
// GetInsightRuleReport, which ranks a service's endpoints from the metric
// history, counting from when the rule was enabled.

type insightFailure struct {
	Resource string `xml:"FailureResource"`
	Type     string `xml:"ExceptionType"`
	Code     string `xml:"FailureCode"`
	Desc     string `xml:"FailureDescription"`
}

func insightFailureOf(resource string, err error) insightFailure {
	code, _ := elbCode(err)
	return insightFailure{Resource: resource, Type: code, Code: "400", Desc: err.Error()}
}

// insightAction serves a Contributor Insights action; ok is false for any
// other.
func (h *Handler) insightAction(caller string, q query) (out any, err error, ok bool) {
	type failures struct {
		Failures []insightFailure `xml:"Failures>member"`
	}
	switch q.str("Action") {
	case "ListManagedInsightRules":
		arn := q.str("ResourceARN")
		names, rules, err := h.b.Model().ManagedInsightRules(caller, arn)
		if err != nil {
			return nil, &apiError{400, "ResourceNotFoundException", err.Error()}, true
		}
		type state struct {
			RuleName string `xml:"RuleName"`
			State    string `xml:"State"`
		}
		type desc struct {
			TemplateName string `xml:"TemplateName"`
			ResourceARN  string `xml:"ResourceARN"`
			RuleState    *state `xml:"RuleState,omitempty"`
		}
		var list []desc
		for _, n := range names {
			d := desc{TemplateName: n, ResourceARN: arn}
			if r, ok := rules[n]; ok {
				d.RuleState = &state{r.Name, r.State}
			}
			list = append(list, d)
		}
		return struct {
			Rules []desc `xml:"ManagedRules>member"`
		}{list}, nil, true

	case "PutManagedInsightRules":
		rules := q.structs("ManagedRules.member", "TemplateName", "ResourceARN")
		if len(rules) == 0 {
			return nil, &apiError{400, "MissingParameter", "The parameter ManagedRules is required."}, true
		}
		var out failures
		_, err := h.b.Change(func(s *ctl.State) error {
			out.Failures = nil
			for _, r := range rules {
				if err := s.PutManagedInsightRule(caller, r["TemplateName"], r["ResourceARN"], h.now()); err != nil {
					out.Failures = append(out.Failures, insightFailureOf(r["ResourceARN"], err))
				}
			}
			return nil
		})
		return out, err, true

	case "EnableInsightRules", "DisableInsightRules", "DeleteInsightRules":
		names := q.list("RuleNames.member")
		if len(names) == 0 {
			return nil, &apiError{400, "MissingParameter", "The parameter RuleNames is required."}, true
		}
		action := q.str("Action")
		var out failures
		_, err := h.b.Change(func(s *ctl.State) error {
			out.Failures = nil
			for _, n := range names {
				if err := s.SetInsightRule(caller, n, action == "EnableInsightRules", action == "DeleteInsightRules", h.now()); err != nil {
					out.Failures = append(out.Failures, insightFailureOf(n, err))
				}
			}
			return nil
		})
		return out, err, true

	case "DescribeInsightRules":
		type rule struct {
			Name       string `xml:"Name"`
			State      string `xml:"State"`
			Schema     string `xml:"Schema"`
			Definition string `xml:"Definition"`
			Managed    bool   `xml:"ManagedRule"`
		}
		var list []rule
		for _, r := range h.b.Model().InsightRules {
			if r.OwnerID == caller {
				list = append(list, rule{r.Name, r.State, "CloudWatchLogRule/1", ctl.InsightDefinition(r), true})
			}
		}
		return struct {
			Rules []rule `xml:"InsightRules>member"`
		}{list}, nil, true

	case "GetInsightRuleReport":
		out, err := h.insightReport(caller, q)
		return out, err, true
	}
	return nil, nil, false
}

type contributorPoint struct {
	Timestamp string  `xml:"Timestamp"`
	Value     float64 `xml:"ApproximateValue"`
}

type contributor struct {
	Keys       []string           `xml:"Keys>member"`
	Value      float64            `xml:"ApproximateAggregateValue"`
	Datapoints []contributorPoint `xml:"Datapoints>member"`
}

type ruleMetricPoint struct {
	Timestamp          string   `xml:"Timestamp"`
	UniqueContributors *float64 `xml:"UniqueContributors,omitempty"`
	MaxContributor     *float64 `xml:"MaxContributorValue,omitempty"`
	SampleCount        *float64 `xml:"SampleCount,omitempty"`
	Sum                *float64 `xml:"Sum,omitempty"`
	Maximum            *float64 `xml:"Maximum,omitempty"`
}

func (h *Handler) insightReport(caller string, q query) (any, error) {
	m := h.b.Model()
	r, ok := m.InsightRule(caller, q.str("RuleName"))
	if !ok {
		return nil, &apiError{400, "ResourceNotFound", fmt.Sprintf("The rule %s does not exist", q.str("RuleName"))}
	}
	start, end, period, err := cwWindow(q)
	if err != nil {
		return nil, err
	}
	limit := 100
	if v := q.str("MaxContributorCount"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 100 {
			return nil, &apiError{400, "InvalidParameterValue", "MaxContributorCount " + v + ": use 1 to 100"}
		}
	}
	// A rule ranks what happened while it was enabled.
	if since := r.Since.Truncate(time.Minute); start.Before(since) {
		start = since
	}
	metric := ctl.InsightTemplates[r.Template]
	statistic := "Sum"
	if metric == "ActiveConnections" {
		statistic = "Maximum"
	}
	hist := h.b.CloudWatch()
	var contributors []contributor
	perPeriod := map[time.Time][]float64{}
	if r.State == "ENABLED" && end.After(start) {
		for _, e := range m.Endpoints {
			if e.ServiceID != r.ServiceID {
				continue
			}
			dims := []cloudwatch.Dimension{{Name: "Service Id", Value: r.ServiceID}, {Name: "VPC Endpoint Id", Value: e.ID}}
			points, err := hist.Statistics(caller, cloudwatch.NamespaceServices, metric, dims, start, end, period)
			if err != nil {
				return nil, &apiError{400, "InvalidParameterInput", err.Error()}
			}
			if len(points) == 0 {
				continue
			}
			c := contributor{Keys: []string{e.ID}}
			for _, p := range points {
				v, _ := p.Statistic(statistic)
				c.Datapoints = append(c.Datapoints, contributorPoint{p.Timestamp.UTC().Format(time.RFC3339), v})
				perPeriod[p.Timestamp] = append(perPeriod[p.Timestamp], v)
				if statistic == "Maximum" {
					c.Value = max(c.Value, v)
				} else {
					c.Value += v
				}
			}
			contributors = append(contributors, c)
		}
	}
	slices.SortStableFunc(contributors, func(a, b contributor) int { return cmp.Compare(b.Value, a.Value) })
	var aggregate float64
	for _, c := range contributors {
		aggregate += c.Value
	}
	unique := len(contributors)
	contributors = contributors[:min(limit, len(contributors))]
	var times []time.Time
	for t := range perPeriod {
		times = append(times, t)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var metricPoints []ruleMetricPoint
	for _, t := range times {
		vs := perPeriod[t]
		n, sum, top := float64(len(vs)), 0.0, 0.0
		for _, v := range vs {
			sum += v
			top = max(top, v)
		}
		metricPoints = append(metricPoints, ruleMetricPoint{Timestamp: t.UTC().Format(time.RFC3339), UniqueContributors: &n, MaxContributor: &top, SampleCount: &n, Sum: &sum, Maximum: &top})
	}
	return struct {
		KeyLabels   []string          `xml:"KeyLabels>member"`
		Statistic   string            `xml:"AggregationStatistic"`
		Aggregate   float64           `xml:"AggregateValue"`
		Unique      int               `xml:"ApproximateUniqueCount"`
		Contributor []contributor     `xml:"Contributors>member"`
		Metrics     []ruleMetricPoint `xml:"MetricDatapoints>member"`
	}{[]string{"VPC Endpoint Id"}, statistic, aggregate, unique, contributors, metricPoints}, nil
}
