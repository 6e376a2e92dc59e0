package main

import (
	"maps"
	"testing"
)

// Issue #18's loopback targets find their peer rows (the tar pipe's too),
// and the RSS target takes the largest s3bak row of any section.
func TestLoopbackTargets(t *testing.T) {
	sec := func(name string, rows map[[2]string][2]float64) *section {
		s := &section{Name: name}
		for k, v := range rows {
			r := s.row(k[0], k[1], 1)
			r.Runs, r.MBps, r.PeakRSSMiB = []roundRun{{Round: 1, WallS: 1}}, v[0], v[1]
		}
		s.finishRatios()
		return s
	}
	def := sec("default", map[[2]string][2]float64{
		{"s3bak backup", "backup"}: {300, 200}, {"s3bak restore", "restore"}: {600, 140},
		{"s5cmd upload", "upload"}: {200, 60}, {"s5cmd download", "download"}: {500, 900},
		{tarPipe, "upload"}: {250, 300}, {"aws-cli upload", "upload"}: {100, 100},
	})
	big := sec("big", map[[2]string][2]float64{{"s3bak backup", "backup"}: {330, 260}, {"s5cmd upload", "upload"}: {300, 30}})
	small := sec("small", map[[2]string][2]float64{{"s3bak backup", "backup"}: {100, 80}, {tarPipe, "upload"}: {90, 50}})
	got := map[string]bool{}
	for _, tg := range evaluateTargets([]*section{def, big, small}) {
		if tg.Met != nil {
			got[tg.Name] = *tg.Met
		}
	}
	want := map[string]bool{
		"s3bak backup MB/s ≥ 2× s5cmd upload (default set)":                             false, // 1.5×
		"s3bak backup MB/s ≥ 1.3× tar | zstd | s5cmd (default set)":                     false, // 1.2×
		"s3bak backup MB/s ≥ 2× aws-cli upload (default set)":                           true,
		"s3bak restore MB/s ≥ 1.5× s5cmd download (default set)":                        false, // 1.2×
		"s3bak backup MB/s ≥ 1.2× s5cmd upload (large file)":                            false, // 1.1×
		"s3bak backup MB/s ≥ 1.0× tar | zstd | s5cmd (small files)":                     true,
		"s3bak peak RSS ≤ 256 MiB with defaults, every row, largest: big: s3bak backup": false, // 260, the peers' 900 not counted
	}
	if !maps.Equal(got, want) {
		t.Errorf("targets %v\nwant %v", got, want)
	}
}
