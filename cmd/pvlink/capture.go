package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/dataplane"
)

func newCaptureCmd() *cobra.Command {
	var eni, out string
	var count, snaplen int
	var duration time.Duration
	c := &cobra.Command{
		Use:   "capture [FABRIC] --eni ID|IP [-w FILE.pcap]",
		Short: "Capture what the forwarder reads from and writes to an ENI, as pcap (tcpdump -w)",
		Long: `capture streams the packets of one ENI as its forwarder sees them: every frame read
from the TUN (dropped ones too) and every packet written to it, both directions, as raw
IP in pcap (tcpdump, Wireshark and tshark read it). Segmentation-offload frames are kept
whole. It starts and stops on a running forwarder and costs nothing while off.

Without -w, one line per packet is printed. It stops on Ctrl-C, after -c packets or
after --duration.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if eni == "" {
				return fmt.Errorf("--eni: give an ENI id or address (fabric status lists them)")
			}
			name, _, st, err := fabricStatus(cmd, "", args)
			if err != nil {
				return err
			}
			id, az, ok := findENI(st, eni)
			if !ok {
				return fmt.Errorf("fabric %s has no ENI %s", name, eni)
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return runCapture(ctx, cmd, st, id, az, out, count, snaplen)
		},
	}
	c.Flags().StringVar(&eni, "eni", "", "the ENI: its id (eni-...) or an address")
	c.Flags().StringVarP(&out, "write", "w", "", "write pcap to this file (- for standard output) instead of printing packets")
	c.Flags().IntVarP(&count, "count", "c", 0, "stop after this many packets")
	c.Flags().IntVarP(&snaplen, "snaplen", "s", dataplane.DefaultSnapLen, "keep at most this many bytes of each packet")
	c.Flags().DurationVar(&duration, "duration", 0, "stop after this long")
	return c
}

func findENI(st *ctl.Report, want string) (id, az string, ok bool) {
	for _, e := range st.Endpoints {
		for _, n := range e.ENIs {
			if n.ID == want || n.IP == want || n.IPv6 == want {
				return n.ID, n.AZ, true
			}
		}
	}
	return "", "", false
}

type capturedPacket struct {
	ci   gopacket.CaptureInfo
	data []byte
}

// runCapture reads the capture of every forwarder process of the ENI's AZ
// (a worker sees the flows of its TUN queue) and writes them as one.
func runCapture(ctx context.Context, cmd *cobra.Command, st *ctl.Report, id, az, out string, count, snaplen int) error {
	// The streams outlive ctx (Ctrl-C, --duration) by the drain.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	packets := make(chan capturedPacket, 1024)
	failed := make(chan error, len(st.Forwarders))
	streams := 0
	for _, f := range st.Forwarders {
		if f.AZ != az {
			continue
		}
		if !f.Alive || f.Metrics == "" {
			return fmt.Errorf("forwarder %s is not running (its log: %s)", f.Label(), f.Log)
		}
		req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, f.MetricsBase()+"/capture?eni="+url.QueryEscape(id)+"&snaplen="+strconv.Itoa(snaplen), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("forwarder %s: %w", f.Label(), err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("forwarder %s: %s: %s", f.Label(), resp.Status, strings.TrimRight(string(msg), "\r\n"))
		}
		r, err := pcapgo.NewReader(resp.Body)
		if err != nil {
			return fmt.Errorf("forwarder %s: %w", f.Label(), err)
		}
		streams++
		go func() {
			for {
				data, ci, err := r.ReadPacketData()
				if err != nil {
					failed <- err
					return
				}
				select {
				case packets <- capturedPacket{ci, data}:
				case <-streamCtx.Done():
					return
				}
			}
		}()
	}
	var pw *pcapgo.Writer
	var file *os.File
	switch out {
	case "":
	case "-":
		pw = pcapgo.NewWriter(cmd.OutOrStdout())
	default:
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		file = f
		defer f.Close()
		pw = pcapgo.NewWriter(f)
	}
	if pw != nil {
		if err := pw.WriteFileHeader(uint32(snaplen), layers.LinkTypeRaw); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %s (%s, %d forwarder process(es)); Ctrl-C stops\n", id, az, streams)
	n := 0
	defer func() { fmt.Fprintf(cmd.ErrOrStderr(), "%d packets captured\n", n) }()
	write := func(p capturedPacket) error {
		n++
		if pw != nil {
			return pw.WritePacket(p.ci, p.data)
		}
		_, err := fmt.Fprintln(cmd.OutOrStdout(), packetLine(p))
		return err
	}
	stop := ctx.Done()
	var drained <-chan time.Time
	for count == 0 || n < count {
		select {
		case <-stop:
			// Like tcpdump on Ctrl-C: what the forwarders captured before
			// it is still on its way; take it until the streams go quiet.
			stop, drained = nil, time.After(captureDrain)
		case <-drained:
			cancel()
			return closeCapture(file)
		case err := <-failed:
			if drained != nil {
				return closeCapture(file)
			}
			return fmt.Errorf("the capture stream ended: %v", err)
		case p := <-packets:
			if err := write(p); err != nil {
				return err
			}
			if drained != nil {
				drained = time.After(captureDrain)
			}
		}
	}
	return closeCapture(file)
}

// captureDrain is how long a stopping capture waits for more packets.
const captureDrain = 200 * time.Millisecond

func closeCapture(f *os.File) error {
	if f != nil {
		return f.Sync()
	}
	return nil
}

// packetLine is one packet the way tcpdump prints it, briefly.
func packetLine(p capturedPacket) string {
	first := layers.LayerTypeIPv4
	if len(p.data) > 0 && p.data[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	pkt := gopacket.NewPacket(p.data, first, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	ts := p.ci.Timestamp.Format("15:04:05.000000")
	var src, dst string
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst = ip.SrcIP.String(), ip.DstIP.String()
	case *layers.IPv6:
		src, dst = ip.SrcIP.String(), ip.DstIP.String()
	default:
		return fmt.Sprintf("%s ? length %d", ts, p.ci.Length)
	}
	if tcp, ok := pkt.TransportLayer().(*layers.TCP); ok {
		flags := ""
		for _, f := range []struct {
			on bool
			c  string
		}{{tcp.SYN, "S"}, {tcp.FIN, "F"}, {tcp.RST, "R"}, {tcp.PSH, "P"}, {tcp.ACK, "."}} {
			if f.on {
				flags += f.c
			}
		}
		line := fmt.Sprintf("%s IP %s.%d > %s.%d: Flags [%s], seq %d, ack %d, win %d, length %d", ts, src, tcp.SrcPort, dst, tcp.DstPort, flags, tcp.Seq, tcp.Ack, tcp.Window, len(tcp.Payload))
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindMSS && len(o.OptionData) == 2 {
				line += fmt.Sprintf(", mss %d", int(o.OptionData[0])<<8|int(o.OptionData[1]))
			}
		}
		return line
	}
	if icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return fmt.Sprintf("%s IP %s > %s: ICMP %s, length %d", ts, src, dst, icmp.TypeCode, p.ci.Length)
	}
	return fmt.Sprintf("%s IP %s > %s: length %d", ts, src, dst, p.ci.Length)
}
