package dataplane

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller tells the relay when a provider socket has something to read,
// without a goroutine per socket: one epoll set of the forwarder's, each
// socket in it edge-triggered for its whole life (no system call to re-arm
// it after every wake-up). An edge that finds its direction running is
// left as a note (p2cPending) that the direction reads before it parks.
// The epoll descriptor is itself handed to Go's netpoller, so the
// dispatcher waits like any other network read and takes no thread while
// idle.
type poller struct {
	epfd  int
	file  *os.File
	raw   syscall.RawConn
	conns []atomic.Pointer[conn] // by provider descriptor
}

const providerEvents uint32 = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

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

// run hands each ready socket to its connection until the poller closes.
func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	// One wait function for every round: a closure made per round would
	// be an allocation per wake-up.
	var n int
	wait := func(fd uintptr) bool {
		var err error
		n, err = unix.EpollWait(int(fd), events, 0)
		return err == nil && n > 0
	}
	for {
		err := p.raw.Read(wait)
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if fd := int(ev.Fd); fd < len(p.conns) {
				// A stale event (the descriptor was closed and
				// reused) only wakes a direction that finds nothing.
				if c := p.conns[fd].Load(); c != nil {
					c.wakeP2C(ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
				}
			}
		}
	}
}

// add watches c's provider socket, armed.
func (p *poller) add(c *conn) error {
	fd := c.providerFD
	if fd >= len(p.conns) {
		return fmt.Errorf("descriptor %d beyond the poller's %d", fd, len(p.conns))
	}
	p.conns[fd].Store(c)
	ev := unix.EpollEvent{Events: providerEvents, Fd: int32(fd)}
	var err error
	if cerr := c.providerRaw.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.conns[fd].CompareAndSwap(c, nil)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// remove stops watching c's socket (a closed socket already left the set).
func (p *poller) remove(c *conn) {
	c.providerRaw.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.conns[c.providerFD].CompareAndSwap(c, nil)
}

func (p *poller) close() { p.file.Close() }
