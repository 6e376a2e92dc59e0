package restore

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestFlusherSyncsInTheBackgroundOneAtATime: a syncfs starts once
// flushEvery bytes are written, runs beside the writes (which never wait
// for it), never two at once, and wait waits for the one running.
func TestFlusherSyncsInTheBackgroundOneAtATime(t *testing.T) {
	release := make(chan struct{})
	var started, running, most atomic.Int32
	f := &flusher{sync: func() {
		started.Add(1)
		n := running.Add(1)
		if n > most.Load() {
			most.Store(n)
		}
		<-release
		running.Add(-1)
	}}
	f.wrote(flushEvery / 2)
	if started.Load() != 0 {
		t.Fatal("a syncfs before flushEvery bytes were written")
	}
	f.wrote(flushEvery / 2)
	waitFor(t, func() bool { return started.Load() == 1 })
	for range 10 {
		f.wrote(flushEvery) // returns at once: one is running
	}
	if started.Load() != 1 {
		t.Fatalf("%d syncfs started while one ran, want 1", started.Load())
	}
	done := make(chan struct{})
	go func() { f.wait(); close(done) }()
	select {
	case <-done:
		t.Fatal("wait returned while a syncfs ran")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	<-done
	f.wrote(flushEvery)
	waitFor(t, func() bool { return started.Load() == 2 })
	close(release)
	f.wait()
	if most.Load() != 1 {
		t.Fatalf("%d syncfs ran at once, want 1", most.Load())
	}
	var none *flusher // a verify's
	none.wrote(flushEvery)
	none.wait()
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("timed out")
		}
	}
}
