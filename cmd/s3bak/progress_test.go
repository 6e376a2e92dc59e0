package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestProgressIsLoggedOffATerminal: a run whose stderr is not a terminal
// (cron) logs progress records every --progress-interval, counting bytes
// done up to the whole snapshot, so a long run shows life.
func TestProgressIsLoggedOffATerminal(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	args := append(n.backupArgs(bucket), "--progress-interval", "50ms", "--max-rate", "8MiB")
	r := mustRun(t, args...)
	records, last := progressRecords(t, r.stderr)
	if records < 2 || last.What != "backup" || last.Total <= 0 || last.Done != last.Total {
		t.Fatalf("%d progress records, the last should count every byte: %+v\n%s", records, last, r.stderr)
	}

	// The restore counts the bytes it puts on disk, all of them.
	r = mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", t.TempDir(),
		"--progress-interval", "50ms", "--max-rate", "8MiB")
	records, last = progressRecords(t, r.stderr)
	if records < 2 || last.What != "restore" || last.Total <= 0 || last.Done != last.Total {
		t.Fatalf("%d restore progress records, the last should count every byte: %+v\n%s", records, last, r.stderr)
	}
}

// progressRecord is what a progress log record says.
type progressRecord struct {
	Done      int64  `json:"done_bytes"`
	Total     int64  `json:"total_bytes"`
	What      string `json:"what"`
	BytesPerS int64  `json:"bytes_per_second"`
}

// progressRecords counts the progress records of a run's JSON log and
// returns the last.
func progressRecords(t *testing.T, stderr string) (n int, last progressRecord) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "progress" {
			continue
		}
		n++
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatal(err)
		}
	}
	return n, last
}
