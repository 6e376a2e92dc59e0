package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// decodeStrict decodes one JSON value of type T, refusing unknown fields
// and anything after it.
func decodeStrict[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
	if dec.More() {
		t.Fatalf("more than one object:\n%s", s)
	}
	return v
}

// logRecord finds the JSON log record with this message.
func logRecord(t *testing.T, stderr, msg string) map[string]any {
	t.Helper()
	for line := range strings.Lines(stderr) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	t.Fatalf("no %q record in the log:\n%s", msg, stderr)
	return nil
}

// TestSummariesAsJSON: backup, verify and restore with --output json print
// one summary object each, and their "… complete" records carry cluster,
// node, tag, id and duration.
func TestSummariesAsJSON(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	r := mustRun(t, append(n.backupArgs(bucket), "--output", "json")...)
	b := decodeStrict[backupOutput](t, r.stdout)
	if b.Cluster != "prod" || b.Node != "cass-1" || b.Tag != "nightly" || b.Kind != "cassandra" || b.BackupID == "" ||
		b.Files != len(n.want) || b.RawBytes <= 13<<20 || b.ReadBytes != b.RawBytes || b.StoredBytes <= 0 || b.Uploaded <= 0 || b.UploadedBytes <= 0 ||
		b.DurationSeconds <= 0 || b.Started.IsZero() || !strings.HasSuffix(b.Manifest, b.BackupID+".json") && !strings.Contains(b.Manifest, b.BackupID) {
		t.Fatalf("backup summary: %+v", b)
	}
	if b.Tool != toolVersion() {
		t.Fatalf("the manifest records tool %q, want %q", b.Tool, toolVersion())
	}
	rec := logRecord(t, r.stderr, "backup complete")
	if rec["cluster"] != "prod" || rec["node"] != "cass-1" || rec["tag"] != "nightly" || rec["id"] != b.BackupID {
		t.Fatalf("backup complete: %v", rec)
	}
	if d, ok := rec["duration_seconds"].(float64); !ok || d <= 0 {
		t.Fatalf("backup complete has no duration: %v", rec)
	}

	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	r = mustRun(t, append([]string{"verify", "--deep", "--output", "json"}, node...)...)
	v := decodeStrict[verifyOutput](t, r.stdout)
	if !v.OK || v.BackupID != b.BackupID || v.Tag != "nightly" || !v.Deep || v.Files != b.Files || v.Objects <= 0 ||
		v.Bytes <= 0 || len(v.Problems) != 0 || v.Catalog == nil || v.Catalog.Backups != 1 || len(v.Catalog.Missing) != 0 {
		t.Fatalf("verify summary: %+v", v)
	}

	target := filepath.Join(t.TempDir(), "restore")
	r = mustRun(t, append([]string{"restore", "--target", target, "--output", "json"}, node...)...)
	rs := decodeStrict[restoreOutput](t, r.stdout)
	if rs.BackupID != b.BackupID || rs.Cluster != "prod" || rs.Node != "cass-1" || rs.Tag != "nightly" || rs.Target != target ||
		rs.Files != len(n.want) || rs.Bytes != b.RawBytes || rs.DurationSeconds <= 0 || !strings.Contains(rs.LoadSteps, "nodetool import") {
		t.Fatalf("restore summary: %+v", rs)
	}
	compareTree(t, target, n.want)
	rec = logRecord(t, r.stderr, "restore complete")
	if rec["cluster"] != "prod" || rec["node"] != "cass-1" || rec["tag"] != "nightly" || rec["id"] != b.BackupID {
		t.Fatalf("restore complete: %v", rec)
	}
	if d, ok := rec["duration_seconds"].(float64); !ok || d <= 0 {
		t.Fatalf("restore complete has no duration: %v", rec)
	}
}

// fatalRecord is the record of a failed run under --log-format json.
type fatalRecord struct {
	Time            string  `json:"time"`
	Level           string  `json:"level"`
	Msg             string  `json:"msg"`
	Class           string  `json:"class"`
	ExitCode        int     `json:"exit_code"`
	Command         string  `json:"command"`
	Cluster         string  `json:"cluster"`
	Node            string  `json:"node"`
	Tag             string  `json:"tag"`
	BackupID        string  `json:"backup_id"`
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error"`
	Note            string  `json:"note"`
}

// onlyJSON checks that every line of stderr is a JSON object and returns
// the fatal record, which must be the last line and the only ERROR.
func onlyJSON(t *testing.T, stderr string) fatalRecord {
	t.Helper()
	var last fatalRecord
	n := 0
	for line := range strings.Lines(stderr) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line that is not JSON: %q\n%s", line, stderr)
		}
		if rec["level"] == "ERROR" {
			n++
			last = decodeStrict[fatalRecord](t, line)
		} else if n > 0 {
			t.Fatalf("a record after the fatal one: %q\n%s", line, stderr)
		}
	}
	if n != 1 || last.Level != "ERROR" {
		t.Fatalf("want one ERROR record, last: %d\n%s", n, stderr)
	}
	return last
}

// TestFatalErrorsAreJSON: under --log-format json a failed command says so
// in one JSON record (level, class, exit code, cluster, node, tag), with
// no plain-text line; with --log-format text it is the usual line.
func TestFatalErrorsAreJSON(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	args := n.backupArgs(bucket)
	for i, a := range args {
		if a == "--tag" {
			args[i+1] = "no-such-tag"
		}
	}
	r := s3bak(t, args...)
	wantExit(t, r, exitNotFound, `"no-such-tag" not found`)
	f := onlyJSON(t, r.stderr)
	if f.Class != "not_found" || f.ExitCode != exitNotFound || f.Command != "backup" || f.Cluster != "prod" ||
		f.Node != "cass-1" || f.Tag != "no-such-tag" || !strings.Contains(f.Error, "no-such-tag") || f.Msg != "s3bak failed" {
		t.Fatalf("fatal record: %+v", f)
	}

	// A bad flag, before any configuration was read.
	r = s3bak(t, "verify", "--bucket", bucket, "--cluster", "prod", "--node", "cass-9", "--output", "yaml")
	f = onlyJSON(t, r.stderr)
	if r.code != exitUsage || f.Class != "usage" || f.ExitCode != exitUsage || f.Command != "verify" || f.Node != "cass-9" ||
		!strings.Contains(f.Error, "--output") {
		t.Fatalf("exit %d, fatal record: %+v", r.code, f)
	}

	// No backup of the node: not found, from the built binary.
	r = runEnv(t, nil, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-2", "--target", t.TempDir())
	f = onlyJSON(t, r.stderr)
	if r.code != exitNotFound || f.Class != "not_found" || f.Cluster != "prod" || f.Node != "cass-2" || f.Command != "restore" {
		t.Fatalf("exit %d, fatal record: %+v\n%s", r.code, f, r.stderr)
	}

	var out, errb bytes.Buffer
	code := run(context.Background(), append(args, "--log-format", "text"), &out, &errb)
	if code != exitNotFound || !strings.HasPrefix(lastLine(errb.String()), "s3bak: snapshot tag") || strings.Contains(errb.String(), `"exit_code"`) {
		t.Fatalf("text format: exit %d\n%s", code, errb.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
