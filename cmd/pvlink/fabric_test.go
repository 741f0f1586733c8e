package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
)

// demoTopology is examples/demo.yaml under a fresh name (NAME), with its
// endpoint accepted automatically.
func demoTopology(t *testing.T) string {
	t.Helper()
	return strings.Replace(example(t, "demo"), "acceptance_required: true", "acceptance_required: false", 1)
}

// example is examples/NAME.yaml under a fresh name (NAME).
func example(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../../examples/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(data), "name: "+name, "name: NAME", 1)
}

// lineOf is the 1-based line of the first occurrence of s in text.
func lineOf(text, s string) int {
	return strings.Count(text[:strings.Index(text, s)], "\n") + 1
}

func nodeIP(t *testing.T, r *ctl.Report, az string) string {
	t.Helper()
	for _, lb := range r.LoadBalancers {
		for _, n := range lb.Nodes {
			if n.AZ == az {
				return n.IP
			}
		}
	}
	t.Fatalf("no load-balancer node in %s", az)
	return ""
}

func TestFabricCarries100MiBIntactThroughEachAZ(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	const size = 100 << 20
	for _, e := range f.Status.Endpoints {
		for _, eni := range e.ENIs {
			c := &peer.Client{
				Addr:    netip.AddrPortFrom(netip.MustParseAddr(eni.IP), uint16(e.Ports[0])).String(),
				Bytes:   size,
				Timeout: 60 * time.Second,
				Dial:    fabrictest.DialFrom(consumer),
			}
			res, err := c.Run(context.Background())
			if err != nil {
				t.Fatalf("%s: %v", eni.AZ, err)
			}
			if !res.Intact || res.Sent != size || res.Echoed != size {
				t.Fatalf("%s: sent %d (crc32c %08x), echoed %d (%08x)", eni.AZ, res.Sent, res.SentCRC, res.Echoed, res.EchoCRC)
			}
			var seen peer.Seen
			if err := json.Unmarshal(res.Target, &seen); err != nil {
				t.Fatal(err)
			}
			peerAddr := netip.MustParseAddrPort(seen.Peer).Addr().String()
			if want := nodeIP(t, f.Status, eni.AZ); peerAddr != want {
				t.Errorf("%s: target saw %s as the source, want the load-balancer node %s", eni.AZ, peerAddr, want)
			}
			if seen.AZ != eni.AZ {
				t.Errorf("%s: connection reached a target in %s (cross-zone is off)", eni.AZ, seen.AZ)
			}
			t.Logf("%s: 100 MiB each way intact in %.2fs (%.2f Gbit/s both ways together)", eni.AZ, res.Seconds, res.Gbps)

			cs := f.Counters(t, eni.AZ)
			if len(cs) != 1 || cs[0].ENI != eni.ID {
				t.Fatalf("%s: counters %+v", eni.AZ, cs)
			}
			// Both directions count: the stream, its echo, and the
			// target's one-line report.
			wantBytes := uint64(2*size + len(res.Target) + 1)
			if cs[0].NewConnections != 1 || cs[0].BytesProcessed != wantBytes {
				t.Errorf("%s: NewConnections=%d BytesProcessed=%d, want 1 and %d", eni.AZ, cs[0].NewConnections, cs[0].BytesProcessed, wantBytes)
			}
			// The consumer's kernel handed the TUN GSO frames (its TSO) that
			// were split into wire-sized packets, each under the 8500-byte
			// rule: more packets than reads, none dropped.
			t.Logf("%s: %d TUN reads gave %d packets", eni.AZ, cs[0].TunReads, cs[0].TunPackets)
			if cs[0].TunPackets <= cs[0].TunReads || cs[0].PacketsDropped != 0 {
				t.Errorf("%s: %d reads, %d packets, %d dropped: no GSO frames split?", eni.AZ, cs[0].TunReads, cs[0].TunPackets, cs[0].PacketsDropped)
			}
			metrics := f.Metrics(t, eni.AZ)
			for _, name := range []string{"pvlink_endpoint_active_connections", "pvlink_endpoint_bytes_processed_total", "pvlink_endpoint_new_connections_total", "pvlink_endpoint_packets_dropped_total", "pvlink_endpoint_rst_packets_received_total"} {
				if !strings.Contains(metrics, name+`{az="`+eni.AZ+`"`) || !strings.Contains(metrics, `vpc_endpoint_id="`+e.ID+`"`) {
					t.Errorf("%s: metric %s with its labels is missing", eni.AZ, name)
				}
			}
		}
	}
}

func TestFabricStatusJSONHasTheFieldsScriptsUse(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	out, err := fabrictest.Run(t, "fabric", "status", f.Name, "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	need := map[string][]string{
		"vpcs":       {"name", "netns"},
		"endpoints":  {"id", "service", "vpc", "state", "ports", "enis"},
		"targets":    {"ip", "port", "az", "netns"},
		"forwarders": {"az", "pid", "metrics"},
	}
	for list, fields := range need {
		items, _ := doc[list].([]any)
		if len(items) == 0 {
			t.Fatalf("%s is empty or missing", list)
		}
		for _, it := range items {
			m := it.(map[string]any)
			for _, k := range fields {
				if v, ok := m[k]; !ok || v == "" || v == nil {
					t.Errorf("%s[].%s is missing or empty in %v", list, k, m)
				}
			}
		}
	}
	for _, e := range doc["endpoints"].([]any) {
		for _, eni := range e.(map[string]any)["enis"].([]any) {
			for _, k := range []string{"az", "ip", "tun"} {
				if eni.(map[string]any)[k] == "" {
					t.Errorf("endpoints[].enis[].%s is empty", k)
				}
			}
		}
	}
	if len(f.Status.Forwarders) != 2 || !f.Status.Forwarders[0].Alive || !strings.HasPrefix(f.Status.Forwarders[0].Metrics, "http://127.0.0.1:") {
		t.Errorf("forwarders: %+v", f.Status.Forwarders)
	}
}

// leftovers lists what of a fabric still exists: namespaces, runtime files,
// processes.
func leftovers(t *testing.T, name string, pids []int) []string {
	t.Helper()
	var left []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pvl-"+name+"-") {
			left = append(left, "netns "+e.Name())
		}
	}
	if _, err := os.Stat(ctl.Dir(name)); err == nil {
		left = append(left, "folder "+ctl.Dir(name))
	}
	for _, pid := range pids {
		if data, err := os.ReadFile("/proc/" + itoa(pid) + "/stat"); err == nil && !strings.Contains(string(data), ") Z ") {
			left = append(left, "process "+itoa(pid))
		}
	}
	return left
}

func itoa(i int) string { return strconv.Itoa(i) }

// listed is the fabric's line in `pvlink fabric list -o json`, or nil.
func listed(t *testing.T, name string) *ctl.FabricSummary {
	t.Helper()
	out, err := fabrictest.Run(t, "fabric", "list", "-o", "json")
	if err != nil {
		t.Fatalf("fabric list: %v\n%s", err, out)
	}
	var all []ctl.FabricSummary
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("fabric list -o json: %v\n%s", err, out)
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return nil
}

func TestFabricDownAfterKill9LeavesNothing(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	var pids []int
	for _, fw := range f.Status.Forwarders {
		pids = append(pids, fw.PID)
	}
	for _, tg := range f.Status.Targets {
		pids = append(pids, tg.PID)
	}
	pids = append(pids, f.Status.Ctld.PID)
	// SIGKILL ctld, then one forwarder and one target: nothing of theirs
	// gets to clean up, and nobody restarts them.
	for _, pid := range []int{f.Status.Ctld.PID, f.Status.Forwarders[0].PID, f.Status.Targets[0].PID} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	// fabric list shows the fabric, and that its ctld is not running.
	if l := listed(t, f.Name); l == nil || !strings.Contains(l.Error, "ctld is not running") {
		t.Errorf("fabric list after ctld was killed: %+v", l)
	}
	for i := 0; i < 2; i++ {
		out, err := fabrictest.Run(t, "fabric", "down", f.Name)
		if err != nil {
			t.Fatalf("fabric down (run %d): %v\n%s", i+1, err, out)
		}
	}
	if l := listed(t, f.Name); l != nil {
		t.Errorf("fabric list still shows the fabric after down: %+v", l)
	}
	waitNoLeftovers(t, f.Name, pids, 5*time.Second, "fabric down")
}

// waitNoLeftovers waits up to d for leftovers to find nothing, and fails
// the test with what it found if it does not.
func waitNoLeftovers(t *testing.T, name string, pids []int, d time.Duration, after string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var left []string
	for time.Now().Before(deadline) {
		if left = leftovers(t, name, pids); len(left) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("left behind after %s: %v", after, left)
}

// A down whose caller went away once ctld had it (an interrupted or timed
// out `fabric down`) still leaves nothing: ctld finishes it and removes
// its runtime folder itself.
func TestADownWhoseCallerWentAwayLeavesNothing(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	pids := []int{f.Status.Ctld.PID}
	for _, fw := range f.Status.Forwarders {
		pids = append(pids, fw.PID)
	}
	c, err := net.Dial("unix", ctl.SocketPath(f.Name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "POST /down HTTP/1.1\r\nHost: ctld\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The caller goes before the answer, once ctld has begun.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ctl.StoreDir(f.Name)); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	waitNoLeftovers(t, f.Name, pids, 10*time.Second, "a down whose caller went away")
}

func TestFabricUpTwiceSaysAlreadyUp(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	out, err := fabrictest.Run(t, "fabric", "up", "-q", "-f", f.File)
	if err == nil {
		t.Fatal("second fabric up succeeded")
	}
	if !strings.Contains(out, "fabric "+f.Name+" is already up") {
		t.Errorf("second fabric up said %q", out)
	}
	f.Refresh(t)
	if !f.Status.Forwarders[0].Alive {
		t.Error("second fabric up harmed the running fabric")
	}
}

// TestFabricUpRefusesBadInputAndCreatesNothing: each refusal is one clear
// sentence, a non-zero exit, and no namespace, folder or process.
func TestFabricUpRefusesBadInputAndCreatesNothing(t *testing.T) {
	fabrictest.RequireRoot(t)
	bin := fabrictest.Binary(t)
	// A folder everyone can read, for the unprivileged case.
	dir, err := os.MkdirTemp("", "pvlink-refusal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// A copy of the binary an unprivileged user can run, wherever the
	// checkout is.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	userBin := filepath.Join(dir, "pvlink")
	if err := os.WriteFile(userBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	good := demoTopology(t)

	tests := []struct {
		name     string
		topology func(name string) string
		cmd      func(file string) *exec.Cmd
		setup    func(t *testing.T, name string)
		want     string
	}{
		{
			name:     "bad YAML field",
			topology: func(n string) string { return strings.Replace(good, "    port: 8080", "    port: eighty", 1) },
			want:     ".yaml:" + strconv.Itoa(lineOf(good, "    port: 8080")) + ": target_groups[0].port: cannot unmarshal !!str `eighty` into int",
		},
		{
			name: "address clash",
			topology: func(n string) string {
				return strings.Replace(good, "private_ipv4_address: 198.19.2.5}", "private_ipv4_address: 198.19.2.10}", 1)
			},
			want: "address clash: 198.19.2.10 is already used by the target",
		},
		{
			name: "namespace already exists",
			setup: func(t *testing.T, name string) {
				ns := ctl.NetnsName(name, "consumer")
				if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
					t.Fatalf("ip netns add: %v %s", err, out)
				}
				t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
			},
			want: "already exists and is not part of a pvlink fabric",
		},
		{
			name: "not root",
			cmd: func(file string) *exec.Cmd {
				c := exec.Command(userBin, "fabric", "up", "-f", file)
				c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				return c
			},
			want: "pvlink needs root",
		},
		{
			name: "no /dev/net/tun",
			cmd: func(file string) *exec.Cmd {
				// A private mount namespace whose /dev/net is empty.
				return exec.Command("unshare", "-m", "sh", "-c", `mount -t tmpfs none /dev/net && exec "$0" fabric up -f "$1"`, bin, file)
			},
			want: "/dev/net/tun is missing",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fabrictest.Name()
			topo := strings.ReplaceAll(good, "NAME", name)
			if tc.topology != nil {
				topo = strings.ReplaceAll(tc.topology(name), "NAME", name)
			}
			file := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(file, []byte(topo), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { exec.Command(bin, "fabric", "down", name).Run() })
			if tc.setup != nil {
				tc.setup(t, name)
			}
			cmd := exec.Command(bin, "fabric", "up", "-q", "-f", file)
			if tc.cmd != nil {
				cmd = tc.cmd(file)
			}
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("fabric up succeeded:\n%s", out)
			}
			msg := strings.TrimSpace(string(out))
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error is more than one line:\n%s", msg)
			}
			left := leftovers(t, name, nil)
			if tc.name == "namespace already exists" && len(left) == 1 && strings.HasSuffix(left[0], "-consumer") {
				left = nil // the test's own namespace
			}
			if len(left) > 0 {
				t.Errorf("a refused fabric up left %v", left)
			}
		})
	}
}

// TestTwoFabricUpsAtOnceMakeOneFabric: two `fabric up` of one file at the
// same moment: one creates the fabric, the other says it is already up (or
// that its ctld is taken), and one ctld with one set of forwarders runs.
func TestTwoFabricUpsAtOnceMakeOneFabric(t *testing.T) {
	fabrictest.RequireRoot(t)
	name := fabrictest.Name()
	file := filepath.Join(t.TempDir(), name+".yaml")
	os.WriteFile(file, []byte(strings.ReplaceAll(demoTopology(t), "NAME", name)), 0o644)
	t.Cleanup(func() { fabrictest.Run(t, "fabric", "down", name) })
	type result struct {
		out string
		err error
	}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() {
			out, err := fabrictest.Run(t, "fabric", "up", "-q", "-f", file)
			results <- result{out, err}
		}()
	}
	ok := 0
	for i := 0; i < 2; i++ {
		r := <-results
		switch {
		case r.err == nil:
			ok++
		case !strings.Contains(r.out, "is already up") && !strings.Contains(r.out, "another process holds") && !strings.Contains(r.out, "held by a running process"):
			t.Errorf("the losing fabric up said: %s", r.out)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of two concurrent fabric ups succeeded, want 1", ok)
	}
	out, err := fabrictest.Run(t, "fabric", "status", name, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if n := processesOf(name); n != 2+2+1 {
		t.Fatalf("%d processes run for the fabric, want 2 forwarders, 2 targets and one ctld", n)
	}
}

// TestAUsersOwnNetnsBesideAFabricStrandsNothing: `ip netns add` of the
// user's own while a fabric is up must not keep `fabric down` from removing
// the fabric's namespaces.
func TestAUsersOwnNetnsBesideAFabricStrandsNothing(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	mine := "mine-" + f.Name
	if out, err := exec.Command("ip", "netns", "add", mine).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", mine, err, out)
	}
	defer exec.Command("ip", "netns", "del", mine).Run()
	if out, err := fabrictest.Run(t, "fabric", "down", f.Name); err != nil {
		t.Fatalf("fabric down beside the user's namespace: %v\n%s", err, out)
	}
	if left := leftovers(t, f.Name, nil); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := os.Stat("/run/netns/" + mine); err != nil {
		t.Fatalf("the user's namespace is gone: %v", err)
	}
}

// validate takes the file as up, apply and down do (-f), or as its
// argument, and says what is wrong with a bad one, by line.
func TestValidateTakesTheFileEitherWay(t *testing.T) {
	const demo = "../../examples/demo.yaml"
	for _, args := range [][]string{{"-f", demo}, {demo}} {
		if out, err := fabrictest.Run(t, append([]string{"fabric", "validate"}, args...)...); err != nil || !strings.Contains(out, "fabric demo is valid") {
			t.Fatalf("validate %v: %v\n%s", args, err, out)
		}
	}
	if out, err := fabrictest.Run(t, "fabric", "validate"); err == nil || !strings.Contains(out, "which topology file?") {
		t.Fatalf("validate without a file: %v\n%s", err, out)
	}
	if out, err := fabrictest.Run(t, "fabric", "validate", "-f", demo, demo); err == nil || !strings.Contains(out, "give the file once") {
		t.Fatalf("validate with the file twice: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(demo)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(data), "{protocol: TCP, port: 80, target_group: web}", "{protocol: TLS, port: 80, target_group: web}", 1)), 0o644)
	if out, err := fabrictest.Run(t, "fabric", "validate", "-f", bad); err == nil || !regexp.MustCompile(`bad\.yaml:[0-9]+: load_balancers\[0\]\.listeners\[0\]\.protocol: listener protocol TLS`).MatchString(out) {
		t.Fatalf("validate a TLS listener: %v\n%s", err, out)
	}
}
