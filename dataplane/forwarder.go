package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
)

// Forwarder is the data plane of one Availability Zone: it owns the TUN of
// every ENI in the zone, one gVisor netstack with a NIC per ENI, and the
// provider-side connections to the targets.
type Forwarder struct {
	log     *slog.Logger
	az      string
	workers int // processes serving the AZ together (Config.Workers)
	stack   *stack.Stack

	// enis and byAddr are fixed when the forwarder starts (a NIC per TUN);
	// a new snapshot may change everything about an ENI but its TUN and
	// address.
	enis   []*eniState
	byAddr map[tcpip.Address]*eniState

	// current is the snapshot in force, swapped whole by Apply; the
	// connection handler loads it once per connection.
	current atomic.Pointer[compiled]

	// flows holds every open connection; groups the target groups as this
	// node sees them, by load balancer and target group name (guarded by
	// applyMu, which serialises Apply).
	flows   *flowtable.Table
	applyMu sync.Mutex
	groups  map[string]*nat.Group
	ctx     context.Context // ends with Close: health checks, sweeper
	cancel  context.CancelFunc

	// providerNS caches open handles of provider namespaces (guarded by nsMu)
	// so a dial does not reopen /run/netns/NAME.
	nsMu       sync.Mutex
	providerNS map[string]netns.NsHandle

	// poller wakes the relay of a provider socket with bytes to read;
	// runner runs relay and handler work on reused goroutines.
	poller *poller
	runner *runner

	stats forwarderStats
	wg    sync.WaitGroup
}

// forwarderStats are counters of the forwarder as a whole; they are read by
// the metrics collector and written with atomics.
type forwarderStats struct {
	dialErrors     atomic.Uint64 // provider connect failures
	noListener     atomic.Uint64 // SYN to a port without a listener (RST sent)
	notAvailable   atomic.Uint64 // SYN to an endpoint that is not available (RST sent)
	noTarget       atomic.Uint64 // no target registered in reach
	endpointErrors atomic.Uint64 // gVisor refused to create an endpoint
	flowTableFull  atomic.Uint64 // new flow refused: the flow table is full
	idleExpired    atomic.Uint64 // flows forgotten after their idle timeout
	targetResets   atomic.Uint64 // flows reset: target unhealthy or drained with termination
	configVersion  atomic.Uint64
	configRejected atomic.Uint64
}

// eniState is the live side of one ENI: its NIC and its counters.
type eniState struct {
	flows *flowtable.Table // the forwarder's, for activity on each segment
	id    string
	addr4 tcpip.Address // zero for an IPv6-only ENI
	addr6 tcpip.Address // zero for an IPv4-only ENI
	nicID tcpip.NICID

	// ingressRules are the security group rules in force; nil when the
	// endpoint has no security group (everything may reach it).
	ingressRules atomic.Pointer[[]SGRule]
	link         *tunLink

	// labels of the endpoint metrics; fixed with the ENI.
	endpointID, serviceName, vpcID, subnetID string

	// tunReads and tunPackets count TUN reads and the packets they gave:
	// more packets than reads means the kernel handed over GSO frames
	// (split by wireguard's tun) or batches.
	tunReads   atomic.Uint64
	tunPackets atomic.Uint64

	active      atomic.Int64
	newConns    atomic.Uint64
	bytes       atomic.Uint64
	rstReceived atomic.Uint64
	drops       [numDropReasons]atomic.Uint64
}

func (e *eniState) dropped(r dropReason) { e.drops[r].Add(1) }

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
	listeners map[uint16]*route
}

// route is where connections to one ENI port go.
type route struct {
	lb    LoadBalancer
	tg    TargetGroup
	group *nat.Group
	idle  time.Duration
}

// New opens the TUN of every ENI in cfg and builds the netstack over them.
// Nothing carries traffic until Run.
func New(cfg *Config, log *slog.Logger) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	capacity := cfg.FlowCapacity
	if capacity <= 0 {
		capacity = DefaultFlowCapacity
	}
	f := &Forwarder{
		log:        log,
		az:         cfg.AZ,
		workers:    max(cfg.Workers, 1),
		byAddr:     map[tcpip.Address]*eniState{},
		providerNS: map[string]netns.NsHandle{},
		flows:      flowtable.New(capacity),
		groups:     map[string]*nat.Group{},
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	var err error
	if f.poller, err = newPoller(); err != nil {
		return nil, err
	}
	f.runner = newRunner()
	f.stack = newStack()
	for i, e := range cfg.ENIs {
		dev, err := openTUN(e)
		if err != nil {
			f.Close()
			return nil, err
		}
		st := &eniState{
			flows:       f.flows,
			id:          e.ID,
			addr4:       tcpAddr(e.IPv4),
			addr6:       tcpAddr(e.IPv6),
			nicID:       tcpip.NICID(i + 1),
			endpointID:  e.EndpointID,
			serviceName: e.ServiceName,
			vpcID:       e.VPCID,
			subnetID:    e.SubnetID,
		}
		st.link = newTunLink(dev, st)
		f.enis = append(f.enis, st)
		for _, a := range []tcpip.Address{st.addr4, st.addr6} {
			if a.Len() > 0 {
				f.byAddr[a] = st
			}
		}
		if err := f.addNIC(st); err != nil {
			f.Close()
			return nil, fmt.Errorf("ENI %s: %w", e.ID, err)
		}
	}
	if err := f.Apply(cfg); err != nil {
		f.Close()
		return nil, err
	}
	// gVisor calls the handler on a fresh goroutine per SYN; the work
	// moves to the runner's, whose stacks have already grown.
	fwd := tcp.NewForwarder(f.stack, 0, maxInFlightSYNs, func(r *tcp.ForwarderRequest) {
		f.runner.run(func() { f.handleTCP(r) })
	})
	f.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	return f, nil
}

// openTUN attaches to the ENI's TUN device, which ctl created (persistent,
// multi-queue, with a virtio-net header) in the consumer VPC's namespace:
// each forwarder worker of the AZ opens a queue of its own. It refuses to
// create one: a missing TUN means the fabric is not up.
func openTUN(e ENI) (tun.Device, error) {
	var dev tun.Device
	err := nsenter.Do(e.Netns, func() error {
		if _, err := netlink.LinkByName(e.Tun); err != nil {
			return fmt.Errorf("TUN %s of ENI %s not found in netns %s (is the fabric up?)", e.Tun, e.ID, e.Netns)
		}
		file, err := openTUNQueue(e.Tun)
		if err != nil {
			return fmt.Errorf("open TUN %s in netns %s: %w", e.Tun, e.Netns, err)
		}
		// wireguard's tun takes it from here: offloads, batching, GRO.
		if dev, err = tun.CreateTUNFromFile(file, tunMTU); err != nil {
			file.Close()
			return fmt.Errorf("open TUN %s in netns %s: %w", e.Tun, e.Netns, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// wireguard's tun reports link up/down on a channel; nobody here acts
	// on it, but an unread channel would stall its netlink listener.
	go func() {
		for range dev.Events() {
		}
	}()
	return dev, nil
}

func (f *Forwarder) addNIC(e *eniState) error {
	if err := f.stack.CreateNIC(e.nicID, e.link); err != nil {
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

// Apply swaps in a new snapshot. Its ENIs must be the ones the forwarder was
// started with (same TUN and address); everything behind them may change.
// Connections already open keep their target.
func (f *Forwarder) Apply(cfg *Config) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if err := cfg.Validate(); err != nil {
		f.stats.configRejected.Add(1)
		return err
	}
	if cfg.AZ != f.az {
		f.stats.configRejected.Add(1)
		return fmt.Errorf("config is for %s, this forwarder serves %s", cfg.AZ, f.az)
	}
	c := &compiled{cfg: cfg, enis: map[tcpip.Address]*eniRoutes{}}
	for _, e := range cfg.ENIs {
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() && f.byAddr[tcpAddr(a)] == nil {
				f.stats.configRejected.Add(1)
				return fmt.Errorf("ENI %s (%s) is new: a forwarder must be restarted to add ENIs or addresses", e.ID, a)
			}
		}
	}
	for _, e := range cfg.ENIs {
		er := &eniRoutes{eni: e, listeners: map[uint16]*route{}}
		for _, l := range e.Listeners {
			lb, tg := cfg.LoadBalancers[l.LoadBalancer], cfg.TargetGroups[l.TargetGroup]
			er.listeners[l.Port] = &route{lb: lb, tg: tg, group: f.group(lb, tg), idle: tg.idleTimeout()}
		}
		var st *eniState
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() {
				c.enis[tcpAddr(a)] = er
				st = f.byAddr[tcpAddr(a)]
			}
		}
		if len(e.SecurityGroups) > 0 {
			rules := append([]SGRule{}, e.Ingress...)
			st.ingressRules.Store(&rules)
		} else {
			st.ingressRules.Store(nil)
		}
	}
	f.current.Store(c)
	f.stats.configVersion.Store(cfg.Version)
	return nil
}

// Run moves packets until ctx is done, then closes every TUN and waits for
// the read loops.
func (f *Forwarder) Run(ctx context.Context) error {
	errc := make(chan error, len(f.enis))
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.sweep(f.ctx)
	}()
	for _, e := range f.enis {
		f.wg.Add(1)
		go func(e *eniState) {
			defer f.wg.Done()
			if err := e.link.readLoop(); err != nil {
				errc <- fmt.Errorf("ENI %s: %w", e.id, err)
			}
		}(e)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
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
	for _, e := range f.enis {
		e.link.Close()
	}
	if f.stack != nil {
		f.stack.Close()
	}
	f.nsMu.Lock()
	for name, h := range f.providerNS {
		h.Close()
		delete(f.providerNS, name)
	}
	f.nsMu.Unlock()
	if f.poller != nil {
		f.poller.close()
	}
}

// Version is the version of the snapshot in force.
func (f *Forwarder) Version() uint64 { return f.stats.configVersion.Load() }

// ENIReady reports whether every ENI's read loop has its dispatcher.
func (f *Forwarder) ENIReady() bool {
	for _, e := range f.enis {
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
