package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// netSettings are the network section's proxy settings, in results.json.
type netSettings struct {
	LatencyMS      float64 `json:"latency_ms"`      // first-byte delay of every response
	BandwidthBytes int64   `json:"bandwidth_bytes"` // per connection, each direction, a second; 0: no cap
	ProxyCPU       string  `json:"proxy_cpu"`       // how its CPU is measured
}

// network runs the default set's or the small files' comparison with every
// tool's endpoint at the proxy (netproxy.go) instead of MinIO: the same
// peers, rows and columns, plus the proxy's CPU and the requests and
// connections each tool made through it.
func (b *bench) network(ctx context.Context, name string) (*section, error) {
	what := "default set: a node's snapshot"
	t, err := b.defaultTree()
	if name == "network-small" {
		t, err = b.smallTree()
		what = b.smallTitle()
	}
	if err != nil {
		return nil, err
	}
	if b.proxy == nil {
		scheme, addr, _ := strings.Cut(b.srv.URL, "://")
		if b.proxy, err = startNetProxy(addr, b.cfg.netLatency, b.cfg.netBandwidth); err != nil {
			return nil, fmt.Errorf("network proxy: %w", err)
		}
		b.proxy.URL = scheme + "://" + b.proxy.ln.Addr().String()
		if b.cfg.netLog != "" {
			f, err := os.Create(b.cfg.netLog)
			if err != nil {
				return nil, fmt.Errorf("-net-log: %w", err)
			}
			b.proxy.log = f // closed with the process
		}
		b.proxyProbe = probeLatency(ctx, b.srv.URL, b.proxy.URL)
	}
	b.via = true
	defer func() { b.via = false }()
	limit := "no cap"
	if b.cfg.netBandwidth > 0 {
		limit = fmt.Sprintf("%.0f MB/s", float64(b.cfg.netBandwidth)/1e6)
	}
	title := fmt.Sprintf("Network-shaped (%s first byte, %s per connection each way): %s", b.cfg.netLatency, limit, what)
	sec, err := b.compare(ctx, name, title, t)
	if err != nil {
		return nil, err
	}
	sec.Layout = "network"
	sec.Network = &netSettings{LatencyMS: float64(b.cfg.netLatency) / 1e6, BandwidthBytes: b.cfg.netBandwidth,
		ProxyCPU: "getrusage(RUSAGE_SELF) of the bench process over each run"}
	sec.Notes = append(sec.Notes, fmt.Sprintf("every tool's endpoint is the bench's proxy at %s (in the bench process) in front of MinIO: "+
		"each response's first byte waits %s after its request's last byte; each connection carries at most %s each way; "+
		"no cap on the sum of the connections", b.proxy.URL, b.cfg.netLatency, limit),
		"proxy CPU s: the bench process's user + system time over the run (getrusage RUSAGE_SELF; meanwhile the bench itself only "+
			"waits for the spawner, so this is the proxy's, give or take a few ms); requests / conns: responses the proxy delayed "+
			"and connections it accepted, last round")
	if b.proxyProbe != "" {
		sec.Notes = append(sec.Notes, b.proxyProbe)
	}
	return sec, nil
}

// probeLatency times MinIO's health check directly and through the proxy,
// each the second request on its connection, as a check of the proxy that
// the reader sees: through it, a request should take the latency more.
func probeLatency(ctx context.Context, direct, proxied string) string {
	if !strings.HasPrefix(direct, "http://") {
		return ""
	}
	timeOne := func(base string) (time.Duration, error) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var took time.Duration
		for range 2 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/minio/health/live", nil)
			if err != nil {
				return 0, err
			}
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took = time.Since(start)
		}
		return took, nil
	}
	d, err := timeOne(direct)
	if err != nil {
		return "latency probe failed: " + err.Error()
	}
	p, err := timeOne(proxied)
	if err != nil {
		return "latency probe through the proxy failed: " + err.Error()
	}
	return fmt.Sprintf("probe: MinIO's health check on a kept-alive connection took %.1f ms directly and %.1f ms through the proxy",
		float64(d)/1e6, float64(p)/1e6)
}
