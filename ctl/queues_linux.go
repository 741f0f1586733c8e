package ctl

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/snapshot"
)

// A forwarder worker's TUN queues outlive it. The kernel numbers a TUN's
// queues densely: when a worker's process dies, its queue leaves and the
// last one takes its number, and the queue of the worker started again
// comes last. A flow the TUN has not seen a packet of for 3 s is steered
// by that numbering alone, so a restart moved the other workers' idle
// flows to workers that do not know them, which reset them. ctld therefore
// keeps a copy of each worker's queue descriptors (pidfd_getfd): a queue
// stays attached while its worker is down (its packets wait in it), and
// the worker started again takes that same queue (--tun-queue).

// heldQueue is ctld's copy of a forwarder's TUN queue.
type heldQueue struct {
	fd   int // ctld's
	from int // the descriptor's number in the forwarder it was taken from
}

// holdQueues takes a copy of each TUN queue forwarder key (process pid)
// reports (TUN name to descriptor) that ctld does not hold yet, and lets go
// of those it no longer reports.
func (r *realizer) holdQueues(key string, pid int, queues map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.queues[key]
	if held == nil {
		held = map[string]heldQueue{}
		r.queues[key] = held
	}
	for tun, h := range held {
		if fd, ok := queues[tun]; !ok || fd != h.from || !sameFile(pid, fd, h.fd) {
			unix.Close(h.fd)
			delete(held, tun)
		}
	}
	pidfd := -1
	defer func() {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
	for tun, fd := range queues {
		if _, ok := held[tun]; ok {
			continue
		}
		if pidfd < 0 {
			var err error
			if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
				r.queueFailed(key, err)
				return
			}
		}
		own, err := unix.PidfdGetfd(pidfd, fd, 0) // close-on-exec
		if err != nil {
			r.queueFailed(key, err)
			continue
		}
		// The number may have been reused since the status was read.
		if name, err := snapshot.QueueTUN(own); err != nil || name != tun {
			unix.Close(own)
			continue
		}
		held[tun] = heldQueue{fd: own, from: fd}
	}
}

// kcmpFile is kcmp(2)'s KCMP_FILE: are two descriptors one open file?
const kcmpFile = 0

// sameFile reports whether descriptor theirs of process pid is still the
// open file ctld's copy ours was taken from. A forwarder that opened its
// ENI's TUN again (its VPC's namespace made again) may have been given the
// same number for the new queue. When the kernel cannot tell (no kcmp),
// the copy is taken as the same, as before kcmp was asked.
func sameFile(pid, theirs, ours int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(os.Getpid()), kcmpFile, uintptr(theirs), uintptr(ours), 0)
	return errno != 0 || r == 0
}

// queueFailed logs, once per forwarder and kind of error (every pass
// tries again), that ctld could not take a copy of a queue (a kernel
// before 5.6, or ptrace forbidden): a restart of that worker then moves
// the other workers' idle flows, as without the copies. Called under mu.
func (r *realizer) queueFailed(key string, err error) {
	if r.queueErrs[key] == err.Error() {
		return
	}
	r.queueErrs[key] = err.Error()
	r.log.Warn("cannot keep a copy of a forwarder's TUN queue", "process", key, "err", err)
}

// releaseQueues lets go of ctld's copies of forwarder key's queues: before
// the forwarder is stopped on purpose (its queues must leave with it), and
// after a snapshot, which may have made it close one.
func (r *realizer) releaseQueues(key string) (n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.queues[key] {
		unix.Close(h.fd)
	}
	n = len(r.queues[key])
	delete(r.queues, key)
	return n
}

// giveUpQueues lets go of the queues of a forwarder that could not be
// started again: kept, they would hold their share of the TUN's new
// connections for a worker that may never come back; without them the
// TUN steers everything to the workers that run (moving their idle
// flows, as before ctld kept queues). The worker opens new ones when it
// does start.
func (r *realizer) giveUpQueues(key, label string) {
	if n := r.releaseQueues(key); n > 0 {
		r.log.Warn("forwarder not started again: its TUN queues let go, the other workers take its share", "forwarder", label, "queues", n)
	}
}

// queuesFor are the queues forwarder key is to be started with: copies of
// ctld's that are still attached to their TUN, as files for the child (to
// close once it has started) and the arguments that name them.
func (r *realizer) queuesFor(key string) (files []*os.File, args []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.queues[key]
	tuns := make([]string, 0, len(held))
	for tun := range held {
		tuns = append(tuns, tun)
	}
	slices.Sort(tuns)
	for _, tun := range tuns {
		h := held[tun]
		if name, err := snapshot.QueueTUN(h.fd); err != nil || name != tun {
			unix.Close(h.fd) // its TUN was deleted
			delete(held, tun)
			continue
		}
		dup, err := unix.Dup(h.fd)
		if err != nil {
			continue
		}
		// The child's descriptors 0-2 are its standard files; the
		// ones given after them count from 3.
		args = append(args, "--tun-queue", fmt.Sprintf("%s=%d", tun, 3+len(files)))
		files = append(files, os.NewFile(uintptr(dup), tun))
	}
	return files, args
}
