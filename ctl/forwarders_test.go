package ctl

import (
	"testing"

	"pvlink.dev/pvlink/snapshot"
)

func TestAnENIsCountersAreSummedOverItsAZsWorkers(t *testing.T) {
	w := func(az string, worker int, cs ...snapshot.ENICounters) ForwarderDoc[[]snapshot.ENICounters] {
		return ForwarderDoc[[]snapshot.ENICounters]{ForwarderReport{ForwarderState: ForwarderState{AZ: az, Worker: worker, Workers: 2}}, cs}
	}
	docs := []ForwarderDoc[[]snapshot.ENICounters]{
		w("az1", 0, snapshot.ENICounters{ENI: "eni-a", NewConnections: 3, BytesProcessed: 100}),
		w("az1", 1, snapshot.ENICounters{ENI: "eni-a", NewConnections: 4, BytesProcessed: 50}),
		w("az2", 0, snapshot.ENICounters{ENI: "eni-b", NewConnections: 1}),
	}
	rows := SumENICounters(docs)
	if len(rows) != 2 || rows[0].ENI != "eni-a" || rows[0].NewConnections != 7 || rows[0].BytesProcessed != 150 || rows[1].AZ != "az2" || rows[1].NewConnections != 1 {
		t.Fatalf("sums: %+v", rows)
	}
}
