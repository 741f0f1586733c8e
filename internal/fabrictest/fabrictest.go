// Package fabrictest brings pvlink fabrics up and down for tests, with the
// rules every netns test follows: it needs root, /dev/net/tun and network
// namespaces; without root it skips, unless CI=true, where it fails; and
// whatever it creates is removed when the test ends, pass or fail.
package fabrictest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// RequireRoot skips a test that needs root, or fails it under CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, TUN): CI must run it as root")
	}
	t.Skip("needs root (network namespaces, TUN); run as root, or set CI=true to make this a failure")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the pvlink binary under test: $PVLINK_BIN, or one built
// once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PVLINK_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pvlink-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pvlink")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		// As make builds it: gVisor with pvlink's changes (third_party/gvisor).
		mod := exec.Command("./scripts/gvisor-module.sh", "go", "build")
		mod.Dir = root
		if out, err := mod.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("scripts/gvisor-module.sh: %v\n%s", err, out)
			return
		}
		cmd := exec.Command("go", "build", "-modfile="+filepath.Join(root, "build", "go.mod"), "-buildvcs=auto", "-o", binPath, "./cmd/pvlink")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Name returns a fabric name no other test or user fabric has.
func Name() string {
	var b [3]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// Run runs pvlink with args and returns its combined output and error.
func Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Fabric is a fabric brought up for one test.
type Fabric struct {
	Name   string
	File   string
	Status *ctl.Report
}

// Up writes topology (with NAME replaced by a fresh fabric name) to a file,
// brings it up and registers its teardown.
func Up(t testing.TB, topology string) *Fabric {
	t.Helper()
	RequireRoot(t)
	name := Name()
	file := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(topology, "NAME", name)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A -race build of pvlink reports a race in the log of the
		// process it happened in, which down removes: read them first.
		RaceReports(t, name)
		if out, err := Run(t, "fabric", "down", name); err != nil {
			t.Errorf("fabric down %s: %v\n%s", name, err, out)
		}
	})
	if out, err := Run(t, "fabric", "up", "-q", "-f", file); err != nil {
		t.Fatalf("fabric up: %v\n%s", err, out)
	}
	f := &Fabric{Name: name, File: file}
	f.Refresh(t)
	return f
}

// Refresh re-reads `fabric status -o json`.
func (f *Fabric) Refresh(t testing.TB) {
	t.Helper()
	out, err := Run(t, "fabric", "status", f.Name, "-o", "json")
	if err != nil {
		t.Fatalf("fabric status: %v\n%s", err, out)
	}
	var r ctl.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("fabric status -o json: %v\n%s", err, out)
	}
	f.Status = &r
}

// Netns is the namespace of a VPC.
func (f *Fabric) Netns(t testing.TB, vpc string) string {
	t.Helper()
	for _, v := range f.Status.VPCs {
		if v.Name == vpc {
			return v.Netns
		}
	}
	t.Fatalf("no VPC %s in fabric %s", vpc, f.Name)
	return ""
}

// DialFrom returns a dial function that connects from inside netns.
func DialFrom(netns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network != "tcp" {
			var conn net.Conn
			err := nsenter.Do(netns, func() (err error) {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}
		return nsenter.DialTCP(ctx, netns, addr)
	}
}

// Counters reads the ENI counters of the (first) forwarder process of az.
func (f *Fabric) Counters(t testing.TB, az string) []snapshot.ENICounters {
	t.Helper()
	var cs []snapshot.ENICounters
	f.GetJSON(t, az, "/counters", &cs)
	return cs
}

// Metrics reads the Prometheus text of the forwarder of az.
func (f *Fabric) Metrics(t testing.TB, az string) string {
	t.Helper()
	for _, fw := range f.Status.Forwarders {
		if fw.AZ == az {
			resp, err := http.Get(fw.Metrics)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			return b.String()
		}
	}
	t.Fatalf("no forwarder for %s", az)
	return ""
}

// GetJSON reads a JSON document (/flows, /stats, /targets, /counters) from
// the (first) forwarder process of az into v.
func (f *Fabric) GetJSON(t testing.TB, az, path string, v any) {
	t.Helper()
	for _, fw := range f.Status.Forwarders {
		if fw.AZ == az {
			ForwarderJSON(t, fw, path, v)
			return
		}
	}
	t.Fatalf("no forwarder for %s", az)
}

// ForwarderJSON reads a JSON document from one forwarder process into v.
func ForwarderJSON(t testing.TB, fw ctl.ForwarderReport, path string, v any) {
	t.Helper()
	if err := ctl.ForwarderJSON(fw, path, v); err != nil {
		t.Fatal(err)
	}
}

// RaceReports fails the test for every data race that a process of the
// fabric (ctld, a forwarder, a target) wrote to its log.
func RaceReports(t testing.TB, fabric string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(ctl.Dir(fabric), "*.log"))
	for _, log := range logs {
		data, err := os.ReadFile(log)
		if err != nil {
			continue
		}
		if i := bytes.Index(data, []byte("WARNING: DATA RACE")); i >= 0 {
			t.Errorf("%s reports a data race:\n%s", log, data[i:min(len(data), i+4000)])
		}
	}
}
