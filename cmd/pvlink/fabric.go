package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func newFabricCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fabric",
		Short: "Bring PrivateLink fabrics up and down, and show them",
	}
	c.AddCommand(newFabricUpCmd(), newFabricDownCmd(), newFabricListCmd(), newFabricStatusCmd(), newFabricProbeCmd(), newFabricMetricsCmd(), newFlowsCmd(), newTargetHealthCmd(), newDeregisterCmd(), newFabricValidateCmd())
	return c
}

func newFabricUpCmd() *cobra.Command {
	var file string
	var quiet bool
	c := &cobra.Command{
		Use:   "up -f FILE",
		Short: "Create the namespaces, ENIs, forwarders and targets of a topology",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ctl.Preflight(); err != nil {
				return err
			}
			t, err := ctl.LoadTopology(file)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o := ctl.UpOptions{Exe: exe}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			s, err := ctl.Up(t, file, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fabric %s is up: pvlink fabric status %s\n", s.Name, s.Name)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file (YAML)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not print each step")
	c.MarkFlagRequired("file")
	return c
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

func newFabricDownCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "down [NAME | -f FILE]",
		Short: "Stop every process and remove every namespace, link and file of a fabric",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			if err := ctl.Preflight(); err != nil {
				return err
			}
			s, err := ctl.LoadState(name)
			if ctl.IsNotUp(err) {
				fmt.Fprintf(cmd.OutOrStdout(), "fabric %s is not up: nothing to remove\n", name)
				return nil
			}
			if err != nil {
				return err
			}
			if err := ctl.Down(s); err != nil {
				return fmt.Errorf("fabric %s: %w", name, err)
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
		Short: "Show a fabric: VPCs, endpoints, ENIs, targets, forwarders",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := fabricName(file, args)
			if err != nil {
				return err
			}
			s, err := ctl.LoadState(name)
			if ctl.IsNotUp(err) {
				return fmt.Errorf("fabric %s is not up", name)
			}
			if err != nil {
				return err
			}
			r := s.Report()
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
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
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a topology file without creating anything",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := ctl.LoadTopology(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: fabric %s is valid (%d VPCs, %d endpoints)\n", args[0], t.Name, len(t.VPCs), len(t.Endpoints))
			return nil
		},
	}
}

func newDeregisterCmd() *cobra.Command {
	var group, target string
	c := &cobra.Command{
		Use:   "deregister-target NAME --target-group TG --target IP:PORT",
		Short: "Deregister a target: it drains (no new flows) for the group's deregistration delay",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddrPort(target)
			if err != nil {
				return fmt.Errorf("--target %q: want IP:PORT", target)
			}
			unlock, err := ctl.Lock(args[0])
			if err != nil {
				return fmt.Errorf("fabric %s is not up", args[0])
			}
			defer unlock()
			s, err := ctl.LoadState(args[0])
			if err != nil {
				return fmt.Errorf("fabric %s is not up", args[0])
			}
			if err := s.DeregisterTarget(group, addr, time.Now()); err != nil {
				return err
			}
			if err := s.Push(10 * time.Second); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "target %s of %s is draining (config version %d)\n", addr, group, s.Version)
			return nil
		},
	}
	c.Flags().StringVar(&group, "target-group", "", "target group name")
	c.Flags().StringVar(&target, "target", "", "target IP:PORT")
	c.MarkFlagRequired("target-group")
	c.MarkFlagRequired("target")
	return c
}
