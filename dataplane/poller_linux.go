package dataplane

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller tells the relay when a provider socket has something to read or
// room to write, without a goroutine per socket: one epoll set of the
// forwarder's. Each socket is in it once, from its connect to its close,
// edge-triggered (no system call to re-arm it after a wake-up); closing
// the socket takes it out. (Its os.File is in Go's netpoller too, which
// nothing waits on: see dialTarget for why it stays.) An edge that finds a
// direction running is left as a note (p2cPending) that the direction
// reads before it parks. The epoll descriptor is itself handed to Go's
// netpoller, so the dispatcher waits like any other network read and
// takes no thread while idle.
type poller struct {
	epfd  int
	file  *os.File
	raw   syscall.RawConn
	socks []atomic.Pointer[sockWatch] // by provider descriptor
}

// sockWatch is the poller's entry for one provider socket: whom its edges
// wake.
type sockWatch struct {
	// room gets a token for an edge that may mean room to write, or an
	// error, while wantRoom is set (armRoom): the connect's wait, and the
	// consumer-to-target direction once it found the socket full. Closing
	// the socket leaves one too. Made by the first armRoom (most
	// connections never wait), before wantRoom is first set: whoever
	// loads wantRoom set sees it.
	room     chan struct{}
	wantRoom atomic.Bool
	// relay is the connection to wake when bytes (or a FIN, or an error)
	// come, once its relay runs; early keeps the events that came before,
	// which the relay's start replays.
	relay atomic.Pointer[conn]
	early atomic.Uint32
	// outWatched: the socket is in the set for room too (EPOLLOUT). A
	// socket connected at once joins without it, as most connections
	// never wait for room, and an add asking for it would report the room
	// it has at once: a wake-up of the poller per connection for nothing.
	// The first wait for room adds it. Only the socket's owner of the
	// moment (the dial, then the consumer-to-target direction) uses it.
	outWatched bool
}

const (
	providerEvents uint32 = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET
	// hupEvents tell the provider-to-consumer direction the target is done.
	hupEvents uint32 = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	// roomEvents may end a wait for room (or for the connect).
	roomEvents uint32 = unix.EPOLLOUT | unix.EPOLLERR | unix.EPOLLHUP
)

// kick leaves a token for a wait for room, if none is there; only once
// wantRoom was seen set.
func (w *sockWatch) kick() {
	select {
	case w.room <- struct{}{}:
	default:
	}
}

// armRoom makes the edges from now on leave tokens, after dropping a stale
// one. The caller tries its write (or connect check) again before it
// waits: room that came before is not an edge any more.
func (w *sockWatch) armRoom() {
	if w.room == nil {
		w.room = make(chan struct{}, 1)
	}
	select {
	case <-w.room:
	default:
	}
	w.wantRoom.Store(true)
}

// waitRoom waits for a token of an armed wait and disarms it.
func (w *sockWatch) waitRoom() {
	<-w.room
	w.wantRoom.Store(false)
}

// notify hands one edge to whoever waits for it.
func (w *sockWatch) notify(ev uint32) {
	if ev&roomEvents != 0 && w.wantRoom.Load() {
		w.kick()
	}
	if ev&(unix.EPOLLIN|hupEvents) == 0 {
		return
	}
	if c := w.relay.Load(); c != nil {
		c.wakeP2C(ev&hupEvents != 0)
		return
	}
	w.early.Or(ev)
	// The relay may have started between the two looks: whoever takes
	// the note wakes it, once.
	if c := w.relay.Load(); c != nil {
		if e := w.early.Swap(0); e != 0 {
			c.wakeP2C(e&hupEvents != 0)
		}
	}
}

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
	p := &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), socks: make([]atomic.Pointer[sockWatch], n)}
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, err
	}
	go p.run()
	return p, nil
}

// run hands each edge to its socket's watch until the poller closes.
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
				if fd := int(ev.Fd); fd < len(p.socks) {
					// A stale event (the descriptor was closed and
					// reused) only wakes a wait that finds nothing.
					if w := p.socks[fd].Load(); w != nil {
						w.notify(ev.Events)
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

// watch adds a provider socket, connecting or connected, to the set, its
// edges going to w; for room too if out. The caller owns fd until it is
// closed.
func (p *poller) watch(fd int, w *sockWatch, out bool) error {
	if fd >= len(p.socks) {
		return fmt.Errorf("descriptor %d beyond the poller's %d", fd, len(p.socks))
	}
	p.socks[fd].Store(w)
	ev := unix.EpollEvent{Events: providerEvents, Fd: int32(fd)}
	if out {
		ev.Events |= unix.EPOLLOUT
	}
	w.outWatched = out
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.socks[fd].CompareAndSwap(w, nil)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// watchRoom has the set report room on a watched socket too, once.
func (p *poller) watchRoom(fd int, w *sockWatch) error {
	if w.outWatched {
		return nil
	}
	ev := unix.EpollEvent{Events: providerEvents | unix.EPOLLOUT, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return err
	}
	w.outWatched = true
	return nil
}

// unwatch forgets a socket about to be closed; the close takes it out of
// the set.
func (p *poller) unwatch(fd int, w *sockWatch) {
	if fd >= 0 && fd < len(p.socks) {
		p.socks[fd].CompareAndSwap(w, nil)
	}
}

func (p *poller) close() { p.file.Close() }
