package main

import (
	"encoding/json"
	"os"
	"slices"
	"time"
)

// results is everything one run measured; bench/results.json holds it.
type results struct {
	Machine  machine        `json:"machine"`
	Config   map[string]any `json:"config"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Sections []*section     `json:"sections"`
	Targets  []target       `json:"targets"`
}

// section is one data set (or catalog item) and its rows.
type section struct {
	Name     string   `json:"name"`
	Title    string   `json:"title"`
	Layout   string   `json:"layout"` // transfer, incremental or list: which table prints it
	Files    int      `json:"files"`
	RawBytes int64    `json:"raw_bytes"`
	Rows     []*row   `json:"rows"`
	Notes    []string `json:"notes,omitempty"`
	// Network is the proxy's settings, in the network section.
	Network *netSettings `json:"network,omitempty"`
}

// row is one tool doing one thing, over the rounds.
type row struct {
	Tool        string         `json:"tool"`
	Op          string         `json:"op"`              // upload, download, backup, list, …
	Files       int            `json:"files,omitempty"` // the files section: the snapshot's file count
	Runs        []roundRun     `json:"runs"`
	MedianWallS float64        `json:"median_wall_s"`
	MedianCPUS  float64        `json:"median_cpu_s,omitempty"`        // user + system of the tool's processes
	MedianSrvS  float64        `json:"median_server_cpu_s,omitempty"` // MinIO's meanwhile
	MedianProxy float64        `json:"median_proxy_cpu_s,omitempty"`  // the network section's proxy's meanwhile
	MedianSteal float64        `json:"median_steal_pct"`              // the host's steal, percent of the machine's CPU time; -1: unknown
	MBps        float64        `json:"mb_per_s,omitempty"`            // raw bytes ÷ median wall, 10^6 bytes
	PeakRSSMiB  float64        `json:"peak_rss_mib"`                  // largest over the rounds
	Ratio       float64        `json:"s3bak_ratio,omitempty"`
	StoredBytes int64          `json:"stored_bytes,omitempty"` // in the bucket after the upload
	Info        map[string]any `json:"info,omitempty"`
	Error       string         `json:"error,omitempty"`
	Skipped     string         `json:"skipped,omitempty"`
	bytes       int64          // raw bytes one run moves
}

// roundRun is one round of a row.
type roundRun struct {
	Round       int       `json:"round"`
	WallS       float64   `json:"wall_s"`
	CPUS        float64   `json:"cpu_s,omitempty"`
	ServerCPUS  float64   `json:"server_cpu_s,omitempty"`
	ProxyCPUS   float64   `json:"proxy_cpu_s,omitempty"` // the network section's proxy
	Requests    int64     `json:"proxy_requests,omitempty"`
	Conns       int64     `json:"proxy_conns,omitempty"`
	RSSMiB      float64   `json:"rss_mib"`
	StealPct    float64   `json:"steal_pct"` // the host's share of the machine's CPU time meanwhile; -1: unknown
	StageRSSMiB []float64 `json:"stage_rss_mib,omitempty"`
}

func (s *section) row(tool, op string, bytes int64) *row {
	for _, r := range s.Rows {
		if r.Tool == tool {
			return r
		}
	}
	r := &row{Tool: tool, Op: op, bytes: bytes}
	s.Rows = append(s.Rows, r)
	return r
}

func (s *section) find(tool string) *row {
	for _, r := range s.Rows {
		if r.Tool == tool {
			return r
		}
	}
	return nil
}

// add records one round's measure.
func (r *row) add(round int, m *measure) {
	ru := roundRun{Round: round, WallS: round3(m.wall.Seconds()), CPUS: round3(m.cpu.Seconds()),
		ServerCPUS: round3(m.server.Seconds()), RSSMiB: mib(m.rss), StealPct: m.steal}
	if m.proxy != nil {
		ru.ProxyCPUS, ru.Requests, ru.Conns = round3(m.proxyCPU.Seconds()), m.proxy.Requests, m.proxy.Conns
	}
	if len(m.stageRSS) > 1 {
		for _, s := range m.stageRSS {
			ru.StageRSSMiB = append(ru.StageRSSMiB, mib(s))
		}
	}
	r.Runs = append(r.Runs, ru)
}

func (r *row) fail(err error) {
	if r.Error == "" {
		r.Error = err.Error()
	}
}

// finish computes the medians, MB/s and peaks.
func (r *row) finish() {
	if len(r.Runs) == 0 {
		return
	}
	walls := make([]float64, 0, len(r.Runs))
	cpus := make([]float64, 0, len(r.Runs))
	srv := make([]float64, 0, len(r.Runs))
	proxy := make([]float64, 0, len(r.Runs))
	steal := make([]float64, 0, len(r.Runs))
	for _, ru := range r.Runs {
		steal = append(steal, ru.StealPct)
		walls = append(walls, ru.WallS)
		cpus = append(cpus, ru.CPUS)
		srv = append(srv, ru.ServerCPUS)
		proxy = append(proxy, ru.ProxyCPUS)
		r.PeakRSSMiB = max(r.PeakRSSMiB, ru.RSSMiB)
	}
	r.MedianWallS = round3(median(walls))
	r.MedianCPUS = round3(median(cpus))
	r.MedianSrvS = round3(median(srv))
	r.MedianProxy = round3(median(proxy))
	if r.MedianSteal = median(steal); r.MedianSteal >= 0 {
		r.MedianSteal = round1(r.MedianSteal)
	}
	if r.bytes > 0 && r.MedianWallS > 0 {
		r.MBps = round1(float64(r.bytes) / 1e6 / r.MedianWallS)
	}
}

// finishRatios sets every peer row's s3bak MB/s ÷ its MB/s, same direction.
func (s *section) finishRatios() {
	up, down := s.find("s3bak backup"), s.find("s3bak restore")
	for _, r := range s.Rows {
		ref := up
		if r.Op == "download" {
			ref = down
		}
		if ref == nil || ref == r || r.Op == "backup" || r.Op == "restore" || r.MBps == 0 || ref.MBps == 0 || ref.Error != "" {
			continue
		}
		r.Ratio = round3(ref.MBps / r.MBps)
	}
}

func (res *results) ok() bool {
	for _, s := range res.Sections {
		for _, r := range s.Rows {
			if r.Error != "" {
				return false
			}
		}
	}
	return true
}

func writeJSON(path string, res *results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mib(b int64) float64      { return round1(float64(b) / (1 << 20)) }
func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

func (c *config) describe() map[string]any {
	return map[string]any{
		"size": c.size, "big": c.big, "small": c.small, "min_small": c.minSmall, "manifests": c.manifests, "files": c.files,
		"incremental_pct": c.pct, "rounds": c.rounds, "sections": keys(c.sections), "tools": keys(c.tools), "seed": c.seed,
		"net_latency_ms": float64(c.netLatency) / 1e6, "net_bandwidth": c.netBandwidth,
		"s3bak_flags": c.s3bakFlags, "s3bak_backup_flags": c.s3bakBackupFlags,
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
