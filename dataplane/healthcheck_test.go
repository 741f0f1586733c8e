package dataplane

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// An HTTP or HTTPS health check asks for its path and passes on a status
// its matcher names, as an NLB's does.
func TestAnHTTPHealthCheckPassesOnTheMatchersCodes(t *testing.T) {
	var status atomic.Int32
	var path, agent atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		agent.Store(r.UserAgent())
		w.WriteHeader(int(status.Load()))
	})
	for _, srv := range []*httptest.Server{httptest.NewServer(h), httptest.NewTLSServer(h)} {
		defer srv.Close()
		proto := snapshot.CheckHTTP
		if srv.TLS != nil {
			proto = snapshot.CheckHTTPS
		}
		addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
		check := func(matcher string, code int) error {
			status.Store(int32(code))
			conn, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return httpCheck(ctx, conn, addr, snapshot.HealthCheck{Protocol: proto, Path: "/healthz", Matcher: matcher})
		}
		for _, tc := range []struct {
			matcher string
			code    int
			pass    bool
		}{
			{"", 200, true}, {"", 302, true}, {"", 404, false}, {"", 503, false},
			{"200", 204, false}, {"200,204", 204, true}, {"500-599", 503, true},
		} {
			if err := check(tc.matcher, tc.code); (err == nil) != tc.pass {
				t.Errorf("%s, matcher %q, status %d: %v, want pass %v", proto, tc.matcher, tc.code, err, tc.pass)
			}
		}
		if p, _ := path.Load().(string); p != "/healthz" {
			t.Errorf("%s check asked for %q", proto, p)
		}
		if a, _ := agent.Load().(string); a != "ELB-HealthChecker/2.0" {
			t.Errorf("%s check's user agent %q", proto, a)
		}
	}
}
