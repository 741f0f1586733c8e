package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/snapshot"
)

// The four rankings of PrivateLink's built-in Contributor Insights rules:
// endpoints by active connections, bytes processed, new connections and
// RST packets.
var topSorts = map[string]string{
	"a": "active connections",
	"b": "bytes processed",
	"n": "new connections",
	"r": "RST packets",
}

func newTopCmd() *cobra.Command {
	var interval time.Duration
	var iterations int
	var sortBy string
	c := &cobra.Command{
		Use:   "top [FABRIC]",
		Short: "A live view of every endpoint and AZ: connection rate, active connections, throughput each way, drops",
		Long: `top redraws, every second, each endpoint's traffic and each of its AZs': new
connections per second, active connections, Mbit/s from consumers and to them, dropped
packets and RSTs per second. Endpoints are ranked as PrivateLink's built-in Contributor
Insights rules rank them: by active connections (a), bytes processed (b), new
connections (n) or RST packets (r); press the letter to switch, q to quit.

When its output is not a terminal, top prints one frame per interval (-n frames).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, ok := topSorts[sortBy]; !ok {
				return fmt.Errorf("--sort %s: use a (active connections), b (bytes), n (new connections) or r (RSTs)", sortBy)
			}
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s: at least 100ms", interval)
			}
			name, err := fabricName("", args)
			if err != nil {
				return err
			}
			cl, err := client(cmd, name)
			if err != nil {
				return err
			}
			return runTop(cmd, cl, name, interval, iterations, sortBy)
		},
	}
	c.Flags().DurationVarP(&interval, "interval", "d", time.Second, "time between frames")
	c.Flags().IntVarP(&iterations, "iterations", "n", 0, "stop after this many frames (0: until q or Ctrl-C)")
	c.Flags().StringVar(&sortBy, "sort", "a", "rank endpoints by a (active connections), b (bytes), n (new connections) or r (RSTs)")
	return c
}

// topSample is the fabric's ENI counters at one moment.
type topSample struct {
	at   time.Time
	enis []ctl.ENIMetrics
	down []string // forwarders that did not answer
}

func readTop(cl *ctl.Client) (topSample, error) {
	st, err := cl.Status()
	if err != nil {
		return topSample{}, err
	}
	s := topSample{at: time.Now()}
	var docs []ctl.ForwarderDoc[[]snapshot.ENICounters]
	for _, f := range st.Forwarders {
		var doc []snapshot.ENICounters
		if !f.Alive || f.Metrics == "" || ctl.ForwarderJSON(f, "/counters", &doc) != nil {
			s.down = append(s.down, f.Label())
			continue
		}
		docs = append(docs, ctl.ForwarderDoc[[]snapshot.ENICounters]{ForwarderReport: f, Doc: doc})
	}
	s.enis = ctl.SumENICounters(docs)
	return s, nil
}

// topRow is one line of the view: an endpoint (AZ "") or one of its AZs.
type topRow struct {
	endpoint, az, service string
	active                int64
	newPS, inBPS, outBPS  float64
	dropPS, rstInPS       float64
	rstOutPS              float64
	azs                   []topRow
}

func (r *topRow) add(o topRow) {
	r.active += o.active
	r.newPS += o.newPS
	r.inBPS += o.inBPS
	r.outBPS += o.outBPS
	r.dropPS += o.dropPS
	r.rstInPS += o.rstInPS
	r.rstOutPS += o.rstOutPS
}

func (r topRow) key(sortBy string) float64 {
	switch sortBy {
	case "b":
		return r.inBPS + r.outBPS
	case "n":
		return r.newPS
	case "r":
		return r.rstInPS + r.rstOutPS
	}
	return float64(r.active)
}

// topRows turns two samples into rates, per endpoint and AZ.
func topRows(prev, cur topSample, sortBy string) []topRow {
	dt := cur.at.Sub(prev.at).Seconds()
	before := map[string]snapshot.ENICounters{}
	for _, e := range prev.enis {
		before[e.AZ+"/"+e.ENI] = e.ENICounters
	}
	rate := func(now, then uint64) float64 {
		if now < then || dt <= 0 {
			return 0 // a forwarder restarted: its counters began again
		}
		return float64(now-then) / dt
	}
	byEndpoint := map[string]*topRow{}
	var order []string
	for _, e := range cur.enis {
		b := before[e.AZ+"/"+e.ENI]
		r := topRow{
			endpoint: e.EndpointID, az: e.AZ, service: e.ServiceID, active: e.ActiveConnections,
			newPS: rate(e.NewConnections, b.NewConnections),
			inBPS: 8 * rate(e.BytesFromConsumers, b.BytesFromConsumers), outBPS: 8 * rate(e.BytesToConsumers, b.BytesToConsumers),
			dropPS: rate(e.PacketsDropped, b.PacketsDropped), rstInPS: rate(e.RstPacketsReceived, b.RstPacketsReceived),
			rstOutPS: rate(e.RstPacketsSent, b.RstPacketsSent),
		}
		t := byEndpoint[e.EndpointID]
		if t == nil {
			t = &topRow{endpoint: e.EndpointID, service: e.ServiceID}
			byEndpoint[e.EndpointID] = t
			order = append(order, e.EndpointID)
		}
		t.add(r)
		t.azs = append(t.azs, r)
	}
	out := make([]topRow, 0, len(order))
	for _, id := range order {
		t := *byEndpoint[id]
		slices.SortFunc(t.azs, func(a, b topRow) int { return cmp.Compare(a.az, b.az) })
		out = append(out, t)
	}
	slices.SortStableFunc(out, func(a, b topRow) int {
		if c := cmp.Compare(b.key(sortBy), a.key(sortBy)); c != 0 {
			return c
		}
		return cmp.Compare(a.endpoint, b.endpoint)
	})
	return out
}

func mbit(bps float64) string { return fmt.Sprintf("%.1f", bps/1e6) }

// renderTop writes one frame.
func renderTop(w io.Writer, fabric string, cur topSample, rows []topRow, sortBy string, eol string) {
	var total topRow
	for _, r := range rows {
		total.add(r)
	}
	fmt.Fprintf(w, "pvlink top - fabric %s - %s - ranked by %s (a b n r: rank, q: quit)%s", fabric, cur.at.Format("15:04:05"), topSorts[sortBy], eol)
	fmt.Fprintf(w, "total: %.0f conn/s, %d active, %s Mbit/s in, %s Mbit/s out, %.0f drops/s, %.0f RST/s%s",
		total.newPS, total.active, mbit(total.inBPS), mbit(total.outBPS), total.dropPS, total.rstInPS+total.rstOutPS, eol)
	if len(cur.down) > 0 {
		fmt.Fprintf(w, "not answering: forwarder %s%s", strings.Join(cur.down, ", "), eol)
	}
	fmt.Fprint(w, eol)
	line := func(cols ...any) {
		s := fmt.Sprintf("%-24s %-10s %9s %8s %11s %11s %8s %8s %8s  %s", cols...)
		fmt.Fprint(w, strings.TrimRight(s, " ")+eol)
	}
	line("ENDPOINT", "AZ", "CONN/S", "ACTIVE", "IN Mbit/s", "OUT Mbit/s", "DROPS/S", "RST-IN/S", "RST-OUT/S", "SERVICE")
	row := func(name, az string, r topRow, service string) {
		line(name, az, fmt.Sprintf("%.0f", r.newPS), fmt.Sprint(r.active), mbit(r.inBPS), mbit(r.outBPS),
			fmt.Sprintf("%.0f", r.dropPS), fmt.Sprintf("%.0f", r.rstInPS), fmt.Sprintf("%.0f", r.rstOutPS), service)
	}
	for _, r := range rows {
		row(r.endpoint, "all", r, r.service)
		for _, a := range r.azs {
			row("", a.az, a, "")
		}
	}
}

func runTop(cmd *cobra.Command, cl *ctl.Client, fabric string, interval time.Duration, iterations int, sortBy string) error {
	out := cmd.OutOrStdout()
	tty := false
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	keys := make(chan byte, 8)
	eol := "\n"
	if tty {
		fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // the alternate screen, no cursor
		defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
		if in := os.Stdin; term.IsTerminal(int(in.Fd())) {
			if old, err := term.MakeRaw(int(in.Fd())); err == nil {
				defer term.Restore(int(in.Fd()), old)
				eol = "\x1b[K\r\n" // raw mode: no newline translation
				go func() {
					b := make([]byte, 1)
					for {
						if n, err := in.Read(b); err != nil || n == 0 {
							return
						}
						keys <- b[0]
					}
				}()
			}
		}
	}
	prev, err := readTop(cl)
	if err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for frame := 0; iterations == 0 || frame < iterations; {
		select {
		case <-cmd.Context().Done():
			return nil
		case k := <-keys:
			switch k {
			case 'q', 3: // q, Ctrl-C in raw mode
				return nil
			default:
				if _, ok := topSorts[string(k)]; ok {
					sortBy = string(k)
				}
			}
			continue
		case <-tick.C:
		}
		cur, err := readTop(cl)
		if err != nil {
			return err
		}
		if tty {
			fmt.Fprint(out, "\x1b[H")
		}
		renderTop(out, fabric, cur, topRows(prev, cur, sortBy), sortBy, eol)
		if tty {
			fmt.Fprint(out, "\x1b[J")
		} else {
			fmt.Fprintln(out)
		}
		prev = cur
		frame++
	}
	return nil
}
