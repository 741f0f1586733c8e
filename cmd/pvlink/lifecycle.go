package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newEndpointCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "endpoint",
		Short: "The provider's and consumer's verbs on an interface endpoint: accept, reject, delete",
	}
	for _, v := range []struct{ verb, short string }{
		{"accept", "Accept an endpoint's connection request (pendingAcceptance -> available): it carries traffic"},
		{"reject", "Reject an endpoint's connection request, or an available endpoint: new connections get no answer, open ones a RST"},
		{"delete", "Delete an endpoint: its ENIs go and its open connections get a RST"},
	} {
		var wait time.Duration
		verb := v.verb
		sub := &cobra.Command{
			Use:   verb + " FABRIC ENDPOINT",
			Short: v.short,
			Long:  v.short + ".\nENDPOINT is the endpoint's id (vpce-...) or its name in the topology.",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := client(cmd, args[0])
				if err != nil {
					return err
				}
				a, err := c.Endpoint(verb, args[1])
				if err != nil {
					return err
				}
				return reportChange(cmd, c, a, wait, fmt.Sprintf("endpoint %s: %s", args[1], verb))
			},
		}
		addWaitFlag(sub, &wait)
		c.AddCommand(sub)
	}
	return c
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
