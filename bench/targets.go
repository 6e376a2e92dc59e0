package main

import (
	"fmt"
	"io"
)

// target is one goal of issue #3, reported and never asserted.
type target struct {
	Name string  `json:"name"`
	Want float64 `json:"want"`
	Got  float64 `json:"got,omitempty"`
	Unit string  `json:"unit"`
	Met  *bool   `json:"met"` // null: not measured
	Note string  `json:"note,omitempty"`
}

// evaluateTargets: backup ≥ 1.3× s5cmd upload and ≥ 2× aws-cli upload,
// restore ≥ 1.0× s5cmd download, on the default set; s3bak's peak RSS ≤
// 256 MiB with defaults, on the default set and on the large file.
func evaluateTargets(secs []*section) []target {
	byName := map[string]*section{}
	for _, s := range secs {
		byName[s.Name] = s
	}
	d := byName["default"]
	out := []target{
		ratioTarget(d, "s5cmd upload", "s3bak backup MB/s ≥ 1.3× s5cmd upload (default set)", 1.3),
		ratioTarget(d, "aws-cli upload", "s3bak backup MB/s ≥ 2× aws-cli upload (default set)", 2),
		ratioTarget(d, "s5cmd download", "s3bak restore MB/s ≥ 1.0× s5cmd download (default set)", 1),
	}
	for _, sec := range [][2]string{{"default", "default set"}, {"big", "large file"}} {
		for _, tool := range []string{"s3bak backup", "s3bak restore"} {
			out = append(out, rssTarget(byName[sec[0]], sec[1], tool, 256))
		}
	}
	return out
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

func rssTarget(s *section, label, tool string, want float64) target {
	t := target{Want: want, Unit: "MiB", Name: fmt.Sprintf("%s peak RSS ≤ %.0f MiB with defaults (%s)", tool, want, label)}
	if s == nil {
		t.Note = "section not run"
		return t
	}
	r := s.find(tool)
	if r == nil || r.problem() != "" {
		t.Note = "not measured"
		return t
	}
	t.Got = r.PeakRSSMiB
	met := r.PeakRSSMiB <= want
	t.Met = &met
	return t
}

func printTargets(w io.Writer, ts []target) {
	fmt.Fprintln(w, "\n## Targets (issue #3): reported, not asserted")
	fmt.Fprintln(w, "\n| target | measured | met |")
	fmt.Fprintln(w, "|---|---:|---|")
	for _, t := range ts {
		got, met := t.Note, "—"
		if t.Met != nil {
			got = fmt.Sprintf("%.2f%s", t.Got, t.Unit)
			if t.Unit == "MiB" {
				got = fmt.Sprintf("%.0f MiB", t.Got)
			}
			met = "not met"
			if *t.Met {
				met = "met"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.Name, got, met)
	}
}
