package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/cloudwatch"
)

func TestCloudWatchQueriesAndWhatTheyRefuse(t *testing.T) {
	b, srv := demoBackend(t)
	consumer, provider := account(b, "consumer"), account(b, "provider")
	now := time.Now().UTC()
	minute := now.Truncate(time.Minute)
	dims := []cloudwatch.Dimension{{Name: "VPC Endpoint Id", Value: "vpce-1"}}
	h := b.CloudWatch()
	// 600 metrics of the consumer's (ListMetrics pages them by 500);
	// vpce-1's has datapoints in two minutes.
	for i := 0; i < 600; i++ {
		h.Put(minute, cloudwatch.Metric{Namespace: cloudwatch.NamespaceEndpoints, Name: "NewConnections", Unit: "Count", Owner: consumer.ID,
			Dimensions: []cloudwatch.Dimension{{Name: "VPC Endpoint Id", Value: fmt.Sprintf("vpce-%d", i)}}}, 1)
	}
	h.Put(minute.Add(-time.Minute), cloudwatch.Metric{Namespace: cloudwatch.NamespaceEndpoints, Name: "NewConnections", Unit: "Count", Owner: consumer.ID, Dimensions: dims}, 4)

	form := func(kv ...string) string {
		v := url.Values{"Version": {"2010-08-01"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	window := []string{"StartTime", minute.Add(-5 * time.Minute).Format(time.RFC3339), "EndTime", minute.Add(time.Minute).Format(time.RFC3339)}
	stats := append([]string{"Action", "GetMetricStatistics", "Namespace", cloudwatch.NamespaceEndpoints, "MetricName", "NewConnections",
		"Dimensions.member.1.Name", "VPC Endpoint Id", "Dimensions.member.1.Value", "vpce-1", "Period", "60", "Statistics.member.1", "Sum"}, window...)

	st, out := call(t, srv.URL, consumer, "monitoring", form(stats...), now)
	if st != 200 || !strings.Contains(out, "<Sum>4</Sum>") || !strings.Contains(out, "<Sum>1</Sum>") {
		t.Fatalf("GetMetricStatistics: %d %s", st, out)
	}
	// Another account reads nothing of it.
	if st, out := call(t, srv.URL, provider, "monitoring", form(stats...), now); st != 200 || strings.Contains(out, "<Sum>") {
		t.Fatalf("the provider read the consumer's metric: %d %s", st, out)
	}
	// Paging.
	st, out = call(t, srv.URL, consumer, "monitoring", form("Action", "ListMetrics", "Namespace", cloudwatch.NamespaceEndpoints), now)
	if st != 200 || strings.Count(out, "<MetricName>") != 500 || !strings.Contains(out, "<NextToken>") {
		t.Fatalf("ListMetrics page 1: %d, %d metrics", st, strings.Count(out, "<MetricName>"))
	}
	token := out[strings.Index(out, "<NextToken>")+len("<NextToken>") : strings.Index(out, "</NextToken>")]
	st, out = call(t, srv.URL, consumer, "monitoring", form("Action", "ListMetrics", "Namespace", cloudwatch.NamespaceEndpoints, "NextToken", token), now)
	if st != 200 || strings.Count(out, "<MetricName>") != 100 || strings.Contains(out, "<NextToken>") {
		t.Fatalf("ListMetrics page 2: %d, %d metrics", st, strings.Count(out, "<MetricName>"))
	}

	for _, c := range []struct {
		name, code string
		kv         []string
	}{
		{"a 90 s period", "InvalidParameterValue", replace(stats, "Period", "90")},
		{"no namespace", "MissingParameter", replace(stats, "Namespace", "")},
		{"a percentile", "InvalidParameterCombination", append(append([]string{}, stats...), "ExtendedStatistics.member.1", "p99")},
		{"an unknown statistic", "InvalidParameterValue", replace(stats, "Statistics.member.1", "Median")},
		{"end before start", "InvalidParameterValue", replace(stats, "EndTime", minute.Add(-time.Hour).Format(time.RFC3339))},
		{"metric math", "ValidationError", append([]string{"Action", "GetMetricData", "MetricDataQueries.member.1.Id", "m", "MetricDataQueries.member.1.Expression", "SUM(METRICS())"}, window...)},
		{"an unknown action", "InvalidAction", []string{"Action", "PutMetricData"}},
	} {
		st, out := call(t, srv.URL, consumer, "monitoring", form(c.kv...), now)
		if st != 400 || !strings.Contains(out, "<Code>"+c.code+"</Code>") {
			t.Errorf("%s: %d %s, want 400 %s", c.name, st, out, c.code)
		}
	}
}

// replace gives kv with one key's value changed ("" drops the key).
func replace(kv []string, key, value string) []string {
	out := append([]string{}, kv...)
	for i := 0; i < len(out); i += 2 {
		if out[i] == key {
			if value == "" {
				return append(out[:i], out[i+2:]...)
			}
			out[i+1] = value
		}
	}
	return out
}

// callJSON is a CloudWatch call in JSON, as current CLIs and SDKs send it.
func callJSON(t *testing.T, url string, a ctl.Account, action, body string, when time.Time) (int, http.Header, string) {
	t.Helper()
	return callJSONOf(t, url, a, "monitoring", "application/x-amz-json-1.0", "GraniteServiceVersion20100801."+action, body, when)
}

// callJSONOf is a call of one of the JSON protocols: its content type and
// X-Amz-Target, signed for service.
func callJSONOf(t *testing.T, url string, a ctl.Account, service, contentType, target, body string, when time.Time) (int, http.Header, string) {
	t.Helper()
	return send(t, url, a, service, map[string]string{"Content-Type": contentType, "X-Amz-Target": target, "x-amzn-query-mode": "true"}, body, when)
}

// The same queries in JSON: timestamps as epoch seconds, structures and
// lists as JSON, the answer in JSON with the same members, a refusal
// with its code in __type and in x-amzn-query-error.
func TestCloudWatchAnswersJSONAsCurrentCLIsSendIt(t *testing.T) {
	srv, consumer, now, minute := sevenNewConnections(t)

	st, _, out := callJSON(t, srv.URL, consumer, "ListMetrics", `{"Namespace":"AWS/PrivateLinkEndpoints"}`, now)
	var list struct {
		Metrics []struct {
			MetricName string
			Dimensions []struct{ Name, Value string }
		}
	}
	if st != 200 || json.Unmarshal([]byte(out), &list) != nil || len(list.Metrics) != 1 || list.Metrics[0].Dimensions[0].Value != "vpce-1" {
		t.Fatalf("ListMetrics in JSON: %d %s", st, out)
	}
	stats := fmt.Sprintf(`{"Namespace":"AWS/PrivateLinkEndpoints","MetricName":"NewConnections","Dimensions":[{"Name":"VPC Endpoint Id","Value":"vpce-1"}],"StartTime":%d,"EndTime":%d.5,"Period":60,"Statistics":["Sum","Maximum"]}`,
		minute.Add(-5*time.Minute).Unix(), minute.Add(time.Minute).Unix())
	st, _, out = callJSON(t, srv.URL, consumer, "GetMetricStatistics", stats, now)
	var got struct {
		Label      string
		Datapoints []struct {
			Timestamp    string
			Sum, Maximum float64
			Unit         string
		}
	}
	if st != 200 || json.Unmarshal([]byte(out), &got) != nil || len(got.Datapoints) != 1 || got.Datapoints[0].Sum != 7 || got.Datapoints[0].Maximum != 7 || got.Label != "NewConnections" {
		t.Fatalf("GetMetricStatistics in JSON: %d %s", st, out)
	}
	st, hdr, out := callJSON(t, srv.URL, consumer, "GetMetricStatistics", strings.Replace(stats, `"Period":60`, `"Period":61`, 1), now)
	if st != 400 || !strings.Contains(out, `"__type":"InvalidParameterValue"`) || hdr.Get("x-amzn-query-error") != "InvalidParameterValue;Sender" {
		t.Fatalf("a period of 61 in JSON: %d %v %s", st, hdr, out)
	}
	if st, _, out := callJSON(t, srv.URL, consumer, "ListMetrics", `not json`, now); st != 400 || !strings.Contains(out, "SerializationException") {
		t.Fatalf("a body that is not JSON: %d %s", st, out)
	}
}

// sevenNewConnections is a demo backend whose consumer's endpoint vpce-1
// counted 7 NewConnections in the current minute; it returns the API's
// server, the consumer, now and that minute.
func sevenNewConnections(t *testing.T) (*httptest.Server, ctl.Account, time.Time, time.Time) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	now := time.Now().UTC()
	minute := now.Truncate(time.Minute)
	dims := []cloudwatch.Dimension{{Name: "VPC Endpoint Id", Value: "vpce-1"}}
	b.CloudWatch().Put(minute, cloudwatch.Metric{Namespace: cloudwatch.NamespaceEndpoints, Name: "NewConnections", Unit: "Count", Owner: consumer.ID, Dimensions: dims}, 7)
	return srv, consumer, now, minute
}
