package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads a --metrics-file as node_exporter's textfile
// collector does.
func parseMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return mfs
}

// metricValue is the value of a series labelled command, cluster, node
// (NaN when absent).
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name, command string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no %s in the metrics file", name)
	}
	if mf.GetType() != dto.MetricType_GAUGE {
		t.Fatalf("%s is a %s", name, mf.GetType())
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["command"] == command && l["cluster"] == "prod" && l["node"] == "cass-1" && len(l) == 3 {
			return m.GetGauge().GetValue()
		}
	}
	return math.NaN()
}

// TestMetricsFile: --metrics-file after a successful backup, after a failed
// one (the last success stays), and after a verify into the same file (the
// backup's series stay).
func TestMetricsFile(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	prom := filepath.Join(t.TempDir(), "textfile", "s3bak.prom")
	if err := os.MkdirAll(filepath.Dir(prom), 0o755); err != nil {
		t.Fatal(err)
	}
	before := float64(time.Now().Unix())
	mustRun(t, append(n.backupArgs(bucket), "--metrics-file", prom)...)
	after := float64(time.Now().Unix() + 1)
	mfs := parseMetrics(t, prom)
	success := metricValue(t, mfs, metricLastSuccess, "backup")
	if success < before || success > after {
		t.Fatalf("last success %v, want between %v and %v", success, before, after)
	}
	for name, ok := range map[string]func(float64) bool{
		metricLastExitCode:  func(v float64) bool { return v == 0 },
		metricLastDuration:  func(v float64) bool { return v > 0 && v < after-before+1 },
		metricLastRun:       func(v float64) bool { return v == success },
		metricFiles:         func(v float64) bool { return v == float64(len(n.want)) },
		metricBytesRead:     func(v float64) bool { return v > 13<<20 },
		metricBytesUploaded: func(v float64) bool { return v > 0 },
		metricBytesStored:   func(v float64) bool { return v > 0 },
	} {
		if v := metricValue(t, mfs, name, "backup"); !ok(v) {
			t.Errorf("after a success: %s = %v", name, v)
		}
	}
	if info, err := os.Stat(prom); err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("metrics file: %v %v (node_exporter must read it)", info, err)
	}

	// A failed night: exit code and run time change, the last success stays.
	time.Sleep(10 * time.Millisecond)
	args := n.backupArgs(bucket)
	for i, a := range args {
		if a == "--tag" {
			args[i+1] = "no-such-tag"
		}
	}
	wantExit(t, s3bak(t, append(args, "--metrics-file", prom)...), exitNotFound)
	mfs = parseMetrics(t, prom)
	if v := metricValue(t, mfs, metricLastSuccess, "backup"); v != success {
		t.Fatalf("after a failure the last success is %v, want %v", v, success)
	}
	if v := metricValue(t, mfs, metricLastExitCode, "backup"); v != exitNotFound {
		t.Fatalf("after a failure the exit code is %v", v)
	}
	if v := metricValue(t, mfs, metricLastRun, "backup"); v <= success {
		t.Fatalf("after a failure the last run is %v, not after %v", v, success)
	}
	if v := metricValue(t, mfs, metricFiles, "backup"); v != 0 {
		t.Fatalf("after a failure files = %v", v)
	}

	// Another command into the same file keeps the backup's series.
	mustRun(t, "verify", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--skip-catalog", "--metrics-file", prom)
	mfs = parseMetrics(t, prom)
	if v := metricValue(t, mfs, metricLastSuccess, "backup"); v != success {
		t.Fatalf("verify changed the backup's last success to %v", v)
	}
	if v := metricValue(t, mfs, metricLastExitCode, "backup"); v != exitNotFound {
		t.Fatalf("verify changed the backup's exit code to %v", v)
	}
	if v := metricValue(t, mfs, metricLastSuccess, "verify"); v < success {
		t.Fatalf("verify's last success %v", v)
	}
	if v := metricValue(t, mfs, metricFiles, "verify"); v != float64(len(n.want)) {
		t.Fatalf("verify's files %v", v)
	}
	// An unchanged snapshot again: nothing read, nothing uploaded.
	mustRun(t, append(n.backupArgs(bucket), "--metrics-file", prom, "--again")...)
	mfs = parseMetrics(t, prom)
	if v := metricValue(t, mfs, metricLastSuccess, "backup"); v <= success {
		t.Fatalf("the second backup's last success %v is not after %v", v, success)
	}
	for _, name := range []string{metricBytesRead, metricBytesUploaded, metricLastExitCode} {
		if v := metricValue(t, mfs, name, "backup"); v != 0 {
			t.Errorf("an unchanged snapshot: %s = %v", name, v)
		}
	}
	if v := metricValue(t, mfs, metricFiles, "backup"); v != float64(len(n.want)) {
		t.Errorf("an unchanged snapshot: files = %v", v)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(prom), "*"))
	if len(left) != 1 {
		t.Fatalf("temporary files left beside the metrics file: %v", left)
	}
}

// A run that fails before any success says so: last success 0, so an alert
// on its age fires.
func TestMetricsFileFirstRunFails(t *testing.T) {
	t.Parallel()
	prom := filepath.Join(t.TempDir(), "s3bak.prom")
	r := s3bak(t, "restore", "--bucket", newBucket(t), "--cluster", "prod", "--node", "cass-1", "--target", t.TempDir(), "--metrics-file", prom)
	wantExit(t, r, exitNotFound)
	mfs := parseMetrics(t, prom)
	if v := metricValue(t, mfs, metricLastSuccess, "restore"); v != 0 {
		t.Fatalf("last success %v, want 0", v)
	}
	if v := metricValue(t, mfs, metricLastExitCode, "restore"); v != exitNotFound {
		t.Fatalf("exit code %v", v)
	}
}
