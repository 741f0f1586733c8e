// Package nat chooses, for each new flow, the provider target it is
// translated to, the way a Network Load Balancer node does: a hash of the
// flow's 5-tuple over the targets of the node's own Availability Zone (all
// zones with cross-zone load balancing), so that a flow stays on one target.
//
// It keeps no per-packet state and never blocks: a choice is a pure function
// of the flow and the target list.
package nat
