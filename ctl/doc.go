// Package ctl is pvlink's control side: the model of a fabric (State) and
// its operations, the topology file and the AWS-compatible API (ctl/api)
// as two front-ends over them, ctld (the daemon that is the model's one
// writer, with its store, its realizer, the fabric's DNS and the outbox of
// connection notifications) and the client every command uses to talk to
// it.
//
// It never touches packets and does not link the data plane: it speaks to
// forwarders in the leaf package snapshot's types, over their control
// sockets. Everything the realizer creates on the host is recorded first or
// found again by name, so a fabric can always be reconciled or torn down,
// even after a crash halfway through a change.
package ctl
