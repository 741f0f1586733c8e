// Command pvlink runs AWS PrivateLink-shaped fabrics on one Linux host:
// network namespaces as VPCs, TUN devices as endpoint network interfaces and
// one userspace forwarder per Availability Zone.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func main() {
	// Interrupting a command lets it clean up what it made (bench removes
	// its namespaces) instead of dying halfway.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pvlink:", err)
		os.Exit(1)
	}
}

// pidLock holds the lock of the process's pid file, if ctld gave it one.
var pidLock *os.File

// logFormat is text or json (--log-format, or PVLINK_LOG_FORMAT, which
// the processes a command starts inherit).
var logFormat = "text"

func newRoot() *cobra.Command {
	var pidFile string
	root := &cobra.Command{
		Use:           "pvlink",
		Short:         "A PrivateLink-shaped data plane in network namespaces",
		SilenceUsage:  true,
		SilenceErrors: true,
		// ctld gives every process it starts a pid file, written first
		// thing, so that a ctld that restarts finds them all again.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadGeneratorRuntime(cmd); err != nil {
				return err
			}
			if logFormat != "text" && logFormat != "json" {
				return fmt.Errorf("--log-format %s: use text or json", logFormat)
			}
			// ctld and the forwarders and targets it starts log alike.
			os.Setenv("PVLINK_LOG_FORMAT", logFormat)
			if pidFile != "" {
				f, err := ctl.LockPIDFile(pidFile)
				pidLock = f // held until the process exits
				return err
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&pidFile, "pid-file", "", "write the process id here first (ctld sets it for the processes it starts)")
	root.PersistentFlags().MarkHidden("pid-file")
	if v := os.Getenv("PVLINK_LOG_FORMAT"); v != "" {
		logFormat = v
	}
	root.PersistentFlags().StringVar(&logFormat, "log-format", logFormat, "log lines as text or json (log/slog); the processes a command starts follow it")
	root.AddCommand(newFabricCmd(), newEndpointCmd(), newFlowsCmd(), newBenchCmd(), newCtldCmd(), newDNSCmd(), newCaptureCmd(), newTopCmd(), newFlowLogsCmd(), newFaultCmd(), newForwarderCmd(), newTargetCmd(), newClientCmd(), newVersionCmd())
	return root
}

func logger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
