package main

import (
	"fmt"
	"io"
	"slices"
)

// target is one goal of issue #3, #14 or #18, reported and never asserted.
type target struct {
	Name string  `json:"name"`
	Want float64 `json:"want"`
	Got  float64 `json:"got,omitempty"`
	Unit string  `json:"unit"`
	Met  *bool   `json:"met"` // null: not measured
	Note string  `json:"note,omitempty"`
}

// tarPipe is the tar | zstd | s5cmd upload row's name.
const tarPipe = "tar | zstd -T0 -3 | s5cmd pipe"

// evaluateTargets: issue #18's on loopback (which raised #3's) — backup ≥
// 2× s5cmd upload and ≥ 1.3× the tar pipe, restore ≥ 1.5× s5cmd download,
// on the default set; the large file's backup ≥ 1.2× s5cmd; the small
// files' backup ≥ 1.0× the tar pipe; #3's backup ≥ 2× aws-cli upload;
// s3bak's peak RSS ≤ 256 MiB in every row; then the network section's
// and the files section's.
func evaluateTargets(secs []*section) []target {
	byName := map[string]*section{}
	for _, s := range secs {
		byName[s.Name] = s
	}
	d := byName["default"]
	out := []target{
		ratioTarget(d, "s5cmd upload", "s3bak backup MB/s ≥ 2× s5cmd upload (default set)", 2),
		ratioTarget(d, tarPipe, "s3bak backup MB/s ≥ 1.3× tar | zstd | s5cmd (default set)", 1.3),
		ratioTarget(d, "aws-cli upload", "s3bak backup MB/s ≥ 2× aws-cli upload (default set)", 2),
		ratioTarget(d, "s5cmd download", "s3bak restore MB/s ≥ 1.5× s5cmd download (default set)", 1.5),
		ratioTarget(byName["big"], "s5cmd upload", "s3bak backup MB/s ≥ 1.2× s5cmd upload (large file)", 1.2),
		ratioTarget(byName["small"], tarPipe, "s3bak backup MB/s ≥ 1.0× tar | zstd | s5cmd (small files)", 1),
		rssEveryRow(secs, 256),
	}
	out = append(out, networkTargets(byName)...)
	return append(out, filesTargets(byName["files"])...)
}

// rssEveryRow: the largest peak RSS of any s3bak row (every row but the
// peers' uploads and downloads) of any section but the files section's,
// which has a target of its own per N.
func rssEveryRow(secs []*section, want float64) target {
	t := target{Want: want, Unit: "MiB", Name: fmt.Sprintf("s3bak peak RSS ≤ %.0f MiB with defaults, every row", want)}
	var worst string
	for _, s := range secs {
		if s.Name == "files" {
			continue
		}
		for _, r := range s.Rows {
			if r.Op == "upload" || r.Op == "download" || r.problem() != "" || r.PeakRSSMiB == 0 {
				continue
			}
			if worst == "" || r.PeakRSSMiB > t.Got {
				t.Got, worst = r.PeakRSSMiB, s.Name+": "+r.Tool
			}
		}
	}
	if worst == "" {
		t.Note = "not measured"
		return t
	}
	t.Name += ", largest: " + worst
	met := t.Got <= want
	t.Met = &met
	return t
}

// networkTargets are issue #18's on the network section: backup and
// restore ≥ 2× s5cmd on the default set, ≥ 10× on the small files.
func networkTargets(byName map[string]*section) []target {
	var out []target
	for _, set := range []struct {
		sec, label string
		want       float64
	}{{"network-default", "default set", 2}, {"network-small", "small files", 10}} {
		s := byName[set.sec]
		out = append(out,
			ratioTarget(s, "s5cmd upload", fmt.Sprintf("network: s3bak backup MB/s ≥ %.0f× s5cmd upload (%s)", set.want, set.label), set.want),
			ratioTarget(s, "s5cmd download", fmt.Sprintf("network: s3bak restore MB/s ≥ %.0f× s5cmd download (%s)", set.want, set.label), set.want))
	}
	return out
}

// filesTargets are issue #14's, on the files section: peak RSS ≤ 256 MiB
// for every command at every file count; backup time per file at the
// largest count within 1.5× of that at 40,000; ≥ 20,000 files/s backup
// and ≥ 10,000 files/s restore at the largest count; a second backup of
// the unchanged snapshot ≤ 30 s at 1,000,000 files; list ≤ 0.5 s and ≤
// 64 MiB at every count; catalog ≤ 120 bytes per file at every count.
func filesTargets(s *section) []target {
	const million = 1000000
	var counts []int
	if s != nil {
		for _, r := range s.Rows {
			if !slices.Contains(counts, r.Files) {
				counts = append(counts, r.Files)
			}
		}
		slices.Sort(counts)
	}
	if len(counts) == 0 {
		var out []target
		for _, t := range []target{
			{Name: "files: peak RSS ≤ 256 MiB, every command, every -files N", Want: 256, Unit: "MiB"},
			{Name: "files: backup time per file at the largest N ≤ 1.5× that at 40,000", Want: 1.5, Unit: "×"},
			{Name: "files: backup ≥ 20,000 files/s", Want: 20000, Unit: "files/s"},
			{Name: "files: second backup, unchanged, ≤ 30 s at 1,000,000 files", Want: 30, Unit: "s"},
			{Name: "files: list (100 backups) ≤ 0.5 s", Want: 0.5, Unit: "s"},
			{Name: "files: list (100 backups) peak RSS ≤ 64 MiB", Want: 64, Unit: "MiB"},
			{Name: "files: catalog ≤ 120 bytes per file", Want: 120, Unit: "B/file"},
			{Name: "files: restore ≥ 10,000 files/s", Want: 10000, Unit: "files/s"},
		} {
			t.Note = "section not run"
			out = append(out, t)
		}
		return out
	}
	ok := func(r *row) bool { return r != nil && r.problem() == "" && r.MedianWallS > 0 }
	largest := counts[len(counts)-1]
	var out []target
	for _, n := range counts {
		t := target{Name: fmt.Sprintf("files: peak RSS ≤ 256 MiB, every command (%d files)", n), Want: 256, Unit: "MiB"}
		measured, worst := 0, ""
		for _, st := range filesSteps {
			if r := s.findFiles(n, st.op); ok(r) {
				measured++
				if r.PeakRSSMiB >= t.Got {
					t.Got, worst = r.PeakRSSMiB, st.tool
				}
			}
		}
		if measured < len(filesSteps) {
			t.Note = fmt.Sprintf("%d of %d commands measured", measured, len(filesSteps))
		}
		if measured > 0 {
			t.Name += ", largest: " + worst
			out = append(out, t.check(t.Got <= t.Want))
		} else {
			out = append(out, t)
		}
	}
	linear := target{Name: fmt.Sprintf("files: backup time per file at %d files ≤ 1.5× that at 40,000", largest), Want: 1.5, Unit: "×"}
	if big, base := s.findFiles(largest, "backup"), s.findFiles(40000, "backup"); largest <= 40000 || base == nil {
		linear.Note = "needs -files with 40000 and a larger count"
	} else if ok(big) && ok(base) {
		linear.Got = round3(big.MedianWallS / float64(largest) / (base.MedianWallS / 40000))
		linear = linear.check(linear.Got <= linear.Want)
	} else {
		linear.Note = "not measured"
	}
	out = append(out, linear)
	out = append(out, filesRate(s, largest, "backup", 20000), filesRate(s, largest, "restore", 10000))
	again := target{Name: "files: second backup, unchanged, ≤ 30 s at 1,000,000 files", Want: 30, Unit: "s"}
	if r := s.findFiles(largest, "again"); largest < million {
		again.Note = "needs -files 1000000"
		if ok(r) {
			again.Note += fmt.Sprintf(" (at %d files: %.2f s)", largest, r.MedianWallS)
		}
	} else if ok(r) {
		again.Name = fmt.Sprintf("files: second backup, unchanged, ≤ 30 s at %d files", largest)
		again.Got = r.MedianWallS
		again = again.check(again.Got <= again.Want)
	} else {
		again.Note = "not measured"
	}
	out = append(out, again)
	out = append(out, filesWorst(s, counts, "list", "files: list (100 backups) ≤ 0.5 s, every N", 0.5, "s", func(r *row) float64 { return r.MedianWallS }))
	out = append(out, filesWorst(s, counts, "list", "files: list (100 backups) peak RSS ≤ 64 MiB, every N", 64, "MiB", func(r *row) float64 { return r.PeakRSSMiB }))
	out = append(out, filesWorst(s, counts, "backup", "files: catalog ≤ 120 bytes per file, every N", 120, "B/file", func(r *row) float64 {
		v, _ := r.Info["catalog_bytes_per_file"].(float64)
		return v
	}))
	return out
}

// check sets whether the target is met.
func (t target) check(met bool) target {
	t.Met = &met
	return t
}

// filesRate: at least want files per second for op at n files.
func filesRate(s *section, n int, op string, want float64) target {
	t := target{Name: fmt.Sprintf("files: %s ≥ %.0f files/s (%d files)", op, want, n), Want: want, Unit: "files/s"}
	r := s.findFiles(n, op)
	if r == nil || r.problem() != "" {
		t.Note = "not measured"
		return t
	}
	v, has := r.Info["files_per_s"].(float64)
	if !has {
		t.Note = "not measured"
		return t
	}
	t.Got = v
	return t.check(v >= want)
}

// filesWorst: the largest value over the counts at most want.
func filesWorst(s *section, counts []int, op, name string, want float64, unit string, value func(*row) float64) target {
	t := target{Name: name, Want: want, Unit: unit}
	measured := 0
	for _, n := range counts {
		r := s.findFiles(n, op)
		if r == nil || r.problem() != "" {
			continue
		}
		if v := value(r); v > 0 || measured == 0 {
			t.Got = max(t.Got, v)
			measured++
		}
	}
	if measured == 0 {
		t.Note = "not measured"
		return t
	}
	return t.check(t.Got <= want)
}

func ratioTarget(s *section, peer, name string, want float64) target {
	t := target{Name: name, Want: want, Unit: "×"}
	if s == nil {
		t.Note = "section not run"
		return t
	}
	r := s.find(peer)
	if r == nil || r.Ratio == 0 {
		t.Note = "not measured"
		if r != nil && r.problem() != "" {
			t.Note = r.problem()
		}
		return t
	}
	t.Got = r.Ratio
	met := r.Ratio >= want
	t.Met = &met
	return t
}

func printTargets(w io.Writer, ts []target) {
	fmt.Fprintln(w, "\n## Targets (issues #3, #14 and #18): reported, not asserted")
	fmt.Fprintln(w, "\n| target | measured | met |")
	fmt.Fprintln(w, "|---|---:|---|")
	for _, t := range ts {
		got, met := t.Note, "—"
		if t.Met != nil {
			switch t.Unit {
			case "MiB", "files/s":
				got = fmt.Sprintf("%.0f %s", t.Got, t.Unit)
			case "s", "B/file":
				got = fmt.Sprintf("%.2f %s", t.Got, t.Unit)
			default:
				got = fmt.Sprintf("%.2f%s", t.Got, t.Unit)
			}
			if t.Note != "" {
				got += " (" + t.Note + ")"
			}
			met = "not met"
			if *t.Met {
				met = "met"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.Name, got, met)
	}
}
