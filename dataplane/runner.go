package dataplane

import (
	"time"
)

// runner runs the relay's and the handler's work on goroutines that outlive
// one task. A fresh goroutine starts with a small stack and grows it on
// every trip through gVisor's deep send path; that copying was 13% of the
// forwarder's CPU in the connection-rate benchmark. A task goes to an idle
// worker if one is waiting, else to a new one; a worker that has had
// nothing to do for runnerIdle exits, so the pool shrinks after a burst.
type runner struct {
	tasks chan func()
}

const runnerIdle = 10 * time.Second

func newRunner() *runner { return &runner{tasks: make(chan func())} }

// run starts task on an idle worker or a new one; it never blocks.
func (r *runner) run(task func()) {
	select {
	case r.tasks <- task:
	default:
		go r.work(task)
	}
}

func (r *runner) work(task func()) {
	task()
	idle := time.NewTimer(runnerIdle)
	defer idle.Stop()
	for {
		select {
		case task := <-r.tasks:
			task()
			idle.Reset(runnerIdle)
		case <-idle.C:
			return
		}
	}
}
