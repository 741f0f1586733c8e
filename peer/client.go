package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"time"
)

// Result is what Client reports for one connection.
type Result struct {
	Local   string          `json:"local"`
	Remote  string          `json:"remote"`
	Target  json.RawMessage `json:"target"` // the target's Seen line
	Sent    int64           `json:"sent_bytes"`
	Echoed  int64           `json:"echoed_bytes"`
	SentCRC uint32          `json:"sent_crc32c"`
	EchoCRC uint32          `json:"echo_crc32c"`
	// FirstDifference is the offset of the first echoed byte that differs
	// from what was sent (or where the echo ended short), -1 if none.
	FirstDifference int64   `json:"first_difference"`
	Intact          bool    `json:"intact"`
	Seconds         float64 `json:"seconds"`
	Gbps            float64 `json:"gbps"`
}

// Client sends Bytes bytes of a seeded pseudo-random stream (or Message, when
// Bytes is 0) to a target, half-closes, and checks that the echo it reads
// back is the same stream, byte for byte: it makes the stream a second
// time and compares. Both ways are summed with CRC-32C for the report.
// (Hashing both ways with SHA-256 took a core of the client's at 2 GB/s
// each, so a large echo measured the client rather than the fabric.)
type Client struct {
	Addr    string
	Message string
	Bytes   int64
	Timeout time.Duration
	Dial    func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Run makes one connection.
func (c *Client) Run(ctx context.Context) (*Result, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", c.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	res := &Result{Local: conn.LocalAddr().String(), Remote: conn.RemoteAddr().String()}
	start := time.Now()

	var src, want io.Reader
	if c.Bytes > 0 {
		src = io.LimitReader(newStream(uint64(c.Bytes)), c.Bytes)
		want = newStream(uint64(c.Bytes))
	} else {
		msg := c.Message
		if msg == "" {
			msg = "hello from " + res.Local + "\n"
		}
		src, want = strings.NewReader(msg), strings.NewReader(msg)
	}
	sentSum := crc32.New(castagnoli)
	type sendResult struct {
		n   int64
		err error
	}
	sent := make(chan sendResult, 1)
	go func() {
		n, err := io.CopyBuffer(conn, io.TeeReader(src, sentSum), make([]byte, 256<<10))
		if err == nil {
			err = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		sent <- sendResult{n, err}
	}()

	br := bufio.NewReaderSize(conn, 256<<10)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("read the target's report: %w", err)
	}
	res.Target = json.RawMessage(line[:len(line)-1])
	check := &echoCheck{want: want, sum: crc32.New(castagnoli), first: -1}
	res.Echoed, err = io.CopyBuffer(check, br, make([]byte, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("read echo after %d bytes: %w", res.Echoed, err)
	}
	s := <-sent
	if s.err != nil {
		return nil, fmt.Errorf("send after %d bytes: %w", s.n, s.err)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Sent = s.n
	res.SentCRC, res.EchoCRC = sentSum.Sum32(), check.sum.Sum32()
	res.FirstDifference = check.first
	if res.FirstDifference < 0 && res.Echoed < res.Sent {
		res.FirstDifference = res.Echoed
	}
	res.Intact = res.Sent == res.Echoed && res.FirstDifference < 0
	if res.Seconds > 0 {
		res.Gbps = float64(res.Sent+res.Echoed) * 8 / res.Seconds / 1e9
	}
	return res, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// echoCheck compares the echo with the stream it should be as it arrives.
type echoCheck struct {
	want    io.Reader // the same stream, made again
	scratch []byte
	sum     hash.Hash32
	off     int64
	first   int64 // offset of the first difference, -1 if none
}

func (e *echoCheck) Write(p []byte) (int, error) {
	e.sum.Write(p)
	if e.first < 0 {
		if cap(e.scratch) < len(p) {
			e.scratch = make([]byte, len(p))
		}
		w := e.scratch[:len(p)]
		n, _ := io.ReadFull(e.want, w)
		if !bytes.Equal(p[:n], w[:n]) || n < len(p) {
			i := 0
			for i < n && p[i] == w[i] {
				i++
			}
			e.first = e.off + int64(i)
		}
	}
	e.off += int64(len(p))
	return len(p), nil
}
