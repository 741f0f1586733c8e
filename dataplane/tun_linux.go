package dataplane

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/snapshot"
)

// openTUNQueue attaches a new queue to the TUN named name in the current
// network namespace, non-blocking, as wireguard's tun expects a file. It
// returns the descriptor's number too: the file's Fd would make it
// blocking.
func openTUNQueue(name string) (*os.File, int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	ifr.SetUint16(TUNFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	// Non-blocking before os.NewFile, so the file joins Go's netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), fd, nil
}

// InheritedQueues are TUN queues a forwarder process was started with (by
// ctld, which kept them when the process before it died), by TUN name.
type InheritedQueues map[string]int

// adopt takes the inherited queue of TUN name, if there is one still
// attached to it, as a non-blocking file. The queue keeps its place among
// the TUN's queues, and so the kernel keeps sending it the flows it sent
// the process before.
func (q InheritedQueues) adopt(name string) (*os.File, int, error) {
	fd, ok := q[name]
	if !ok {
		return nil, -1, nil
	}
	delete(q, name)
	if got, err := snapshot.QueueTUN(fd); err != nil || got != name {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("inherited descriptor %d is no queue of TUN %s (%q, %v)", fd, name, got, err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), fd, nil
}

// closeRest closes the inherited queues no ENI took.
func (q InheritedQueues) closeRest() {
	for name, fd := range q {
		unix.Close(fd)
		delete(q, name)
	}
}
