package main

import (
	"bytes"
	"context"
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
	bin  string
	args []string
	env  []string // added to the bench's environment
}

func cmd(bin string, args ...string) stage { return stage{bin: bin, args: args} }

func (s stage) String() string {
	return filepath.Base(s.bin) + " " + strings.Join(s.args, " ")
}

// measure is one timed run.
type measure struct {
	wall     time.Duration
	rss      int64   // peak RSS of the run: the largest of its stages', bytes
	stageRSS []int64 // per stage, bytes
	stdout   []byte  // the last stage's
	stderr   []byte  // every stage's, in order
}

// run starts the stages connected by pipes, waits for all of them and
// returns the wall time from the first start to the last exit, and each
// stage's peak RSS (rusage ru_maxrss, which covers the processes a stage
// waited for too).
func (b *bench) run(ctx context.Context, stages ...stage) (*measure, error) {
	cmds, closers, err := b.wire(ctx, stages)
	if err != nil {
		return nil, err
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
	m := &measure{wall: time.Since(start), stdout: stdout.Bytes()}
	for i, c := range cmds[:started] {
		var rss int64
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // KiB on Linux
		}
		m.stageRSS = append(m.stageRSS, rss)
		m.rss = max(m.rss, rss)
		m.stderr = append(m.stderr, errs[i].String()...)
	}
	if err != nil {
		return m, fmt.Errorf("start %s: %w", stages[started], err)
	}
	return m, errors.Join(waitErrs...)
}

// wire makes the commands and the pipes between them; closers are the
// parent's copies of the pipe ends, closed once the children started.
func (b *bench) wire(ctx context.Context, stages []stage) ([]*exec.Cmd, []*os.File, error) {
	cmds := make([]*exec.Cmd, len(stages))
	var closers []*os.File
	for i, s := range stages {
		c := exec.CommandContext(ctx, s.bin, s.args...)
		c.Env = append(append([]string{}, b.env...), s.env...)
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
