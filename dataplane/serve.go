package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is what a running forwarder tells the world about itself, written
// atomically to its status file once it carries traffic.
type Status struct {
	PID           int       `json:"pid"`
	AZ            string    `json:"az"`
	Metrics       string    `json:"metrics"`
	ConfigVersion uint64    `json:"config_version"`
	Started       time.Time `json:"started"`
}

// ServeOptions are the process-level settings of `pvlink forwarder`.
type ServeOptions struct {
	ConfigPath    string
	MetricsListen string // loopback address; port 0 picks a free one
	StatusPath    string // written once ready; removed on exit
	Log           *slog.Logger
}

// Serve runs a forwarder process: load the snapshot, open the TUNs, serve
// metrics, announce readiness, reload on SIGHUP, stop on SIGINT/SIGTERM.
func Serve(ctx context.Context, o ServeOptions) error {
	cfg, err := LoadConfig(o.ConfigPath)
	if err != nil {
		return err
	}
	f, err := New(cfg, o.Log)
	if err != nil {
		return err
	}
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
	serveJSON("/counters", func() any { return f.Counters() })
	serveJSON("/flows", func() any { return f.Flows() })
	serveJSON("/targets", func() any { return f.Targets() })
	serveJSON("/stats", func() any { return f.Stats() })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			next, err := LoadConfig(o.ConfigPath)
			if err == nil {
				err = f.Apply(next)
			}
			if err != nil {
				o.Log.Error("reload refused; the previous snapshot stays in force", "err", err)
				continue
			}
			o.Log.Info("reloaded", "version", next.Version)
			writeStatus(o.StatusPath, f, ln.Addr().String())
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	if err := writeStatus(o.StatusPath, f, ln.Addr().String()); err != nil {
		stop()
		<-errc
		return err
	}
	defer os.Remove(o.StatusPath)
	o.Log.Info("forwarding", "az", f.az, "enis", len(f.enis), "metrics", ln.Addr().String(), "version", f.Version())
	return <-errc
}

func writeStatus(path string, f *Forwarder, metrics string) error {
	if path == "" {
		return nil
	}
	st := Status{PID: os.Getpid(), AZ: f.az, Metrics: metrics, ConfigVersion: f.Version(), Started: time.Now().UTC()}
	return WriteJSONFile(path, st)
}

// WriteJSONFile writes v as JSON to path atomically (write then rename), so
// a reader never sees half a file.
func WriteJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
