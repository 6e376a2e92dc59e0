package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metrics of --metrics-file, one series per command, cluster and node:
// what node_exporter's textfile collector exports for alerts on a node
// whose backups stopped or fail.
const (
	metricLastSuccess   = "s3bak_last_success_timestamp_seconds"
	metricLastRun       = "s3bak_last_run_timestamp_seconds"
	metricLastDuration  = "s3bak_last_run_duration_seconds"
	metricLastExitCode  = "s3bak_last_exit_code"
	metricBytesRead     = "s3bak_bytes_read"
	metricBytesUploaded = "s3bak_bytes_uploaded"
	metricBytesStored   = "s3bak_bytes_stored"
	metricFiles         = "s3bak_files"
)

var metricHelp = []struct{ name, help string }{
	{metricLastSuccess, "When the last successful run of the command ended, in Unix seconds (0: none yet); kept across failed runs."},
	{metricLastRun, "When the last run of the command ended, in Unix seconds."},
	{metricLastDuration, "How long the last run of the command took, in seconds."},
	{metricLastExitCode, "The exit code of the last run of the command (0: success; see the README's exit codes)."},
	{metricBytesRead, "Bytes the last successful run read: backup the files it read (not those known by fingerprint), restore the files written, verify the stored bytes checked (0 after a failure)."},
	{metricBytesUploaded, "Stored bytes the last backup uploaded (0 after a failure)."},
	{metricBytesStored, "Stored bytes of the backup the last run wrote or checked (0 after a failure)."},
	{metricFiles, "Files of the backup the last run wrote, restored or checked (0 after a failure)."},
}

var metricLabels = []string{"command", "cluster", "node"}

// metricsCommands are the commands that write --metrics-file.
var metricsCommands = map[string]bool{"backup": true, "restore": true, "verify": true, "purge": true}

// writeMetrics writes the run's metrics to path for node_exporter's
// textfile collector, atomically (a temporary file renamed over it). The
// series of other commands, clusters and nodes already in the file are
// kept, and so is this one's last success when the run failed: a failed
// night does not erase when the node last succeeded.
func writeMetrics(path, command, cluster, node string, code int, start, end time.Time, stats *runStats) error {
	reg := prometheus.NewRegistry()
	gauges := map[string]*prometheus.GaugeVec{}
	for _, m := range metricHelp {
		gauges[m.name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name, Help: m.help}, metricLabels)
		reg.MustRegister(gauges[m.name])
	}
	old, err := readMetrics(path)
	if err != nil {
		return err
	}
	lastSuccess := 0.0
	for name, mf := range old {
		g := gauges[name]
		if g == nil {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := prometheus.Labels{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if len(labels) != len(metricLabels) || labels["command"] == "" {
				continue
			}
			v := m.GetGauge().GetValue()
			if labels["command"] == command && labels["cluster"] == cluster && labels["node"] == node {
				if name == metricLastSuccess {
					lastSuccess = v
				}
				continue
			}
			g.With(labels).Set(v)
		}
	}
	this := prometheus.Labels{"command": command, "cluster": cluster, "node": node}
	if code == exitOK {
		lastSuccess = float64(end.UnixMilli()) / 1000
	}
	var s runStats
	if code == exitOK && stats != nil {
		s = *stats
	}
	for name, v := range map[string]float64{
		metricLastSuccess:   lastSuccess,
		metricLastRun:       float64(end.UnixMilli()) / 1000,
		metricLastDuration:  end.Sub(start).Seconds(),
		metricLastExitCode:  float64(code),
		metricBytesRead:     float64(s.bytesRead),
		metricBytesUploaded: float64(s.bytesUploaded),
		metricBytesStored:   float64(s.bytesStored),
		metricFiles:         float64(s.files),
	} {
		gauges[name].With(this).Set(v)
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("--metrics-file: %w", err)
	}
	return nil
}

// readMetrics reads a metrics file s3bak wrote before: none is no series;
// one that does not parse is an error (it is not overwritten: it may be
// another program's).
func readMetrics(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics-file: %w", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("--metrics-file %s is not a metrics file s3bak can read (%v): remove it or choose another path", path, err)
	}
	return mfs, nil
}
