package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"pvlink.dev/pvlink/flowtable"
	"pvlink.dev/pvlink/nat"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/snapshot"
)

// Forwarder is the data plane of one Availability Zone: it owns the TUN of
// every ENI in the zone, one gVisor netstack with a NIC per ENI, and the
// provider-side connections to the targets.
type Forwarder struct {
	// flowRecords are the ENIs' flow log records waiting for ctld.
	flowRecords flowLogs

	log     *slog.Logger
	az      string
	workers int // processes serving the AZ together (Config.Workers)
	stack   *stack.Stack
	// segments processes what the TUN read loops delivered, in their
	// goroutine (stack.go); nil with a gVisor that cannot.
	segments segmentProcessor

	// enis are the ENIs of the snapshot in force, by ENI id, with the NIC
	// id to give the next one; guarded by enisMu. Apply adds and removes
	// them; the data path never reads this map (it finds an ENI through
	// the snapshot), only metrics and Run do.
	enisMu sync.Mutex
	enis   map[string]*eniState
	// inherited are the TUN queues the process was started with, taken
	// by the first snapshot's ENIs (openTUN); New closes the rest.
	inherited InheritedQueues
	nextNIC   tcpip.NICID
	// running is set by Run: from then on a new ENI's read loop starts
	// as it is added. runErr receives the first read loop that fails.
	running bool
	runErr  chan error
	// capacity is the flow table's size, fixed at start.
	capacity int

	// current is the snapshot in force, swapped whole by Apply; the
	// connection handler loads it once per connection.
	current atomic.Pointer[compiled]

	// flows holds every open connection; groups the target groups as this
	// node sees them, by load balancer and target group name (guarded by
	// applyMu, which serialises Apply).
	flows   *flowtable.Table
	applyMu sync.Mutex
	groups  map[string]*nat.Group
	// deadTargets are the targets whose AZ is down by a fault: dials and
	// health checks to them go unanswered.
	deadTargets atomic.Pointer[map[netip.AddrPort]bool]
	ctx         context.Context // ends with Close: health checks, sweeper
	cancel      context.CancelFunc

	// providerNS caches open handles of provider namespaces (guarded by nsMu)
	// so a dial does not reopen /run/netns/NAME, and sockets made there in
	// batches (dial_linux.go).
	nsMu       sync.Mutex
	providerNS map[string]*providerNamespace

	// poller wakes the relay of a provider socket with bytes to read;
	// runner runs relay and handler work on reused goroutines.
	poller *poller
	runner *runner

	// pressure: live heap passed the memory budget's high mark (budget.go).
	pressure atomic.Bool
	// ownLimit: the forwarder sets the runtime's memory limit by the
	// ENIs it serves (setMemoryLimit); guarded by applyMu.
	ownLimit bool
	// bigConns is how many connections have large buffers; heldIn the
	// consumers' bytes gVisor holds for targets not yet ready for them.
	bigConns atomic.Int64
	heldIn   atomic.Int64

	stats forwarderStats
	wg    sync.WaitGroup
}

// forwarderStats are counters of the forwarder as a whole; they are read by
// the metrics collector and written with atomics.
type forwarderStats struct {
	dialErrors     atomic.Uint64 // provider connect failures
	noListener     atomic.Uint64 // SYN to a port without a listener (RST sent)
	notAvailable   atomic.Uint64 // SYN to an endpoint that is not available (dropped)
	endpointResets atomic.Uint64 // flows reset: endpoint rejected or deleted
	noTarget       atomic.Uint64 // no target registered in reach
	noRoute        atomic.Uint64 // SYN to an address no ENI of the snapshot has (RST sent)
	endpointErrors atomic.Uint64 // gVisor refused to create an endpoint
	flowTableFull  atomic.Uint64 // new flow refused: the flow table is full
	idleExpired    atomic.Uint64 // flows forgotten after their idle timeout
	targetResets   atomic.Uint64 // flows reset: target unhealthy or drained with termination
	configVersion  atomic.Uint64
	// The SYN flood defence (synflood.go): handshakes given up after
	// handshakeTimeout, times an ENI turned SYN cookies on, and the
	// connections a cookie let in.
	memoryPressure    atomic.Uint64 // times the memory budget's high mark was passed
	handshakeTimeouts atomic.Uint64
	cookieModes       atomic.Uint64
	cookieConns       atomic.Uint64
	configRejected    atomic.Uint64
}

// eniState is the live side of one ENI: its NIC and its counters.
type eniState struct {
	queueFD int              // the TUN queue's descriptor (TUNQueues)
	flows   *flowtable.Table // the forwarder's, for activity on each segment
	id      string
	addr4   tcpip.Address // zero for an IPv6-only ENI
	addr6   tcpip.Address // zero for an IPv4-only ENI
	nicID   tcpip.NICID

	// ingressRules are the security group rules in force; nil when the
	// endpoint has no security group (everything may reach it).
	ingressRules atomic.Pointer[[]SGRule]
	// lbRules are, by listener port, the rules of the load balancer
	// behind it whose security groups are enforced on PrivateLink
	// traffic; nil when none is.
	lbRules atomic.Pointer[map[uint16][]SGRule]
	// available: the endpoint carries traffic. A SYN to an endpoint in
	// any other state is dropped without an answer, as in AWS while a
	// request awaits acceptance.
	available atomic.Bool
	link      *tunLink
	// cfg is the ENI as the snapshot that added it gave it: a later one
	// with another TUN, namespace or address replaces the ENI.
	cfg ENI

	// labels of the endpoint metrics; fixed with the ENI.
	endpointID, serviceName, vpcID, subnetID string

	// tunReads and tunPackets count TUN reads and the packets they gave:
	// more packets than reads means the kernel handed over GSO frames
	// (split by wireguard's tun) or batches.
	tunReads   atomic.Uint64
	tunPackets atomic.Uint64
	// maxWire is the largest packet written towards the consumer, or that
	// a frame written stands for (headers plus segment size).
	maxWire atomic.Int64
	// tunWrites and tunWritePackets count frames written to the TUN and
	// the packets they stand for.
	tunWrites       atomic.Uint64
	tunWritePackets atomic.Uint64
	// acksCarried counts pure ACKs held back and then made redundant by
	// a segment that carried them (ackhold.go).
	acksCarried atomic.Uint64

	active      atomic.Int64
	newConns    atomic.Uint64
	bytesIn     atomic.Uint64 // from the consumer to its target
	bytesOut    atomic.Uint64 // from the target to the consumer
	rstReceived atomic.Uint64
	rstSent     atomic.Uint64 // RSTs written towards the consumer
	lbs         lbSets        // the service side, per load balancer
	captures    captures      // packet captures running on the ENI
	// blackholed: the ENI's AZ is down by a fault; nothing goes in or out.
	blackholed atomic.Bool
	// stale: the ENI's TUN is in a namespace that lost its VPC's name;
	// the next Apply opens the TUN again (followNamespaces).
	stale   atomic.Bool
	flowLog atomic.Pointer[flowLogger]
	drops   [numDropReasons]atomic.Uint64

	// The SYN flood defence (synflood.go): handshakes the forwarder has
	// not finished, pure SYNs seen, and the cookie listeners when on.
	halfOpen atomic.Int32
	syns     atomic.Uint64
	cookies  cookieState
}

func (e *eniState) dropped(r dropReason) { e.drops[r].Add(1) }

// noteWirePacket records the size of a packet sent to the consumer.
func (e *eniState) noteWirePacket(n int) {
	if int64(n) > e.maxWire.Load() {
		e.maxWire.Store(int64(n)) // one writer: the link, under writeMu
	}
}

func (e *eniState) packetsDropped() uint64 {
	var n uint64
	for i := range e.drops {
		n += e.drops[i].Load()
	}
	return n
}

// compiled is a Config turned into what the connection handler looks up.
type compiled struct {
	cfg  *Config
	enis map[tcpip.Address]*eniRoutes
}

type eniRoutes struct {
	eni       ENI
	state     *eniState
	listeners map[uint16]*route
}

// route is where connections to one ENI port go.
type route struct {
	lb    LoadBalancer
	tg    TargetGroup
	group *nat.Group
	idle  time.Duration
	svc   *lbCounters // the service metrics of this ENI and load balancer
}

// New opens the TUN of every ENI in cfg and builds the netstack over them.
// Nothing carries traffic until Run.
func New(cfg *Config, log *slog.Logger, inherited InheritedQueues) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	capacity := cfg.FlowCapacity
	if capacity <= 0 {
		capacity = DefaultFlowCapacity
	}
	f := &Forwarder{
		flowRecords: flowLogs{boot: time.Now().UnixNano()},
		log:         log,
		az:          cfg.AZ,
		workers:     max(cfg.Workers, 1),
		enis:        map[string]*eniState{},
		runErr:      make(chan error, 1),
		capacity:    capacity,
		providerNS:  map[string]*providerNamespace{},
		flows:       flowtable.New(capacity),
		groups:      map[string]*nat.Group{},
		inherited:   inherited,
	}
	defer f.inherited.closeRest()
	f.ctx, f.cancel = context.WithCancel(context.Background())
	var err error
	if f.poller, err = newPoller(); err != nil {
		return nil, err
	}
	f.runner = newRunner()
	f.stack = newStack()
	f.segments = inlineProcessing(f.stack)
	if err := f.Apply(cfg); err != nil {
		f.Close()
		return nil, err
	}
	// gVisor calls the handler on a fresh goroutine per SYN; the work
	// moves to the runner's, whose stacks have already grown.
	fwd := tcp.NewForwarder(f.stack, smallHold, maxInFlightSYNs, func(r *tcp.ForwarderRequest) {
		f.runner.run(funcTask(func() { f.handleTCP(r) }))
	})
	f.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	return f, nil
}

// TUNQueues are the descriptors of the ENIs' TUN queues, by TUN name.
func (f *Forwarder) TUNQueues() map[string]int {
	f.enisMu.Lock()
	defer f.enisMu.Unlock()
	q := make(map[string]int, len(f.enis))
	for _, st := range f.enis {
		if st.queueFD >= 0 {
			q[st.cfg.Tun] = st.queueFD
		}
	}
	return q
}

// openENI opens an ENI's TUN and makes its live state; nothing is attached
// to the netstack yet.
func (f *Forwarder) openENI(e ENI) (*eniState, error) {
	dev, queue, err := f.openTUN(e)
	if err != nil {
		return nil, err
	}
	st := &eniState{
		queueFD:     queue,
		flows:       f.flows,
		id:          e.ID,
		addr4:       tcpAddr(e.IPv4),
		addr6:       tcpAddr(e.IPv6),
		endpointID:  e.EndpointID,
		serviceName: e.ServiceName,
		vpcID:       e.VPCID,
		subnetID:    e.SubnetID,
		cfg:         e,
	}
	st.link = newTunLink(dev, st)
	st.link.segments = f.segments
	return st, nil
}

// sameInterface reports whether a snapshot's ENI is the one already open:
// same TUN, namespace and addresses.
func sameInterface(a, b ENI) bool {
	return a.Tun == b.Tun && a.Netns == b.Netns && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6
}

// openTUN attaches to the ENI's TUN device, which ctl created (persistent,
// multi-queue, with a virtio-net header, MTU 9001) in the consumer VPC's
// namespace: each forwarder worker of the AZ opens a queue of its own, or
// takes the one its predecessor had (inherited). It refuses to create a
// TUN: a missing TUN means the fabric is not up. It returns the queue's
// descriptor number too.
//
// wireguard's tun takes the queue unmonitored: its monitored constructor
// starts two goroutines per device that nothing here listens to, a
// netlink listener (a thread blocked in recvmsg for each ENI) and a probe
// that writes to the TUN every second to learn whether it is up, and it
// sets the link's MTU, which is ctld's to keep. With 100 ENIs a
// forwarder ran 106 threads and switched context 175 times a second
// while idle.
func (f *Forwarder) openTUN(e ENI) (tun.Device, int, error) {
	var dev tun.Device
	queue := -1
	err := nsenter.Do(e.Netns, func() error {
		if _, err := netlink.LinkByName(e.Tun); err != nil {
			return fmt.Errorf("TUN %s of ENI %s not found in netns %s (is the fabric up?)", e.Tun, e.ID, e.Netns)
		}
		fd, err := f.inherited.adopt(e.Tun)
		if err != nil {
			f.log.Warn("inherited TUN queue", "eni", e.ID, "err", err)
		}
		if fd < 0 {
			fd, err = openTUNQueue(e.Tun)
		}
		if err != nil {
			return fmt.Errorf("open TUN %s in netns %s: %w", e.Tun, e.Netns, err)
		}
		// Non-blocking before wireguard's tun makes a file of it (it
		// asks again), so that what can fail after this fails once the
		// file exists.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return fmt.Errorf("open TUN %s in netns %s: %w", e.Tun, e.Netns, err)
		}
		// wireguard's tun takes it from here: offloads, batching, GRO. On
		// a failure the file it made of the descriptor closes it when
		// collected; closing it here too could close a descriptor opened
		// meanwhile under the same number.
		if dev, _, err = tun.CreateUnmonitoredTUNFromFD(fd); err != nil {
			return fmt.Errorf("open TUN %s in netns %s: %w", e.Tun, e.Netns, err)
		}
		queue = fd
		return nil
	})
	if err != nil {
		return nil, -1, err
	}
	return dev, queue, nil
}

func (f *Forwarder) addNIC(e *eniState) error {
	if err := f.stack.CreateNICWithOptions(e.nicID, e.link, stack.NICOptions{QDisc: linkQDisc{e.link}}); err != nil {
		return fmt.Errorf("create NIC: %s", err)
	}
	for _, pa := range []tcpip.ProtocolAddress{
		{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: e.addr4.WithPrefix()},
		{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: e.addr6.WithPrefix()},
	} {
		if pa.AddressWithPrefix.Address.Len() == 0 {
			continue
		}
		if err := f.stack.AddProtocolAddress(e.nicID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("add address %s: %s", pa.AddressWithPrefix.Address, err)
		}
	}
	// Replies leave by the NIC their connection arrived on (gVisor binds an
	// accepted endpoint's route to it); this default route per NIC only
	// makes every consumer address reachable from every ENI.
	f.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: e.nicID})
	f.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: e.nicID})
	return nil
}

// Check reports whether the forwarder could serve cfg, without applying
// it: what Apply would refuse before touching anything.
func (f *Forwarder) Check(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.AZ != f.az {
		return fmt.Errorf("config is for %s, this forwarder serves %s", cfg.AZ, f.az)
	}
	want := cfg.FlowCapacity
	if want <= 0 {
		want = DefaultFlowCapacity
	}
	if want != f.capacity {
		return fmt.Errorf("flow table capacity is fixed while the forwarder runs (%d flows); it cannot become %d without a restart", f.capacity, want)
	}
	if max(cfg.Workers, 1) != f.workers {
		return fmt.Errorf("this forwarder is one of %d workers of %s; a snapshot for %d needs new processes", f.workers, f.az, max(cfg.Workers, 1))
	}
	return nil
}

// Apply swaps in a new snapshot. ENIs it adds get their TUN opened and a
// NIC; ENIs it drops lose theirs, and their flows are reset. Everything
// behind the ENIs may change; connections already open keep their target.
// A snapshot that cannot be served is refused whole and the previous one
// stays in force.
func (f *Forwarder) Apply(cfg *Config) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if err := f.Check(cfg); err != nil {
		f.stats.configRejected.Add(1)
		return err
	}
	f.enisMu.Lock()
	defer f.enisMu.Unlock()

	// Open the TUNs of new ENIs first: the only step that can fail.
	keep := map[string]*eniState{}
	var opened []*eniState
	for _, e := range cfg.ENIs {
		if st := f.enis[e.ID]; st != nil && sameInterface(st.cfg, e) && !st.stale.Load() {
			keep[e.ID] = st
			continue
		}
		st, err := f.openENI(e)
		if err != nil {
			for _, o := range opened {
				o.link.Close()
			}
			f.stats.configRejected.Add(1)
			return err
		}
		opened = append(opened, st)
		keep[e.ID] = st
	}
	// ENIs that leave: no new packets, flows reset, NIC gone.
	for id, st := range f.enis {
		if keep[id] != st {
			f.removeENI(st)
			delete(f.enis, id)
		}
	}
	for _, st := range opened {
		f.nextNIC++
		st.nicID = f.nextNIC
		if err := f.addNIC(st); err != nil {
			// Only an address held twice gets here, and Validate
			// refuses that; the ENI stays without a NIC, counted.
			f.log.Error("add ENI", "eni", st.id, "err", err)
			f.stats.configRejected.Add(1)
		}
		f.enis[st.id] = st
		if f.running {
			f.startENI(st)
		}
	}
	f.setMemoryLimit(len(f.enis))

	c := &compiled{cfg: cfg, enis: map[tcpip.Address]*eniRoutes{}}
	var closed []*eniState
	for _, e := range cfg.ENIs {
		st := f.enis[e.ID]
		er := &eniRoutes{eni: e, state: st, listeners: map[uint16]*route{}}
		byPort := map[uint16]*lbCounters{}
		for _, l := range e.Listeners {
			lb, tg := cfg.LoadBalancers[l.LoadBalancer], cfg.TargetGroups[l.TargetGroup]
			svc := st.lbs.counters(lb)
			byPort[l.Port] = svc
			er.listeners[l.Port] = &route{lb: lb, tg: tg, group: f.group(lb, tg), idle: idleTimeout(l, tg), svc: svc}
		}
		st.lbs.byPort.Store(&byPort)
		st.lbRules.Store(lbIngress(e, cfg))
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() {
				c.enis[tcpAddr(a)] = er
			}
		}
		f.setFlowLog(st, time.Duration(e.FlowLogInterval))
		st.blackholed.Store(e.Blackholed)
		if len(e.SecurityGroups) > 0 {
			rules := append([]SGRule{}, e.Ingress...)
			st.ingressRules.Store(&rules)
		} else {
			st.ingressRules.Store(nil)
		}
		carries := snapshot.Carries(e.State)
		if was := st.available.Swap(carries); was && !carries {
			closed = append(closed, st)
		}
	}
	f.closeGroups(cfg)
	f.blackholeTargets(cfg)
	f.current.Store(c)
	f.stats.configVersion.Store(cfg.Version)
	// An endpoint rejected (or otherwise out of service) loses its flows.
	for _, st := range closed {
		f.resetENI(st)
	}
	return nil
}

// lbIngress is, by port of ENI e, the inbound rules of the load balancer
// of the listener there if its security groups filter PrivateLink
// traffic; nil when none does.
func lbIngress(e ENI, cfg *Config) *map[uint16][]SGRule {
	var byPort map[uint16][]SGRule
	for _, l := range e.Listeners {
		if lb := cfg.LoadBalancers[l.LoadBalancer]; len(lb.SecurityGroups) > 0 {
			if byPort == nil {
				byPort = map[uint16][]SGRule{}
			}
			byPort[l.Port] = append([]SGRule{}, lb.Ingress...)
		}
	}
	if byPort == nil {
		return nil
	}
	return &byPort
}

// closeGroups ends the target groups no listener of cfg uses any more: their
// health checks stop. Called under applyMu.
func (f *Forwarder) closeGroups(cfg *Config) {
	used := map[string]bool{}
	for _, e := range cfg.ENIs {
		for _, l := range e.Listeners {
			used[l.LoadBalancer+"/"+l.TargetGroup] = true
		}
	}
	for name, g := range f.groups {
		if !used[name] {
			g.Close()
			delete(f.groups, name)
		}
	}
}

// resetENI resets every flow through an ENI, both ways.
func (f *Forwarder) resetENI(st *eniState) {
	f.flows.Range(func(fl *flowtable.Flow) bool {
		if c, ok := fl.Value.(*conn); ok && c.eni == st {
			f.stats.endpointResets.Add(1)
			c.abort()
		}
		return true
	})
}

// removeENI takes an ENI out of service: its flows are reset, its TUN
// closed (which ends its read loop) and its NIC removed. Called under
// enisMu.
func (f *Forwarder) removeENI(st *eniState) {
	st.available.Store(false)
	f.stopCookies(st, "ENI removed")
	f.resetENI(st)
	st.link.Close()
	if st.nicID != 0 {
		f.stack.RemoveNIC(st.nicID)
	}
}

// startENI starts an ENI's read loop. Called under enisMu.
func (f *Forwarder) startENI(st *eniState) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := st.link.readLoop(); err != nil {
			select {
			case f.runErr <- fmt.Errorf("ENI %s: %w", st.id, err):
			default:
			}
		}
	}()
}

// Run moves packets until ctx is done, then closes every TUN and waits for
// the read loops.
func (f *Forwarder) Run(ctx context.Context) error {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.sweep(f.ctx)
	}()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		everySecond(f.ctx, f.endFloods) // cookie mode ends with a flood
	}()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.keepBudget(f.ctx)
	}()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		everySecond(f.ctx, f.followNamespaces)
	}()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.runFlowLogs()
	}()
	f.enisMu.Lock()
	f.running = true
	for _, e := range f.enis {
		f.startENI(e)
	}
	f.enisMu.Unlock()
	var err error
	select {
	case <-ctx.Done():
	case err = <-f.runErr:
	}
	f.Close()
	f.wg.Wait()
	return err
}

// Close releases the TUNs, the netstack, the target groups and the
// namespace handles.
func (f *Forwarder) Close() {
	f.cancel()
	f.applyMu.Lock()
	for _, g := range f.groups {
		g.Close()
	}
	f.applyMu.Unlock()
	f.enisMu.Lock()
	for _, e := range f.enis {
		e.link.Close()
	}
	f.enisMu.Unlock()
	if f.stack != nil {
		f.stack.Close()
	}
	f.closeNamespaces()
	if f.poller != nil {
		f.poller.close()
	}
}

// eniList is the ENIs in force, for readers outside the data path.
func (f *Forwarder) eniList() []*eniState {
	f.enisMu.Lock()
	defer f.enisMu.Unlock()
	out := make([]*eniState, 0, len(f.enis))
	for _, e := range f.enis {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Version is the version of the snapshot in force.
func (f *Forwarder) Version() uint64 { return f.stats.configVersion.Load() }

// ENIReady reports whether every ENI's read loop has its dispatcher.
func (f *Forwarder) ENIReady() bool {
	for _, e := range f.eniList() {
		if !e.link.IsAttached() {
			return false
		}
	}
	return true
}

// tcpAddr converts an address for gVisor; the zero Addr gives the empty
// address.
func tcpAddr(a netip.Addr) tcpip.Address {
	if !a.IsValid() {
		return tcpip.Address{}
	}
	return tcpip.AddrFromSlice(a.AsSlice())
}

var errNoNamespace = errors.New("provider namespace is gone")
