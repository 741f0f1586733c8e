package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"pvlink.dev/pvlink/ctl"
)

func newEndpointCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "endpoint",
		Short: "The provider's and consumer's verbs on an interface endpoint: accept, reject, delete",
	}
	addVerbs(c, "ENDPOINT", "\nENDPOINT is the endpoint's id (vpce-...) or its name in the topology.", []verb{
		{"accept", "Accept an endpoint's connection request (pendingAcceptance -> available): it carries traffic"},
		{"reject", "Reject an endpoint's connection request, or an available endpoint: new connections get no answer, open ones a RST"},
		{"delete", "Delete an endpoint: its ENIs go and its open connections get a RST"},
	}, func(c *ctl.Client, verb, arg string) (ctl.Answer, error) { return c.Endpoint(verb, arg) }, "endpoint")
	return c
}

// verb is a subcommand that makes one change through ctld.
type verb struct{ name, short string }

// addVerbs adds "VERB FABRIC ARG" subcommands that each make a change
// through the fabric's ctld and wait (--wait) for the forwarders to run it.
func addVerbs(parent *cobra.Command, arg, long string, verbs []verb, call func(c *ctl.Client, verb, arg string) (ctl.Answer, error), what string) {
	for _, v := range verbs {
		var wait time.Duration
		name := v.name
		sub := &cobra.Command{
			Use:   name + " FABRIC " + arg,
			Short: v.short,
			Long:  v.short + "." + long,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd, args[0])
				if err != nil {
					return err
				}
				a, err := call(c, name, args[1])
				if err != nil {
					return err
				}
				return reportChange(cmd, c, a, wait, fmt.Sprintf("%s %s: %s", what, args[1], name))
			},
		}
		addWaitFlag(sub, &wait)
		parent.AddCommand(sub)
	}
}

// newTargetVerbCmd is `pvlink target register|deregister`.
func newTargetVerbCmd(verb string) *cobra.Command {
	var group, target string
	var external bool
	var wait time.Duration
	short := map[string]string{
		"register":   "Register a target in a target group (pvlink runs a server for it unless --external); a draining one is registered again",
		"deregister": "Deregister a target: it drains (no new flows) for the group's deregistration delay",
	}[verb]
	c := &cobra.Command{
		Use:   verb + " FABRIC --target-group TG --target IP[:PORT]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, args[0])
			if err != nil {
				return err
			}
			a, err := c.Target(verb, group, target, external)
			if err != nil {
				return err
			}
			return reportChange(cmd, c, a, wait, fmt.Sprintf("target %s of %s: %s", target, group, verb))
		},
	}
	c.Flags().StringVar(&group, "target-group", "", "target group name")
	c.Flags().StringVar(&target, "target", "", "target IP or IP:PORT (the group's port by default)")
	if verb == "register" {
		c.Flags().BoolVar(&external, "external", false, "the target is a server of your own: pvlink only routes to it")
	}
	addWaitFlag(c, &wait)
	c.MarkFlagRequired("target-group")
	c.MarkFlagRequired("target")
	return c
}
