package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/s3bak/s3bak/pkg/miniotest"
)

// machine describes where the numbers were taken.
type machine struct {
	CPUs     int               `json:"cpus"`
	CPUModel string            `json:"cpu_model"`
	MemGiB   float64           `json:"mem_gib"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	Tools    map[string]string `json:"tools"`
	Commit   string            `json:"s3bak_commit"` // the checkout bin/s3bak was built from
	WorkFS   string            `json:"work_fs"`      // the working directory's file system (workFS)
}

func (b *bench) describeMachine(ctx context.Context) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Tools: map[string]string{}}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 64); err == nil {
		m.MemGiB = round1(kb / (1 << 20))
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(k))
	}
	if out := firstLine(ctx, "go", "version"); out != "" {
		m.Go = out
	}
	m.WorkFS, b.noJournal = workFS(b.dir)
	m.Tools["s3bak"] = firstLine(ctx, b.bin.s3bak, "version")
	m.Commit = checkout(ctx, b.repo)
	m.Tools["s5cmd"] = firstLine(ctx, b.bin.s5cmd, "version")
	if p, err := miniotest.Binary(); err == nil {
		m.Tools["minio"] = firstLine(ctx, p, "--version")
	}
	if b.bin.aws != "" {
		m.Tools["aws-cli"] = firstLine(ctx, b.bin.aws, "--version")
	}
	if b.bin.zstd != "" {
		m.Tools["zstd"] = firstLine(ctx, b.bin.zstd, "--version")
	}
	if b.bin.tar != "" {
		m.Tools["tar"] = firstLine(ctx, b.bin.tar, "--version")
	}
	return m
}

// awsMajor is "v1" or "v2" from `aws --version` (aws-cli/1.x or 2.x).
func (m machine) awsMajor() string {
	v := m.Tools["aws-cli"]
	switch {
	case strings.HasPrefix(v, "aws-cli/1."):
		return "v1"
	case strings.HasPrefix(v, "aws-cli/2."):
		return "v2"
	}
	return "unknown version"
}

func (b *bench) printMachine() {
	m := b.machine
	fmt.Printf("\n# s3bak bench\n\nmachine: %d CPUs (%s), %.1f GiB memory, Linux %s, %s\n", m.CPUs, m.CPUModel, m.MemGiB, m.Kernel, m.Go)
	fmt.Printf("s3bak built from %s\n", m.Commit)
	fmt.Printf("working directory on %s\n", m.WorkFS)
	if b.noJournal {
		fmt.Println("  WARNING: ext4 without a journal slows a download of many files after the bench's removals by")
		fmt.Println("  seconds, whatever the tool (bench/README.md, \"Where the bench works\"): give -workdir on a")
		fmt.Println("  journaled file system, e.g. `make bench-fs` and -workdir /mnt/s3bak-bench")
	}
	for _, k := range []string{"s3bak", "minio", "s5cmd", "aws-cli", "zstd", "tar"} {
		if v, ok := m.Tools[k]; ok {
			fmt.Printf("  %-8s %s\n", k, v)
		} else {
			fmt.Printf("  %-8s absent: its rows are skipped\n", k)
		}
	}
	if m.Tools["aws-cli"] != "" {
		fmt.Printf("  aws-cli is %s (default settings: 10 concurrent requests, 8 MiB parts)\n", m.awsMajor())
	}
	fmt.Printf("  MinIO at %s (single drive, on this machine: it shares the CPUs with the tool measured)\n", b.srv.URL)
}

// checkout is the repository's commit, and whether the s3bak sources
// differ from it (others may be editing the same checkout).
func checkout(ctx context.Context, repo string) string {
	rev, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	out := strings.TrimSpace(string(rev))
	dirty, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain", "--", "cmd", "pkg", "go.mod", "go.sum").Output()
	if err == nil && len(strings.TrimSpace(string(dirty))) > 0 {
		out += " with uncommitted changes to cmd/, pkg/ or go.mod"
	}
	return out
}

func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
