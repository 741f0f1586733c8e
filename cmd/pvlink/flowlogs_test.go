package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
)

// flowRecord is a flow log record read by the field names of its file's
// first line, as AWS's are read.
type flowRecord map[string]string

func (r flowRecord) n(field string) uint64 {
	v, _ := strconv.ParseUint(r[field], 10, 64)
	return v
}

// readFlowLog parses a flow log: the first line names the fields.
func readFlowLog(t *testing.T, text string) []flowRecord {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	if !sc.Scan() {
		return nil
	}
	names := strings.Fields(sc.Text())
	want := strings.Fields("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status")
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("the field names: %q, want AWS's default format", sc.Text())
	}
	var out []flowRecord
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != len(names) {
			t.Fatalf("a record with %d fields: %q", len(f), sc.Text())
		}
		r := flowRecord{}
		for i, n := range names {
			r[n] = f[i]
		}
		out = append(out, r)
	}
	return out
}

func TestFlowLogsRecordEachDirectionWithItsPacketsAndBytesAndSecurityGroupDropsAsReject(t *testing.T) {
	f := fabrictest.Up(t, securityGroupTopology(t))
	consumer := awsAs(t, f, "consumer")
	e := f.Status.Endpoints[0]
	eni := e.ENIs[0]
	file := filepath.Join(t.TempDir(), "flows.log")
	var created struct{ FlowLogIds []string }
	consumer.do(&created, "create-flow-logs", "--resource-type", "VPC", "--resource-ids", e.VPCID, "--traffic-type", "ALL",
		"--log-destination-type", "s3", "--log-destination", file, "--max-aggregation-interval", "2")
	var rejects struct{ FlowLogIds []string }
	consumer.do(&rejects, "create-flow-logs", "--resource-type", "NetworkInterface", "--resource-ids", eni.ID, "--traffic-type", "REJECT",
		"--log-group-name", "rejects", "--max-aggregation-interval", "2")
	var described struct {
		FlowLogs []struct {
			FlowLogId, ResourceId, TrafficType, FlowLogStatus string
			MaxAggregationInterval                            int
		}
	}
	consumer.do(&described, "describe-flow-logs", "--flow-log-ids", created.FlowLogIds[0])
	if len(described.FlowLogs) != 1 || described.FlowLogs[0].ResourceId != e.VPCID || described.FlowLogs[0].FlowLogStatus != "ACTIVE" {
		t.Fatalf("describe-flow-logs: %+v", described)
	}
	// A VPC that is not the caller's is refused alone, as EC2 does.
	var partly struct {
		FlowLogIds   []string
		Unsuccessful []struct {
			ResourceId string
			Error      struct{ Code string }
		}
	}
	consumer.do(&partly, "create-flow-logs", "--resource-type", "VPC", "--resource-ids", "vpc-0000000000000000", "--log-group-name", "x")
	if len(partly.FlowLogIds) != 0 || len(partly.Unsuccessful) != 1 || partly.Unsuccessful[0].Error.Code != "InvalidVpcID.NotFound" {
		t.Errorf("a flow log of a VPC that does not exist: %+v", partly)
	}
	if out, _ := fabrictest.Run(t, "fabric", "status", f.Name); !strings.Contains(out, created.FlowLogIds[0]) || !strings.Contains(out, file) {
		t.Errorf("fabric status does not list the flow log:\n%s", out)
	}
	f.Refresh(t)
	waitUntil(t, 10*time.Second, "the forwarders to run the flow logs", func() bool {
		f.Refresh(t)
		return f.Status.Phase == "up"
	})

	// An allowed connection: 1 MiB each way.
	var conn net.Conn
	if err := nsenter.Do(f.Netns(t, "consumer"), func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("198.18.1.4")}}
		conn, err = d.Dial("tcp", eni.IP+":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 1 << 20
	payload := make([]byte, size)
	go func() {
		conn.Write(payload)
		conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil || len(got) < size {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	info, err := tcpInfo(conn)
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(conn.LocalAddr().(*net.TCPAddr).Port)

	// A source the security group does not allow: its SYNs are dropped.
	nsenter.Do(f.Netns(t, "consumer"), func() error {
		d := net.Dialer{Timeout: 1500 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP("198.18.2.4")}}
		if c, err := d.Dial("tcp", eni.IP+":80"); err == nil {
			c.Close()
			t.Error("a source outside the security group connected")
		}
		return nil
	})

	var recs []flowRecord
	var out, in, reject flowRecord
	waitUntil(t, 15*time.Second, "the records of both connections", func() bool {
		data, _ := os.ReadFile(file)
		recs = readFlowLog(t, string(data))
		out, in, reject = nil, nil, nil
		for _, r := range recs {
			switch {
			case r["srcaddr"] == "198.18.1.4" && r["srcport"] == port:
				out = sumRecords(out, r)
			case r["dstaddr"] == "198.18.1.4" && r["dstport"] == port:
				in = sumRecords(in, r)
			case r["srcaddr"] == "198.18.2.4" && r["action"] == "REJECT":
				reject = sumRecords(reject, r)
			}
		}
		return out != nil && in != nil && reject != nil && out.n("packets") >= uint64(info.Segs_out)
	})
	for _, r := range []flowRecord{out, in} {
		if r["version"] != "2" || r["account-id"] != e.OwnerID || r["interface-id"] != eni.ID || r["protocol"] != "6" || r["action"] != "ACCEPT" || r["log-status"] != "OK" {
			t.Errorf("a record of the connection: %v", r)
		}
		if r.n("start") < uint64(time.Now().Add(-time.Minute).Unix()) || r.n("end") < r.n("start") {
			t.Errorf("start %s, end %s", r["start"], r["end"])
		}
	}
	if out["dstaddr"] != eni.IP || out["dstport"] != "80" || in["srcaddr"] != eni.IP || in["srcport"] != "80" {
		t.Errorf("addresses and ports: %v, %v", out, in)
	}
	// The consumer's packets are what its kernel sent (segments of its
	// TSO frames counted one by one), each with its headers.
	if out.n("packets") != uint64(info.Segs_out) {
		t.Errorf("consumer -> ENI: %d packets recorded, the consumer's kernel sent %d", out.n("packets"), info.Segs_out)
	}
	for _, c := range []struct {
		name       string
		r          flowRecord
		payload    uint64
		minPackets uint64
	}{
		// What the consumer's kernel sent again (a spurious timeout
		// when the forwarder's ACKs come late, as in a -race build) the
		// ENI received again: a flow log counts every packet.
		{"consumer -> ENI", out, size + info.Bytes_retrans, size / 8420},
		{"ENI -> consumer", in, uint64(len(got)), uint64(len(got)) / 8420},
	} {
		p, b := c.r.n("packets"), c.r.n("bytes")
		if p < c.minPackets || b < c.payload+40*p || b > c.payload+80*p {
			t.Errorf("%s: %d packets, %d bytes for %d bytes of payload", c.name, p, b, c.payload)
		}
		t.Logf("%s: %d packets, %d bytes (payload %d)", c.name, p, b, c.payload)
	}
	if reject["dstaddr"] != eni.IP || reject["dstport"] != "80" || reject.n("packets") < 1 || reject["interface-id"] != eni.ID {
		t.Errorf("the security group's drops: %v", reject)
	}
	for _, r := range recs {
		if r["srcaddr"] == "198.18.2.4" && r["action"] != "REJECT" {
			t.Errorf("the refused source has an %s record", r["action"])
		}
	}

	// The REJECT-only flow log has the drops and nothing else; pvlink
	// flowlogs prints them as AWS's files are.
	waitUntil(t, 10*time.Second, "the REJECT flow log", func() bool {
		data, _ := os.ReadFile(ctl.FlowLogGroupFile(f.Name, "rejects"))
		return len(readFlowLog(t, string(data))) > 0
	})
	text, err := fabrictest.Run(t, "flowlogs", f.Name, "--flow-log-id", rejects.FlowLogIds[0])
	if err != nil {
		t.Fatalf("pvlink flowlogs: %v\n%s", err, text)
	}
	for _, r := range readFlowLog(t, text) {
		if r["action"] != "REJECT" {
			t.Errorf("the REJECT flow log holds %v", r)
		}
	}
	// The same group read with CloudWatch Logs' commands, as a flow log
	// to cloud-watch-logs is read in AWS: a stream for the ENI named by
	// the flow log's traffic type, searched with a space-delimited
	// pattern; the provider does not see the group.
	logs := *consumer
	logs.service = "logs"
	var groups struct {
		LogGroups []struct{ LogGroupName string }
	}
	logs.do(&groups, "describe-log-groups")
	var streams struct {
		LogStreams []struct{ LogStreamName string }
	}
	logs.do(&streams, "describe-log-streams", "--log-group-name", "rejects")
	stream := eni.ID + "-reject"
	if len(groups.LogGroups) != 1 || groups.LogGroups[0].LogGroupName != "rejects" || len(streams.LogStreams) != 1 || streams.LogStreams[0].LogStreamName != stream {
		t.Errorf("aws logs describe-log-groups: %+v; describe-log-streams: %+v (want the one stream %s)", groups, streams, stream)
	}
	var found struct {
		Events []struct {
			LogStreamName, Message string
			Timestamp              int64
		}
	}
	logs.do(&found, "filter-log-events", "--log-group-name", "rejects", "--filter-pattern",
		`[version, account, eni, source="198.18.2.4", destination, srcport, destport=80, protocol=6, packets>0, bytes, windowstart, windowend, action="REJECT", flowlogstatus]`)
	if len(found.Events) == 0 {
		t.Error("aws logs filter-log-events found no REJECT record of 198.18.2.4")
	}
	for _, e := range found.Events {
		r := readFlowLog(t, ctl.FlowLogHeader+"\n"+e.Message)
		if len(r) != 1 || r[0]["srcaddr"] != "198.18.2.4" || e.LogStreamName != stream || e.Timestamp != int64(r[0].n("start"))*1000 {
			t.Errorf("filter-log-events: %+v", e)
		}
	}
	var all struct{ Events []struct{ Message string } }
	logs.do(&all, "get-log-events", "--log-group-name", "rejects", "--log-stream-name", stream, "--start-from-head")
	data, _ := os.ReadFile(ctl.FlowLogGroupFile(f.Name, "rejects"))
	if n := len(readFlowLog(t, string(data))); len(all.Events) != n {
		t.Errorf("aws logs get-log-events: %d events, the group has %d records", len(all.Events), n)
	}
	// Logs Insights, as the guide's readers query flow logs: the drops
	// by source, counted as the group has them.
	var started struct{ QueryId string }
	logs.do(&started, "start-query", "--log-group-name", "rejects", "--start-time", "0", "--end-time", fmt.Sprint(time.Now().Unix()+60),
		"--query-string", `filter action = "REJECT" and dstPort = 80 | stats sum(packets) as packets, count(*) as records by srcAddr, interfaceId | sort packets desc`)
	var results struct {
		Status  string
		Results [][]struct{ Field, Value string }
	}
	logs.do(&results, "get-query-results", "--query-id", started.QueryId)
	want := map[string]string{} // by source: its packets and records
	sums := map[string][2]uint64{}
	for _, r := range readFlowLog(t, string(data)) {
		if r["action"] == "REJECT" && r["dstport"] == "80" {
			s := sums[r["srcaddr"]+" "+r["interface-id"]]
			sums[r["srcaddr"]+" "+r["interface-id"]] = [2]uint64{s[0] + r.n("packets"), s[1] + 1}
		}
	}
	for k, s := range sums {
		want[k] = fmt.Sprintf("%d %d", s[0], s[1])
	}
	rows := map[string]string{}
	for _, row := range results.Results {
		v := map[string]string{}
		for _, field := range row {
			v[field.Field] = field.Value
		}
		rows[v["srcAddr"]+" "+v["interfaceId"]] = v["packets"] + " " + v["records"]
	}
	if results.Status != "Complete" || fmt.Sprint(rows) != fmt.Sprint(want) || want["198.18.2.4 "+eni.ID] == "" {
		t.Errorf("aws logs get-query-results: %s %v, want %v (198.18.2.4's drops on %s among them)", results.Status, rows, want, eni.ID)
	}
	if out, err := awsAs(t, f, "provider").runService("logs", "describe-log-streams", "--log-group-name", "rejects"); err == nil || !strings.Contains(out, "ResourceNotFoundException") {
		t.Errorf("the provider read the consumer's log group: %v\n%s", err, out)
	}

	consumer.do(nil, "delete-flow-logs", "--flow-log-ids", created.FlowLogIds[0], rejects.FlowLogIds[0])
	consumer.do(&described, "describe-flow-logs")
	if len(described.FlowLogs) != 0 {
		t.Errorf("after delete-flow-logs: %+v", described.FlowLogs)
	}
	// As in AWS, the log group outlives its flow log.
	logs.do(&streams, "describe-log-streams", "--log-group-name", "rejects")
	if len(streams.LogStreams) != 1 || streams.LogStreams[0].LogStreamName != stream {
		t.Errorf("after delete-flow-logs, describe-log-streams: %+v", streams)
	}
}

// sumRecords adds a record's packets and bytes to a sum of records of one
// flow direction (a flow that outlives an interval has several).
func sumRecords(sum, r flowRecord) flowRecord {
	if sum == nil {
		out := flowRecord{}
		for k, v := range r {
			out[k] = v
		}
		return out
	}
	for _, k := range []string{"packets", "bytes"} {
		sum[k] = strconv.FormatUint(sum.n(k)+r.n(k), 10)
	}
	if r.n("end") > sum.n("end") {
		sum["end"] = r["end"]
	}
	return sum
}
