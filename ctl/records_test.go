package ctl

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl/store"
)

// fullModel is the demo's model with a resource of every kind the store
// keeps.
func fullModel(t *testing.T) *State {
	t.Helper()
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
	pl, err := m.CreatePrefixList("444455556666", "offices", "IPv4", 4, []PrefixListEntry{{CIDR: "198.19.250.0/24", Description: "hq"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ModifyPrefixList("444455556666", pl.ID, PrefixListChange{Add: []PrefixListEntry{{CIDR: "198.19.251.0/24"}}}); err != nil {
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
	return m
}

// What ctld commits is what it reads back after a restart: every field of
// the model survives the trip through the store's records.
func TestTheModelSurvivesTheStore(t *testing.T) {
	m := fullModel(t)
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
	requireStored(t, st, m, "the model changed in the store")
}

// requireStored fails the test unless the store's model is want, field for
// field (as JSON).
func requireStored(t *testing.T, st store.Store, want *State, what string) {
	t.Helper()
	var back *State
	var ok bool
	err := st.View(func(tx store.ReadTx) (err error) { back, ok, err = loadModel(tx); return err })
	if err != nil || !ok {
		t.Fatalf("%s: no model read back (%v)", what, err)
	}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(back)
	if string(w) != string(g) {
		t.Fatalf("%s:\nwrote %s\nread  %s", what, w, g)
	}
}

// A resource the model no longer has leaves the store with the next save,
// whatever its kind: none comes back after a restart.
func TestWhatTheModelDropsLeavesTheStore(t *testing.T) {
	m := fullModel(t)
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Update(func(tx store.Tx) error { return saveModel(tx, m) }); err != nil {
		t.Fatal(err)
	}
	kept := map[string]int{}
	count := func() {
		clear(kept)
		st.View(func(tx store.ReadTx) error {
			for _, c := range collections {
				tx.List(c.prefix, func(string, []byte) error { kept[c.prefix]++; return nil })
			}
			return nil
		})
	}
	count()
	for _, c := range collections {
		if kept[c.prefix] == 0 {
			t.Errorf("the full model stored nothing under %s", c.prefix)
		}
	}
	empty := &State{Name: m.Name, Version: m.Version + 1, Region: m.Region, Created: m.Created}
	if _, err := st.Update(func(tx store.Tx) error { return saveModel(tx, empty) }); err != nil {
		t.Fatal(err)
	}
	count()
	for prefix, n := range kept {
		t.Errorf("%d records under %s outlived the resources", n, prefix)
	}
	requireStored(t, st, empty, "the emptied model came back otherwise")
}
