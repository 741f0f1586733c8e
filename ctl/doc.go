// Package ctl holds pvlink's control side: the topology a user writes, its
// validation, and the fabric (network namespaces, links, TUN devices, routes
// and processes) built from it, compiled into one dataplane.Config per
// Availability Zone.
//
// It never touches packets: it imports dataplane only for its configuration
// types, and everything it creates it records first, so that a fabric can
// always be torn down, even after a crash halfway through bringing it up.
package ctl
