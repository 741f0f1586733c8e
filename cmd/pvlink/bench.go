package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/bench"
	"pvlink.dev/pvlink/ctl"
)

// loadGenerator marks a command (and its subcommands) that generates load:
// it runs with the Go runtime's monitor thread kept out of its deep sleep,
// as the forwarders do (ctl.NoDeepSleepGODEBUG).
//
// A load generator's threads go idle whenever every connection it drives
// waits on the path under test, and each time the last one does, the
// monitor parks; the next thread to wake must wake it with a futex, and
// it then polls every 20 µs for a while, on the two cores the path under
// test has too. On pvlink's path the load generator idles more often than
// on HAProxy's (the forwarders are processes of their own, with wake-ups
// of their own): its monitor thread slept and woke 4,353 times a second
// there against 964 on HAProxy's path (perf sched_switch over 1 s of the
// connection measurement, 2026-11-28), and each of its wake-ups could
// preempt a forwarder. With the monitor kept awake (four alternating
// rounds of --paths pvlink,haproxy or kernel-routed,pvlink,haproxy
// --measure conns,latency --duration 4s, same hour): pvlink 2,358-2,926
// -> 3,306-3,909 conn/s, its forwarders' CPU 342-379 -> 300-339 µs per
// connection; HAProxy 3,424-4,357 -> 4,078-4,621 conn/s; latency p50 fell
// on both paths (pvlink 339-364 -> 141-329 µs, HAProxy 191-1,116 ->
// 103-511: that VM was at under half its usual speed and noisy).
const loadGenerator = "pvlink.load-generator"

// loadGeneratorRuntime re-executes a load-generating command with
// ctl.NoDeepSleepGODEBUG when it runs without it; the runtime reads
// GODEBUG only when the process starts.
func loadGeneratorRuntime(cmd *cobra.Command) error {
	marked := false
	for c := cmd; c != nil; c = c.Parent() {
		marked = marked || c.Annotations[loadGenerator] == "true"
	}
	env, missing := ctl.NoDeepSleepGODEBUG()
	if !marked || !missing {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	return fmt.Errorf("re-executing %s with %s: %w", exe, env, syscall.Exec(exe, os.Args, append(environ, env)))
}

func newBenchCmd() *cobra.Command {
	o := bench.Options{Log: os.Stderr}
	var quick bool
	var out, paths, measure string
	c := &cobra.Command{
		Use:         "bench",
		Annotations: map[string]string{loadGenerator: "true"},
		Short:       "Measure pvlink against the kernel and HAProxy on the same machine, in one run",
		Long: "Builds its own namespaces and measures, for each path (pvlink with proxy protocol v2,\n" +
			"kernel-routed, kernel-dnat with an 8460 MSS clamp, HAProxy with send-proxy-v2):\n" +
			"1- and 8-stream throughput, new connections per second, request/response latency,\n" +
			"and the proxy's CPU per GB and RSS. Writes bench.md, bench.json and bench.svg.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			if quick {
				if !cmd.Flags().Changed("duration") {
					o.Duration = 1500 * time.Millisecond
				}
				if !cmd.Flags().Changed("warmup") {
					o.Warmup = 500 * time.Millisecond
				}
			}
			if o.Runs < 1 {
				return fmt.Errorf("--runs %d: at least 1", o.Runs)
			}
			o.Paths = strings.Split(paths, ",")
			if measure != "" {
				o.Measure = strings.Split(measure, ",")
			}
			if o.ProfileDir != "" {
				if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
					return err
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			r, err := bench.Run(cmd.Context(), exe, o)
			if err != nil {
				return err
			}
			r.Command = "pvlink " + strings.Join(os.Args[1:], " ")
			r.WriteMarkdown(cmd.OutOrStdout())
			if out != "" {
				if err := r.WriteFiles(out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s/bench.md, bench.json, bench.svg\n", out)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&quick, "quick", false, "short measurements (about a minute in all)")
	c.Flags().IntVar(&o.Runs, "runs", 3, "repetitions of each measurement (median, min-max)")
	c.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "length of each measurement")
	c.Flags().DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before a path's measurements")
	c.Flags().IntVar(&o.ConnCount, "conn-count", 200000, "bound on connections per connection-rate measurement")
	c.Flags().IntVar(&o.ConnWorker, "conn-workers", 64, "concurrent connections in the connection-rate measurement")
	c.Flags().IntVar(&o.LatRate, "latency-rate", 2000, "requests per second of the latency measurement")
	c.Flags().IntVar(&o.Workers, "workers", bench.DefaultWorkers, "forwarder workers of the pvlink path (HAProxy runs 2 threads)")
	c.Flags().StringVar(&o.ProfileDir, "profile", "", "folder for a CPU profile of every forwarder during each pvlink measurement (read them with go tool pprof)")
	c.Flags().StringVar(&paths, "paths", strings.Join(bench.AllPaths, ","), "paths to measure")
	c.Flags().StringVar(&measure, "measure", "", "measurements to make, of "+strings.Join(bench.Measurements, ",")+" (default all)")
	c.Flags().StringVar(&out, "out", "", "folder for bench.md, bench.json and bench.svg")
	c.AddCommand(newBenchConnsCmd(), newBenchHoldCmd(), newBenchSoakCmd())
	return c
}

func newBenchConnsCmd() *cobra.Command {
	var count int
	var asJSON bool
	c := &cobra.Command{
		Use:   "conns --count N",
		Short: "Open N idle connections through one forwarder and report its RSS per connection",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			r, err := bench.Conns(cmd.Context(), exe, count, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "connections: %d of %d open (%d failed%s) through %d forwarder worker(s)\nforwarder RSS: %.1f MiB before, %.1f MiB after\nRSS per connection: %.1f KiB (Go heap %.1f KiB, goroutine stacks %.1f KiB)\n",
				r.Open, r.Requested, r.Failed, firstErr(r.FirstError), r.Workers, float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.PerConn/1024, r.HeapPerConn/1024, r.StackPerConn/1024)
			if r.Failed > 0 {
				return fmt.Errorf("%d connections failed", r.Failed)
			}
			return nil
		},
	}
	c.Flags().IntVar(&count, "count", 10000, "connections to open")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// newBenchHoldCmd is `bench conns`'s client process: a process may hold
// only so many descriptors, so the connections are spread over several.
func newBenchHoldCmd() *cobra.Command {
	var ns, addr string
	var count int
	c := &cobra.Command{
		Use:    "hold --netns NS --addr IP:PORT --count N",
		Short:  "Open N connections, report on stdout, hold them until stdin closes (used by bench conns)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			conns, r := bench.Hold(ctx, ns, addr, count)
			if err := json.NewEncoder(cmd.OutOrStdout()).Encode(r); err != nil {
				return err
			}
			// Hold until the parent closes stdin (or dies), at most as
			// long as the context allows.
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, cmd.InOrStdin()); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
			}
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&ns, "netns", "", "namespace to connect from")
	c.Flags().StringVar(&addr, "addr", "", "address to connect to")
	c.Flags().IntVar(&count, "count", 0, "connections to hold")
	return c
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return "; first: " + s
}

func newBenchSoakCmd() *cobra.Command {
	var o bench.SoakOptions
	var out string
	c := &cobra.Command{
		Use:   "soak [--duration D]",
		Short: "A mixed load through one forwarder that stops by itself; fails if RSS, fds or goroutines keep growing, a byte is lost or anything fails",
		Long: `Runs, for --duration, through a 1-AZ fabric: new connections (echoes of up to
64 KiB), 32 MiB uploads and downloads verified by SHA-256, slow readers (256 KiB/s),
connections reset by the client, idle flows past a 5 s idle timeout (which must get a
RST), and one of two targets deregistered and registered again every 4 s. It samples
the forwarder's RSS, open descriptors, goroutines and flows every second, and fails
if, after a warm-up, any keeps growing, if a byte is lost, if an operation fails, or
if flows are left once idle ones have timed out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Log = cmd.ErrOrStderr()
			r, err := bench.Soak(cmd.Context(), exe, o)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), r.Summary())
			if out != "" {
				data, _ := json.MarshalIndent(r, "", "  ")
				if err := os.WriteFile(out, data, 0o644); err != nil {
					return err
				}
			}
			if !r.OK {
				return fmt.Errorf("the soak failed")
			}
			return nil
		},
	}
	c.Flags().DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the load runs")
	c.Flags().StringVar(&out, "out", "", "write the samples and counts as JSON to this file")
	return c
}
