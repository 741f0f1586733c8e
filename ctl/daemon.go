package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pvlink.dev/pvlink/ctl/cloudwatch"
	"pvlink.dev/pvlink/ctl/dns"
	"pvlink.dev/pvlink/ctl/store"
	"pvlink.dev/pvlink/nsenter"
)

// dnsTypeTXT is the TXT record type (16), without importing miekg/dns here.
const dnsTypeTXT = 16

// Daemon is ctld: the one writer of a fabric's model. It answers the CLI
// (and every later API) on a unix socket, commits each change to its store
// before it answers, and has the realizer make the host match.
type Daemon struct {
	name string
	log  *slog.Logger
	st   store.Store
	r    *realizer

	// writeMu serialises changes: an operation reads model, changes a
	// copy, commits it, then swaps it in. model is replaced, never changed
	// in place, so readers (status, the realizer) load it without waiting
	// for a change in progress. has: the store holds a model. gone: the
	// fabric was taken down; no change is taken after that.
	writeMu sync.Mutex
	model   atomic.Pointer[State]
	has     atomic.Bool
	gone    atomic.Bool // set under writeMu

	downReq    chan chan error // a caller waiting for `down` to finish
	started    time.Time
	apiURL     string        // set before the socket serves
	outboxWake chan struct{} // a change wrote events
	dns        *dnsServers
	api        http.Handler // the API's, if it is served
	cw         *sampler     // the CloudWatch metrics
}

// DaemonOptions are ctld's settings.
type DaemonOptions struct {
	Fabric string
	Exe    string // the pvlink binary, to start forwarders and targets
	// Revision is the code the binary was built from, for the log.
	Revision string
	Log      *slog.Logger
	// API, if set, makes the AWS-compatible API's handler over the
	// daemon; it is served on APIListen (loopback; port 0 picks one,
	// which the store keeps, so the URL stays across restarts).
	API       func(*Daemon) http.Handler
	APIListen string
}

// keyHostAPI records the address the API is served on.
const keyHostAPI = "host/api"

// CloudWatch gives the fabric's CloudWatch metrics, read from the
// forwarders as the call comes (at most 100 ms before: calls in a burst share a reading).
func (d *Daemon) CloudWatch() *cloudwatch.History {
	d.cw.sampleIfOlder(100 * time.Millisecond)
	return d.cw.hist
}

// Model is the committed model (the API's reads).
func (d *Daemon) Model() *State { return d.current() }

// PublicDNS is the address of the fabric's public DNS server ("" until it
// serves).
func (d *Daemon) PublicDNS() string {
	d.dns.mu.Lock()
	defer d.dns.mu.Unlock()
	return d.dns.publicURL
}

// VerifyPrivateDNS looks for a service's verification record in the
// public DNS, over DNS, and records what it found: verified or failed.
func (d *Daemon) VerifyPrivateDNS(caller, serviceID string) (string, error) {
	svc, ok := d.current().ServiceByID(serviceID)
	if !ok || (caller != "" && svc.OwnerID != caller) {
		return "", &NotFoundError{"VpcEndpointServiceId", serviceID}
	}
	if svc.PrivateDNS == nil {
		return "", refuse("service %s has no private DNS name to verify", serviceID)
	}
	found := false
	if addr := d.PublicDNS(); addr != "" {
		for _, name := range svc.PrivateDNS.VerificationNames() {
			m, err := dns.Lookup(addr, name, dnsTypeTXT)
			if err == nil && slices.Contains(dns.TXT(m), svc.PrivateDNS.TXTValue) {
				found = true
				break
			}
		}
	}
	if _, err := d.mutate(func(s *State) error { return s.Verified(serviceID, found) }); err != nil {
		return "", err
	}
	state := DNSFailed
	if found {
		state = DNSVerified
	}
	d.log.Info("private DNS name verification", "service", serviceID, "name", svc.PrivateDNS.Name, "state", state)
	return state, nil
}

// Status is the fabric's status report (the API's view of what runs).
func (d *Daemon) Status() *Report { return d.report() }

// Change runs an operation on the model as one change (the API's writes).
func (d *Daemon) Change(op func(*State) error) (uint64, error) { return d.mutate(op) }

// listenAPI serves the API on the address the store remembers, or a new
// one it then remembers.
func (d *Daemon) listenAPI(o DaemonOptions) (net.Listener, error) {
	var remembered string
	d.st.View(func(tx store.ReadTx) error {
		if v, ok := tx.Get(keyHostAPI); ok {
			remembered = string(v)
		}
		return nil
	})
	addr := o.APIListen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if remembered != "" {
		if ln, err := net.Listen("tcp", remembered); err == nil {
			return ln, nil
		}
		d.log.Warn("the API's address is taken; serving it on a new one", "was", remembered)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("API listener on %s: %w", addr, err)
	}
	_, err = d.st.Update(func(tx store.Tx) error { return tx.Put(keyHostAPI, []byte(ln.Addr().String())) })
	if err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// SocketPath is where a fabric's ctld listens.
func SocketPath(fabric string) string { return filepath.Join(Dir(fabric), "ctld.sock") }

// RunDaemon runs ctld for a fabric until ctx ends or the fabric is taken
// down. At start it loads the model and reconciles the host with it: after
// a crash the namespaces and processes are still there and are adopted;
// after a reboot they are made again.
func RunDaemon(ctx context.Context, o DaemonOptions) error {
	if !nameRe.MatchString(o.Fabric) {
		return fmt.Errorf("%q is not a valid fabric name", o.Fabric)
	}
	for _, dir := range []string{Dir(o.Fabric), StoreDir(o.Fabric)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	st, err := store.OpenBolt(filepath.Join(StoreDir(o.Fabric), "state.db"), 2*time.Second)
	if err != nil {
		return err
	}
	defer st.Close()
	d := &Daemon{
		name: o.Fabric, log: o.Log, st: st, downReq: make(chan chan error),
		started: time.Now().UTC(), outboxWake: make(chan struct{}, 1), dns: &dnsServers{vpcs: map[string]*vpcResolver{}},
		r: &realizer{fabric: o.Fabric, dir: Dir(o.Fabric), exe: o.Exe, log: o.Log, st: st, restarts: map[string]int{}, queues: map[string]map[string]heldQueue{}, queueErrs: map[string]string{}, silent: map[string]time.Time{}},
	}
	err = st.View(func(tx store.ReadTx) error {
		m, ok, err := loadModel(tx)
		if !ok {
			m = &State{Name: o.Fabric}
		}
		d.model.Store(m)
		d.has.Store(ok)
		return err
	})
	if err != nil {
		return err
	}
	if d.has.Load() {
		// What every change keeps true of the model (each VPC has its
		// default security group) is made true of a model stored before
		// it was kept; a change that finds nothing to do commits nothing.
		if _, err := d.mutate(func(*State) error { return nil }); err != nil {
			o.Log.Warn("the stored model could not be brought up to date", "err", err)
		}
	}
	d.cw = newSampler(d.report, o.Log)

	sock := SocketPath(o.Fabric)
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("ctld socket %s: %w", sock, err)
	}
	os.Chmod(sock, 0o600)
	if o.API != nil {
		aln, err := d.listenAPI(o)
		if err != nil {
			return err
		}
		d.apiURL = "http://" + aln.Addr().String()
		d.api = o.API(d)
		// The fabric's scrape point beside the API: one address for
		// `aws --endpoint-url` and for Prometheus.
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", d.metricsHandler())
		mux.Handle("/", d.api)
		asrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go asrv.Serve(aln)
		defer asrv.Close()
		o.Log.Info("AWS-compatible API", "url", d.apiURL)
	}
	// The readers of the forwarders start once the daemon is set up (they
	// read its status, API address included).
	d.cw.sample(time.Now()) // the baseline: what ran before this ctld
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	go d.cw.run(stopSampling)
	go newFlowLogWriter(d.report, o.Log).run(stopSampling)

	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	o.Log.Info("ctld serving", "fabric", o.Fabric, "socket", sock, "version", d.current().Version, "store", filepath.Join(StoreDir(o.Fabric), "state.db"), "revision", o.Revision)

	// The realizer follows the store, not the API: every committed model
	// change (seen through the store's watch) starts a pass over the model
	// as the store holds it, and so does a timer, which is how a process
	// that died is noticed. With a shared store (etcd), a change made by
	// another ctld would start a pass the same way.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var startRev uint64
	st.View(func(tx store.ReadTx) error { startRev = tx.Rev(); return nil })
	changes := modelChanges(st.Watch(watchCtx, startRev))
	out := &deliverer{st: st, log: o.Log, model: d.current, client: &http.Client{Timeout: 5 * time.Second}}
	go out.run(watchCtx, d.outboxWake)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if !d.isGone() {
			m := d.storedModel()
			// DNS first: a change is reported as running (the pass's end)
			// only once the resolvers answer with it.
			// An AZ carries traffic if its forwarders answer and no
			// fault has taken it down.
			up := func(az string) bool { return d.r.azHealthy(az) && !m.IsAZDown(az) }
			if err := d.dns.update(ctx, m, up); err != nil {
				o.Log.Warn("DNS does not serve the model yet", "err", err)
			}
			d.r.reconcile(m)
			d.settle(m)
		}
		select {
		case <-ctx.Done():
			o.Log.Info("ctld stopping; the fabric keeps running")
			return nil
		case done := <-d.downReq:
			err := d.down()
			done <- err
			if err == nil {
				// Give the answer time to leave before the socket goes,
				// then remove the runtime folder (the socket, ctld's log
				// and pid file): `fabric down` removes it too once ctld
				// has exited, but a caller that went away meanwhile
				// (interrupted, timed out) would leave it behind.
				time.Sleep(100 * time.Millisecond)
				os.RemoveAll(Dir(d.name))
				return nil
			}
		case <-changes:
		case <-tick.C:
		}
	}
}

func (d *Daemon) current() *State { return d.model.Load() }

// settle moves the model on once the host runs its version: pending
// endpoints become available, deleting ones go, provisioning load balancers
// become active. It is a change like any other (committed, then realized).
func (d *Daemon) settle(m *State) {
	applied, ready, err := d.r.outcome()
	if err != nil || !ready || applied != m.Version || !m.Unsettled() {
		return
	}
	if v, err := d.mutate(func(s *State) error {
		if s.Version != m.Version {
			return refuse("the model moved on") // the next pass settles it
		}
		return s.Settle()
	}); err == nil {
		d.log.Info("settled", "version", v)
	}
}

func (d *Daemon) isGone() bool { return d.gone.Load() }

// storedModel reads the model from the store, as the realizer works from
// it; if the store cannot be read, the committed copy in memory (which is
// the same) serves.
func (d *Daemon) storedModel() *State {
	var m *State
	err := d.st.View(func(tx store.ReadTx) error {
		s, ok, err := loadModel(tx)
		if ok && err == nil {
			m = s
		}
		return err
	})
	if err != nil || m == nil {
		return d.current()
	}
	return m
}

// modelChanges turns the store's watch into a wake-up per change of the
// model (the realizer's own records under host/ wake nobody).
func modelChanges(w <-chan store.Change) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		for ch := range w {
			for _, k := range append(ch.Put, ch.Deleted...) {
				if !strings.HasPrefix(k, "host/") && !strings.HasPrefix(k, prefixOutbox) {
					select {
					case out <- struct{}{}:
					default:
					}
					break
				}
			}
		}
	}()
	return out
}

// down removes everything the fabric has on the host, then its store.
func (d *Daemon) down() error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.gone.Store(true)
	empty := &State{Name: d.name}
	d.model.Store(empty)
	d.dns.close(empty)
	if err := d.r.reconcile(empty); err != nil {
		return err
	}
	if err := d.st.Close(); err != nil {
		return err
	}
	os.RemoveAll(StoreDir(d.name))
	// The runtime folder goes last, as ctld exits (Run).
	return nil
}

// mutate is every change to the model: op changes a copy; the copy is
// checked by the forwarders that will serve it, committed, and only then
// becomes the model. A refusal at any step leaves the model as it was.
func (d *Daemon) mutate(op func(*State) error) (uint64, error) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	if d.gone.Load() {
		return 0, refuse("fabric %s is being taken down", d.name)
	}
	cur := d.current()
	next := cur.Clone()
	if err := op(next); err != nil {
		return 0, err
	}
	next.refreshPorts()
	next.ensureDefaultGroups()
	next.dropTagsOfGone()
	if d.has.Load() && sameModel(cur, next) {
		// Nothing changes (an apply of the same file, a retry whose
		// first answer was lost): no new version, nothing to push.
		return cur.Version, nil
	}
	next.Version = cur.Version + 1
	if err := d.checkForwarders(next); err != nil {
		return 0, err
	}
	events := ConnectionEvents(cur, next, time.Now())
	if _, err := d.st.Update(func(tx store.Tx) error {
		if err := saveModel(tx, next); err != nil {
			return err
		}
		return putEvents(tx, events, time.Now())
	}); err != nil {
		return 0, fmt.Errorf("commit version %d: %w", next.Version, err)
	}
	if len(events) > 0 {
		select {
		case d.outboxWake <- struct{}{}:
		default:
		}
	}
	d.model.Store(next)
	d.has.Store(true)
	d.logEndpointStates(cur, next)
	return next.Version, nil
}

// logEndpointStates logs each endpoint whose state a change moved.
func (d *Daemon) logEndpointStates(cur, next *State) {
	was := map[string]string{}
	for _, e := range cur.Endpoints {
		was[e.ID] = e.State
	}
	for _, e := range next.Endpoints {
		if from, ok := was[e.ID]; !ok || from != e.State {
			d.log.Info("endpoint state changed", "endpoint", e.ID, "service", e.ServiceID, "from", from, "to", e.State, "version", next.Version)
		}
		delete(was, e.ID)
	}
	for id, from := range was {
		d.log.Info("endpoint state changed", "endpoint", id, "from", from, "to", "deleted", "version", next.Version)
	}
}

// sameModel reports whether two models differ only in what a change does
// not decide (the version, the file a topology came from).
func sameModel(a, b *State) bool {
	x, y := *a, *b
	x.Version, y.Version, x.File, y.File = 0, 0, "", ""
	ja, _ := json.Marshal(&x)
	jb, _ := json.Marshal(&y)
	return string(ja) == string(jb)
}

// checkForwarders asks every running forwarder that keeps running under
// next whether it can serve its new snapshot.
func (d *Daemon) checkForwarders(next *State) error {
	for _, f := range desiredForwarders(next) {
		sock := d.r.procPath(forwarderKey(f.AZ, f.Worker, f.Workers), ".sock")
		if _, err := forwarderStatus(sock); err != nil {
			continue // not running: it will start with the snapshot
		}
		if err := pushSnapshot(sock, next.ForwarderConfig(f.AZ), true); err != nil {
			return &RefusedError{Msg: fmt.Sprintf("forwarder %s refused version %d: %v; the model is unchanged", f.Label(), next.Version, err)}
		}
	}
	return nil
}

// checkNamespacesFree refuses a model whose VPC would take a namespace
// that exists and is not this fabric's.
func (d *Daemon) checkNamespacesFree(next *State) error {
	ours, err := d.r.recordedNamespaces()
	if err != nil {
		return err
	}
	for _, v := range next.VPCs {
		if nsenter.Exists(v.Netns) && !slices.Contains(ours, v.Netns) {
			return refuse("network namespace %s already exists and is not part of a pvlink fabric: remove it (ip netns del %s) or rename VPC %s of fabric %s", v.Netns, v.Netns, v.Name, d.name)
		}
	}
	return nil
}

// RefusedError is a change a forwarder refused.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// Answer is what ctld answers a change: the model version it made.
type Answer struct {
	Version uint64 `json:"version"`
	Message string `json:"message,omitempty"`
}

// apiError is the body of every refusal.
// statusOf is the HTTP status ctld's control API answers a refused change
// with: a 4xx for everything the caller can mend (a client retries only
// what is not), a 500 only for ctld's own failures.
func statusOf(err error) int {
	var me *ModelError
	var te *TopologyError
	var re *RefusedError
	var ee *ExistsError
	var nf *NotFoundError
	var ue *UnauthorizedError
	var de *DependencyError
	var np *OperationNotPermittedError
	switch {
	case errors.As(err, &nf):
		return http.StatusNotFound
	case errors.As(err, &ue):
		return http.StatusForbidden
	case errors.As(err, &ee), errors.As(err, &de), errors.As(err, &np):
		return http.StatusConflict
	case errors.As(err, &me), errors.As(err, &te):
		return http.StatusBadRequest
	case errors.As(err, &re):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

type apiError struct {
	Error string `json:"error"`
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, err error) { reply(w, statusOf(err), apiError{Error: err.Error()}) }
	change := func(w http.ResponseWriter, op func(*State) error, msg string) {
		v, err := d.mutate(op)
		if err != nil {
			fail(w, err)
			return
		}
		d.log.Info("model changed", "version", v, "change", msg)
		reply(w, http.StatusOK, Answer{Version: v, Message: msg})
	}
	mux.Handle("GET /metrics", d.metricsHandler())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		if !d.exists() {
			reply(w, http.StatusNotFound, apiError{Error: "fabric " + d.name + " has no model yet"})
			return
		}
		reply(w, http.StatusOK, d.report())
	})
	// POST /apply?create=1: a topology (YAML) as the whole model; create
	// refuses a fabric that exists.
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			fail(w, err)
			return
		}
		file := r.URL.Query().Get("file")
		t, err := ParseTopology(file, data)
		if err != nil {
			fail(w, err)
			return
		}
		if t.Name != d.name {
			fail(w, refuse("the topology is fabric %s; this ctld runs fabric %s", t.Name, d.name))
			return
		}
		create := r.URL.Query().Get("create") == "1"
		change(w, func(s *State) error {
			if create && d.has.Load() {
				return &ExistsError{Fabric: d.name}
			}
			if err := s.ApplyTopology(t, file); err != nil {
				return err
			}
			return d.checkNamespacesFree(s)
		}, "apply "+file)
	})
	mux.HandleFunc("POST /endpoints/{id}/{verb}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch verb := r.PathValue("verb"); verb {
		case "accept":
			change(w, func(s *State) error { return s.AcceptEndpoint(id) }, "accept "+id)
		case "reject":
			change(w, func(s *State) error { return s.RejectEndpoint(id) }, "reject "+id)
		case "delete":
			change(w, func(s *State) error { return s.DeleteEndpoint(id) }, "delete "+id)
		default:
			reply(w, http.StatusNotFound, apiError{Error: "no endpoint verb " + verb + " (accept, reject, delete)"})
		}
	})
	mux.HandleFunc("POST /faults/{kind}/{az}", func(w http.ResponseWriter, r *http.Request) {
		az := r.PathValue("az")
		switch kind := r.PathValue("kind"); kind {
		case "az-down":
			change(w, func(s *State) error { return s.AZDown(az, time.Now()) }, "fault: AZ "+az+" down")
		case "az-up":
			change(w, func(s *State) error { return s.AZUp(az) }, "fault lifted: AZ "+az+" up")
		case "region-down":
			change(w, func(s *State) error { return s.RegionDown(az, time.Now()) }, "fault: Region "+az+" down")
		case "region-up":
			change(w, func(s *State) error { return s.RegionUp(az) }, "fault lifted: Region "+az+" up")
		default:
			reply(w, http.StatusNotFound, apiError{Error: "no fault " + kind + " (az-down, az-up, region-down, region-up)"})
		}
	})
	mux.HandleFunc("POST /targets/{verb}", func(w http.ResponseWriter, r *http.Request) {
		group := r.URL.Query().Get("target_group")
		addr, err := netip.ParseAddrPort(r.URL.Query().Get("target"))
		if err != nil {
			if a, aerr := netip.ParseAddr(r.URL.Query().Get("target")); aerr == nil {
				addr, err = netip.AddrPortFrom(a, 0), nil
			}
		}
		if err != nil {
			fail(w, refuse("target %q: want IP or IP:PORT", r.URL.Query().Get("target")))
			return
		}
		external, _ := strconv.ParseBool(r.URL.Query().Get("external"))
		switch verb := r.PathValue("verb"); verb {
		case "register":
			change(w, func(s *State) error { return s.RegisterTarget(group, addr, external) }, "register "+addr.String()+" in "+group)
		case "deregister":
			change(w, func(s *State) error { return s.DeregisterTarget(group, addr, time.Now()) }, "deregister "+addr.String()+" from "+group)
		default:
			reply(w, http.StatusNotFound, apiError{Error: "no target verb " + verb + " (register, deregister)"})
		}
	})
	// GET /wait?version=N&timeout=D: until the host runs version N (every
	// forwarder applied it, every target server listens).
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		want, _ := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
		timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil || timeout <= 0 {
			timeout = 30 * time.Second
		}
		deadline := time.Now().Add(timeout)
		for {
			applied, ready, rerr := d.r.outcome()
			// Done when the host runs version want or later and the
			// model has settled on it (pending endpoints available).
			if m := d.current(); applied >= want && applied == m.Version && !m.Unsettled() && ready && rerr == nil {
				reply(w, http.StatusOK, Answer{Version: applied})
				return
			}
			if time.Now().After(deadline) {
				msg := fmt.Sprintf("version %d is not running everywhere after %s", want, timeout)
				if rerr != nil {
					msg += ": " + rerr.Error()
				}
				reply(w, http.StatusGatewayTimeout, apiError{Error: msg})
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	// POST /services/{id}/verify-dns: check the private DNS name's record.
	mux.HandleFunc("POST /services/{id}/verify-dns", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if svc, err := d.current().serviceRef(id); err == nil {
			id = svc.ID
		}
		state, err := d.VerifyPrivateDNS("", id)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, Answer{Version: d.current().Version, Message: "private DNS name " + state})
	})
	// POST /dns/records?account=&zone=&name=&type=&value=: a record of the
	// public DNS (an empty value deletes it).
	mux.HandleFunc("POST /dns/records", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		rec := PublicRecord{Name: q.Get("name"), Type: q.Get("type"), Value: q.Get("value")}
		change(w, func(s *State) error {
			acct := q.Get("account")
			for _, a := range s.Accounts {
				if a.Name == acct {
					acct = a.ID
				}
			}
			return s.SetPublicRecord(acct, q.Get("zone"), rec)
		}, "public DNS record "+rec.Name+" "+rec.Type)
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		done := make(chan error, 1)
		d.downReq <- done
		if err := <-done; err != nil {
			fail(w, fmt.Errorf("fabric %s: %w", d.name, err))
			return
		}
		reply(w, http.StatusOK, Answer{Message: "fabric " + d.name + " is down"})
	})
	return mux
}

func (d *Daemon) exists() bool { return d.has.Load() }

// ExistsError refuses to create a fabric that exists.
type ExistsError struct{ Fabric string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("fabric %s is already up (see `pvlink fabric status %s`; `pvlink fabric apply -f FILE` changes it, `pvlink fabric down %s` removes it)", e.Fabric, e.Fabric, e.Fabric)
}
