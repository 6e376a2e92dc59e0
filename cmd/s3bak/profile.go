package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// startProfile writes a CPU profile to the file named by S3BAK_CPU_PROFILE,
// when set: speed work starts from where the time goes, measured in the
// real binary under the real workload (make bench), not guessed.
func startProfile(path string, stderr io.Writer) (stop func()) {
	return recordTo(path, "S3BAK_CPU_PROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile, stderr)
}

// startTrace writes an execution trace to the file named by S3BAK_TRACE,
// when set: where a CPU profile shows what runs, the trace shows what
// waits (go tool trace -pprof=sync|net|syscall|sched FILE).
func startTrace(path string, stderr io.Writer) (stop func()) {
	return recordTo(path, "S3BAK_TRACE", trace.Start, trace.Stop, stderr)
}

// recordTo starts a recording into the file path (named by the variable
// env) and returns what ends it; nothing when path is empty, and a word on
// stderr when it cannot start.
func recordTo(path, env string, start func(io.Writer) error, end func(), stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = start(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "s3bak: %s: %v\n", env, err)
		return func() {}
	}
	return func() {
		end()
		f.Close()
	}
}

// startHeapProfile writes a heap profile to the file named by
// S3BAK_MEM_PROFILE, when set: at the run's peak of heap in use (sampled
// every quarter second, rewritten at each new peak by a tenth) and, if it
// never grew, at exit. Its inuse_space view shows what holds memory at the
// peak, per file of a big node (go tool pprof -sample_index=inuse_space).
func startHeapProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	runtime.MemProfileRate = 64 << 10
	write := func() {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "s3bak: S3BAK_MEM_PROFILE: %v\n", err)
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var peak uint64
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				if peak == 0 {
					write()
				}
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak+peak/10 {
				peak = ms.HeapInuse
				write()
			}
		}
	}()
	return func() { close(done); <-stopped }
}
