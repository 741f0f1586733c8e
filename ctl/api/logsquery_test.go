package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwlogs "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwlogstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// A flow log's group answers Logs Insights queries, through aws-sdk-go-v2's
// own client: the record's fields as AWS discovers them, the window, the
// statistics, @ptr to GetLogRecord, the queries listed, and bad queries
// and calls refused with the reason.
func TestLogsInsightsQueriesAFlowLogsGroup(t *testing.T) {
	srv, consumer, provider, eni, file := rejectsGroup(t)
	var lines []string
	for i, src := range []string{"198.18.2.4", "198.18.2.5", "198.18.2.4", "198.18.3.9", "198.18.2.4"} {
		lines = append(lines, ctl.FlowLogLine(consumer.ID, snapshot.FlowLogRecord{ENI: eni.ID, Src: src, Dst: eni.IP, SrcPort: uint16(40000 + i), DstPort: 80, Protocol: 6,
			Packets: uint64(1 + i), Bytes: uint64(60 * (1 + i)), Start: int64(1_700_000_000 + 10*i), End: int64(1_700_000_002 + 10*i), Action: "REJECT"}))
	}
	stream := writeGroup(t, file, eni.ID, ctl.FlowLogHeader+"\n"+strings.Join(lines, "\n")+"\n")

	client := func(a ctl.Account) *cwlogs.Client {
		return cwlogs.New(cwlogs.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, nil
			}),
		})
	}
	c, ctx := client(consumer), context.Background()
	run := func(q string, from, to int64) *cwlogs.GetQueryResultsOutput {
		t.Helper()
		started, err := c.StartQuery(ctx, &cwlogs.StartQueryInput{LogGroupName: aws.String("rejects"), QueryString: aws.String(q), StartTime: aws.Int64(from), EndTime: aws.Int64(to)})
		if err != nil {
			t.Fatalf("StartQuery %s: %v", q, err)
		}
		out, err := c.GetQueryResults(ctx, &cwlogs.GetQueryResultsInput{QueryId: started.QueryId})
		if err != nil || out.Status != cwlogstypes.QueryStatusComplete {
			t.Fatalf("GetQueryResults %s: %+v, %v", q, out, err)
		}
		return out
	}
	table := func(out *cwlogs.GetQueryResultsOutput) string {
		var rows []string
		for _, r := range out.Results {
			var fs []string
			for _, f := range r {
				if aws.ToString(f.Field) != "@ptr" {
					fs = append(fs, aws.ToString(f.Field)+"="+aws.ToString(f.Value))
				}
			}
			rows = append(rows, strings.Join(fs, " "))
		}
		return strings.Join(rows, "; ")
	}

	out := run(`stats sum(bytes) as bytes, count(*) as flows by srcAddr | sort bytes desc`, 1_700_000_000, 1_700_000_040)
	if got, want := table(out), "srcAddr=198.18.2.4 bytes=540 flows=3; srcAddr=198.18.3.9 bytes=240 flows=1; srcAddr=198.18.2.5 bytes=120 flows=1"; got != want {
		t.Errorf("bytes by source: %s, want %s", got, want)
	}
	if s := out.Statistics; s == nil || s.RecordsMatched != 5 || s.RecordsScanned != 5 || s.BytesScanned <= 0 {
		t.Errorf("statistics: %+v", s)
	}
	// The window is inclusive at both ends: the records that start at
	// 10, 20 and 30 s.
	out = run(`fields @timestamp, srcPort, interfaceId, @logStream | filter action = "REJECT" and dstPort = 80 | sort @timestamp desc`, 1_700_000_010, 1_700_000_030)
	if got, want := table(out), fmt.Sprintf("@timestamp=2023-11-14 22:13:50.000 srcPort=40003 interfaceId=%[1]s @logStream=%[2]s; @timestamp=2023-11-14 22:13:40.000 srcPort=40002 interfaceId=%[1]s @logStream=%[2]s; @timestamp=2023-11-14 22:13:30.000 srcPort=40001 interfaceId=%[1]s @logStream=%[2]s", eni.ID, stream); got != want {
		t.Errorf("the window's records: %s, want %s", got, want)
	}
	ptr := ""
	for _, f := range out.Results[0] {
		if aws.ToString(f.Field) == "@ptr" {
			ptr = aws.ToString(f.Value)
		}
	}
	rec, err := c.GetLogRecord(ctx, &cwlogs.GetLogRecordInput{LogRecordPointer: aws.String(ptr)})
	if err != nil || rec.LogRecord["srcPort"] != "40003" || rec.LogRecord["@message"] != lines[3] || rec.LogRecord["@log"] != consumer.ID+":rejects" {
		t.Errorf("GetLogRecord of the first row's @ptr: %+v, %v", rec, err)
	}
	if out := run(`filter isIpv4InSubnet(srcAddr, "198.18.3.0/24") | fields srcAddr, packets, logStatus, accountId, version`, 1_700_000_000, 1_700_000_100); table(out) != "srcAddr=198.18.3.9 packets=4 logStatus=OK accountId="+consumer.ID+" version=2" {
		t.Errorf("a subnet's records: %s", table(out))
	}

	qs, err := c.DescribeQueries(ctx, &cwlogs.DescribeQueriesInput{LogGroupName: aws.String("rejects")})
	if err != nil || len(qs.Queries) != 3 || !strings.HasPrefix(aws.ToString(qs.Queries[0].QueryString), "filter isIpv4InSubnet") || qs.Queries[0].Status != cwlogstypes.QueryStatusComplete {
		t.Errorf("DescribeQueries: %+v, %v", qs, err)
	}
	if qs, err := client(provider).DescribeQueries(ctx, &cwlogs.DescribeQueriesInput{}); err != nil || len(qs.Queries) != 0 {
		t.Errorf("the provider's DescribeQueries: %+v, %v, want none of the consumer's", qs, err)
	}

	var malformed *cwlogstypes.MalformedQueryException
	_, err = c.StartQuery(ctx, &cwlogs.StartQueryInput{LogGroupName: aws.String("rejects"), QueryString: aws.String(`filter srcAddr = `), StartTime: aws.Int64(0), EndTime: aws.Int64(1)})
	if !errors.As(err, &malformed) || !strings.Contains(err.Error(), "expected a field or a value") {
		t.Errorf("a query cut short: %v, want MalformedQueryException saying why", err)
	}
	var notFound *cwlogstypes.ResourceNotFoundException
	if _, err := client(provider).StartQuery(ctx, &cwlogs.StartQueryInput{LogGroupName: aws.String("rejects"), QueryString: aws.String(`fields srcAddr`), StartTime: aws.Int64(0), EndTime: aws.Int64(1)}); !errors.As(err, &notFound) {
		t.Errorf("another account's group: %v, want ResourceNotFoundException", err)
	}
	if _, err := c.GetQueryResults(ctx, &cwlogs.GetQueryResultsInput{QueryId: aws.String("nothing")}); !errors.As(err, &notFound) {
		t.Errorf("GetQueryResults of no query: %v, want ResourceNotFoundException", err)
	}
	var invalid *cwlogstypes.InvalidParameterException
	for name, in := range map[string]*cwlogs.StartQueryInput{
		"two ways of naming groups": {LogGroupName: aws.String("rejects"), LogGroupNames: []string{"rejects"}, QueryString: aws.String(`fields srcAddr`), StartTime: aws.Int64(0), EndTime: aws.Int64(1)},
		"an end before the start":   {LogGroupName: aws.String("rejects"), QueryString: aws.String(`fields srcAddr`), StartTime: aws.Int64(2), EndTime: aws.Int64(1)},
		"another query language":    {LogGroupName: aws.String("rejects"), QueryString: aws.String(`source=rejects`), StartTime: aws.Int64(0), EndTime: aws.Int64(1), QueryLanguage: cwlogstypes.QueryLanguagePpl},
	} {
		if _, err := c.StartQuery(ctx, in); !errors.As(err, &invalid) {
			t.Errorf("StartQuery with %s: %v, want InvalidParameterException", name, err)
		}
	}
	// A group named by its ARN reads the same.
	started, err := c.StartQuery(ctx, &cwlogs.StartQueryInput{LogGroupIdentifiers: []string{"arn:aws:logs:us-east-1:" + consumer.ID + ":log-group:rejects:*"},
		QueryString: aws.String(`stats count(*) as flows`), StartTime: aws.Int64(0), EndTime: aws.Int64(2_000_000_000)})
	if err != nil {
		t.Fatalf("StartQuery by ARN: %v", err)
	}
	if out, err := c.GetQueryResults(ctx, &cwlogs.GetQueryResultsInput{QueryId: started.QueryId}); err != nil || table(out) != "flows=5" {
		t.Errorf("count by ARN: %+v, %v", out, err)
	}
	// parse, as the guide's readers take a record apart: a glob's fields
	// named by as, a regex's by its named groups.
	out = run(`parse @message "* * * * *" as version, account, eni, src, rest | filter src = "198.18.2.4" | stats count(*) as flows by eni`, 0, 2_000_000_000)
	if got, want := table(out), "eni="+eni.ID+" flows=3"; got != want {
		t.Errorf("parse with a glob: %s, want %s", got, want)
	}
	out = run(`parse @message / (?<port>4000[0-9]) 80 / | filter port >= 40003 | display port`, 0, 2_000_000_000)
	if got, want := table(out), "port=40004; port=40003"; got != want {
		t.Errorf("parse with a regex: %s, want %s", got, want)
	}
}
