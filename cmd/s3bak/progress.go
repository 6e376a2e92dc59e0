package main

import (
	"time"

	"github.com/schollz/progressbar/v3"
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

// progress shows a bar (bytes, rate, ETA) only when stderr is a terminal:
// under cron the structured log says what happened.
func (g *globalOptions) progress(total int64, what string) progressBar {
	if g.noProgress || !isTerminal(g.stderr) {
		return nopBar{}
	}
	return terminalBar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)}
}
