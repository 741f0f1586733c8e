package nsenter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces): CI must run it as root")
	}
	t.Skip("needs root (network namespaces); run as root, or set CI=true to make this a failure")
}

// scratch makes a namespace named after prefix and this process, removed
// when the test ends.
func scratch(tb testing.TB, prefix string) string {
	tb.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	if err := Create(name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { Delete(name) })
	return name
}

// threadNetns names the network namespace of the calling thread.
func threadNetns() string {
	s, _ := os.Readlink("/proc/thread-self/ns/net")
	return s
}

func TestCreateNeverHandsOnAThreadLeftInTheNewNamespace(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("pvl-nsenter-%d", os.Getpid())
	host := threadNetns()
	setNS = func(h nsHandle) error { return errors.New("injected failure") }
	defer func() { setNS = realSetNS }()
	errc := make(chan error)
	go func() { errc <- create(name) }()
	err := <-errc
	setNS = realSetNS
	defer Delete(name)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("create with a failing return: err = %v, want the failure reported", err)
	}
	// Every thread the runtime hands out must be in the host namespace.
	var wg sync.WaitGroup
	var mu sync.Mutex
	foreign := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if threadNetns() != host {
				mu.Lock()
				foreign++
				mu.Unlock()
			}
		}()
		runtime.Gosched()
	}
	wg.Wait()
	if foreign > 0 {
		t.Fatalf("%d goroutines ran on a thread left in namespace %s", foreign, name)
	}
}

// The scenario runs in a mount namespace of its own with a fresh /run, so
// /run/netns starts as a plain folder, as on a machine that never ran `ip
// netns add`.
func TestUserIPNetnsAddBesideOursStrandsNothing(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("needs iproute2's ip")
	}
	if os.Getenv("PVL_NSENTER_CHILD") == "1" {
		userNetnsScenario(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUserIPNetnsAddBesideOursStrandsNothing$", "-test.v")
	cmd.Env = append(os.Environ(), "PVL_NSENTER_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("scenario in its own mount namespace: %v\n%s", err, out)
	}
}

func userNetnsScenario(t *testing.T) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := Create("pvl-ours"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", "mine").CombinedOutput(); err != nil {
		t.Fatalf("ip netns add mine: %v\n%s", err, out)
	}
	if err := Delete("pvl-ours"); err != nil {
		t.Fatalf("delete our namespace after the user's ip netns add: %v", err)
	}
	if Exists("pvl-ours") {
		t.Fatal("our namespace is still listed")
	}
	if out, err := exec.Command("ip", "netns", "del", "mine").CombinedOutput(); err != nil {
		t.Fatalf("ip netns del mine: %v\n%s", err, out)
	}
}

// A namespace is known by its inode: the name's, the handle's and the
// thread's inside Do agree, and a namespace made again under the same name
// has another.
func TestANamespaceMadeAgainHasAnotherInode(t *testing.T) {
	requireRoot(t)
	name := scratch(t, "pvl-inode")
	first, err := Inode(name)
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	if err := Do(name, func() (err error) { inside, err = ThreadInode(); return err }); err != nil || inside != first {
		t.Fatalf("inside Do: %d (%v), the name's %d", inside, err, first)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close() // keeps the first namespace alive past its name
	if got, err := HandleInode(h); err != nil || got != first {
		t.Fatalf("the handle's inode %d (%v), the name's %d", got, err, first)
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if again, err := Inode(name); err != nil || again == first {
		t.Fatalf("made again: inode %d (%v), the first was %d", again, err, first)
	}
	if host, err := ThreadInode(); err != nil || host == first {
		t.Fatalf("this thread's namespace %d (%v) is the one made", host, err)
	}
}

// A user unmounts a namespace's file (umount /run/netns/NAME, half of what
// `ip netns delete` does): the file stays, but names no namespace, and
// entering it fails. It does not exist, and Create makes it again in
// place.
func TestAnUnmountedNamespaceDoesNotExistAndIsMadeAgain(t *testing.T) {
	requireRoot(t)
	name := scratch(t, "pvl-umount")
	first, err := Inode(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(Path(name), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Path(name)); err != nil {
		t.Fatalf("the file should stay after the unmount: %v", err)
	}
	if Exists(name) {
		t.Fatal("an unmounted namespace's file is said to exist")
	}
	if err := Do(name, func() error { return nil }); err == nil {
		t.Fatal("entered an unmounted namespace's file")
	}
	if err := Create(name); err != nil {
		t.Fatalf("make it again over the file left behind: %v", err)
	}
	if !Exists(name) {
		t.Fatal("made again, it does not exist")
	}
	if again, err := Inode(name); err != nil || again == first {
		t.Fatalf("made again: inode %d (%v), the first was %d", again, err, first)
	}
	var lo bool
	if err := Do(name, func() error {
		l, err := netlink.LinkByName("lo")
		lo = err == nil && l.Attrs().Flags&net.FlagUp != 0
		return err
	}); err != nil || !lo {
		t.Fatalf("inside the namespace made again, lo up: %v (%v)", lo, err)
	}
}
