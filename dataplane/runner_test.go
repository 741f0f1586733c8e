package dataplane

import (
	"sync"
	"testing"
	"time"
)

// A task handed to the runner runs, on an idle worker when there is one.
func TestRunnerRunsEveryTaskAndReusesWorkers(t *testing.T) {
	r := newRunner()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		r.run(funcTask(wg.Done))
		wg.Wait() // one at a time: each finds the last one's worker idle
	}
	// Concurrent tasks that block until all have started need a worker each.
	const n = 8
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	wg.Add(n)
	for i := 0; i < n; i++ {
		r.run(funcTask(func() { started.Done(); <-release; wg.Done() }))
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked tasks did not all start: the runner queued one behind another")
	}
	close(release)
	wg.Wait()
	// Each worker goes back to waiting, and is counted idle (what /stats
	// reports, so that a test can tell pooled goroutines from held ones).
	deadline := time.Now().Add(5 * time.Second)
	for r.idle.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d workers counted idle", r.idle.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkRunnerHandOff is one relay wake-up's cost: a task handed to an
// idle worker and run.
func BenchmarkRunnerHandOff(b *testing.B) {
	r := newRunner()
	done := make(chan struct{})
	task := funcTask(func() { done <- struct{}{} })
	b.ReportAllocs()
	for b.Loop() {
		r.run(task)
		<-done
	}
}
