package ctl

import (
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
