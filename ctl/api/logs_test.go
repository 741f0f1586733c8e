package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwlogs "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwlogstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// callLogs is a CloudWatch Logs call (JSON 1.1), decoded into v when it
// succeeds.
func callLogs(t *testing.T, url string, a ctl.Account, action, body string, v any) (int, string) {
	t.Helper()
	status, _, out := callJSONOf(t, url, a, "logs", "application/x-amz-json-1.1", "Logs_20140328."+action, body, time.Now())
	if status == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%s: %v\n%s", action, err, out)
		}
	}
	return status, out
}

// rejectsGroup is a demo backend whose consumer has a flow log of its
// first ENI's rejected traffic to the log group "rejects", written to
// file (ctld writes it under /run/pvlink; a test writes it itself).
func rejectsGroup(t *testing.T) (srv *httptest.Server, consumer, provider ctl.Account, eni ctl.ENIState, file string) {
	b, srv := demoBackend(t)
	b.m.Name = fmt.Sprintf("pvt-logs-%d", time.Now().UnixNano()) // no fabric folder of its own
	consumer, provider = account(b, "consumer"), account(b, "provider")
	eni = b.m.Endpoints[0].ENIs[0]
	if status, out := call(t, srv.URL, consumer, "ec2", "Action=CreateFlowLogs&Version=2016-11-15&ResourceType=NetworkInterface&ResourceId.1="+eni.ID+"&TrafficType=REJECT&LogGroupName=rejects", time.Now()); status != 200 {
		t.Fatalf("CreateFlowLogs: %d %s", status, out)
	}
	file = filepath.Join(t.TempDir(), "rejects.log")
	b.m.FlowLogs[len(b.m.FlowLogs)-1].Destination = file
	return srv, consumer, provider, eni, file
}

// writeGroup writes the group's records, and the name of eni's stream as
// ctld notes it with the first records; it returns that name.
func writeGroup(t *testing.T, file, eni, records string) string {
	if err := os.WriteFile(file, []byte(records), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ctl.FlowLogStreamsFile(file), []byte(`{"`+eni+`":"`+eni+`-reject"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return eni + "-reject"
}

type logEventsOut struct {
	Events []struct {
		LogStreamName, Message string
		Timestamp              int64
	}
	NextToken, NextForwardToken, NextBackwardToken string
}

// A flow log to cloud-watch-logs reads as a log group: one stream per
// network interface named by the flow log's traffic type, an event per
// record at the record's start, filter patterns of terms and of
// space-delimited fields, pages by token; another account sees nothing.
func TestAFlowLogsGroupReadsAsCloudWatchLogs(t *testing.T) {
	srv, consumer, provider, eni, file := rejectsGroup(t)

	var groups struct {
		LogGroups []struct{ LogGroupName, Arn string }
	}
	if status, out := callLogs(t, srv.URL, consumer, "DescribeLogGroups", `{}`, &groups); status != 200 || len(groups.LogGroups) != 1 || groups.LogGroups[0].LogGroupName != "rejects" ||
		groups.LogGroups[0].Arn != "arn:aws:logs:us-east-1:"+consumer.ID+":log-group:rejects:*" {
		t.Fatalf("DescribeLogGroups: %d %s", status, out)
	}
	for body, want := range map[string]int{`{"logGroupNamePrefix":"rej"}`: 1, `{"logGroupNamePrefix":"ejects"}`: 0, `{"logGroupNamePattern":"ject"}`: 1, `{"logGroupNamePattern":"Ject"}`: 0} {
		var some struct{ LogGroups []any }
		if status, out := callLogs(t, srv.URL, consumer, "DescribeLogGroups", body, &some); status != 200 || len(some.LogGroups) != want {
			t.Errorf("DescribeLogGroups %s: %d %s, want %d groups", body, status, out, want)
		}
	}
	var events logEventsOut
	if status, out := callLogs(t, srv.URL, consumer, "FilterLogEvents", `{"logGroupName":"rejects"}`, &events); status != 200 || len(events.Events) != 0 {
		t.Fatalf("FilterLogEvents before a record: %d %s", status, out)
	}

	lines := []string{ctl.FlowLogHeader}
	for i, src := range []string{"198.18.2.4", "198.18.2.5", "198.18.2.4", "198.18.3.9", "198.18.2.4"} {
		lines = append(lines, ctl.FlowLogLine(consumer.ID, snapshot.FlowLogRecord{ENI: eni.ID, Src: src, Dst: eni.IP, SrcPort: uint16(40000 + i), DstPort: 80, Protocol: 6,
			Packets: uint64(1 + i), Bytes: 60, Start: int64(1_700_000_000 + 10*i), End: int64(1_700_000_002 + 10*i), Action: "REJECT"}))
	}
	// Another account's flow log named the same group: its record is
	// not the consumer's to read.
	lines = append(lines, ctl.FlowLogLine(provider.ID, snapshot.FlowLogRecord{ENI: "eni-0provider", Src: "198.19.1.5", Dst: "198.19.1.10", SrcPort: 2, DstPort: 8080, Protocol: 6, Packets: 1, Bytes: 60, Start: 1_700_000_005, End: 1_700_000_005, Action: "REJECT"}))
	// The last record is still being written: no newline yet.
	partial := ctl.FlowLogLine(consumer.ID, snapshot.FlowLogRecord{ENI: eni.ID, Src: "198.18.9.9", Dst: eni.IP, SrcPort: 1, DstPort: 80, Protocol: 6, Packets: 1, Bytes: 60, Start: 1_700_000_050, End: 1_700_000_050, Action: "REJECT"})
	stream := writeGroup(t, file, eni.ID, strings.Join(lines, "\n")+"\n"+partial)
	var streams struct {
		LogStreams []struct {
			LogStreamName                           string
			FirstEventTimestamp, LastEventTimestamp int64
		}
	}
	if status, out := callLogs(t, srv.URL, consumer, "DescribeLogStreams", `{"logGroupName":"rejects"}`, &streams); status != 200 || len(streams.LogStreams) != 1 ||
		streams.LogStreams[0].LogStreamName != stream || streams.LogStreams[0].FirstEventTimestamp != 1_700_000_000_000 || streams.LogStreams[0].LastEventTimestamp != 1_700_000_040_000 {
		t.Fatalf("DescribeLogStreams: %d %s", status, out)
	}

	sources := func(e logEventsOut) string {
		var out []string
		for _, ev := range e.Events {
			if ev.LogStreamName != "" && ev.LogStreamName != stream {
				t.Errorf("an event of stream %s", ev.LogStreamName)
			}
			out = append(out, strings.Fields(ev.Message)[3])
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ pattern, want string }{
		{"", "198.18.2.4 198.18.2.5 198.18.2.4 198.18.3.9 198.18.2.4"},
		{`[version, account, eni, source="198.18.2.4", destination, srcport, destport=80, protocol=6, packets, bytes, windowstart, windowend, action="REJECT", flowlogstatus]`, "198.18.2.4 198.18.2.4 198.18.2.4"},
		{`[version, account, eni, source, destination, srcport, destport, protocol, packets>=3, bytes, windowstart, windowend, action, flowlogstatus]`, "198.18.2.4 198.18.3.9 198.18.2.4"},
		{`[version, account, eni, source="198.18.2.*", destination, srcport!=40000, destport, protocol, packets, bytes, windowstart, windowend, action, flowlogstatus]`, "198.18.2.5 198.18.2.4 198.18.2.4"},
		{`[version, account, eni, source, destination, srcport, destport, protocol, packets, bytes, windowstart, windowend, action="ACCEPT", flowlogstatus]`, ""},
		{`[version, account, eni, source]`, ""}, // fewer fields than a record has
		{`REJECT "198.18.3.9"`, "198.18.3.9"},
		{`REJECT -198.18.2.4`, "198.18.2.5 198.18.3.9"},
		{`?198.18.2.5 ?198.18.3.9`, "198.18.2.5 198.18.3.9"},
	} {
		body, _ := json.Marshal(map[string]any{"logGroupName": "rejects", "filterPattern": tc.pattern})
		var got logEventsOut
		if status, out := callLogs(t, srv.URL, consumer, "FilterLogEvents", string(body), &got); status != 200 || sources(got) != tc.want {
			t.Errorf("FilterLogEvents %s: %d, sources %q, want %q (%s)", tc.pattern, status, sources(got), tc.want, out)
		}
	}
	// A window in time, then pages of two.
	var got logEventsOut
	callLogs(t, srv.URL, consumer, "FilterLogEvents", `{"logGroupName":"rejects","startTime":1700000010000,"endTime":1700000030000}`, &got)
	if sources(got) != "198.18.2.5 198.18.2.4" || got.Events[0].Timestamp != 1_700_000_010_000 {
		t.Errorf("FilterLogEvents from 10 s to 30 s: %q", sources(got))
	}
	var paged []string
	for token, n := "", 0; n == 0 || token != ""; n++ {
		body, _ := json.Marshal(map[string]any{"logGroupName": "rejects", "limit": 2, "nextToken": token})
		var page logEventsOut
		if status, out := callLogs(t, srv.URL, consumer, "FilterLogEvents", string(body), &page); status != 200 || len(page.Events) > 2 || n > 3 {
			t.Fatalf("FilterLogEvents page %d: %d %s", n, status, out)
		}
		paged, token = append(paged, sources(page)), page.NextToken
	}
	if strings.Join(paged, " ") != "198.18.2.4 198.18.2.5 198.18.2.4 198.18.3.9 198.18.2.4" {
		t.Errorf("FilterLogEvents in pages of 2: %q", paged)
	}
	// GetLogEvents: the head, then forwards from its token; the tail.
	var head, next, tail logEventsOut
	callLogs(t, srv.URL, consumer, "GetLogEvents", `{"logGroupName":"rejects","logStreamName":"`+stream+`","startFromHead":true,"limit":3}`, &head)
	callLogs(t, srv.URL, consumer, "GetLogEvents", `{"logGroupName":"rejects","logStreamName":"`+stream+`","limit":3,"nextToken":"`+head.NextForwardToken+`"}`, &next)
	callLogs(t, srv.URL, consumer, "GetLogEvents", `{"logGroupName":"rejects","logStreamName":"`+stream+`","limit":2}`, &tail)
	if sources(head) != "198.18.2.4 198.18.2.5 198.18.2.4" || sources(next) != "198.18.3.9 198.18.2.4" || sources(tail) != "198.18.3.9 198.18.2.4" {
		t.Errorf("GetLogEvents: head %q, then %q; tail %q", sources(head), sources(next), sources(tail))
	}

	// aws-sdk-go-v2's own client and paginator read the same.
	client := cwlogs.New(cwlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: consumer.AccessKeyID, SecretAccessKey: consumer.SecretAccessKey}, nil
		}),
	})
	ctx := context.Background()
	ls, err := client.DescribeLogStreams(ctx, &cwlogs.DescribeLogStreamsInput{LogGroupName: aws.String("rejects")})
	if err != nil || len(ls.LogStreams) != 1 || aws.ToString(ls.LogStreams[0].LogStreamName) != stream || aws.ToInt64(ls.LogStreams[0].LastEventTimestamp) != 1_700_000_040_000 {
		t.Fatalf("the Go SDK's DescribeLogStreams: %+v, %v", ls, err)
	}
	pages := cwlogs.NewFilterLogEventsPaginator(client, &cwlogs.FilterLogEventsInput{LogGroupName: aws.String("rejects"), Limit: aws.Int32(2),
		FilterPattern: aws.String(`[version, account, eni, source="198.18.2.4", destination, srcport, destport, protocol, packets, bytes, windowstart, windowend, action, flowlogstatus]`)})
	var sdkEvents []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("the Go SDK's FilterLogEvents: %v", err)
		}
		for _, e := range page.Events {
			sdkEvents = append(sdkEvents, fmt.Sprintf("%d %s", aws.ToInt64(e.Timestamp), aws.ToString(e.LogStreamName)))
		}
	}
	if want := fmt.Sprintf("1700000000000 %[1]s 1700000020000 %[1]s 1700000040000 %[1]s", stream); strings.Join(sdkEvents, " ") != want {
		t.Errorf("the Go SDK's FilterLogEvents pages: %q, want %q", sdkEvents, want)
	}
	_, err = client.GetLogEvents(ctx, &cwlogs.GetLogEventsInput{LogGroupName: aws.String("nothing"), LogStreamName: aws.String(stream)})
	var notFound *cwlogstypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Errorf("the Go SDK's GetLogEvents of a group that does not exist: %v, want ResourceNotFoundException", err)
	}

	for _, tc := range []struct {
		who          ctl.Account
		action, body string
		code         string
	}{
		{provider, "DescribeLogStreams", `{"logGroupName":"rejects"}`, "ResourceNotFoundException"},
		{consumer, "GetLogEvents", `{"logGroupName":"rejects","logStreamName":"eni-0-all"}`, "ResourceNotFoundException"},
		{consumer, "FilterLogEvents", `{"logGroupName":"rejects","filterPattern":"{ $.action = \"REJECT\" }"}`, "InvalidParameterException"},
		{consumer, "FilterLogEvents", `{"logGroupName":"rejects","filterPattern":"[a, b"}`, "InvalidParameterException"},
		{consumer, "FilterLogEvents", `{"logGroupName":"rejects","nextToken":"x"}`, "InvalidParameterException"},
		{consumer, "PutLogEvents", `{"logGroupName":"rejects","logStreamName":"s","logEvents":[]}`, "InvalidOperationException"},
		{consumer, "PutQueryDefinition", `{}`, "InvalidAction"},
		{consumer, "DescribeLogStreams", `not json`, "SerializationException"},
	} {
		if status, out := callLogs(t, srv.URL, tc.who, tc.action, tc.body, nil); status != 400 || !strings.Contains(out, `"__type":"`+tc.code+`"`) {
			t.Errorf("%s %s as %s: %d %s, want %s", tc.action, tc.body, tc.who.Name, status, out, tc.code)
		}
	}
	var none struct{ LogGroups []any }
	if status, out := callLogs(t, srv.URL, provider, "DescribeLogGroups", `{}`, &none); status != 200 || len(none.LogGroups) != 0 {
		t.Errorf("the provider's DescribeLogGroups: %d %s, want none of the consumer's groups", status, out)
	}
}
