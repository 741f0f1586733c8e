// Package peer holds the two ends pvlink's demos, tests and benchmarks put
// on either side of the fabric: Target, a TCP server that reports what it
// saw of each connection and echoes, and Client, which sends a known stream
// and verifies the echo byte for byte.
package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"pvlink.dev/pvlink/proxyproto"
)

// Seen is what a target reports for one connection: one JSON line, written
// to the target's log and, first thing, to the connection itself.
type Seen struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target,omitempty"`
	AZ     string    `json:"az,omitempty"`
	// Peer is the source address the target accepted from: through pvlink,
	// the load-balancer node of the AZ, never the consumer.
	Peer  string `json:"peer"`
	Local string `json:"local"`
	// Proxy is the decoded proxy protocol header (with --proxy-protocol):
	// the consumer and the endpoint behind the load-balancer node.
	Proxy      *ProxySeen `json:"proxy,omitempty"`
	ProxyError string     `json:"proxy_error,omitempty"`
}

// ProxySeen is a proxy protocol v2 header as a target reports it.
type ProxySeen struct {
	Command     string `json:"command"` // PROXY or LOCAL
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination,omitempty"`
	VPCEndpoint string `json:"vpce_id,omitempty"`
	CRC         bool   `json:"crc"`    // a CRC32C TLV was present
	CRCOK       bool   `json:"crc_ok"` // and it matched
	Length      int    `json:"length"`
}

// Target is a TCP server for demos and tests.
type Target struct {
	Name string // shown in Seen.Target
	AZ   string
	Log  io.Writer // one JSON line per connection; may be nil
	// ProxyProtocol makes the target read a PROXY protocol v2 header
	// before anything else on each connection.
	ProxyProtocol bool

	logMu sync.Mutex
}

// Serve accepts until ln is closed.
func (t *Target) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of file descriptors or memory: wait and go on, as
			// net/http does, rather than stop serving.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				if t.Log != nil {
					fmt.Fprintf(os.Stderr, "pvlink target: accept: %v; retrying\n", err)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		go t.handle(c)
	}
}

// An echoing connection reads into a small buffer until a read fills it,
// then into a large one, so idle and chatty connections stay small and a
// bulk transfer takes few system calls.
const (
	echoSmall = 16 << 10
	echoLarge = 256 << 10
)

func (t *Target) handle(c net.Conn) {
	defer c.Close()
	seen := Seen{Time: time.Now().UTC(), Target: t.Name, AZ: t.AZ, Peer: c.RemoteAddr().String(), Local: c.LocalAddr().String()}
	var perr error
	if t.ProxyProtocol {
		var h proxyproto.Header
		h, perr = proxyproto.Decoder{}.Read(c)
		if perr != nil {
			seen.ProxyError = perr.Error()
		} else {
			seen.Proxy = &ProxySeen{Command: "PROXY", VPCEndpoint: h.VPCEndpointID, CRC: h.HasCRC, CRCOK: h.CRCOK, Length: h.Length}
			if h.Command == proxyproto.Local {
				seen.Proxy.Command = "LOCAL"
			} else {
				seen.Proxy.Source, seen.Proxy.Destination = h.Source.String(), h.Destination.String()
			}
		}
	}
	line, _ := json.Marshal(seen)
	line = append(line, '\n')
	if t.Log != nil {
		t.logMu.Lock()
		t.Log.Write(line)
		t.logMu.Unlock()
	}
	if _, err := c.Write(line); err != nil || perr != nil {
		return
	}
	// Echo until the client half-closes, then half-close back. A plain
	// loop, not io.Copy: TCP to TCP, io.Copy splices through a pipe that
	// it holds while waiting, two more descriptors per idle connection.
	buf := make([]byte, echoSmall)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if n == len(buf) && len(buf) < echoLarge {
				// A bulk sender: fewer, larger reads and writes.
				buf = make([]byte, echoLarge)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
