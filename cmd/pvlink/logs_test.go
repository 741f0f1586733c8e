package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// jsonLog reads a log file that must hold one JSON object per line, with
// slog's time, level and msg.
func jsonLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q", path, sc.Text())
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("%s: a line without %s: %q", path, k, sc.Text())
			}
		}
		out = append(out, m)
	}
	return out
}

// logged reports whether a log has an event with these fields.
func logged(lines []map[string]any, msg string, fields map[string]string) bool {
next:
	for _, l := range lines {
		if l["msg"] != msg {
			continue
		}
		for k, v := range fields {
			if s, _ := l[k].(string); s != v {
				continue next
			}
		}
		return true
	}
	return false
}

func TestWithLogFormatJSONEveryProcessLogsOneObjectPerEvent(t *testing.T) {
	// The processes fabric up starts inherit the format.
	t.Setenv("PVLINK_LOG_FORMAT", "json")
	topo := strings.Replace(demoTopology(t), "acceptance_required: false", "acceptance_required: true", 1)
	topo = strings.Replace(topo, "    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n",
		"    proxy_protocol_v2_header_placement: on_first_ack_with_payload\n    health_check: {interval: 200ms, healthy_threshold: 2}\n", 1)
	f := fabrictest.Up(t, topo)
	e := f.Status.Endpoints[0]
	if out, err := fabrictest.Run(t, "endpoint", "accept", f.Name, "web"); err != nil {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	// A forwarder dies; ctld starts it again.
	victim := f.Status.Forwarders[0]
	syscall.Kill(victim.PID, syscall.SIGKILL)
	waitUntil(t, 20*time.Second, "the forwarder restarted", func() bool {
		f.Refresh(t)
		fw := f.Status.Forwarders[0]
		return fw.Alive && fw.PID != victim.PID && fw.Restarts > 0
	})

	// Each process names the code it runs, as `pvlink version` does.
	version, err := fabrictest.Run(t, "version")
	_, rev, _ := strings.Cut(version, "(revision ")
	rev, _, _ = strings.Cut(rev, " ")
	rev = strings.TrimSuffix(rev, ",")
	if err != nil || rev == "" {
		t.Fatalf("pvlink version: %v: %s", err, version)
	}
	ctld := filepath.Join(ctl.Dir(f.Name), "ctld.log")
	for _, want := range []struct {
		msg    string
		fields map[string]string
	}{
		{"ctld serving", map[string]string{"fabric": f.Name, "revision": rev}},
		{"endpoint state changed", map[string]string{"endpoint": e.ID, "from": "", "to": "pendingAcceptance"}},
		{"endpoint state changed", map[string]string{"endpoint": e.ID, "from": "pendingAcceptance", "to": "pending"}},
		{"endpoint state changed", map[string]string{"endpoint": e.ID, "from": "pending", "to": "available"}},
		{"process restarted", nil},
		{"snapshot applied", map[string]string{"forwarder": victim.AZ}},
	} {
		waitUntil(t, 10*time.Second, "ctld to log "+want.msg, func() bool { return logged(jsonLog(t, ctld), want.msg, want.fields) })
	}
	fw := jsonLog(t, f.Status.Forwarders[1].Log)
	for _, want := range []struct {
		msg    string
		fields map[string]string
	}{
		{"forwarding", map[string]string{"revision": rev}},
		{"snapshot applied", nil},
		{"target health changed", map[string]string{"from": "initial", "to": "healthy"}},
	} {
		waitUntil(t, 10*time.Second, "the forwarder to log "+want.msg, func() bool {
			fw = jsonLog(t, f.Status.Forwarders[1].Log)
			return logged(fw, want.msg, want.fields)
		})
	}
	t.Logf("ctld logged %d JSON lines, the forwarder %d", len(jsonLog(t, ctld)), len(fw))
	if out, err := fabrictest.Run(t, "version", "--log-format", "yaml"); err == nil || !strings.Contains(out, "use text or json") {
		t.Errorf("--log-format yaml: %v\n%s", err, out)
	}
}
