package ctl

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/dataplane"
)

// Lock takes the fabric's lock, so two commands never change its state at
// once. Call the returned function to release it.
func Lock(name string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(Dir(name), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Push compiles a new version of every forwarder's snapshot, writes it, and
// has every live forwarder load it (SIGHUP); it returns once each reports
// the new version, or after timeout.
func (s *State) Push(timeout time.Duration) error {
	s.Version++
	if err := s.save(); err != nil {
		return err
	}
	written := map[string]bool{} // an AZ's workers share one config
	for _, f := range s.Forwarders {
		if !written[f.Config] {
			if err := dataplane.WriteJSONFile(f.Config, s.ForwarderConfig(f.AZ)); err != nil {
				return fmt.Errorf("write config of forwarder %s: %w", f.Label(), err)
			}
			written[f.Config] = true
		}
		if f.Process.Alive() {
			if err := syscall.Kill(f.Process.PID, syscall.SIGHUP); err != nil {
				return fmt.Errorf("signal forwarder %s: %w", f.Label(), err)
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for _, f := range s.Forwarders {
		for f.Process.Alive() {
			st, err := ForwarderStatus(f)
			if err == nil && st.ConfigVersion == s.Version {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("forwarder %s did not load version %d in %s (see %s)", f.Label(), s.Version, timeout, f.Process.Log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// DeregisterTarget starts the deregistration of a target from a target
// group, as ELBv2's DeregisterTargets: it drains for the group's delay.
func (s *State) DeregisterTarget(group string, addr netip.AddrPort, now time.Time) error {
	for i := range s.Targets {
		t := &s.Targets[i]
		if t.TargetGroup != group || t.IP != addr.Addr().String() || t.Port != int(addr.Port()) {
			continue
		}
		if !t.DeregisteredAt.IsZero() {
			return fmt.Errorf("target %s of %s is already deregistered (since %s)", addr, group, t.DeregisteredAt.Format(time.RFC3339))
		}
		t.DeregisteredAt = now.UTC()
		return nil
	}
	return errors.New("target " + addr.String() + " is not registered in target group " + group)
}
