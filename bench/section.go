package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func (b *bench) runSection(ctx context.Context, name string) (*section, error) {
	switch name {
	case "default":
		t, err := b.defaultTree()
		if err != nil {
			return nil, err
		}
		return b.compare(ctx, "default", "Default set: a node's snapshot", t)
	case "incremental":
		return b.incremental(ctx)
	case "small":
		t, err := b.smallTree()
		if err != nil {
			return nil, err
		}
		return b.compare(ctx, "small", b.smallTitle(), t)
	case "network-default", "network-small":
		return b.network(ctx, name)
	case "big":
		return b.generated(ctx, "big", "One large file ("+human(b.cfg.big)+" Data.db)", planBig(b.cfg.big, b.rng(2)))
	case "list":
		return b.listSection(ctx)
	case "files":
		return b.filesSection(ctx)
	}
	return nil, fmt.Errorf("unknown section %q", name)
}

func (b *bench) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(b.cfg.seed, stream)) }

// defaultTree generates the default set once: the incremental section
// reuses it.
func (b *bench) defaultTree() (*tree, error) {
	dir := filepath.Join(b.dir, "default", "data")
	if b.defaultSet != nil {
		return b.defaultSet, nil
	}
	p := planDefault(b.cfg.size, b.cfg.minSmall, b.rng(1))
	t, err := b.generate(dir, p)
	b.defaultSet, b.defaultPlan = t, p
	return t, err
}

// smallTree generates the small files once: the network section reuses
// them. Like the default set, they stay until the bench ends.
func (b *bench) smallTree() (*tree, error) {
	if b.smallSet != nil {
		return b.smallSet, nil
	}
	t, err := b.generate(filepath.Join(b.dir, "small", "data"), planSmall(b.cfg.small, b.rng(3)))
	b.smallSet = t
	return t, err
}

func (b *bench) smallTitle() string { return fmt.Sprintf("%d small files (~4 KiB)", b.cfg.small) }

// generated runs a transfer section on a tree that is removed afterwards.
func (b *bench) generated(ctx context.Context, name, title string, p *plan) (*section, error) {
	dir := filepath.Join(b.dir, name, "data")
	t, err := b.generate(dir, p)
	if err != nil {
		return nil, err
	}
	if !b.cfg.keep { // -keep: the tree stays, e.g. for a profile of one command on it
		defer os.RemoveAll(filepath.Dir(dir))
	}
	return b.compare(ctx, name, title, t)
}

func (b *bench) generate(dir string, p *plan) (*tree, error) {
	start := time.Now()
	fmt.Printf("\ngenerating %d files under %s ...", len(p.specs), dir)
	t, err := writeTree(dir, p, b.cfg.seed)
	if err != nil {
		return nil, err
	}
	fmt.Printf(" %s in %s\n", human(t.bytes), time.Since(start).Round(time.Millisecond))
	return t, nil
}

// compare runs every peer on the tree, interleaved: each round runs every
// peer once (upload, then download and verify), in an order rotated by the
// round, so that a slow drift of the machine spreads over all of them.
func (b *bench) compare(ctx context.Context, name, title string, t *tree) (*section, error) {
	sec := &section{Name: name, Title: title, Layout: "transfer", Files: len(t.files), RawBytes: t.bytes}
	var active []*peer
	for _, p := range peers() {
		if !b.cfg.tools[p.key] {
			continue
		}
		up, down := sec.row(p.up, "upload", t.bytes), sec.row(p.down, "download", t.bytes)
		if p.key == "s3bak" {
			up.Op, down.Op = "backup", "restore"
		}
		if why := p.missing(b); why != "" {
			up.Skipped, down.Skipped = why, why
			sec.Notes = append(sec.Notes, p.key+" skipped: "+why)
			continue
		}
		active = append(active, p)
	}
	for round := 1; round <= b.cfg.rounds; round++ {
		for i := range active {
			p := active[(i+round-1)%len(active)]
			if err := b.roundTrip(ctx, sec, p, t, round); err != nil {
				return nil, err
			}
		}
	}
	for _, r := range sec.Rows {
		r.finish()
	}
	sec.finishRatios()
	b.noteAWS(sec)
	return sec, nil
}

// roundTrip uploads, downloads and verifies with one peer. A failing tool
// marks its rows and is not run again; only a failure of the bench itself
// (MinIO, the disk) is returned.
func (b *bench) roundTrip(ctx context.Context, sec *section, p *peer, t *tree, round int) error {
	up, down := sec.find(p.up), sec.find(p.down)
	if up.Error != "" || down.Error != "" {
		return nil
	}
	bucket, err := b.newBucket(ctx, sec.Name+"-"+p.key)
	if err != nil {
		return err
	}
	j := &job{t: t, bucket: bucket, out: b.outDir(bucket), node: "node-" + strconv.Itoa(round)}
	fmt.Printf("  round %d: %-32s", round, p.up)
	b.settle() // untimed: the generated tree's writeback must not land in a tool's time
	m, err := p.upload(ctx, b, j)
	if err != nil {
		up.fail(err)
		fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
		return b.dropBucket(ctx, bucket, j.out)
	}
	up.add(round, m)
	up.StoredBytes = b.storedBytes(ctx, bucket)
	fmt.Printf(" %7.2f s %6.0f MiB RSS%s\n", m.wall.Seconds(), mib(m.rss), stealNote(m))
	fmt.Printf("  round %d: %-32s", round, p.down)
	b.settle() // start with no dirty pages of the steps before
	if m, err = p.download(ctx, b, j); err == nil {
		m.wall += flush(j.out)
		err = verifyTree(j.out, p.want(t))
	}
	if err != nil {
		down.fail(err)
		fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
	} else {
		down.add(round, m)
		fmt.Printf(" %7.2f s %6.0f MiB RSS, verified%s\n", m.wall.Seconds(), mib(m.rss), stealNote(m))
	}
	return b.dropBucket(ctx, bucket, j.out)
}

// settle prepares a step, untimed: every file system written to disk (sync
// -f of the work directory alone left the writeback of the loop device's
// backing file, make bench-fs, to the next step; twice, since the loop's
// file system writes into the backing file's while the first runs), and
// the machine idle: MinIO empties a removed bucket's objects in the
// background, and the kernel frees (discards) a removed tree's blocks
// through the loop device. The step after a section's generation — s3bak's
// backup, first in the first round — otherwise ran 20-60% slower on the
// small files than in the second round, and the step after a 4 GiB tree was
// removed up to 30% slower (session 13, bench/README.md). Idle: MinIO used
// at most a tick of CPU, and the machine's CPUs (steal aside) were busy
// less than idleBusy of idleWindow; after idleWait the step goes on
// whatever the machine does.
func (b *bench) settle() {
	for range 2 {
		_ = exec.Command("sync").Run()
	}
	for deadline := time.Now().Add(idleWait); time.Now().Before(deadline); {
		server := b.serverCPU()
		t, ok := cpuStat()
		time.Sleep(idleWindow)
		t2, ok2 := cpuStat()
		busy, total := t2.busy-t.busy, (t2.total-t2.steal)-(t.total-t.steal)
		quiet := !ok || !ok2 || total <= 0 || float64(busy) <= idleBusy*float64(total)
		if b.serverCPU()-server <= clockTick && quiet {
			return
		}
	}
}

const (
	idleWindow = 250 * time.Millisecond
	idleWait   = 30 * time.Second
	idleBusy   = 0.05 // of all CPUs' time
)

// cpuStat is the machine's CPU time so far, in USER_HZ ticks (cpuTicks).
func cpuStat() (cpuTicks, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTicks{}, false
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	return cpuTicks{busy: busy, steal: v[7], total: busy + v[3] + v[4] + v[7]}, true
}

// cpuTicks are the machine's CPU time so far, all CPUs, in clock ticks.
type cpuTicks struct {
	busy  int64 // user, nice, system, irq, softirq
	steal int64 // taken by the host for others: a virtual machine's CPUs wait
	total int64 // all of it, idle and steal included
}

// stealPct is the share of the machine's CPU time the host took between
// two readings, in percent; -1 when unknown.
func stealPct(a, b cpuTicks, ok bool) float64 {
	if !ok || b.total <= a.total {
		return -1
	}
	return round1(100 * float64(b.steal-a.steal) / float64(b.total-a.total))
}

// flush writes the file system of dir to disk and says how long that took.
// A download counts until its files are durable: s3bak flushes before it
// reports success, its peers leave dirty pages behind, so every tool's
// download is followed by the same timed sync -f (about zero for s3bak).
func flush(dir string) time.Duration {
	start := time.Now()
	_ = exec.Command("sync", "-f", dir).Run()
	return time.Since(start)
}

var duRE = regexp.MustCompile(`^(\d+) bytes in (\d+) objects`)

// storedBytes is what the bucket holds, by s5cmd du.
func (b *bench) storedBytes(ctx context.Context, bucket string) int64 {
	m, err := b.run(ctx, b.s5cmdDirect("du", "s3://"+bucket+"/*"))
	if err != nil {
		return 0
	}
	if g := duRE.FindSubmatch([]byte(strings.TrimSpace(string(m.stdout)))); g != nil {
		n, _ := strconv.ParseInt(string(g[1]), 10, 64)
		return n
	}
	return 0
}

func (b *bench) noteAWS(sec *section) {
	if r := sec.find("aws-cli upload"); r != nil && r.Skipped == "" {
		sec.Notes = append(sec.Notes, "aws-cli is "+b.machine.awsMajor()+" ("+b.machine.Tools["aws-cli"]+"), default settings")
	}
}
