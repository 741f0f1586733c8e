// Package nsenter runs a function with the calling OS thread inside a named
// network namespace (one made with `ip netns add` or netns.NewNamed, so it
// lives under /run/netns). It must never leave a thread in a foreign
// namespace: a thread it cannot move back is retired with its goroutine.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Do runs fn with the current goroutine locked to an OS thread that has
// entered the network namespace called name. Sockets and TUN devices created
// by fn belong to that namespace for their whole life, so they can be used
// from any goroutine after Do returns.
func Do(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network namespace %s does not exist", name)
		}
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer target.Close()
	return DoHandle(target, fn)
}

// hostNS is the namespace the process started in, opened once while only
// the main thread runs: every thread DoHandle moves is moved back to it.
var hostNS, hostNSErr = netns.Get()

// DoHandle is Do for a namespace already opened.
func DoHandle(target netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	origin := hostNS
	if hostNSErr != nil {
		var err error
		if origin, err = netns.Get(); err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("read current network namespace: %w", err)
		}
		defer origin.Close()
	}
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(origin); err != nil {
		// Leave the thread locked: the runtime ends it with this goroutine
		// instead of handing a thread in the wrong namespace to others.
		return errors.Join(ferr, fmt.Errorf("return to original network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Exists reports whether a named network namespace exists.
func Exists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// Create makes a named network namespace (as `ip netns add` does) with its
// loopback up, without leaving the calling thread in it.
func Create(name string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	origin, err := netns.Get()
	if err != nil {
		return err
	}
	defer origin.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		netns.Set(origin)
		return err
	}
	h.Close()
	if err := netns.Set(origin); err != nil {
		return err
	}
	return Do(name, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
}

// Sysctls writes /proc/sys values (keys like "net/ipv4/tcp_tw_reuse") in a
// namespace: a thread sees its own namespace's net.* sysctls.
func Sysctls(name string, kv map[string]string) error {
	return Do(name, func() error {
		for k, v := range kv {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", k, name, err)
			}
		}
		return nil
	})
}

// Delete removes a named network namespace.
func Delete(name string) error { return netns.DeleteNamed(name) }

func handle(name string) (netns.NsHandle, error) { return netns.GetFromName(name) }
