package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfile writes a CPU profile to the file named by S3BAK_CPU_PROFILE,
// when set: speed work starts from where the time goes, measured in the
// real binary under the real workload (make bench), not guessed.
func startProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "s3bak: S3BAK_CPU_PROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// startHeapProfile writes, at exit, a heap profile to the file named by
// S3BAK_MEM_PROFILE, when set: its alloc_space and inuse_space views show
// where a run's memory goes per file (go tool pprof -sample_index=...).
func startHeapProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	runtime.MemProfileRate = 64 << 10
	return func() {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(stderr, "s3bak: S3BAK_MEM_PROFILE: %v\n", err)
		}
	}
}
