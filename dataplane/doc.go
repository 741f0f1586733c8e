// Package dataplane is the forwarder of one Availability Zone: it reads the
// TUN device of every endpoint network interface (ENI) in its zone, filters
// each packet (8500-byte MTU, TCP only, no ping), terminates the consumer's
// TCP on a gVisor netstack, and relays each connection to a provider target
// over a kernel socket created in the provider VPC's namespace, bound to the
// load-balancer node's address.
//
// The per-packet path (link.go, ingress.go) allocates nothing per packet
// beyond gVisor's own buffers, takes no lock on the read side and never logs.
// It never imports ctl: it is told what to serve by a Config snapshot.
package dataplane
