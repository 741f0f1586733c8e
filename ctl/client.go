package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Client talks to a fabric's ctld: the CLI, bench and the tests are all
// clients; none of them changes the fabric any other way.
type Client struct {
	Fabric string
	hc     *http.Client
}

// Connect returns a client of the fabric's ctld; it does not check that
// ctld runs.
func Connect(fabric string) *Client {
	return &Client{Fabric: fabric, hc: unixClient(SocketPath(fabric), 0)}
}

// ErrNoDaemon says that no ctld answers for the fabric.
var ErrNoDaemon = errors.New("ctld is not running")

// APIError is a refusal from ctld, with its HTTP status.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

func (c *Client) do(method, path string, body io.Reader, timeout time.Duration, out any) error {
	req, err := http.NewRequest(method, "http://ctld"+path, body)
	if err != nil {
		return err
	}
	hc := *c.hc
	hc.Timeout = timeout
	resp, err := hc.Do(req)
	if err != nil {
		if _, serr := os.Stat(SocketPath(c.Fabric)); serr != nil {
			return fmt.Errorf("fabric %s: %w", c.Fabric, ErrNoDaemon)
		}
		return fmt.Errorf("fabric %s: ctld: %w", c.Fabric, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e apiError
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("ctld answered %s", resp.Status)
		}
		return &APIError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Running reports whether ctld answers.
func (c *Client) Running() bool {
	err := c.do(http.MethodGet, "/status", nil, 2*time.Second, nil)
	var ae *APIError
	return err == nil || errors.As(err, &ae)
}

// EnsureDaemon starts the fabric's ctld unless it runs, and waits for it to
// answer. started says whether it had to.
func EnsureDaemon(fabric, exe string) (c *Client, started bool, err error) {
	c = Connect(fabric)
	if c.Running() {
		return c, false, nil
	}
	_, existed := os.Stat(Dir(fabric))
	if err := os.MkdirAll(Dir(fabric), 0o755); err != nil {
		return nil, false, err
	}
	// A ctld that cannot start leaves no folder it made.
	cleanup := func() {
		if existed != nil {
			os.RemoveAll(Dir(fabric))
		}
	}
	log := filepath.Join(Dir(fabric), "ctld.log")
	p, err := startProcess(exe, []string{"ctld", "--fabric", fabric}, filepath.Join(Dir(fabric), "ctld.pid"), log)
	if err != nil {
		return nil, false, fmt.Errorf("start ctld for fabric %s: %w", fabric, err)
	}
	start := time.Now()
	for !c.Running() {
		if time.Since(start) > 200*time.Millisecond && !p.Alive() {
			err := fmt.Errorf("ctld for fabric %s exited at start:\n%s", fabric, LogTail(log, 5))
			cleanup()
			return nil, false, err
		}
		if time.Since(start) > readyTimeout {
			p.stop(time.Second)
			err := fmt.Errorf("ctld for fabric %s does not answer after %s:\n%s", fabric, readyTimeout, LogTail(log, 5))
			cleanup()
			return nil, false, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, true, nil
}

// DaemonProcess is the fabric's ctld process, if it runs.
func DaemonProcess(fabric string) *Process {
	return findProcess(filepath.Join(Dir(fabric), "ctld.pid"), filepath.Join(Dir(fabric), "ctld.log"))
}

// Status is `fabric status`.
func (c *Client) Status() (*Report, error) {
	var r Report
	return &r, c.do(http.MethodGet, "/status", nil, 10*time.Second, &r)
}

// Apply hands ctld a topology; create refuses a fabric that exists.
func (c *Client) Apply(topology []byte, file string, create bool) (Answer, error) {
	q := url.Values{"file": {file}}
	if create {
		q.Set("create", "1")
	}
	var a Answer
	return a, c.do(http.MethodPost, "/apply?"+q.Encode(), bytes.NewReader(topology), 60*time.Second, &a)
}

// Endpoint runs a lifecycle verb (accept, reject, delete) on an endpoint.
func (c *Client) Endpoint(verb, id string) (Answer, error) {
	var a Answer
	return a, c.do(http.MethodPost, "/endpoints/"+url.PathEscape(id)+"/"+verb, nil, 60*time.Second, &a)
}

// Target registers or deregisters a target (IP or IP:PORT) in a group.
func (c *Client) Target(verb, group, target string, external bool) (Answer, error) {
	q := url.Values{"target_group": {group}, "target": {target}, "external": {strconv.FormatBool(external)}}
	var a Answer
	return a, c.do(http.MethodPost, "/targets/"+verb+"?"+q.Encode(), nil, 60*time.Second, &a)
}

// Fault starts (az-down) or ends (az-up) an AZ's outage.
func (c *Client) Fault(kind, az string) (Answer, error) {
	var a Answer
	return a, c.do(http.MethodPost, "/faults/"+url.PathEscape(kind)+"/"+url.PathEscape(az), nil, 60*time.Second, &a)
}

// Wait returns once the host runs version v, or with why not.
func (c *Client) Wait(v uint64, timeout time.Duration) error {
	q := url.Values{"version": {strconv.FormatUint(v, 10)}, "timeout": {timeout.String()}}
	return c.do(http.MethodGet, "/wait?"+q.Encode(), nil, timeout+5*time.Second, nil)
}

// Down removes the fabric: ctld stops every process, removes every
// namespace and its store, and exits; then its runtime folder goes.
func (c *Client) Down() error {
	if err := c.do(http.MethodPost, "/down", nil, 2*time.Minute, nil); err != nil {
		return err
	}
	p := DaemonProcess(c.Fabric)
	for i := 0; i < 300 && p.Alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Alive() {
		return fmt.Errorf("ctld of fabric %s (pid %d) did not exit after down", c.Fabric, p.PID)
	}
	return os.RemoveAll(Dir(c.Fabric))
}

// Fabrics lists the fabrics on this machine: those with a store, and those
// with a runtime folder (a store removed by hand, a ctld that never got to
// write one).
func Fabrics() []string {
	seen := map[string]bool{}
	for _, dir := range []string{DataDir, RunDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && nameRe.MatchString(e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SetPublicRecord sets (or with value "" deletes) a record of the fabric's
// public DNS, in a zone of the account's (by name or id).
func (c *Client) SetPublicRecord(account, zone, name, typ, value string) (Answer, error) {
	q := url.Values{"account": {account}, "zone": {zone}, "name": {name}, "type": {typ}, "value": {value}}
	var a Answer
	return a, c.do(http.MethodPost, "/dns/records?"+q.Encode(), nil, 30*time.Second, &a)
}

// VerifyPrivateDNS checks a service's private DNS name (by service id or
// name) against the public DNS.
func (c *Client) VerifyPrivateDNS(service string) (Answer, error) {
	var a Answer
	return a, c.do(http.MethodPost, "/services/"+url.PathEscape(service)+"/verify-dns", nil, 30*time.Second, &a)
}
