package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeOptions are the process-level settings of `pvlink forwarder`.
type ServeOptions struct {
	ConfigPath    string // the first snapshot
	ControlPath   string // unix socket: snapshots in, status out
	MetricsListen string // loopback address; port 0 picks a free one
	Log           *slog.Logger
	// Revision is the code the binary was built from, for the log.
	Revision string
	// Queues are TUN queues to take instead of opening new ones, by TUN
	// name: the ones the process before this one had (--tun-queue).
	Queues InheritedQueues
}

// Serve runs a forwarder process: load the first snapshot, open the TUNs,
// serve metrics, then take snapshots over the control socket until
// SIGINT/SIGTERM. The control socket answers once traffic can flow.
func Serve(ctx context.Context, o ServeOptions) error {
	cfg, err := LoadConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	f, err := New(cfg, o.Log, o.Queues)
	if err != nil {
		return err
	}
	// The process is the forwarder: the runtime collects harder as the
	// memory budget nears rather than let garbage double the heap
	// (budget.go). An explicit GOMEMLIMIT wins.
	f.manageMemoryLimit(os.Getenv("GOMEMLIMIT") == "")
	ln, err := net.Listen("tcp", o.MetricsListen)
	if err != nil {
		f.Close()
		return fmt.Errorf("metrics listener on %s: %w", o.MetricsListen, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	serveJSON := func(path string, v func() any) {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v())
		})
	}
	// Profiles, on the same loopback listener: `go tool pprof
	// http://ADDR/debug/pprof/profile` is how the forwarder is tuned.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /capture", f.serveCapture)
	mux.HandleFunc("GET /flowlogs", f.serveFlowLogs)
	serveJSON("/counters", func() any { return f.Counters() })
	serveJSON("/flows", func() any { return f.Flows() })
	serveJSON("/targets", func() any { return f.Targets() })
	serveJSON("/stats", func() any { return f.Stats() })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()

	started := time.Now().UTC()
	status := func() Status {
		return Status{PID: os.Getpid(), AZ: f.az, Metrics: ln.Addr().String(), ConfigVersion: f.Version(), Started: started, TUNQueues: f.TUNQueues()}
	}
	ctrl, err := listenControl(o.ControlPath, f, status, o.Log)
	if err != nil {
		stop()
		<-errc
		return err
	}
	defer ctrl.Close()
	o.Log.Info("forwarding", "az", f.az, "enis", len(f.eniList()), "metrics", ln.Addr().String(), "version", f.Version(), "revision", o.Revision)
	return <-errc
}

// listenControl serves the control channel on a unix socket: GET /status,
// and PUT /config with a snapshot (?check=1 only checks it). A snapshot
// refused is answered 422 with the reason; the one in force stays.
func listenControl(path string, f *Forwarder, status func() Status, log *slog.Logger) (io.Closer, error) {
	os.Remove(path) // a socket left by a forwarder that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, status()) })
	mux.HandleFunc("PUT /config", func(w http.ResponseWriter, r *http.Request) {
		var cfg Config
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&cfg); err != nil {
			reply(w, http.StatusBadRequest, ApplyResult{Version: f.Version(), Error: "snapshot is not valid JSON: " + err.Error()})
			return
		}
		check := r.URL.Query().Get("check") == "1"
		var err error
		if check {
			err = f.Check(&cfg)
		} else {
			err = f.Apply(&cfg)
		}
		if err != nil {
			if !check {
				log.Error("snapshot refused; the previous one stays in force", "version", cfg.Version, "err", err)
			}
			reply(w, http.StatusUnprocessableEntity, ApplyResult{Version: f.Version(), Error: err.Error()})
			return
		}
		if !check {
			log.Info("snapshot applied", "version", cfg.Version, "enis", len(cfg.ENIs))
		}
		reply(w, http.StatusOK, ApplyResult{Version: f.Version()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return closer(func() error { err := srv.Close(); os.Remove(path); return err }), nil
}

type closer func() error

func (c closer) Close() error { return c() }
