package main

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/s3bak/s3bak/pkg/units"
)

// progressBar counts raw bytes; Finish clears it.
type progressBar interface {
	Add(n int64)
	Finish()
}

type nopBar struct{}

func (nopBar) Add(int64) {}
func (nopBar) Finish()   {}

type terminalBar struct{ b *progressbar.ProgressBar }

func (t terminalBar) Add(n int64) { _ = t.b.Add64(n) }
func (t terminalBar) Finish()     { _ = t.b.Finish(); _ = t.b.Exit() }

// progress shows a bar (bytes, rate, ETA) when stderr is a terminal, and
// otherwise logs a progress record every --progress-interval, so that a
// long cron run shows life. The bytes are those done: acknowledged by S3
// (backup), on disk (restore), checked (verify).
func (g *globalOptions) progress(total int64, files int, what string) progressBar {
	if !isTerminal(g.stderr) {
		if g.progressInterval <= 0 || g.logger == nil {
			return nopBar{}
		}
		return newLogBar(g.logger.With("files", files), what, total, g.progressInterval)
	}
	if g.noProgress {
		return nopBar{}
	}
	return terminalBar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(what+" "+units.Plural(files, "file")),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionFullWidth(),
		// The finished bar stays; what is logged after it starts below it.
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(g.stderr) }),
	)}
}

// logBar logs the progress of a run off a terminal: done and total bytes,
// the rate since the start and an estimate of what is left.
type logBar struct {
	log   *slog.Logger
	what  string
	total int64
	start time.Time
	done  atomic.Int64
	// reported is whether a record was logged: a short run logs none.
	reported atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func newLogBar(log *slog.Logger, what string, total int64, every time.Duration) *logBar {
	b := &logBar{log: log, what: what, total: total, start: time.Now(), stop: make(chan struct{})}
	b.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.report()
			}
		}
	})
	return b
}

func (b *logBar) Add(n int64) { b.done.Add(n) }

// Finish stops the records; a run that logged progress logs its last.
func (b *logBar) Finish() {
	b.once.Do(func() {
		close(b.stop)
		b.wg.Wait()
		if b.reported.Load() {
			b.report()
		}
	})
}

func (b *logBar) report() {
	done, elapsed := b.done.Load(), time.Since(b.start)
	attrs := []any{"what", b.what, "done_bytes", done, "total_bytes", b.total, "elapsed", elapsed.Round(time.Second).String()}
	if b.total > 0 {
		attrs = append(attrs, "percent", float64(int(1000*float64(done)/float64(b.total)))/10)
	}
	if rate := float64(done) / elapsed.Seconds(); rate > 0 {
		attrs = append(attrs, "bytes_per_second", int64(rate))
		if left := b.total - done; left > 0 {
			attrs = append(attrs, "eta", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String())
		}
	}
	b.log.Info("progress", attrs...)
	b.reported.Store(true)
}
