package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAFlowLogGivesItsENIsAnIntervalAndOnlyTheOwnerMakesOne(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", demoTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	s := Plan(topo)
	e := s.Endpoints[0]
	consumer := e.OwnerID
	spec := FlowLogSpec{ResourceIDs: []string{e.VPCID}, ResourceType: "VPC", DestinationType: "s3", Destination: "/tmp/x.log", Interval: 5}
	if _, failed, err := s.CreateFlowLogs("999999999999", spec, time.Now()); err != nil || failed[e.VPCID] == nil {
		t.Fatalf("another account's flow log on the VPC: %v, %v", failed, err)
	}
	ids, failed, err := s.CreateFlowLogs(consumer, spec, time.Now())
	if err != nil || len(failed) != 0 || len(ids) != 1 {
		t.Fatalf("%v %v %v", ids, failed, err)
	}
	for _, az := range s.ForwarderZones() {
		for _, eni := range s.ForwarderConfig(az).ENIs {
			if time.Duration(eni.FlowLogInterval) != 5*time.Second {
				t.Errorf("%s: ENI %s interval %v", az, eni.ID, time.Duration(eni.FlowLogInterval))
			}
		}
	}
	// A shorter one on one ENI wins there.
	eni := e.ENIs[0]
	spec = FlowLogSpec{ResourceIDs: []string{eni.ID}, ResourceType: "NetworkInterface", LogGroupName: "g", Interval: 2}
	if _, failed, err := s.CreateFlowLogs(consumer, spec, time.Now()); err != nil || len(failed) != 0 {
		t.Fatalf("%v %v", failed, err)
	}
	if got := s.ForwarderConfig(eni.AZ).ENIs[0].FlowLogInterval; time.Duration(got) != 2*time.Second {
		t.Errorf("the ENI's own flow log: %v", time.Duration(got))
	}
	if _, _, err := s.CreateFlowLogs(consumer, FlowLogSpec{ResourceIDs: []string{e.VPCID}, ResourceType: "VPC", DestinationType: "s3", Destination: "relative.log"}, time.Now()); err == nil {
		t.Error("a relative destination was taken")
	}
	if failed := s.DeleteFlowLogs(consumer, []string{ids[0], "fl-nothere"}); failed[ids[0]] != nil || failed["fl-nothere"] == nil {
		t.Errorf("delete: %v", failed)
	}
}

func TestFlowLogsWriteIntoNoFileThatIsNotOne(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "passwd")
	os.WriteFile(other, []byte("root:x:0:0\n"), 0o644)
	if err := appendFlowLog(other, []string{"2 1 eni-1 a b 1 2 6 1 40 0 0 ACCEPT OK"}); err == nil {
		t.Error("a record was appended to a file that is not a flow log")
	}
	if data, _ := os.ReadFile(other); string(data) != "root:x:0:0\n" {
		t.Errorf("the other file changed: %q", data)
	}
	mine := filepath.Join(dir, "flows.log")
	for i := 0; i < 2; i++ {
		if err := appendFlowLog(mine, []string{"2 1 eni-1 a b 1 2 6 1 40 0 0 ACCEPT OK"}); err != nil {
			t.Fatal(err)
		}
	}
	if data, _ := os.ReadFile(mine); strings.Count(string(data), FlowLogHeader) != 1 || strings.Count(string(data), "ACCEPT") != 2 {
		t.Errorf("the flow log: %q", data)
	}
	if err := IsFlowLogFile(dir); err == nil {
		t.Error("a directory was taken as a flow log file")
	}
}
