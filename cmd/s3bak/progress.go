package main

import (
	"fmt"
	"strconv"
	"strings"
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

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1000}, {"mb", 1000_000}, {"gb", 1000_000_000}, {"tb", 1000_000_000_000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1},
}

// parseSize reads sizes such as 16MiB, 512k or 1048576.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, …)", s)
	}
	return int64(n * float64(mult)), nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
