package peer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
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
	SentSHA string          `json:"sent_sha256"`
	EchoSHA string          `json:"echo_sha256"`
	Intact  bool            `json:"intact"`
	Seconds float64         `json:"seconds"`
	Gbps    float64         `json:"gbps"`
}

// Client sends Bytes bytes of a seeded pseudo-random stream (or Message, when
// Bytes is 0) to a target, half-closes, and checks that the echo it reads
// back is the same stream.
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

	var src io.Reader
	if c.Bytes > 0 {
		src = io.LimitReader(newStream(uint64(c.Bytes)), c.Bytes)
	} else {
		msg := c.Message
		if msg == "" {
			msg = "hello from " + res.Local + "\n"
		}
		src = strings.NewReader(msg)
	}
	sentHash := sha256.New()
	type sendResult struct {
		n   int64
		err error
	}
	sent := make(chan sendResult, 1)
	go func() {
		n, err := io.CopyBuffer(conn, io.TeeReader(src, sentHash), make([]byte, 256<<10))
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
	echoHash := sha256.New()
	res.Echoed, err = io.CopyBuffer(echoHash, br, make([]byte, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("read echo after %d bytes: %w", res.Echoed, err)
	}
	s := <-sent
	if s.err != nil {
		return nil, fmt.Errorf("send after %d bytes: %w", s.n, s.err)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Sent = s.n
	res.SentSHA = hex.EncodeToString(sentHash.Sum(nil))
	res.EchoSHA = hex.EncodeToString(echoHash.Sum(nil))
	res.Intact = res.Sent == res.Echoed && res.SentSHA == res.EchoSHA
	if res.Seconds > 0 {
		res.Gbps = float64(res.Sent+res.Echoed) * 8 / res.Seconds / 1e9
	}
	return res, nil
}

// stream is an endless seeded pseudo-random byte stream, cheap enough not to
// be what a transfer measures.
type stream struct{ r *rand.ChaCha8 }

func newStream(seed uint64) *stream {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &stream{rand.NewChaCha8(s)}
}

func (s *stream) Read(p []byte) (int, error) { return s.r.Read(p) }
