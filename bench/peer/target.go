// Package peer holds the two ends pvlink's demos, tests and benchmarks put
// on either side of the fabric: Target, a TCP server that reports what it
// saw of each connection and echoes, and Client, which sends a known stream
// and verifies the echo byte for byte.
package peer

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"time"
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
}

// Target is a TCP server for demos and tests.
type Target struct {
	Name string // shown in Seen.Target
	AZ   string
	Log  io.Writer // one JSON line per connection; may be nil

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
			return err
		}
		go t.handle(c)
	}
}

func (t *Target) handle(c net.Conn) {
	defer c.Close()
	seen := Seen{Time: time.Now().UTC(), Target: t.Name, AZ: t.AZ, Peer: c.RemoteAddr().String(), Local: c.LocalAddr().String()}
	line, _ := json.Marshal(seen)
	line = append(line, '\n')
	if t.Log != nil {
		t.logMu.Lock()
		t.Log.Write(line)
		t.logMu.Unlock()
	}
	if _, err := c.Write(line); err != nil {
		return
	}
	// Echo until the client half-closes, then half-close back.
	br := bufio.NewReaderSize(c, 64<<10)
	if _, err := io.Copy(c, br); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
