package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func newFabricCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fabric",
		Short: "Bring PrivateLink fabrics up, change them, show them, take them down (through ctld)",
	}
	c.AddCommand(newFabricUpCmd(), newFabricApplyCmd(), newFabricDownCmd(), newFabricListCmd(), newFabricStatusCmd(), newFabricProbeCmd(), newFabricMetricsCmd(), newFlowsCmd(), newTargetHealthCmd(), newDeregisterCmd(), newFabricValidateCmd(), newFabricEnvCmd())
	return c
}

func exePath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the pvlink binary: %w", err)
	}
	return exe, nil
}

func readTopology(file string) ([]byte, string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("read topology: %w", err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	// Refused here, before ctld is started or asked.
	if _, err := ctl.ParseTopology(file, data); err != nil {
		return nil, "", err
	}
	return data, abs, nil
}

func newFabricUpCmd() *cobra.Command {
	var file string
	var quiet bool
	c := &cobra.Command{
		Use:   "up -f FILE",
		Short: "Create a fabric: start its ctld and hand it the topology; returns once traffic can flow",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			data, abs, err := readTopology(file)
			if err != nil {
				return err
			}
			exe, err := exePath()
			if err != nil {
				return err
			}
			_, r, err := ctl.Up(exe, data, abs)
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "ctld (pid %d) owns fabric %s; its log: %s\n", r.Ctld.PID, r.Name, filepath.Join(ctl.Dir(r.Name), "ctld.log"))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fabric %s is up at version %d: pvlink fabric status %s\n", r.Name, r.Version, r.Name)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the result")
	c.MarkFlagRequired("file")
	return c
}

func newFabricApplyCmd() *cobra.Command {
	var file string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make a fabric what an edited topology says (a target added, an endpoint removed ...), as kubectl apply does",
		Long: `Apply a topology to its fabric as a change: resources that keep their name
keep their ids and state (an accepted endpoint stays accepted), new ones are
created, missing ones are removed. A change that breaks a rule is refused
whole, with the reason, and changes nothing. A fabric that is not up is
created.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			data, abs, err := readTopology(file)
			if err != nil {
				return err
			}
			t, _ := ctl.ParseTopology(file, data)
			exe, err := exePath()
			if err != nil {
				return err
			}
			c, started, err := ctl.EnsureDaemon(t.Name, exe)
			if err != nil {
				return err
			}
			if started {
				fmt.Fprintf(cmd.ErrOrStderr(), "started ctld for fabric %s\n", t.Name)
			}
			a, err := c.Apply(data, abs, false)
			if err != nil {
				return err
			}
			return reportChange(cmd, c, a, wait, fmt.Sprintf("fabric %s applied from %s", t.Name, file))
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addWaitFlag(c, &wait)
	c.MarkFlagRequired("file")
	return c
}

func addWaitFlag(c *cobra.Command, wait *time.Duration) {
	c.Flags().DurationVar(wait, "wait", 30*time.Second, "how long to wait for the host to run the change (0: do not wait)")
}

// reportChange waits for a change to run on the host and says so.
func reportChange(cmd *cobra.Command, c *ctl.Client, a ctl.Answer, wait time.Duration, what string) error {
	if wait > 0 {
		if err := c.Wait(a.Version, wait); err != nil {
			return fmt.Errorf("%s (version %d, committed), but: %w", what, a.Version, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: version %d runs\n", what, a.Version)
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: version %d committed\n", what, a.Version)
	return nil
}

// fabricName takes a fabric by name (argument) or by topology file (-f).
func fabricName(file string, args []string) (string, error) {
	switch {
	case len(args) == 1 && file == "":
		return args[0], nil
	case len(args) == 0 && file != "":
		t, err := ctl.LoadTopology(file)
		if err != nil {
			return "", err
		}
		return t.Name, nil
	case len(args) == 0:
		names := ctl.Fabrics()
		if len(names) == 1 {
			return names[0], nil
		}
		if len(names) == 0 {
			return "", errors.New("no fabric is up")
		}
		return "", fmt.Errorf("several fabrics are up (%v): name one", names)
	}
	return "", errors.New("give a fabric name or -f FILE, not both")
}

// client returns the ctld of a fabric that exists, starting it if it was
// not running (a ctld that was killed comes back with all its state).
// fabricStatus names the fabric (by argument or topology file), connects
// to its ctld and reads its status.
func fabricStatus(cmd *cobra.Command, file string, args []string) (string, *ctl.Client, *ctl.Report, error) {
	name, err := fabricName(file, args)
	if err != nil {
		return "", nil, nil, err
	}
	c, err := client(cmd, name)
	if err != nil {
		return "", nil, nil, err
	}
	r, err := c.Status()
	return name, c, r, err
}

func client(cmd *cobra.Command, name string) (*ctl.Client, error) {
	c := ctl.Connect(name)
	if c.Running() {
		return c, nil
	}
	if _, err := os.Stat(ctl.StoreDir(name)); err != nil {
		return nil, fmt.Errorf("fabric %s is not up", name)
	}
	exe, err := exePath()
	if err != nil {
		return nil, err
	}
	c, started, err := ctl.EnsureDaemon(name, exe)
	if err != nil {
		return nil, err
	}
	if started {
		fmt.Fprintf(cmd.ErrOrStderr(), "ctld for fabric %s was not running: started it again\n", name)
	}
	return c, nil
}

func newFabricDownCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "down [NAME | -f FILE]",
		Short: "Stop every process and remove every namespace, link, file and the store of a fabric",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			exe, err := exePath()
			if err != nil {
				return err
			}
			if err := ctl.Down(exe, name); err != nil {
				if errors.Is(err, ctl.ErrNotUp) {
					fmt.Fprintf(cmd.OutOrStdout(), "fabric %s is not up: nothing to remove\n", name)
					return nil
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fabric %s is down\n", name)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	return c
}

func newFabricStatusCmd() *cobra.Command {
	var file, output string
	c := &cobra.Command{
		Use:   "status [NAME | -f FILE]",
		Short: "Show a fabric: ctld, VPCs, endpoints and their states, ENIs, targets, forwarders",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, r, err := fabricStatus(cmd, file, args)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			r.WriteTable(cmd.OutOrStdout())
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	addOutputFlag(c, &output)
	return c
}

func newFabricValidateCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "validate FILE | -f FILE",
		Short: "Check a topology file without creating anything",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// -f as up, apply and down take it, or the file as an argument.
			switch {
			case len(args) == 1 && file != "":
				return errors.New("give the file once: as an argument or with -f")
			case len(args) == 1:
				file = args[0]
			case file == "":
				return errors.New("which topology file? pvlink fabric validate -f FILE")
			}
			t, err := ctl.LoadTopology(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: fabric %s is valid (%d VPCs, %d endpoints)\n", file, t.Name, len(t.VPCs), len(t.Endpoints))
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	return c
}

// newDeregisterCmd is the older spelling of `pvlink target deregister`.
func newDeregisterCmd() *cobra.Command {
	c := newTargetVerbCmd("deregister")
	c.Use = "deregister-target NAME --target-group TG --target IP:PORT"
	c.Hidden = true
	return c
}
