package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitFlagsBadValues: a bad size is a usage error that says where it
// came from, and a rate without its unit is caught.
func TestLimitFlagsBadValues(t *testing.T) {
	wantExit(t, s3bak(t, "version", "--max-rate", "200"), exitUsage, "--max-rate", "unit")
	r := s3bak(t, "version", "--max-memory", "8MiB")
	wantExit(t, r, exitUsage, "--max-memory", "at least 16MiB")
	if strings.Contains(r.stderr, "unit missing") {
		t.Errorf("8MiB has its unit, yet the error asks whether it is missing:\n%s", r.stderr)
	}
	wantExit(t, s3bak(t, "version", "--max-memory", "200"), exitUsage, "--max-memory", "at least 16MiB", "unit missing")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("max-memory: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantExit(t, s3bak(t, "version", "--config", cfg), exitUsage, cfg, "max-memory")
	t.Setenv("S3BAK_MAX_RATE", "fast")
	wantExit(t, s3bak(t, "version"), exitUsage, "S3BAK_MAX_RATE")
}

// TestSizeFlagsBadValues: every size flag is parsed the same way, and a
// bad value exits 2 with a message naming the flag, and the variable or
// file it came from.
func TestSizeFlagsBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"backup", "--chunk-size", "8Mi"}, []string{`"--chunk-size"`, `unknown unit "Mi"`, "KiB, MiB, GiB, TiB"}},
		{[]string{"backup", "--chunk-size", "2GiB"}, []string{`"--chunk-size"`, "at most 1GiB"}},
		{[]string{"backup", "--chunk-size", "3"}, []string{`"--chunk-size"`, "at least 4KiB", "unit missing (e.g. 3MiB)"}},
		{[]string{"backup", "--pack-size", "lots"}, []string{`"--pack-size"`, "want a number with an optional unit"}},
		{[]string{"backup", "--part-size=-5MiB"}, []string{`"--part-size"`, "want a number"}},
		{[]string{"preflight", "--estimate-bytes", "2 terabytes"}, []string{`"--estimate-bytes"`, `unknown unit "terabytes"`}},
	} {
		wantExit(t, s3bak(t, c.args...), exitUsage, c.want...)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("pack-size: 8 megs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantExit(t, s3bak(t, "backup", "--config", cfg), exitUsage, cfg, `"--pack-size"`, `unknown unit "megs"`)
	t.Setenv("S3BAK_CHUNK_SIZE", "8Mi")
	wantExit(t, s3bak(t, "backup"), exitUsage, "S3BAK_CHUNK_SIZE", `"--chunk-size"`, `unknown unit "Mi"`)
}

// TestLimitFlagsPrecedence: the limits go through the same precedence as
// every global flag: flag, then S3BAK_*, then the file, then the default.
func TestLimitFlagsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("max-rate: 1MiB\nmax-memory: 64MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(wantRate, wantMem int64, args ...string) {
		t.Helper()
		r := mustRun(t, append([]string{"version", "--log-level", "debug"}, args...)...)
		rate, mem := loggedLimits(t, r.stderr)
		if rate != wantRate || mem != wantMem {
			t.Errorf("%v: max_rate %d, max_memory %d; want %d, %d", args, rate, mem, wantRate, wantMem)
		}
	}
	check(0, 256<<20)
	check(1<<20, 64<<20, "--config", cfg)
	t.Setenv("S3BAK_MAX_RATE", "2MiB/s")
	check(2<<20, 64<<20, "--config", cfg)
	check(3<<20, 64<<20, "--config", cfg, "--max-rate", "3MiB")
	check(0, 64<<20, "--config", cfg, "--max-rate", "0")
}

// loggedLimits finds the debug line that setup logs with the limits.
func loggedLimits(t *testing.T, stderr string) (rate, mem int64) {
	t.Helper()
	for line := range strings.Lines(stderr) {
		var l struct {
			Msg       string `json:"msg"`
			MaxRate   int64  `json:"max_rate"`
			MaxMemory int64  `json:"max_memory"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "limits" {
			return l.MaxRate, l.MaxMemory
		}
	}
	t.Fatalf("no limits line in the log:\n%s", stderr)
	return 0, 0
}

// TestMaxRateLimitsBackupAndRestore: the flag reaches the S3 client. 2 MiB
// of random data (stored raw) at 1 MiB/s takes about two seconds each way;
// without the limit it takes a fraction of one.
func TestMaxRateLimitsBackupAndRestore(t *testing.T) {
	const size = 2 << 20
	data := make([]byte, size)
	rand.Read(data)
	dataDir := t.TempDir()
	table := "shop/orders-0123456789abcdef0123456789abcdef"
	writeFile(t, filepath.Join(dataDir, table, "snapshots", "nightly", "nb-1-big-Data.db"), data)
	bucket := newBucket(t)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}

	t.Setenv("S3BAK_MAX_RATE", "1MiB")
	start := time.Now()
	mustRun(t, append([]string{"backup", "--data-dir", dataDir, "--tag", "nightly"}, node...)...)
	checkSlowed(t, "backup", time.Since(start))

	target := t.TempDir()
	start = time.Now()
	mustRun(t, append([]string{"restore", "--target", target, "--max-rate", "1MiB/s"}, node...)...)
	checkSlowed(t, "restore", time.Since(start))
	got, err := os.ReadFile(filepath.Join(target, table, "nb-1-big-Data.db"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes (err %v), want the %d backed up", len(got), err, size)
	}
}

// checkSlowed wants 2 MiB at 1 MiB/s to have taken at least 1.5 s: the
// limiter lets one burst (128 KiB) through at once, and then paces.
func checkSlowed(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("%s of 2 MiB at --max-rate 1MiB: %s", what, d.Round(time.Millisecond))
	if d < 1500*time.Millisecond {
		t.Errorf("%s took %s: --max-rate did not slow it", what, d)
	}
}

// TestNiceIsNotFatal runs the binary, since --nice cannot be undone in the
// test process: it lowers the priority, or warns that it could not, and
// the command runs either way.
func TestNiceIsNotFatal(t *testing.T) {
	out, err := exec.Command(s3bakBin, "version", "--nice", "--log-level", "debug", "--log-format", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("s3bak version --nice: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "priority lowered") && !strings.Contains(string(out), "could not lower") {
		t.Fatalf("--nice said neither that it lowered the priority nor why not:\n%s", out)
	}
	if !strings.Contains(string(out), "s3bak ") {
		t.Fatalf("the command did not run:\n%s", out)
	}
}
