package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
)

// tshark runs Debian's tshark on a capture file.
func tshark(t *testing.T, file string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed (make test installs Debian's tshark)")
		}
		t.Skip("needs tshark (apt-get install tshark)")
	}
	out, err := exec.Command(bin, append([]string{"-r", file}, args...)...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s %s: %v\n%s", file, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestACaptureShowsTheHandshakeAndTheConsumersPayloadWithoutAProxyHeader(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	if _, err := exec.LookPath("tshark"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("needs tshark (apt-get install tshark)")
	}
	e := f.Status.Endpoints[0]
	eni := e.ENIs[0]
	file := filepath.Join(t.TempDir(), "x.pcap")

	// pvlink capture on the running forwarder, until interrupted.
	cmd := exec.Command(fabrictest.Binary(t), "capture", f.Name, "--eni", eni.IP, "-w", file)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stderr)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "capturing on "+eni.ID) {
		t.Fatalf("pvlink capture: %q", lines.Text())
	}

	const message = "GET /through-the-endpoint HTTP/1.0\r\n\r\n"
	dial := fabrictest.DialFrom(f.Netns(t, "consumer"))
	addr := eni.IP + ":80"
	res, err := (&peer.Client{Addr: addr, Message: message, Timeout: 10 * time.Second, Dial: dial}).Run(context.Background())
	if err != nil || !res.Intact {
		t.Fatalf("message: %v", err)
	}
	if !strings.Contains(string(res.Target), `"proxy"`) {
		t.Fatalf("the target saw no proxy header, so its absence on the ENI would prove nothing: %s", res.Target)
	}
	clientPort := strings.TrimPrefix(res.Local[strings.LastIndex(res.Local, ":"):], ":")
	bulk, err := (&peer.Client{Addr: addr, Bytes: 8 << 20, Timeout: 20 * time.Second, Dial: dial}).Run(context.Background())
	if err != nil || !bulk.Intact {
		t.Fatalf("transfer: %v", err)
	}

	cmd.Process.Signal(syscall.SIGINT)
	var rest bytes.Buffer
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pvlink capture: %v\n%s", err, rest.String())
	}
	t.Logf("pvlink capture: %s", strings.TrimSpace(rest.String()))

	// The handshake, as the consumer's kernel and the ENI made it.
	conv := "tcp.port==" + clientPort
	syn := tshark(t, file, "-Y", conv+" && tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields", "-e", "ip.src", "-e", "tcp.dstport")
	synack := tshark(t, file, "-Y", conv+" && tcp.flags.syn==1 && tcp.flags.ack==1", "-T", "fields", "-e", "ip.src", "-e", "tcp.options.mss_val")
	if strings.TrimSpace(syn) != strings.Split(res.Local, ":")[0]+"\t80" {
		t.Errorf("the SYN: %q, want one from %s to port 80", syn, res.Local)
	}
	if strings.TrimSpace(synack) != eni.IP+"\t8460" {
		t.Errorf("the SYN-ACK: %q, want one from %s offering MSS 8460", synack, eni.IP)
	}

	// The consumer's bytes, and nothing before them: no proxy header on
	// the consumer's side, in either direction.
	payload := tshark(t, file, "-Y", conv+" && tcp.dstport==80 && tcp.len>0", "-T", "fields", "-e", "tcp.payload")
	got, err := hex.DecodeString(strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(payload), "\n", ""), ":", ""))
	if err != nil || string(got) != message {
		t.Errorf("the consumer's payload on the ENI: %q (%v), want %q", got, err, message)
	}
	all := tshark(t, file, "-Y", "tcp.len>0", "-T", "fields", "-e", "tcp.payload")
	if strings.Contains(strings.ReplaceAll(all, ":", ""), "0d0a0d0a000d0a515549540a") {
		t.Error("a proxy protocol signature on the consumer's side")
	}
	// The transfer is in it whole, both directions: every payload byte the
	// consumer sent, and every byte it got back.
	bulkPort := bulk.Local[strings.LastIndex(bulk.Local, ":")+1:]
	for _, dir := range []struct {
		filter string
		want   int64
	}{
		{"tcp.srcport==" + bulkPort, bulk.Sent},
		{"tcp.dstport==" + bulkPort, bulk.Echoed + int64(len(bulk.Target)+1)},
	} {
		var sum int64
		for _, l := range strings.Fields(tshark(t, file, "-Y", dir.filter+" && tcp.len>0", "-T", "fields", "-e", "tcp.len")) {
			n, _ := strconv.ParseInt(l, 10, 64)
			sum += n
		}
		if sum < dir.want {
			t.Errorf("%s: %d payload bytes captured, the transfer moved %d", dir.filter, sum, dir.want)
		}
	}
}
