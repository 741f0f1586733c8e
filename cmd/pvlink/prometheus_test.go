package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
)

// prometheus is a real Prometheus (Debian's) scraping a fabric with the
// scrape config the README gives.
type prometheus struct {
	t   *testing.T
	url string
}

// promConfig is the README's scrape config for a fabric's scrape point.
func promConfig(scrapePoint string, interval time.Duration) string {
	u, _ := url.Parse(scrapePoint)
	return fmt.Sprintf(`scrape_configs:
  - job_name: pvlink
    scrape_interval: %s
    metrics_path: /metrics
    static_configs:
      - targets: ['%s']
`, interval, u.Host)
}

func startPrometheus(t *testing.T, scrapePoint string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (make test installs Debian's prometheus)")
		}
		t.Skip("needs prometheus (apt-get install prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(promConfig(scrapePoint, time.Second)), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	p := &prometheus{t: t, url: "http://" + addr}
	waitUntil(t, 20*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant PromQL query.
func (p *prometheus) query(q string) ([]promSample, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Error  string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, out.Error)
	}
	var samples []promSample
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v", q, r.Value)
		}
		samples = append(samples, promSample{r.Metric, v})
	}
	return samples, nil
}

// value runs a query that must give one series.
func (p *prometheus) value(q string) float64 {
	p.t.Helper()
	s, err := p.query(q)
	if err != nil {
		p.t.Fatal(err)
	}
	if len(s) != 1 {
		p.t.Fatalf("%s: %d series, want 1: %v", q, len(s), s)
	}
	return s[0].Value
}

func TestARealPrometheusReadsWhatWasSentAndEveryDashboardQueryHasData(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	if f.Status.API.Metrics == "" {
		t.Fatal("fabric status gives no scrape point")
	}
	p := startPrometheus(t, f.Status.API.Metrics)
	s := knownTraffic(t, f, []int{6, 4}, 256<<10, 2, 3, 4)
	e, svc := f.Status.Endpoints[0], f.Status.Services[0]

	// Wait for a scrape that has all of it.
	total := s.total(s.conns)
	waitUntil(t, 30*time.Second, "prometheus to scrape the traffic", func() bool {
		got, err := p.query(fmt.Sprintf(`sum(pvlink_endpoint_new_connections_total{vpc_endpoint_id=%q})`, e.ID))
		return err == nil && len(got) == 1 && got[0].Value == float64(total)
	})

	for _, eni := range e.ENIs {
		sel := fmt.Sprintf(`vpc_endpoint_id=%q,eni=%q,az=%q,subnet_id=%q,vpc_id=%q,service_name=%q,endpoint_type="Interface"`, e.ID, eni.ID, eni.AZ, eni.SubnetID, e.VPCID, e.Service)
		exact := []struct {
			q    string
			want int
		}{
			{"sum(pvlink_endpoint_new_connections_total{" + sel + "})", s.conns[eni.ID]},
			{"sum(pvlink_endpoint_active_connections{" + sel + "})", 0},
			{"sum(pvlink_endpoint_rst_packets_received_total{" + sel + "})", s.resets[eni.ID]},
			{"sum(pvlink_endpoint_rst_packets_sent_total{" + sel + "})", s.refused[eni.ID]},
			{"sum(pvlink_endpoint_packets_dropped_total{" + sel + "})", s.pings[eni.ID]},
			{"sum(pvlink_ingress_dropped_packets_total{" + sel + `,reason="icmp"})`, s.pings[eni.ID]},
			{"sum(pvlink_ingress_dropped_packets_total{" + sel + `,reason!="icmp"})`, 0},
			{fmt.Sprintf(`sum(pvlink_forwarder_refused_connections_total{az=%q,reason="no_listener"})`, eni.AZ), s.refused[eni.ID]},
		}
		svcSel := fmt.Sprintf(`service_id=%q,az=%q,vpc_endpoint_id=%q,load_balancer_arn=~"arn:aws:elasticloadbalancing:.*:loadbalancer/net/.+"`, svc.ID, eni.AZ, e.ID)
		exact = append(exact, []struct {
			q    string
			want int
		}{
			{"sum(pvlink_service_new_connections_total{" + svcSel + "})", s.conns[eni.ID]},
			{"sum(pvlink_service_active_connections{" + svcSel + "})", 0},
			{"sum(pvlink_service_rst_packets_sent_total{" + svcSel + "})", 0},
		}...)
		for _, c := range exact {
			if got := p.value(c.q); got != float64(c.want) {
				t.Errorf("%s = %v, sent %d", c.q, got, c.want)
			}
		}
		for _, q := range []string{
			"sum(pvlink_endpoint_bytes_processed_total{" + sel + "})",
			"sum(pvlink_service_bytes_processed_total{" + svcSel + "})",
		} {
			if got := p.value(q); !within(got, float64(s.bytes[eni.ID]), 0.01) {
				t.Errorf("%s = %v, sent %d", q, got, s.bytes[eni.ID])
			}
		}
	}
	for _, c := range []struct {
		q    string
		want float64
	}{
		{fmt.Sprintf(`pvlink_service_endpoints{service_id=%q}`, svc.ID), 1},
		{fmt.Sprintf(`pvlink_endpoint_state{vpc_endpoint_id=%q,state="available"}`, e.ID), 1},
		{`count(pvlink_forwarder_up == 1)`, float64(len(f.Status.Forwarders))},
		{`count(pvlink_forwarder_snapshot_version == on() group_left pvlink_model_version)`, float64(len(f.Status.Forwarders))},
		{`sum(pvlink_forwarder_flows)`, 0},
		{`sum(pvlink_port_allocation_errors_total)`, 0},
		// Each node has one state for every target of the group.
		{`count(pvlink_target_state == 1)`, float64(len(f.Status.Forwarders) * len(f.Status.Targets))},
	} {
		if got := p.value(c.q); got != c.want {
			t.Errorf("%s = %v, want %v", c.q, got, c.want)
		}
	}

	// Every query of the dashboard has data, its variables set to All.
	data, err := os.ReadFile("../../docs/grafana/pvlink.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard: %v", err)
	}
	vars := strings.NewReplacer("$endpoint", ".*", "$service", ".*", "$__rate_interval", "1m")
	queries := 0
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			q := vars.Replace(tg.Expr)
			if regexp.MustCompile(`\$\w+`).MatchString(q) {
				t.Errorf("panel %q: an unknown variable in %s", panel.Title, tg.Expr)
				continue
			}
			queries++
			var got []promSample
			waitUntil(t, 20*time.Second, "data for panel "+panel.Title, func() bool {
				got, err = p.query(q)
				return err == nil && len(got) > 0
			})
		}
	}
	t.Logf("%d dashboard queries in %d panels returned data", queries, len(dash.Panels))
}
