package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stage is one process of a run; a run of several is a shell-style
// pipeline, each stage its own process so each has its own rusage.
type stage struct {
	Bin  string   `json:"bin"`
	Args []string `json:"args"`
	Env  []string `json:"env"` // the whole environment
}

func cmd(bin string, args ...string) stage { return stage{Bin: bin, Args: args} }

func (s stage) String() string {
	return filepath.Base(s.Bin) + " " + strings.Join(s.Args, " ")
}

// measure is one timed run.
type measure struct {
	wall     time.Duration
	rss      int64         // peak RSS of the run: the largest of its stages', bytes
	cpu      time.Duration // user + system CPU of every stage
	server   time.Duration // MinIO's CPU meanwhile
	proxyCPU time.Duration // the network section's proxy's CPU meanwhile
	proxy    *proxyStats   // its counters over the run; nil without the proxy
	steal    float64       // percent of the machine's CPU time the host took meanwhile; -1: unknown
	stageRSS []int64       // per stage, bytes
	stdout   []byte        // the last stage's
	stderr   []byte        // the tail of every stage's, in order
}

// spawnEnv marks the bench's own process started as a spawner.
const spawnEnv = "S3BAK_BENCH_SPAWNER"

// run runs the stages and measures them. They are started by a small
// spawner process (this program again), not by the bench: Linux counts the
// RSS of the process that forks and execs a child into the child's
// ru_maxrss, and the bench holds hundreds of MiB of hashes and buffers
// where the spawner holds a few. The spawner times the stages itself, so
// its own start-up is not in the wall time.
func (b *bench) run(ctx context.Context, stages ...stage) (*measure, error) {
	for i := range stages {
		stages[i].Env = append(append(append([]string{}, b.env...), b.viaEnv()...), stages[i].Env...)
	}
	req, err := json.Marshal(stages)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := exec.CommandContext(ctx, self)
	c.Env = append(os.Environ(), spawnEnv+"=1")
	c.Stdin = bytes.NewReader(req)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	// Its own process group, so that an interrupted bench kills the tools too.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 10 * time.Second
	server, selfBefore, before := b.serverCPU(), selfCPU(), b.proxyStats()
	ticks, ticksOK := cpuStat()
	if before != nil {
		b.proxy.mark(stages)
	}
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("spawner: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	var res spawnResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("spawner's answer: %w", err)
	}
	ticks2, ticksOK2 := cpuStat()
	m := &measure{wall: time.Duration(res.WallNS), cpu: time.Duration(res.CPUNS), server: b.serverCPU() - server,
		stageRSS: res.RSS, stdout: res.Stdout, stderr: res.Stderr, steal: stealPct(ticks, ticks2, ticksOK && ticksOK2)}
	if before != nil {
		after := b.proxyStats()
		m.proxyCPU = selfCPU() - selfBefore
		m.proxy = &proxyStats{Conns: after.Conns - before.Conns, Requests: after.Requests - before.Requests,
			Up: after.Up - before.Up, Down: after.Down - before.Down}
	}
	for _, r := range res.RSS {
		m.rss = max(m.rss, r)
	}
	if res.Err != "" {
		return m, errors.New(res.Err)
	}
	return m, nil
}

// spawnResult is the spawner's answer.
type spawnResult struct {
	WallNS int64   `json:"wall_ns"`
	RSS    []int64 `json:"rss"`
	CPUNS  int64   `json:"cpu_ns"`
	Stdout []byte  `json:"stdout"`
	Stderr []byte  `json:"stderr"`
	Err    string  `json:"err,omitempty"`
}

// spawnerMain is the spawner: stages in on stdin, a spawnResult out.
func spawnerMain() {
	var stages []stage
	if err := json.NewDecoder(os.Stdin).Decode(&stages); err != nil || len(stages) == 0 {
		fmt.Fprintln(os.Stderr, "spawner: bad request:", err)
		os.Exit(2)
	}
	res := runStages(stages)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		os.Exit(2)
	}
}

// runStages starts the stages connected by pipes, waits for all of them
// and returns the wall time from the first start to the last exit, each
// stage's peak RSS (rusage ru_maxrss, which covers the processes a stage
// waited for too) and their CPU time.
func runStages(stages []stage) *spawnResult {
	cmds, closers, err := wire(stages)
	if err != nil {
		return &spawnResult{Err: err.Error()}
	}
	var stdout bytes.Buffer
	errs := make([]*tailBuffer, len(cmds))
	for i, c := range cmds {
		errs[i] = &tailBuffer{max: 16 << 10}
		c.Stderr = errs[i]
	}
	cmds[len(cmds)-1].Stdout = &stdout
	start := time.Now()
	started := 0
	for _, c := range cmds {
		if err = c.Start(); err != nil {
			break
		}
		started++
	}
	for _, f := range closers {
		f.Close() // the children hold their ends
	}
	var waitErrs []error
	for i, c := range cmds[:started] {
		if werr := c.Wait(); werr != nil {
			waitErrs = append(waitErrs, fmt.Errorf("%s: %w: %s", stages[i], werr, strings.TrimSpace(errs[i].String())))
		}
	}
	res := &spawnResult{WallNS: int64(time.Since(start)), Stdout: stdout.Bytes()}
	for i, c := range cmds[:started] {
		var rss int64
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // KiB on Linux
			res.CPUNS += ru.Utime.Nano() + ru.Stime.Nano()
		}
		res.RSS = append(res.RSS, rss)
		res.Stderr = append(res.Stderr, errs[i].String()...)
	}
	if err != nil {
		waitErrs = append(waitErrs, fmt.Errorf("start %s: %w", stages[started], err))
	}
	if err := errors.Join(waitErrs...); err != nil {
		res.Err = err.Error()
	}
	return res
}

// wire makes the commands and the pipes between them; closers are the
// spawner's copies of the pipe ends, closed once the children started.
func wire(stages []stage) ([]*exec.Cmd, []*os.File, error) {
	cmds := make([]*exec.Cmd, len(stages))
	var closers []*os.File
	for i, s := range stages {
		c := exec.Command(s.Bin, s.Args...)
		c.Env = s.Env
		c.WaitDelay = 10 * time.Second
		cmds[i] = c
		if i == 0 {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range closers {
				f.Close()
			}
			return nil, nil, err
		}
		cmds[i-1].Stdout, c.Stdin = w, r
		closers = append(closers, r, w)
	}
	return cmds, closers, nil
}

// tailBuffer keeps the last max bytes written: enough of a failing tool's
// stderr to explain it, without holding aws-cli's output of every file.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
