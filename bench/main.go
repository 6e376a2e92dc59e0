// Command bench measures s3bak against the usual ways of moving a snapshot
// to S3 — s5cmd, aws-cli, and tar | zstd | s5cmd pipe — on generated
// Cassandra snapshot trees, against a real local MinIO, in one run with
// interleaved rounds. It reports the median wall time, MB/s and peak RSS of
// every tool, checks that every tool gave back the bytes it was given, and
// writes the same data as JSON. Run it with `make bench` (BENCH_FLAGS=...).
//
// Targets are reported, never asserted: the program exits non-zero only when
// a tool failed or gave back wrong data.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/s3bak/s3bak/pkg/units"
)

// config is what the flags choose.
type config struct {
	size      int64 // default set
	big       int64 // the one large file
	small     int   // files of the small-files section
	minSmall  int   // small sstable components in the default set
	manifests int   // manifests of the list section
	files     []int // file counts of the files section, ascending
	pct       float64
	rounds    int
	sections  map[string]bool
	tools     map[string]bool
	out       string
	workDir   string
	keep      bool
	seed      uint64
	// The network section's proxy: first-byte delay of every request, and
	// the cap of each direction of each connection (bytes/s; 0: none).
	netLatency   time.Duration
	netBandwidth int64
	netLog       string // the proxy's per-request log ("": none)
	// Extra flags for every s3bak command, and for its backups only: to
	// sweep its knobs (-s3bak-flags '--concurrency 32').
	s3bakFlags, s3bakBackupFlags []string
}

// allSections lists the sections in the order they run.
var allSections = []string{"default", "incremental", "small", "network", "big", "list", "files"}

// sectionParts are the sections a name of -sections runs: the network
// section is two, the default set's and the small files' through the proxy.
func sectionParts(name string) []string {
	if name == "network" {
		return []string{"network-default", "network-small"}
	}
	return []string{name}
}

func main() {
	if os.Getenv(spawnEnv) == "1" {
		spawnerMain()
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "bench: a tool failed or gave back wrong data (see the errors above)")
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := &config{size: 1 << 30, big: 4 << 30, netBandwidth: 80e6}
	fs.Var(&units.Size{P: &cfg.size, Min: 1}, "size", "total size of the default snapshot set")
	fs.Var(&units.Size{P: &cfg.big, Min: 1}, "big", "size of the one large Data.db of the big section")
	fs.DurationVar(&cfg.netLatency, "net-latency", 20*time.Millisecond, "network section: delay of every response's first byte, after its request")
	fs.Var(&units.Size{P: &cfg.netBandwidth, Rate: true, Zero: "no cap"}, "net-bandwidth",
		"network section: cap of each direction of each connection, bytes a second (80MB = 80×10⁶; 0: no cap)")
	fs.StringVar(&cfg.netLog, "net-log", "", "network section: write a line per request through the proxy to this file (start, end of upload, first byte in ms; connection; request and status lines)")
	s3bakFlags := fs.String("s3bak-flags", "", "extra flags for every s3bak command, split at spaces (e.g. '--concurrency 32')")
	s3bakBackupFlags := fs.String("s3bak-backup-flags", "", "extra flags for s3bak backup only, split at spaces (e.g. '--part-size 8MiB --pack-size 4MiB')")
	small := fs.Int("small", 10000, "number of ~4 KiB files of the small-files section")
	minSmall := fs.Int("min-small", 2000, "small sstable components (Statistics, Filter, TOC…) in the default set, at least")
	manifests := fs.Int("manifests", 10000, "manifests the list section generates")
	files := fs.String("files", "40000", "file counts of the files section (issue #14), comma-separated: a row each, e.g. 8000,40000,200000 (1000000: the issue's 1M row)")
	pct := fs.Float64("incremental-pct", 5, "percent of new sstable files (and bytes) for the second backup")
	rounds := fs.Int("rounds", 3, "interleaved rounds; medians are taken over them")
	sections := fs.String("sections", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	tools := fs.String("tools", "s3bak,s5cmd,aws,tar", "tools to compare: s3bak,s5cmd,aws,tar (tar | zstd | s5cmd pipe)")
	out := fs.String("out", "bench/results.json", "JSON results file (empty: none)")
	work := fs.String("workdir", "", "parent of the temporary directory (default: the system's)")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	seed := fs.Uint64("seed", 1, "seed of the generated trees")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.small, cfg.minSmall, cfg.manifests, cfg.pct, cfg.rounds = *small, *minSmall, *manifests, *pct, *rounds
	cfg.out, cfg.workDir, cfg.keep, cfg.seed = *out, *work, *keep, *seed
	cfg.s3bakFlags, cfg.s3bakBackupFlags = strings.Fields(*s3bakFlags), strings.Fields(*s3bakBackupFlags)
	var err error
	if cfg.rounds < 1 || cfg.small < 1 || cfg.manifests < 1 || cfg.pct <= 0 {
		return nil, fmt.Errorf("-rounds, -small, -manifests and -incremental-pct must be positive")
	}
	if cfg.netLatency < 0 {
		return nil, fmt.Errorf("-net-latency must not be negative")
	}
	if cfg.files, err = parseCounts(*files); err != nil {
		return nil, fmt.Errorf("-files: %w", err)
	}
	if cfg.sections, err = pickSet(*sections, allSections); err != nil {
		return nil, fmt.Errorf("-sections: %w", err)
	}
	if cfg.tools, err = pickSet(*tools, []string{"s3bak", "s5cmd", "aws", "tar"}); err != nil {
		return nil, fmt.Errorf("-tools: %w", err)
	}
	if !cfg.tools["s3bak"] {
		return nil, fmt.Errorf("-tools: s3bak is what is measured; keep it")
	}
	return cfg, nil
}

// parseCounts parses a comma-separated list of file counts, each at least
// one sstable (8 files); they come back ascending, without repeats.
func parseCounts(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		f = strings.ReplaceAll(strings.TrimSpace(f), "_", "")
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < len(components) {
			return nil, fmt.Errorf("%q: want a number of files, at least %d (one sstable)", f, len(components))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no file count given")
	}
	slices.Sort(out)
	return out, nil
}

func pickSet(list string, known []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		found := false
		for _, k := range known {
			found = found || k == s
		}
		if !found {
			return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(known, ","))
		}
		out[s] = true
	}
	return out, nil
}

// run sets the bench up, runs the chosen sections and reports. It returns
// false when a tool failed or gave back wrong data.
func run(ctx context.Context, cfg *config) (bool, error) {
	b, err := setup(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer b.close()
	b.printMachine()
	res := &results{Machine: b.machine, Config: cfg.describe(), Started: time.Now().UTC()}
	for _, name := range allSections {
		if !cfg.sections[name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		for _, part := range sectionParts(name) {
			sec, err := b.runSection(ctx, part)
			if err != nil {
				return false, fmt.Errorf("section %s: %w", part, err)
			}
			res.Sections = append(res.Sections, sec)
			printSection(os.Stdout, sec)
		}
	}
	res.Finished = time.Now().UTC()
	res.Targets = evaluateTargets(res.Sections)
	printTargets(os.Stdout, res.Targets)
	if cfg.out != "" {
		out := cfg.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(b.repo, out)
		}
		if err := writeJSON(out, res); err != nil {
			return false, err
		}
		fmt.Printf("\nresults written to %s\n", cfg.out)
	}
	return res.ok(), nil
}
