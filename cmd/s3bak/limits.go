package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/sysprio"
	"github.com/s3bak/s3bak/pkg/units"
)

const (
	defaultMaxMemory = 256 << 20
	minMaxMemory     = 16 << 20
	// minMaxRate catches a rate given without its unit: --max-rate 200
	// would be 200 bytes a second, and a backup that never ends.
	minMaxRate = 64 << 10
)

// limits are the global flags that bound what a run takes from its node,
// which is a database server first: network, CPU and disk, memory.
type limits struct {
	maxRate   int64 // bytes per second in each direction; 0 is unlimited
	maxMemory int64 // bytes of buffers a backup or restore may hold
	nice      bool
}

func (l *limits) register(f *pflag.FlagSet) {
	l.maxMemory = defaultMaxMemory
	f.Var(&units.Size{P: &l.maxRate, Rate: true, Min: minMaxRate, Zero: "unlimited"}, "max-rate",
		"limit S3 traffic to this many bytes per second, e.g. 200MiB; uploads and downloads are limited apart, "+
			"request and response bodies counted (default unlimited)")
	f.Var(&units.Size{P: &l.maxMemory, Min: minMaxMemory}, "max-memory",
		"memory for transfer buffers, at least 16MiB")
	f.BoolVar(&l.nice, "nice", false,
		"run at the lowest CPU priority (nice 19) and IO priority (idle class), to spare the database; "+
			"where that is forbidden (containers often forbid the IO part) a warning is logged and the run goes on")
}

// buffers is a budget of transfer buffers of eighths/8 of --max-memory;
// the rest is left for what no budget counts (compressor and decompressor
// state, idle pooled buffers, the Go runtime). A backup needs
// room for a compressing stream beside many small files; a restore keeps
// every core decoding with a few chunks in flight.
func (l *limits) buffers(eighths int64) *budget.Budget { return budget.New(l.maxMemory / 8 * eighths) }

// restoreBuffers is the budget of what reads a backup back (restore,
// verify --deep): three eighths of --max-memory, 96 MiB by default. A
// chunk in flight holds its stored bytes from its GET's first byte to its
// decoding and its raw bytes until hashed, some 15 MiB for 8 MiB chunks;
// a bucket 20ms away at 80 MB/s a connection needs about ten of them to
// keep two cores busy. Two eighths held six: through the bench's proxy the
// restore of the default set took 2.2 s, with three 1.77 s; on loopback
// the same time and some 20 MiB more peak RSS (bench/README.md).
func (l *limits) restoreBuffers() *budget.Budget { return l.buffers(3) }

// backupBuffers is a backup's budget of transfer buffers: five eighths of
// --max-memory, less what the snapshot's list of files holds beyond the
// three eighths left for what no budget counts. The files of a big node
// cost memory too (some 170 bytes each), and it comes out of the same
// bound: a million files leave less for buffers, and the backup runs with
// smaller ones rather than over --max-memory. A list that leaves less than
// minBuffers is warned about: the bound cannot hold then.
func (l *limits) backupBuffers(files int64, log *slog.Logger) *budget.Budget {
	size := l.maxMemory / 8 * 5
	if over := files - l.maxMemory/8*3; over > 0 {
		size -= over
	}
	if size < minBuffers {
		log.Warn("the snapshot's list of files takes most of --max-memory: the backup goes on with the smallest buffers and may use more; raise --max-memory",
			"files_bytes", files, "max_memory", l.maxMemory)
		size = minBuffers
	}
	return budget.New(size)
}

// encoders is how many zstd encoders a backup keeps: one per CPU, but no
// more than one per 8 MiB of --max-memory — each holds history and hash
// tables that no budget counts (pkg/chunk, NewEncoder: up to some 10 MiB
// over its three coders, the README's fixed overhead), which at 16 MiB on
// a many-core host was most of the bound.
func (l *limits) encoders() int {
	return max(1, min(runtime.GOMAXPROCS(0), int(l.maxMemory/(8<<20))))
}

// minBuffers is the least a backup's transfer buffers get.
const minBuffers = 8 << 20

// apply lowers the process's priority when --nice asks for it. Failing to
// is not fatal: a backup at normal priority beats no backup.
func (l *limits) apply(logger *slog.Logger) {
	logger.Debug("limits", "max_rate", l.maxRate, "max_memory", l.maxMemory, "nice", l.nice)
	// The budget bounds buffers in flight; the soft limit makes the garbage
	// collector return freed buffers before the heap outgrows the bound.
	// Go's heap grows up to its limit when garbage is cheap to leave, so the
	// limit sits an eighth below the bound, leaving room for what is not
	// Go's heap (the binary, thread stacks).
	debug.SetMemoryLimit(l.maxMemory / 8 * 7)
	if !l.nice {
		return
	}
	if err := sysprio.Lower(); err != nil {
		logger.Warn("--nice: could not lower the priority fully; going on", "err", err)
		return
	}
	logger.Debug("priority lowered", "nice", sysprio.Nice)
}
