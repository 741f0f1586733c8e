package dataplane

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// The SYN flood defence.
//
// Normally the forwarder completes a consumer's handshake only once the
// target accepted (handler.go), which means it keeps state for every SYN:
// a slot of gVisor's forwarder, a goroutine and a target connection, until
// the consumer's ACK comes. Spoofed SYNs never ACK, so a flood of them would
// fill every slot. When synFloodThreshold handshakes are half open on one
// ENI, the ENI answers SYNs with SYN cookies instead, as the kernel does
// under the same flood: a gVisor listener per listener port, bound to the
// ENI's addresses, that keeps no state for a SYN (the stack always uses
// cookies for listeners) and hands over a connection only when the
// consumer's ACK carries a valid cookie. Only then is the target dialed; a
// target that refuses then costs the consumer an established connection
// that is reset at once, not a refused one. Cookies carry no window scale
// and one of four MSS values (536, 1300, 1440, 1460), so a connection made
// by cookie has a 64 KiB window and at most 1460-byte segments towards the
// consumer (the clamp still applies the other way).
//
// An ENI goes back to stateful handshakes when, for cookieQuiet, every
// second has seen fewer than synFloodThreshold SYNs that no connection
// followed.
const (
	// synFloodThreshold half-open handshakes on one ENI turn cookies on.
	synFloodThreshold = 128
	// handshakeTimeout bounds a stateful handshake: SYN-ACKs go out at 0,
	// 1 and 3 s, then the forwarder gives up and frees what it holds. A
	// consumer that lost all three retransmits its SYN and starts afresh.
	handshakeTimeout = 5 * time.Second
	cookieQuiet      = 5 * time.Second
	cookieBacklog    = 1024
)

// cookieState is an ENI's cookie listeners: none while it is not flooded.
type cookieState struct {
	mu        sync.Mutex
	listeners []tcpip.Endpoint
	done      chan struct{} // closed when the listeners are
	// The sweep's view: SYNs and cookie connections when it last looked,
	// and when a second with a flood's worth of unanswered SYNs was last
	// seen.
	lastSyns, lastConns uint64
	lastFlood           time.Time
	conns               uint64 // connections let in by cookie
}

// startCookies turns on SYN cookies for an ENI: a listener on each of its
// listener ports and addresses. Called with halfOpen handshakes pending.
func (f *Forwarder) startCookies(routes *eniRoutes, halfOpen int32) {
	e := routes.state
	cs := &e.cookies
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.done != nil || f.ctx.Err() != nil {
		return
	}
	done := make(chan struct{})
	for port := range routes.listeners {
		for _, a := range []struct {
			proto tcpip.NetworkProtocolNumber
			addr  tcpip.Address
		}{{ipv4.ProtocolNumber, e.addr4}, {ipv6.ProtocolNumber, e.addr6}} {
			if a.addr.Len() == 0 {
				continue
			}
			ln, wq, err := f.cookieListener(e.nicID, a.proto, a.addr, port)
			if err != nil {
				f.log.Error("SYN cookie listener", "eni", e.id, "port", port, "err", err)
				continue
			}
			cs.listeners = append(cs.listeners, ln)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.acceptCookies(e, ln, wq, done)
			}()
		}
	}
	cs.done = done
	cs.lastSyns, cs.lastConns, cs.lastFlood = e.syns.Load(), cs.conns, time.Now()
	f.stats.cookieModes.Add(1)
	f.log.Warn("SYN flood: answering SYNs with cookies", "eni", e.id, "endpoint", e.endpointID, "half_open", halfOpen)
}

// cookieListener makes a gVisor listener on addr:port of a NIC. It shares
// the port with the connections the forwarder made there (SO_REUSEADDR).
func (f *Forwarder) cookieListener(nic tcpip.NICID, proto tcpip.NetworkProtocolNumber, addr tcpip.Address, port uint16) (tcpip.Endpoint, *waiter.Queue, error) {
	wq := &waiter.Queue{}
	ln, terr := f.stack.NewEndpoint(tcp.ProtocolNumber, proto, wq)
	if terr != nil {
		return nil, nil, tcpErr(terr)
	}
	ln.SocketOptions().SetReuseAddress(true)
	if terr := ln.Bind(tcpip.FullAddress{NIC: nic, Addr: addr, Port: port}); terr != nil {
		ln.Close()
		return nil, nil, tcpErr(terr)
	}
	if terr := ln.Listen(cookieBacklog); terr != nil {
		ln.Close()
		return nil, nil, tcpErr(terr)
	}
	return ln, wq, nil
}

// acceptCookies hands each connection a cookie let in to handleCookie,
// until done.
func (f *Forwarder) acceptCookies(e *eniState, ln tcpip.Endpoint, wq *waiter.Queue, done chan struct{}) {
	entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	for {
		ep, cwq, terr := ln.Accept(nil)
		if _, ok := terr.(*tcpip.ErrWouldBlock); ok {
			select {
			case <-ready:
				continue
			case <-done:
				return
			case <-f.ctx.Done():
				return
			}
		}
		if terr != nil {
			return
		}
		f.stats.cookieConns.Add(1)
		e.cookies.mu.Lock()
		e.cookies.conns++
		e.cookies.mu.Unlock()
		f.runner.run(funcTask(func() { f.handleCookie(ep, cwq) }))
	}
}

// handleCookie is handleTCP for a connection a SYN cookie let in: the
// consumer is real and connected, so the target is dialed now, and a
// refusal is a RST on an established connection.
func (f *Forwarder) handleCookie(ep tcpip.Endpoint, wq *waiter.Queue) {
	id := ep.Info().(*stack.TransportEndpointInfo).ID
	cn, refusal := f.admit(f.current.Load(), id)
	if refusal != refuseNone {
		ep.Abort()
		return
	}
	sock, err := f.dial(cn)
	if err != nil {
		ep.Abort()
		cn.undo()
		return
	}
	f.begin(cn, sock, ep, wq)
}

// stopCookies closes an ENI's cookie listeners, if any.
func (f *Forwarder) stopCookies(e *eniState, why string) {
	cs := &e.cookies
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.done == nil {
		return
	}
	close(cs.done)
	for _, ln := range cs.listeners {
		ln.Close()
	}
	cs.listeners, cs.done = nil, nil
	f.log.Warn("SYN cookies off", "eni", e.id, "endpoint", e.endpointID, "why", why, "cookie_connections", cs.conns)
	f.handBackMemory()
}

// handBackMemory returns what a flood grew the heap by to the system. A
// flood allocates while it lasts (segments, SYN-ACKs, the half-open
// handshakes), and each half-open handshake held a runner worker whose
// grown stack is freed only when the worker exits, one to two runnerIdle
// periods after its handshake was given up. The runtime keeps freed memory
// up to its next GC goal and returns the rest over minutes, so a flood
// with hundreds of half-open handshakes left the forwarder's RSS 12 MiB up
// for good. It is handed back now, and again once those workers are gone.
func (f *Forwarder) handBackMemory() {
	go func() {
		debug.FreeOSMemory()
		t := time.NewTimer(2*runnerIdle + time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			debug.FreeOSMemory()
		case <-f.ctx.Done():
		}
	}()
}

// everySecond runs fn once a second until ctx ends.
func everySecond(ctx context.Context, fn func(now time.Time)) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			fn(now)
		}
	}
}

func (f *Forwarder) endFloods(now time.Time) {
	for _, e := range f.eniList() {
		cs := &e.cookies
		cs.mu.Lock()
		on := cs.done != nil
		if on {
			syns := e.syns.Load()
			unanswered := int64(syns-cs.lastSyns) - int64(cs.conns-cs.lastConns)
			cs.lastSyns, cs.lastConns = syns, cs.conns
			if unanswered >= synFloodThreshold {
				cs.lastFlood = now
			}
			on = now.Sub(cs.lastFlood) < cookieQuiet
		}
		stop := cs.done != nil && !on
		cs.mu.Unlock()
		if stop {
			f.stopCookies(e, "flood over")
		}
	}
}

// CookieMode reports whether an ENI answers SYNs with cookies.
func (e *eniState) cookieMode() bool {
	e.cookies.mu.Lock()
	defer e.cookies.mu.Unlock()
	return e.cookies.done != nil
}

func tcpErr(err tcpip.Error) error { return errors.New(err.String()) }
