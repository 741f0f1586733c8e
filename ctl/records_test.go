package ctl

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl/store"
)

// What ctld commits is what it reads back after a restart: every field of
// the model survives the trip through the store's records.
func TestTheModelSurvivesTheStore(t *testing.T) {
	topo, err := ParseTopology("demo.yaml", demoTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	m := &State{}
	if err := m.ApplyTopology(topo, "/tmp/demo.yaml"); err != nil {
		t.Fatal(err)
	}
	m.Version = 7
	m.FlowCapacity = 4096
	// Every kind of record the model has.
	if err := m.SetPublicRecord("111122223333", "example.com", PublicRecord{Name: "_x.example.com", Type: "TXT", Value: "vpce:abc"}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrivateDNSName(&m.Services[0], "api.example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateSecurityGroup("444455556666", m.VPCs[1].ID, "app", "clients"); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateTopic("111122223333", "events"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateNotification("111122223333", NotificationRequest{ServiceID: m.Services[0].ID, TopicARN: m.TopicARN("111122223333", "events"), Events: []string{"Connect"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.TagResources("444455556666", []string{m.Endpoints[0].ID}, []Tag{{"team", "payments"}}); err != nil {
		t.Fatal(err)
	}
	if _, failed, err := m.CreateFlowLogs("444455556666", FlowLogSpec{ResourceIDs: []string{m.VPCs[1].ID}, ResourceType: "VPC", LogGroupName: "flows", Interval: 60}, time.Now()); err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	if err := m.PutManagedInsightRule("111122223333", "VpcEndpointService-BytesByEndpointId-v1", m.ServiceARN(m.Services[0]), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := m.AZDown("use1-az2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := m.AcceptEndpoint("web"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeregisterTarget("web", netip.MustParseAddrPort("198.19.1.10:8080"), time.Now()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(func(tx store.Tx) error { return saveModel(tx, m) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = store.OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var back *State
	st.View(func(tx store.ReadTx) error {
		var ok bool
		back, ok, err = loadModel(tx)
		if !ok {
			t.Fatal("no model in the store")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(m)
	got, _ := json.Marshal(back)
	if string(want) != string(got) {
		t.Fatalf("the model changed in the store:\nwrote %s\nread  %s", want, got)
	}
}
