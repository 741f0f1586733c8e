package dataplane

import (
	"sync/atomic"
	"time"
)

// runner runs the relay's and the handler's work on goroutines that outlive
// one task. A fresh goroutine starts with a small stack and grows it on
// every trip through gVisor's deep send path; that copying was 13% of the
// forwarder's CPU in the connection-rate benchmark. A task goes to an idle
// worker if one is waiting, else to a new one; a worker that has had
// nothing to do for one to two runnerIdle periods exits, so the pool
// shrinks after a burst.
type runner struct {
	tasks chan task
	idle  atomic.Int32 // workers waiting for a task
}

// task is work for the runner. A relay direction is one by a conversion of
// its connection's pointer (c2pPump, p2cPump), which allocates nothing; a
// closure is one as funcTask.
type task interface{ run() }

// funcTask runs a function as a task.
type funcTask func()

func (f funcTask) run() { f() }

const runnerIdle = 10 * time.Second

func newRunner() *runner { return &runner{tasks: make(chan task)} }

// run starts task on an idle worker or a new one; it never blocks.
func (r *runner) run(t task) {
	select {
	case r.tasks <- t:
	default:
		go r.work(t)
	}
}

// work runs task, then whatever comes, until a whole runnerIdle passes
// without a task. The timer is not reset per task (that is a timer-heap
// operation on every relay wake-up): when it fires, a worker that has run
// something since the last firing just waits one more period.
func (r *runner) work(t task) {
	t.run()
	busy := false
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		r.idle.Add(1)
		select {
		case t := <-r.tasks:
			r.idle.Add(-1)
			t.run()
			busy = true
		case <-idle.C:
			r.idle.Add(-1)
			if !busy {
				return
			}
			busy = false
			idle.Reset(runnerIdle)
		}
	}
}
