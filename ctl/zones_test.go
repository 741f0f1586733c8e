package ctl

import (
	"strings"
	"testing"
)

func TestZoneNamesFollowTheIDsNumber(t *testing.T) {
	for _, tc := range []struct{ region, id, want string }{
		{"us-east-1", "use1-az1", "us-east-1a"},
		{"us-east-1", "use1-az6", "us-east-1f"},
		{"us-west-2", "usw2-az2", "us-west-2b"},
		{"eu-west-1", "euw1-az26", "eu-west-1z"},
		{"eu-west-1", "euw1-az27", "euw1-az27"}, // no 27th letter: its own name
		{"eu-west-1", "euw1-az0", "euw1-az0"},
		{"eu-west-1", "euw1-az01", "euw1-az01"},
		{"us-east-1", "az-a", "az-a"},
		{"us-east-1", "us-east-1a", "us-east-1a"},
	} {
		if got := ZoneName(tc.region, tc.id); got != tc.want {
			t.Errorf("ZoneName(%s, %s) = %s, want %s", tc.region, tc.id, got, tc.want)
		}
	}
}

func TestAZsAreFoundByNameOrIDInTheirRegion(t *testing.T) {
	s := &State{}
	if err := applyTopology(s, twoRegions(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ region, x, want string }{
		{"us-east-1", "us-east-1a", "use1-az1"},
		{"us-east-1", "use1-az2", "use1-az2"},
		{"us-west-2", "us-west-2b", "usw2-az2"},
		{"us-east-1", "us-west-2b", ""}, // another Region's
		{"us-east-1", "us-east-1z", ""},
	} {
		if got := s.AZID(tc.region, tc.x); got != tc.want {
			t.Errorf("AZID(%s, %s) = %q, want %q", tc.region, tc.x, got, tc.want)
		}
	}
	if got := s.AZName("usw2-az2"); got != "us-west-2b" {
		t.Errorf("AZName(usw2-az2) = %s, want us-west-2b", got)
	}
}

func TestTwoZonesOfARegionMayNotShareAName(t *testing.T) {
	topo := strings.Replace(string(demoTopology(t)), "availability_zones: [use1-az1, use1-az2]", "availability_zones: [use1-az1, use1-az2, other-az1]", 1)
	if topo == string(demoTopology(t)) {
		t.Fatal("the demo topology's zones line moved")
	}
	_, err := ParseTopology("demo.yaml", []byte(topo))
	if err == nil || !strings.Contains(err.Error(), "zones use1-az1 and other-az1 would both be named us-east-1a") {
		t.Fatalf("ParseTopology: %v", err)
	}
}
