// Package nsenter runs a function with the calling OS thread inside a named
// network namespace (one made with `ip netns add` or netns.NewNamed, so it
// lives under /run/netns). It must never leave a thread in a foreign
// namespace: a thread it cannot move back is retired with its goroutine.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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

// Exists reports whether a named network namespace exists: its file is
// the bind mount of a namespace (nsfs). A file left where the mount was (a
// user's umount of it) names none: entering it fails with EINVAL.
func Exists(name string) bool {
	var st unix.Statfs_t
	return unix.Statfs(Path(name), &st) == nil && st.Type == unix.NSFS_MAGIC
}

// Path is the file of a named network namespace.
func Path(name string) string { return filepath.Join(runDir, name) }

// Inode is the inode of a named network namespace: one made again under
// the same name (a user's `ip netns delete`, then ctld) has another.
func Inode(name string) (uint64, error) { return inodeOf(Path(name)) }

// ThreadInode is the inode of the calling thread's network namespace:
// inside Do, the one it entered.
func ThreadInode() (uint64, error) { return inodeOf("/proc/thread-self/ns/net") }

// HandleInode is the inode of the network namespace an open handle is of.
func HandleInode(h netns.NsHandle) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func inodeOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// runDir is where named namespaces are bind-mounted, as iproute2 keeps them.
const runDir = "/run/netns"

// prepareRunDir makes /run/netns a mount point with shared propagation, as
// `ip netns add` does before its first namespace. Were it a plain folder, a
// later `ip netns add` by the user would mount a fresh copy over it and hide
// the namespace mounts made before, which could then be neither seen nor
// removed ("device or resource busy").
func prepareRunDir() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runDir, err)
	}
	for {
		err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("make %s a shared mount: %w", runDir, err)
		}
		// EINVAL: not a mount point yet. Bind it onto itself, then retry.
		if err := unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", runDir, err)
		}
	}
}

// Create makes a named network namespace (as `ip netns add` does) with its
// loopback up. The thread that makes it must enter it; if that thread
// cannot return to the host namespace, it stays locked and the runtime
// retires it with this call's goroutine.
func Create(name string) error {
	if err := prepareRunDir(); err != nil {
		return err
	}
	// A file left where a namespace's mount was would make the new one's
	// file fail to be created (EEXIST): take it away first.
	if !Exists(name) {
		if err := Delete(name); err != nil {
			return err
		}
	}
	if err := create(name); err != nil {
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

type nsHandle = netns.NsHandle

// setNS is netns.Set, a variable so a test can make the return fail.
var setNS, realSetNS = netns.Set, netns.Set

func create(name string) error {
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("read current network namespace: %w", err)
	}
	defer origin.Close()
	h, cerr := netns.NewNamed(name)
	if cerr == nil {
		h.Close()
	}
	// NewNamed may have moved the thread even when it failed afterwards.
	if err := setNS(origin); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		return errors.Join(cerr, fmt.Errorf("create netns %s: return to original network namespace: %w", name, err))
	}
	runtime.UnlockOSThread()
	if cerr != nil {
		return fmt.Errorf("create netns %s: %w", name, cerr)
	}
	return nil
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

// Delete removes a named network namespace; one already gone is not an
// error.
func Delete(name string) error {
	p := filepath.Join(runDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

func handle(name string) (netns.NsHandle, error) { return netns.GetFromName(name) }
