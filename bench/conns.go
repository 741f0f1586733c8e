package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pvlink.dev/pvlink/ctl"
)

// ConnsResult is what `pvlink bench conns` measured.
type ConnsResult struct {
	Requested    int     `json:"requested"`
	Established  int     `json:"established"`
	Failed       int     `json:"failed"`
	FirstError   string  `json:"first_error,omitempty"`
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSAfter     int64   `json:"rss_after_bytes"`
	PerConn      float64 `json:"rss_per_connection_bytes"`
	Seconds      float64 `json:"seconds_to_open"`
	FDLimit      uint64  `json:"fd_limit"`
	ForwarderPID int     `json:"forwarder_pid"`
}

// FDLimit is this process's open-file limit (soft, as Go raised it, and
// hard). A forwarder needs one descriptor per provider-side connection.
func FDLimit() (soft, hard uint64) {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur, l.Max
}

// Conns opens count idle connections through one forwarder (each with its
// proxy header, then silent) and reports the forwarder's RSS per
// connection. Everything it made is removed before it returns.
func Conns(ctx context.Context, exe string, count int, log io.Writer) (*ConnsResult, error) {
	_, hard := FDLimit()
	// The forwarder holds a socket per connection, the servers and this
	// client one each; all three live under the same hard limit.
	if uint64(count)+512 > hard {
		return nil, fmt.Errorf("%d connections need %d open files in the forwarder, and this machine's hard RLIMIT_NOFILE is %d (raise it: ulimit -Hn, or LimitNOFILE= in systemd); at most %d here",
			count, count+512, hard, hard-512)
	}
	prefix := fmt.Sprintf("pvc%d", syscall.Getpid()%100000)
	// The target is a `pvlink target` process of the fabric's, so that this
	// process holds only the client side of the connections.
	topo := strings.Replace(fabricTopology, "port: 9100, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [{ip: 198.19.1.10, external: true}]",
		"port: 9100, proxy_protocol_v2: true, health_check: {enabled: false}, targets: [{ip: 198.19.1.10}]", 1)
	s, err := upFabric(exe, prefix, topo)
	if err != nil {
		return nil, err
	}
	defer ctl.Down(s)
	eni := s.Endpoints[0].ENIs[0]
	dial := DialFrom(eni.Netns)
	addr := net.JoinHostPort(eni.IP, "80")
	pid := s.Forwarders[0].Process.PID

	// Warm the forwarder up so its baseline includes the runtime's steady
	// state, not start-up.
	for i := 0; i < 100; i++ {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		c.Write([]byte{0})
		c.Close()
	}
	time.Sleep(500 * time.Millisecond)
	res := &ConnsResult{Requested: count, RSSBefore: rssBytes(pid), FDLimit: hard, ForwarderPID: pid}
	conns := make([]net.Conn, count)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				c, err := dial(ctx, addr)
				if err == nil {
					// One byte brings the proxy header out (the default
					// placement), then the connection idles.
					_, err = c.Write([]byte{0})
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if c != nil {
						c.Close()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if failed.Load() > 0 && log != nil {
		// Say why, from the forwarder's own counters and log.
		if st, err := ctl.ForwarderStatus(s.Forwarders[0]); err == nil {
			if resp, err := http.Get("http://" + st.Metrics + "/stats"); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Fprintf(log, "forwarder stats: %s", b)
			}
		}
		for _, tg := range s.Targets {
			if tg.Process != nil {
				fmt.Fprintf(log, "target %s:%d alive: %v\n", tg.IP, tg.Port, tg.Process.Alive())
			}
		}
		if b, err := os.ReadFile(s.Forwarders[0].Process.Log); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			fmt.Fprintf(log, "forwarder log (last lines):\n%s\n", strings.Join(lines[max(0, len(lines)-5):], "\n"))
		}
	}
	res.Failed = int(failed.Load())
	res.Established = count - res.Failed
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	time.Sleep(time.Second) // let the forwarder settle
	res.RSSAfter = rssBytes(pid)
	if res.Established > 0 {
		res.PerConn = float64(res.RSSAfter-res.RSSBefore) / float64(res.Established)
	}
	if log != nil {
		fmt.Fprintf(log, "%d of %d connections open through forwarder pid %d in %.1fs; RSS %d MiB -> %d MiB (%.1f KiB per connection)\n",
			res.Established, count, pid, res.Seconds, res.RSSBefore>>20, res.RSSAfter>>20, res.PerConn/1024)
	}
	return res, nil
}
