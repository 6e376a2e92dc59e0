// Package purge applies a retention policy to a node's backups: it deletes
// the manifests the policy does not keep, then garbage-collects the stored
// contents no remaining manifest references (mark and sweep, with a grace
// period), and drops what dead runs left behind.
package purge

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Policy says which backups to keep, as restic's forget does: a backup kept
// by any rule stays.
type Policy struct {
	Last    int           // the newest N
	Within  time.Duration // all within this span of the newest backup
	Daily   int           // the newest of each of the last N days with a backup
	Weekly  int           // … ISO weeks
	Monthly int           // … months
}

// ErrNoPolicy refuses a purge that would keep nothing by accident.
var ErrNoPolicy = errors.New("no retention rule: give at least one of --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly")

// Validate refuses an empty or negative policy.
func (p Policy) Validate() error {
	if p.Last < 0 || p.Within < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return errors.New("retention counts and durations must not be negative")
	}
	if p == (Policy{}) {
		return ErrNoPolicy
	}
	return nil
}

// Backup is one backup as retention sees it.
type Backup struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Reasons []string  `json:"reasons,omitempty"` // why it is kept
}

// Apply splits backups into those kept (with the rules that keep them) and
// those to remove. A backup whose time is unknown is always kept.
func (p Policy) Apply(backups []Backup) (keep, remove []Backup) {
	list := slices.Clone(backups)
	slices.SortFunc(list, func(a, b Backup) int { return b.Time.Compare(a.Time) }) // newest first
	if len(list) == 0 {
		return nil, nil
	}
	newest := list[0].Time
	buckets := []struct {
		n    int
		name string
		key  func(time.Time) string
	}{
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
	}
	seen := make([]map[string]bool, len(buckets))
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	for i, b := range list {
		b.Reasons = nil
		switch {
		case b.Time.IsZero():
			b.Reasons = append(b.Reasons, "unknown time")
		case i < p.Last:
			b.Reasons = append(b.Reasons, "last")
		}
		if p.Within > 0 && !b.Time.IsZero() && !b.Time.Before(newest.Add(-p.Within)) {
			b.Reasons = append(b.Reasons, "within "+p.Within.String())
		}
		for j, bk := range buckets {
			k := bk.key(b.Time.UTC())
			if b.Time.IsZero() || bk.n == 0 || seen[j][k] || len(seen[j]) >= bk.n {
				continue
			}
			seen[j][k] = true
			b.Reasons = append(b.Reasons, bk.name+" "+k)
		}
		if len(b.Reasons) > 0 {
			keep = append(keep, b)
		} else {
			remove = append(remove, b)
		}
	}
	return keep, remove
}

// ParseDuration reads --keep-within and --grace: Go durations plus days
// and weeks ("30d", "2w", "36h").
func ParseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("duration %q: want e.g. 30d, 2w or 36h", s)
			}
			return time.Duration(v * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 30d, 2w or 36h", s)
	}
	return d, nil
}
