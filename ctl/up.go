package ctl

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Up brings a fabric up through its ctld, as `fabric up` does: start ctld
// unless it runs, hand it the topology as a new fabric, and wait until the
// host runs it (every forwarder applied it, every target server listens).
func Up(exe string, topology []byte, file string) (*Client, *Report, error) {
	if err := Preflight(); err != nil {
		return nil, nil, err
	}
	t, err := ParseTopology(file, topology)
	if err != nil {
		return nil, nil, err // refused before anything, ctld included, is made
	}
	c, started, err := EnsureDaemon(t.Name, exe)
	if err != nil {
		return nil, nil, err
	}
	a, err := c.Apply(topology, file, true)
	if err != nil {
		var ae *APIError
		if started && !(errors.As(err, &ae) && ae.Status == 409) {
			// A ctld started for a refused fabric leaves nothing behind.
			c.Down()
		}
		return nil, nil, err
	}
	if err := c.Wait(a.Version, 60*time.Second); err != nil {
		return c, nil, fmt.Errorf("fabric %s: %w", t.Name, err)
	}
	r, err := c.Status()
	return c, r, err
}

// Down removes a fabric through its ctld, starting one if none runs (a ctld
// that was killed comes back with the fabric's state and removes it).
func Down(exe, fabric string) error {
	if err := Preflight(); err != nil {
		return err
	}
	_, dataErr := os.Stat(StoreDir(fabric))
	_, runErr := os.Stat(Dir(fabric))
	if dataErr != nil && runErr != nil {
		return fmt.Errorf("fabric %s: %w", fabric, ErrNotUp)
	}
	c, _, err := EnsureDaemon(fabric, exe)
	if err != nil {
		return err
	}
	return c.Down()
}

// ErrNotUp says that a fabric has neither a store nor a runtime folder.
var ErrNotUp = errors.New("not up")
