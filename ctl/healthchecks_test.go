package ctl

import (
	"strings"
	"testing"

	"pvlink.dev/pvlink/snapshot"
)

func TestAHealthCheckIsCheckedAndGetsTheNLBsDefaults(t *testing.T) {
	hc := snapshot.HealthCheck{Protocol: "http"}
	if err := settleHealthCheck(&hc); err != nil || hc.Protocol != "HTTP" || hc.Path != "/" || hc.Matcher != "200-399" {
		t.Fatalf("an HTTP check with nothing else: %+v %v", hc, err)
	}
	for _, bad := range []snapshot.HealthCheck{
		{Protocol: "UDP"},
		{Protocol: "TCP", Path: "/healthz"},
		{Protocol: "HTTP", Path: "healthz"},
		{Protocol: "HTTPS", Matcher: "700"},
		{Protocol: "HTTP", Matcher: "399-200"},
	} {
		if err := settleHealthCheck(&bad); err == nil {
			t.Errorf("%+v was taken", bad)
		}
	}
	demo := string(demoTopology(t))
	const at = "    proxy_protocol_v2: true\n"
	good := strings.Replace(demo, at, at+"    health_check: {protocol: HTTPS, port: 8443, path: /ready, matcher: \"200,204\"}\n", 1)
	s := &State{}
	if err := applyText(t, s, good); err != nil {
		t.Fatal(err)
	}
	if got := s.ForwarderConfig("use1-az1").TargetGroups["web"].HealthCheck; got.Protocol != "HTTPS" || got.Port != 8443 || got.Path != "/ready" || got.Matcher != "200,204" {
		t.Fatalf("from the file: %+v", got)
	}
	bad := strings.Replace(demo, at, at+"    health_check: {protocol: TCP, path: /ready}\n", 1)
	if _, err := ParseTopology("demo.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "health_check: a TCP health check has no path or matcher") {
		t.Fatalf("a TCP check with a path in the file: %v", err)
	}
}
