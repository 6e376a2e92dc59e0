package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/preflight/fakeaws"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// standInNodetool is a stand-in for Cassandra's nodetool, for tests only
// (Cassandra cannot run here). It behaves like the real one for what s3bak
// asks of it:
//
//   - `snapshot -t TAG` hard-links the live sstables of every table
//     directory <data>/<keyspace>/<table>-<id>/ (and of its secondary index
//     directories, .<index>/) into <table>-<id>/snapshots/TAG/, writes
//     manifest.json there, and prints what the real one prints: "Requested
//     creating snapshot(s) for [all keyspaces] with snapshot name [TAG] and
//     options {skipFlush=false}" then "Snapshot directory: TAG"
//     (apache/cassandra src/java/org/apache/cassandra/tools/nodetool/Snapshot.java).
//     A tag that exists already is refused, as Cassandra refuses it
//     ("Snapshot TAG already exists.", StorageService.takeSnapshot).
//   - `clearsnapshot -t TAG` removes those directories and prints
//     "Requested clearing snapshot(s) for [all keyspaces] with snapshot name
//     [TAG]" (tools/nodetool/ClearSnapshot.java).
//   - A failure is written the way NodeTool.java writes one: "error: …",
//     then "-- StackTrace --" and the Java stack trace, on stderr, exit 2.
//
// Connection options (-h, -p, -u, -pw, --password-file …) are accepted and
// ignored. Every call's arguments are appended to calls. Markers in the
// script's directory make it misbehave: fail-snapshot and
// fail-clearsnapshot (their text is the error), symlink-snapshot (the
// snapshot gets a symbolic link, which a backup refuses).
const standInNodetool = `#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
while [ $# -gt 0 ]; do
	case "$1" in
	-h|-p|-u|-pw|-pwf|--host|--port|--username|--password|--password-file) shift 2 ;;
	-*) shift ;;
	*) break ;;
	esac
done
cmd=$1
shift
tag=
while [ $# -gt 0 ]; do
	case "$1" in
	-t|--tag) tag=$2; shift 2 ;;
	*) shift ;;
	esac
done
fail() {
	echo "error: $1" >&2
	echo "-- StackTrace --" >&2
	echo "java.io.IOException: $1" >&2
	echo "	at org.apache.cassandra.service.StorageService.takeSnapshot(StorageService.java:4001)" >&2
	exit 2
}
[ -f "$here/fail-$cmd" ] && fail "$(cat "$here/fail-$cmd")"
case "$cmd" in
snapshot)
	for t in $DATA_GLOBS; do
		[ -d "$t/snapshots/$tag" ] && fail "Snapshot $tag already exists."
	done
	echo "Requested creating snapshot(s) for [all keyspaces] with snapshot name [$tag] and options {skipFlush=false}"
	for t in $DATA_GLOBS; do
		[ -d "$t" ] || continue
		s="$t/snapshots/$tag"
		mkdir -p "$s"
		files=
		for f in "$t"/*; do
			[ -f "$f" ] || continue
			ln "$f" "$s/"
			case "$f" in *-Data.db) files="$files${files:+,}\"$(basename "$f")\"" ;; esac
		done
		for i in "$t"/.[!.]*; do
			[ -d "$i" ] || continue
			mkdir -p "$s/$(basename "$i")"
			for f in "$i"/*; do [ -f "$f" ] && ln "$f" "$s/$(basename "$i")/"; done
		done
		echo "{\"files\":[$files]}" > "$s/manifest.json"
		[ -f "$here/symlink-snapshot" ] && ln -s /etc/hostname "$s/link-Data.db"
	done
	echo "Snapshot directory: $tag"
	;;
clearsnapshot)
	echo "Requested clearing snapshot(s) for [all keyspaces] with snapshot name [$tag]"
	for t in $DATA_GLOBS; do
		rm -rf "$t/snapshots/$tag"
	done
	;;
*)
	fail "unknown command $cmd"
	;;
esac
`

// liveNode is a node's data directories with live sstables (and an older
// snapshot that is not s3bak's), and a stand-in nodetool first in PATH.
type liveNode struct {
	dataDirs []string
	bin      string // the stand-in's directory: its calls and markers
	tables   int    // table directories outside the system keyspaces
	files    int    // files a snapshot of them has
}

func newLiveNode(t *testing.T) *liveNode {
	t.Helper()
	td, err := testfixture.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	n := &liveNode{dataDirs: []string{filepath.Join(root, "d1"), filepath.Join(root, "d2")}, bin: filepath.Join(root, "bin")}
	for i, version := range []string{"mc", "na"} {
		tables, err := testfixture.LegacyTables(td, version)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables[:3] {
			if _, err := testfixture.WriteSnapshot(n.dataDirs[i], "older", tb, true); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(tb.Source)
			n.tables++
			n.files += len(entries) + 1 // and manifest.json
		}
		sys := testfixture.Table{Keyspace: "system", Name: "local", ID: "7ad54392bcdd35a684174e047860b377", Source: tables[0].Source}
		if _, err := testfixture.WriteSnapshot(n.dataDirs[i], "older", sys, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(n.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	var globs []string
	for _, d := range n.dataDirs {
		globs = append(globs, d+"/*/*")
	}
	script := strings.Replace(standInNodetool, "$DATA_GLOBS", strings.Join(globs, " "), -1)
	if err := os.WriteFile(filepath.Join(n.bin, "nodetool"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", n.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return n
}

func (n *liveNode) args(bucket, tag string, more ...string) []string {
	args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--snapshot", "--tag", tag,
		"--nodetool", `nodetool -h 127.0.0.1 -u cassandra --password-file '/etc/cassandra/jmx remote.password'`, "--skip-preflight"}
	for _, d := range n.dataDirs {
		args = append(args, "--data-dir", d)
	}
	return append(args, more...)
}

// calls are the stand-in's snapshot calls so far, and forgets them. The
// topology's calls every backup makes (info -T, status, describecluster,
// version: topology_test.go tests them) are left out.
func (n *liveNode) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.bin, "calls"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(n.bin, "calls"))
	return slices.Collect(func(yield func(string) bool) {
		for l := range strings.Lines(string(b)) {
			if topologyCall(l) {
				continue
			}
			if !yield(strings.TrimSuffix(l, "\n")) {
				return
			}
		}
	})
}

// snapshotDirs are the table directories' snapshots/TAG/.
func (n *liveNode) snapshotDirs(tag string) []string {
	var out []string
	for _, d := range n.dataDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "*", "snapshots", tag))
		out = append(out, m...)
	}
	return out
}

func (n *liveNode) marker(t *testing.T, name, text string) {
	t.Helper()
	writeFile(t, filepath.Join(n.bin, name), []byte(text))
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	const fixed = "-h 127.0.0.1 -u cassandra --password-file /etc/cassandra/jmx remote.password "
	for i := range want {
		want[i] = fixed + want[i]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("nodetool calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBackupSnapshotLifecycle: backup --snapshot --tag auto takes the
// snapshot with nodetool, backs it up and clears it; a second run of the
// period says the tag is backed up and takes no snapshot; --again backs it
// up once more; a failed backup keeps the snapshot, and the retry backs up
// that snapshot and clears it; a failing nodetool is reported with what it
// wrote on stderr.
func TestBackupSnapshotLifecycle(t *testing.T) {
	n := newLiveNode(t)
	bucket := newBucket(t)

	before := time.Now()
	r := mustRun(t, n.args(bucket, "auto", "--output", "json")...)
	var out backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	tag := out.Tag
	want1, _ := cassandra.AutoTag(before, 24*time.Hour)
	want2, _ := cassandra.AutoTag(time.Now(), 24*time.Hour)
	if tag != want1 && tag != want2 || !strings.HasPrefix(tag, "auto-") {
		t.Fatalf("tag %q, want %q", tag, want1)
	}
	if out.Files != n.files || out.AlreadyBackedUp {
		t.Fatalf("backed up %d files (already backed up: %v), want %d: %s", out.Files, out.AlreadyBackedUp, n.files, r.stdout)
	}
	wantCalls(t, n.calls(t), "snapshot -t "+tag, "clearsnapshot -t "+tag)
	if left := n.snapshotDirs(tag); len(left) > 0 {
		t.Fatalf("snapshot left after the backup: %s", left)
	}
	if older := n.snapshotDirs("older"); len(older) != n.tables+2 {
		t.Fatalf("the older snapshot (not s3bak's): %d directories left, want %d", len(older), n.tables+2)
	}

	// The same period again: nothing to do, no snapshot taken.
	r = mustRun(t, n.args(bucket, "auto")...)
	if strings.Contains(r.stderr, "earlier periods") {
		t.Fatalf("a warning of snapshots left: %s", r.stderr)
	}
	wantExit(t, r, 0, "tag "+tag+" is already backed up on prod/cass-1: backup "+out.BackupID, "--again")
	wantCalls(t, n.calls(t))
	r = mustRun(t, n.args(bucket, "auto", "--output", "json")...)
	var again backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil || !again.AlreadyBackedUp || again.BackupID != out.BackupID || again.Files != n.files {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	n.calls(t)

	// --again: a second backup of the tag; a snapshot that a failed run of
	// an earlier period kept is named in a warning.
	oldSnap := filepath.Join(n.dataDirs[1], "legacy_tables", "x-0123456789abcdef0123456789abcdef", "snapshots", "auto-2026-11-01")
	writeFile(t, filepath.Join(oldSnap, "nb-1-big-Data.db"), []byte("old"))
	r = mustRun(t, n.args(bucket, "auto", "--again", "--output", "json")...)
	wantExit(t, r, 0, "snapshots of earlier periods are left", "auto-2026-11-01")
	os.RemoveAll(filepath.Dir(filepath.Dir(oldSnap)))
	again = backupOutput{}
	if err := json.Unmarshal([]byte(r.stdout), &again); err != nil || again.AlreadyBackedUp || again.BackupID == out.BackupID || again.Tag != tag {
		t.Fatalf("--again: %v: %s", err, r.stdout)
	}
	wantCalls(t, n.calls(t), "snapshot -t "+tag, "clearsnapshot -t "+tag)

	// A backup that fails after the snapshot keeps it, and says so.
	n.marker(t, "symlink-snapshot", "")
	r = s3bak(t, n.args(bucket, "retry-1")...)
	wantExit(t, r, 1, "symlink", "the snapshot retry-1 is kept")
	wantCalls(t, n.calls(t), "snapshot -t retry-1")
	kept := n.snapshotDirs("retry-1")
	if len(kept) != n.tables+2 {
		t.Fatalf("kept snapshot: %d directories, want %d", len(kept), n.tables+2)
	}
	// The cause fixed, the retry backs up the kept snapshot (nodetool would
	// refuse to take it again) and clears it.
	os.Remove(filepath.Join(n.bin, "symlink-snapshot"))
	for _, d := range kept {
		os.Remove(filepath.Join(d, "link-Data.db"))
	}
	r = mustRun(t, n.args(bucket, "retry-1")...)
	wantExit(t, r, 0, "already there")
	wantCalls(t, n.calls(t), "clearsnapshot -t retry-1")
	if left := n.snapshotDirs("retry-1"); len(left) > 0 {
		t.Fatalf("snapshot left after the retry: %s", left)
	}

	// --clear-on-failure clears it.
	n.marker(t, "symlink-snapshot", "")
	r = s3bak(t, n.args(bucket, "retry-2", "--clear-on-failure")...)
	wantExit(t, r, 1, "symlink", "the snapshot retry-2 is cleared")
	wantCalls(t, n.calls(t), "snapshot -t retry-2", "clearsnapshot -t retry-2")
	if left := n.snapshotDirs("retry-2"); len(left) > 0 {
		t.Fatalf("snapshot left with --clear-on-failure: %s", left)
	}
	os.Remove(filepath.Join(n.bin, "symlink-snapshot"))

	// nodetool fails: its error, not its stack trace, and nothing backed up.
	n.marker(t, "fail-snapshot", "Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'.")
	r = s3bak(t, n.args(bucket, "retry-3")...)
	wantExit(t, r, 1, "nodetool snapshot -t retry-3", "exit status 2", "error: Failed to connect to '127.0.0.1:7199'")
	if strings.Contains(r.stderr, "StackTrace") || strings.Contains(r.stderr, "jmx remote.password") {
		t.Fatalf("the error repeats the stack trace or the fixed arguments: %s", r.stderr)
	}
	wantCalls(t, n.calls(t), "snapshot -t retry-3")
	r = mustRun(t, "list", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--output", "json")
	if strings.Contains(r.stdout, "retry-3") || strings.Contains(r.stdout, "retry-2") {
		t.Fatalf("a failed run is listed: %s", r.stdout)
	}
}

// TestBackupTagAutoWithoutSnapshot: --tag auto names the period's tag for a
// snapshot taken by hand, and a tag the node has a complete backup of is
// not backed up twice.
func TestBackupTagAutoWithoutSnapshot(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	tag, err := cassandra.AutoTag(time.Now(), 6*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's snapshot, under the period's name.
	for _, d := range n.dataDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "*", "snapshots", n.tag))
		for _, s := range m {
			if err := os.Rename(s, filepath.Join(filepath.Dir(s), tag)); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.tag = "auto"
	args := append(n.backupArgs(bucket), "--tag-period", "6h", "--skip-preflight")
	r := mustRun(t, append(args, "--output", "json")...)
	var out backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Tag != tag || out.Files != len(n.want) {
		t.Fatalf("%v: tag %q files %d, want %q, %d: %s", err, out.Tag, out.Files, tag, len(n.want), r.stdout)
	}
	r = mustRun(t, args...)
	wantExit(t, r, 0, "is already backed up")
	wantExit(t, s3bak(t, append(n.backupArgs(bucket), "--tag-period", "5h")...), 2, "--tag-period 5h0m0s")
	wantExit(t, s3bak(t, append(n.backupArgs(bucket), "--snapshot", "--nodetool", `nodetool -u 'x`)...), 2, "--nodetool", "unterminated")
}

// TestBackupSnapshotOfARunningBackup: a run that overlaps one still
// backing up the same tag (the node's lock is held) finds that run's
// snapshot, exits 3, and leaves the snapshot alone even with
// --clear-on-failure.
func TestBackupSnapshotOfARunningBackup(t *testing.T) {
	n := newLiveNode(t)
	bucket := newBucket(t)
	if out, err := exec.Command("nodetool", "snapshot", "-t", "overlap").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	n.calls(t)
	now := time.Now().UTC()
	info := lock.Info{Op: "backup", Host: "other-host", PID: 4242, Tag: "overlap", Token: "running", Started: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	b, _ := json.Marshal(info)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	if err := testClient(t, bucket).PutBytes(context.Background(), nd.Root()+lock.Key, b, "application/json"); err != nil {
		t.Fatal(err)
	}
	r := s3bak(t, n.args(bucket, "overlap", "--clear-on-failure")...)
	wantExit(t, r, exitLocked, "other-host")
	wantCalls(t, n.calls(t))
	if kept := n.snapshotDirs("overlap"); len(kept) != n.tables+2 {
		t.Fatalf("the running backup's snapshot: %d directories left, want %d", len(kept), n.tables+2)
	}
}

// TestBackupSnapshotPreflightFirst: with --snapshot the preflight runs
// before the snapshot, so a route that stops the backup (exit 4) leaves no
// snapshot and calls no nodetool.
func TestBackupSnapshotPreflightFirst(t *testing.T) {
	n := newLiveNode(t)
	s3srv := regionalMinIO(t)
	bucket := regionalBucket(t, s3srv)
	front := newS3Front(t, s3srv)
	nat := newFakeNode(t, fakeaws.NATOnlyVPC(), imdsUp)
	args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--snapshot", "--tag", "auto",
		"--nodetool", filepath.Join(n.bin, "nodetool"), "--resolve", awsS3Host + "=" + s3Addrs}
	for _, d := range n.dataDirs {
		args = append(args, "--data-dir", d)
	}
	r, _ := nat.runBin(t, front, args...)
	wantExit(t, r, exitPreflight, "would traverse NAT gateway nat-0123")
	if calls := n.calls(t); len(calls) > 0 {
		t.Fatalf("nodetool called before the preflight stopped the backup: %q", calls)
	}
	tag, _ := cassandra.AutoTag(time.Now(), 24*time.Hour)
	if left := n.snapshotDirs(tag); len(left) > 0 {
		t.Fatalf("a snapshot was taken: %s", left)
	}
	// --allow-nat: the same run backs up, and clears its snapshot.
	r, _ = nat.runBin(t, front, append(args, "--allow-nat")...)
	wantExit(t, r, exitOK, "continuing because of --allow-nat", "backup ")
	if calls := n.calls(t); len(calls) != 2 || !strings.HasPrefix(calls[0], "snapshot -t auto-") || !strings.HasPrefix(calls[1], "clearsnapshot -t auto-") {
		t.Fatalf("nodetool calls: %q", calls)
	}
}
