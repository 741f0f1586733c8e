package dataplane

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller tells the relay when a provider socket has something to read,
// without a goroutine per socket: one epoll set of the forwarder's. A
// socket joins it when its relay starts, edge-triggered (no system call to
// re-arm it after a wake-up; the add reports what is already there), and
// leaves it when it is closed. (Its os.File is in Go's netpoller too, for
// the connect and the waits for room, which park a goroutine only while
// they wait.) An edge that finds a direction running is left as a note
// (p2cPending) that the direction reads before it parks. The epoll
// descriptor is itself handed to Go's netpoller, so the dispatcher waits
// like any other network read and takes no thread while idle.
type poller struct {
	epfd  int
	file  *os.File
	raw   syscall.RawConn
	conns []atomic.Pointer[conn] // by provider descriptor
}

const (
	providerEvents uint32 = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET
	// hupEvents tell the provider-to-consumer direction the target is done.
	hupEvents uint32 = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	n := min(max(lim.Cur, 1024), 1<<22)
	p := &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), conns: make([]atomic.Pointer[conn], n)}
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, err
	}
	go p.run()
	return p, nil
}

// run hands each edge to its socket's relay until the poller closes.
//
// It drains the set and hands out what it found inside one wait of Go's
// netpoller (RawConn.Read), and parks as soon as a round took fewer
// events than it had room for: the set is empty then, and every socket
// edge after that drain makes the set's descriptor ready again (edge by
// edge: the sockets are in the set edge-triggered, and a nested epoll
// wakes its watchers on every event it queues), which the netpoller
// keeps for the wait even if it comes while the round is still handing
// out. A round that returned (done) and waited again would first clear
// that readiness (the netpoller's reset before a wait) and so would
// have to poll the set once more before parking: an empty epoll_wait per
// wake-up, between the edge and the relay it wakes.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	// One function for every round: a closure made per round would be
	// an allocation per wake-up.
	var failed bool
	drain := func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				failed = true
				return true
			}
			for _, ev := range events[:n] {
				if fd := int(ev.Fd); fd < len(p.conns) {
					// A stale event (the descriptor was closed and
					// reused) only wakes a direction that finds nothing.
					if c := p.conns[fd].Load(); c != nil {
						c.wakeP2C(ev.Events&hupEvents != 0)
					}
				}
			}
			if n < len(events) {
				return false
			}
		}
	}
	for !failed {
		if err := p.raw.Read(drain); err != nil {
			return
		}
	}
}

// add watches c's provider socket, from the start of its relay.
func (p *poller) add(c *conn) error {
	fd := c.providerFD
	if fd >= len(p.conns) {
		return fmt.Errorf("descriptor %d beyond the poller's %d", fd, len(p.conns))
	}
	p.conns[fd].Store(c)
	// The descriptor as it is, without the socket's RawConn.Control (whose
	// closure was three allocations): nothing closes the socket before
	// the relay has started (abort and forget only flag a connection
	// until then), and add comes first.
	ev := unix.EpollEvent{Events: providerEvents, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.conns[fd].CompareAndSwap(c, nil)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// forget stops handing c's socket's edges to c, before the socket is
// closed; the close takes it out of the set.
func (p *poller) forget(c *conn) {
	if fd := c.providerFD; fd >= 0 && fd < len(p.conns) {
		p.conns[fd].CompareAndSwap(c, nil)
	}
}

func (p *poller) close() { p.file.Close() }
