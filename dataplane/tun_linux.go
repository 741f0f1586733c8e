package dataplane

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// openTUNQueue attaches a new queue to the TUN named name in the current
// network namespace and returns its descriptor, for wireguard's tun to
// take (it makes it non-blocking and wraps it in a file of its own).
func openTUNQueue(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(TUNFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// InheritedQueues are TUN queues a forwarder process was started with (by
// ctld, which kept them when the process before it died), by TUN name.
type InheritedQueues map[string]int

// adopt takes the inherited queue of TUN name, if there is one still
// attached to it (-1 if not). The queue keeps its place among the TUN's
// queues, and so the kernel keeps sending it the flows it sent the
// process before.
func (q InheritedQueues) adopt(name string) (int, error) {
	fd, ok := q[name]
	if !ok {
		return -1, nil
	}
	delete(q, name)
	if got, err := snapshot.QueueTUN(fd); err != nil || got != name {
		unix.Close(fd)
		return -1, fmt.Errorf("inherited descriptor %d is no queue of TUN %s (%q, %v)", fd, name, got, err)
	}
	// Called in the ENI's namespace: a queue of a TUN of that name in
	// another one (a namespace that lost its name, see followNamespaces)
	// is not the ENI's.
	if have, err := snapshot.QueueNetns(fd); err == nil {
		if here, err := nsenter.ThreadInode(); err == nil && here != have {
			unix.Close(fd)
			return -1, fmt.Errorf("inherited descriptor %d is a queue of a TUN %s in another namespace", fd, name)
		}
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// closeRest closes the inherited queues no ENI took.
func (q InheritedQueues) closeRest() {
	for name, fd := range q {
		unix.Close(fd)
		delete(q, name)
	}
}

// followNamespaces follows VPC namespaces made again under their names
// (the forwarder calls it once a second). Provider namespaces: new
// connections to targets are made in the new one (forgetMovedNamespaces).
// Consumer namespaces: it reopens the TUN of every ENI whose namespace was
// made again: a user's `ip netns delete` of it, after which ctld makes the
// namespace and the ENI's TUN again. The queue the ENI holds is then one
// of the old TUN, in a namespace that lost its name but lives on while
// anything holds it, so no read ever fails and the ENI would stay deaf to
// the VPC that now has its name. So too a TUN deleted by hand (`ip link
// delete`), whose queues the kernel detaches.
func (f *Forwarder) followNamespaces(time.Time) {
	if gone := f.forgetMovedNamespaces(); len(gone) > 0 {
		f.log.Warn("provider namespaces made again: new connections go to the new ones", "netns", gone)
	}
	moved := f.movedENIs()
	if len(moved) == 0 {
		return
	}
	f.log.Warn("ENIs whose TUN was made again (deleted, or its namespace): reopening their TUNs", "enis", moved)
	if c := f.current.Load(); c != nil && f.ctx.Err() == nil {
		if err := f.Apply(c.cfg); err != nil {
			f.log.Warn("reopen TUNs", "err", err)
		}
	}
}

// movedENIs marks stale, and lists, the ENIs whose TUN ctld has made
// again, ready to be opened: their queue is attached to no TUN (one
// deleted by hand: the kernel detaches its queues) or to one in another
// namespace than the one their VPC's name now stands for.
func (f *Forwarder) movedENIs() []string {
	f.enisMu.Lock()
	defer f.enisMu.Unlock()
	if f.ctx.Err() != nil {
		return nil // closing: the queues may be closed already (Close)
	}
	var moved []string
	for _, st := range f.enis {
		if st.queueFD < 0 || !tunMoved(st) {
			continue
		}
		if nsenter.Do(st.cfg.Netns, func() error { _, err := netlink.LinkByName(st.cfg.Tun); return err }) != nil {
			continue // ctld has not made it again yet
		}
		// The TUN this queue is of is no ENI's any more: one a user moved
		// to another namespace would stay there for good (ctld makes ENI
		// TUNs persistent); without persistence it goes with its last
		// queue. (A deleted TUN refuses the call: nothing to do.)
		if err := unix.IoctlSetInt(st.queueFD, unix.TUNSETPERSIST, 0); err != nil && !errors.Is(err, unix.EBADFD) {
			f.log.Warn("let an ENI's old TUN go", "eni", st.id, "err", err)
		}
		st.stale.Store(true)
		moved = append(moved, st.id)
	}
	return moved
}

// tunMoved reports whether an ENI's queue is no longer a queue of the TUN
// its snapshot names: detached, or in another namespace.
func tunMoved(st *eniState) bool {
	have, err := snapshot.QueueNetns(st.queueFD)
	if errors.Is(err, unix.EBADFD) {
		return true // the TUN was deleted
	}
	if err != nil {
		return false
	}
	named, err := nsenter.Inode(st.cfg.Netns)
	return err == nil && named != have // no namespace by that name yet: wait
}
