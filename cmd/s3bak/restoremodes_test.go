package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// testDeadline bounds each command and script of these tests: a restore
// or a stand-in that hangs fails the test instead of the whole run.
const testDeadline = 3 * time.Minute

// s3bakWithin runs a command line in-process, cancelled after testDeadline.
func s3bakWithin(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append(args, "--log-format", "json"), &out, &errb)
	if ctx.Err() != nil {
		t.Fatalf("s3bak %s: no end within %s", strings.Join(args, " "), testDeadline)
	}
	return result{code, out.String(), errb.String()}
}

func mustRunWithin(t *testing.T, args ...string) result {
	t.Helper()
	r := s3bakWithin(t, args...)
	if r.code != 0 {
		t.Fatalf("s3bak %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// samples is the directory of one Cassandra version's nodetool outputs.
func samples(t *testing.T, version string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "pkg", "cassandra", "testdata", "nodetool", version))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sampleTokens are the tokens of a version's nodetool info -T sample.
func sampleTokens(t *testing.T, version string) []string {
	t.Helper()
	info, err := os.ReadFile(filepath.Join(samples(t, version), "info-T.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return cassandra.ParseInfo(string(info)).Tokens
}

// loadNodetool writes, in a directory of its own, a stand-in nodetool
// that answers the topology calls from version's samples and checks the
// load scripts' calls (see standInLoadNodetool); it returns its path.
func loadNodetool(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "nodetool")
	writeScript(t, p, strings.Replace(standInLoadNodetool, "$SAMPLES", samples(t, version), -1))
	return p
}

// standInLoadNodetool is nodetool as a load script calls it. The topology
// calls print a Cassandra version's samples (pkg/cassandra/testdata/
// nodetool/, their sources in the README there). `import [--no-tokens] KS
// TABLE DIR` and `refresh KS TABLE` print nothing on success, as Cassandra's
// nodetool does (src/java/org/apache/cassandra/tools/nodetool/Import.java
// prints only failed directories, to stderr; Refresh.java of 3.11 prints
// nothing, 4.0's a deprecation line); each checks its arguments, and import that DIR
// exists and holds sstables. Every call is appended to the file calls
// beside it.
const standInLoadNodetool = `#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
fail() { echo "error: $*" >&2; echo "-- StackTrace --" >&2; exit 1; }
case "$1" in
info) [ "$2" = -T ] || fail "info without -T"; cat "$SAMPLES/info-T.txt" ;;
status|describecluster|version) cat "$SAMPLES/$1.txt" ;;
import)
	shift
	[ "$1" = --no-tokens ] && shift
	[ $# -eq 3 ] || fail "import wants KEYSPACE TABLE DIR: $*"
	[ -d "$3" ] || fail "no directory $3"
	ls "$3" | grep -q -- '-Data\.db$' || fail "no sstable in $3"
	;;
refresh)
	[ $# -eq 3 ] || fail "refresh wants KEYSPACE TABLE: $*"
	;;
*) fail "unexpected call: $*" ;;
esac
`

// standInSSTableLoader is sstableloader as a load script calls it:
// -d HOSTS DIR, DIR ending in KEYSPACE/TABLE (no table id) and holding
// sstables and nothing else. It prints what Cassandra's SSTableLoader
// prints (src/java/org/apache/cassandra/io/sstable/SSTableLoader.java:
// "Established connection to initial hosts", "Opening sstables and
// calculating sections to stream", "Skipping file %s because index is
// missing", "Streaming relevant part of %sto %s"), and appends its call
// to the file calls beside it.
const standInSSTableLoader = `#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
fail() { echo "sstableloader: $*" >&2; exit 1; }
[ $# -eq 3 ] && [ "$1" = -d ] || fail "usage: sstableloader -d HOSTS DIR, got: $*"
[ "$2" = "$WANT_HOSTS" ] || fail "hosts $2, want $WANT_HOSTS"
dir=$3
[ -d "$dir" ] || fail "no directory $dir"
case $(basename "$dir") in *-*) fail "table directory with an id: $dir" ;; esac
echo "Established connection to initial hosts"
echo "Opening sstables and calculating sections to stream"
names=""
for f in "$dir"/*; do
	[ -e "$f" ] || fail "empty directory $dir"
	case $(basename "$f") in
	manifest.json|schema.cql) fail "not an sstable: $f" ;;
	*-Data.db) if [ -f "${f%Data.db}Index.db" ]; then names="$names$f "; else echo "Skipping file $(basename "$f") because index is missing"; fi ;;
	esac
done
echo "Streaming relevant part of ${names}to [/$(echo "$2" | sed 's|,|, /|g')]"
`

// backupNight backs up n's snapshot of tag as node, recording the
// topology of a stand-in nodetool of version.
func backupNight(t *testing.T, n *node, bucket, node, tag, version string) {
	t.Helper()
	args := n.backupArgs(bucket)
	for i, a := range args {
		switch a {
		case "--node":
			args[i+1] = node
		case "--tag":
			args[i+1] = tag
		}
	}
	mustRunWithin(t, append(args, "--nodetool", loadNodetool(t, version), "--cqlsh", filepath.Join(t.TempDir(), "no-cqlsh"))...)
}

// liveWant is what of want goes into live table directories: sstables
// only (cassandra.LiveFile), not manifest.json, schema.cql or other files.
func liveWant(want map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for p, b := range want {
		if cassandra.LiveFile(p) {
			out[p] = b
		}
	}
	return out
}

// dataDirsTree is the union of the data directories' files, each at most
// once, and checks that no table directory is split over two of them.
func dataDirsTree(t *testing.T, dirs ...string) map[string][]byte {
	t.Helper()
	all := map[string][]byte{}
	where := map[string]string{}
	for _, d := range dirs {
		files, err := testfixture.TreeFiles(d)
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range files {
			if _, dup := all[p]; dup {
				t.Fatalf("%s is in two data directories", p)
			}
			all[p] = b
			table := strings.Join(strings.SplitN(p, "/", 3)[:2], "/")
			if w, ok := where[table]; ok && w != d {
				t.Fatalf("table %s is split over %s and %s", table, w, d)
			}
			where[table] = d
		}
	}
	return all
}

// noCassandra are the flags that make the running check find nothing:
// a pid file that does not exist and an address nothing listens on.
func noCassandra(t *testing.T) []string {
	return []string{"--cassandra-pid-file", filepath.Join(t.TempDir(), "none.pid"), "--cassandra-native-address", closedAddr(t)}
}

func listenLocal() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := listenLocal()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestRestoreIntoDataDirsReplacementHost: n2 backs up day1 and day2 (a new
// sstable on day 2); a replacement host n9 restores n2's day2 with
// --from-node n2 --tag day2 --into-data-dirs into fresh data directories:
// every sstable lands in a table directory, each table whole in one data
// directory, byte for byte, without manifest.json or schema.cql, and it
// prints n2's initial_token. Restoring again is refused (the files exist)
// and leaves them; a table whose live directory has another id is refused
// with the fix, and restored into the live directory with
// --into-live-table-ids.
func TestRestoreIntoDataDirsReplacementHost(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	snapshotAs(t, n, "day1")
	snapshotAs(t, n, "day2")
	backupNight(t, n, bucket, "n1", "day1", "3.11")
	backupNight(t, n, bucket, "n2", "day1", "4.1")
	td, _ := testfixture.Testdata()
	mc, _ := testfixture.LegacyTables(td, "mc")
	day2 := filepath.Join(n.dataDirs[0], mc[0].Keyspace, mc[0].Dir(), "snapshots", "day2")
	writeFile(t, filepath.Join(day2, "mc-2-big-Data.db"), []byte("flushed on day 2"))
	writeFile(t, filepath.Join(day2, "mc-2-big-Index.db"), []byte("its index"))
	backupNight(t, n, bucket, "n2", "day2", "4.1")
	want := liveWant(n.want)
	want[mc[0].Keyspace+"/"+mc[0].Dir()+"/mc-2-big-Data.db"] = []byte("flushed on day 2")
	want[mc[0].Keyspace+"/"+mc[0].Dir()+"/mc-2-big-Index.db"] = []byte("its index")

	fresh := t.TempDir()
	dirs := []string{filepath.Join(fresh, "data1"), filepath.Join(fresh, "data2")}
	args := append([]string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "n9", "--from-node", "n2", "--tag", "day2",
		"--into-data-dirs", "--data-dir", dirs[0], "--data-dir", dirs[1]}, noCassandra(t)...)
	r := mustRunWithin(t, args...)
	compareMaps(t, dataDirsTree(t, dirs...), want)
	tokens := sampleTokens(t, "4.1")
	for _, s := range []string{"\n    initial_token: " + strings.Join(tokens, ",") + "\n", "num_tokens: 16", "(from node n2, on node n9)", "(tag day2)", "chown"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("restore does not print %q:\n%s", s, r.stdout)
		}
	}
	if len(dataDirsTree(t, dirs[0])) == 0 || len(dataDirsTree(t, dirs[1])) == 0 {
		t.Fatalf("the tables were not spread over both data directories")
	}

	// Again: every file exists, nothing is replaced.
	wantExit(t, s3bakWithin(t, args...), exitFailed, "file exists", "--force")
	compareMaps(t, dataDirsTree(t, dirs...), want)

	// A table created again since the backup: another id.
	other := t.TempDir()
	live := mc[0].Name + "-99999999999999999999999999999999"
	mkdirAll(t, filepath.Join(other, mc[0].Keyspace, live))
	args = append([]string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "n9", "--from-node", "n2", "--tag", "day2",
		"--into-data-dirs", "--data-dir", other}, noCassandra(t)...)
	wantExit(t, s3bakWithin(t, args...), exitFailed, mc[0].Dir(), live, "--into-live-table-ids", "WITH ID = "+cassandra.UUID(mc[0].ID))
	if got := dataDirsTree(t, other); len(got) != 0 {
		t.Fatalf("a refused restore wrote %d files", len(got))
	}
	mustRunWithin(t, append(args, "--into-live-table-ids")...)
	moved := map[string][]byte{}
	for p, b := range want {
		moved[strings.Replace(p, "/"+mc[0].Dir()+"/", "/"+live+"/", 1)] = b
	}
	compareMaps(t, dataDirsTree(t, other), moved)
}

// compareMaps compares two trees byte for byte.
func compareMaps(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for p, b := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("missing: %s", p)
		} else if !bytes.Equal(g, b) {
			t.Errorf("%s: %d bytes differ from the %d wanted", p, len(g), len(b))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected: %s", p)
		}
	}
}

func mkdirAll(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreIntoDataDirsRefusedWhileRunning: a pid file naming a live
// process (this test's) or a native address that answers stops the
// restore before anything is written; --force restores anyway. The flags
// that make no sense together are usage errors.
func TestRestoreIntoDataDirsRefusedWhileRunning(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRunWithin(t, append(n.backupArgs(bucket), "--topology=false")...)
	data := filepath.Join(t.TempDir(), "data")
	pidFile := filepath.Join(t.TempDir(), "cassandra.pid")
	writeFile(t, pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"))
	base := []string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--into-data-dirs", "--data-dir", data}
	wantExit(t, s3bakWithin(t, append(base, "--cassandra-pid-file", pidFile, "--cassandra-native-address", closedAddr(t))...),
		exitFailed, "Cassandra is running", "is alive", "--force")
	l, err := listenLocal()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wantExit(t, s3bakWithin(t, append(base, "--cassandra-pid-file", filepath.Join(data, "none"), "--cassandra-native-address", l.Addr().String())...),
		exitFailed, "Cassandra is running", "answers on "+l.Addr().String())
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a refused restore made the data directory: %v", err)
	}
	mustRunWithin(t, append(base, "--cassandra-pid-file", pidFile, "--cassandra-native-address", l.Addr().String(), "--force")...)
	compareMaps(t, dataDirsTree(t, data), liveWant(n.want))

	wantExit(t, s3bakWithin(t, append(base, "--target", t.TempDir())...), exitUsage, "--into-data-dirs")
	wantExit(t, s3bakWithin(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--into-data-dirs"), exitUsage, "--data-dir")
	wantExit(t, s3bakWithin(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", t.TempDir(),
		"--load-script", filepath.Join(t.TempDir(), "s.sh"), "--loader", "sstableloader"), exitUsage, "--loader-hosts")
}

// runScript runs a load script with bash, bin first in PATH, within the
// test deadline.
func runScript(t *testing.T, script, bin string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash %s: %v\n%s\nscript:\n%s", script, err, out, readText(t, script))
	}
	return string(out)
}

func readText(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkScriptHeader: a reviewed script says what it does and from which
// backup, and stops at the first failure.
func checkScriptHeader(t *testing.T, text string, says ...string) {
	t.Helper()
	if !strings.HasPrefix(text, "#!/usr/bin/env bash\n# Loads into Cassandra the sstables of ") || !strings.Contains(text, "\nset -euo pipefail\n") {
		t.Fatalf("script header:\n%s", text)
	}
	for _, s := range says {
		if !strings.Contains(text, s) {
			t.Fatalf("the script does not say %q:\n%s", s, text)
		}
	}
}

// TestLoadScriptSSTableLoaderOtherTopology: n2's backup, restored into a
// directory whose name needs quoting, gets a script that streams each
// table to a cluster of another layout with sstableloader -d HOSTS; run
// with bash against a stand-in sstableloader first in PATH that checks its
// arguments and every path, it loads every table once, from a directory
// KEYSPACE/TABLE of the table's sstables only.
func TestLoadScriptSSTableLoaderOtherTopology(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	backupNight(t, n, bucket, "n2", n.tag, "4.1")
	root := t.TempDir()
	target := filepath.Join(root, "it's a restore $(id)")
	script := filepath.Join(root, "load n2's.sh")
	r := mustRunWithin(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "n2", "--target", target,
		"--load-script", script, "--loader", "sstableloader", "--loader-hosts", "10.0.9.1,10.0.9.2")
	compareTree(t, target, n.want)
	if !strings.Contains(r.stdout, "bash "+cassandra.Quote(script)) {
		t.Fatalf("restore does not say how to run the script:\n%s", r.stdout)
	}
	text := readText(t, script)
	checkScriptHeader(t, text, "sstables of backup ", "of prod/n2", "sstableloader -d 10.0.9.1,10.0.9.2", "SSTableLoader.java")
	bin := t.TempDir()
	writeScript(t, filepath.Join(bin, "sstableloader"), standInSSTableLoader)
	out := runScript(t, script, bin, "WANT_HOSTS=10.0.9.1,10.0.9.2")
	tables := cassandra.Tables(backupFilesOf(n.want))
	calls := strings.Split(strings.TrimSpace(readText(t, filepath.Join(bin, "calls"))), "\n")
	if len(calls) != len(tables) {
		t.Fatalf("%d sstableloader calls for %d tables:\n%s", len(calls), len(tables), out)
	}
	for i, tb := range tables {
		dir := filepath.Join(target, ".sstableloader", tb.Keyspace, tb.Table)
		if calls[i] != "-d 10.0.9.1,10.0.9.2 "+dir {
			t.Errorf("call %d: %q, want the directory %s", i, calls[i], dir)
		}
		staged, err := testfixture.TreeFiles(dir)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range staged {
			if !bytes.Equal(b, n.want[tb.Dir()+"/"+name]) || !cassandra.LiveFile(tb.Dir()+"/"+name) {
				t.Errorf("%s/%s is not a restored sstable", dir, name)
			}
		}
	}
	if !strings.Contains(out, "Streaming relevant part of ") || !strings.Contains(out, "to [/10.0.9.1, /10.0.9.2]") {
		t.Fatalf("output:\n%s", out)
	}
}

func backupFilesOf(want map[string][]byte) []cassandra.BackupFile {
	var out []cassandra.BackupFile
	for p, b := range want {
		out = append(out, cassandra.BackupFile{Path: p, Size: int64(len(b))})
	}
	return out
}

// TestLoadScriptNodetoolImport: on a host whose tokens differ from the
// backup's (its nodetool prints 5.0's sample, the backup recorded 4.1's),
// the script imports each table with --no-tokens and says why; run
// against a stand-in nodetool that checks every call and directory, it
// imports each table once. On a host with the backup's tokens the token
// check stays on.
func TestLoadScriptNodetoolImport(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	backupNight(t, n, bucket, "n2", n.tag, "4.1")
	base := []string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "n2"}

	target, script := filepath.Join(t.TempDir(), "r"), filepath.Join(t.TempDir(), "load.sh")
	other := loadNodetool(t, "5.0")
	mustRunWithin(t, append(base, "--target", target, "--load-script", script, "--nodetool", other)...)
	compareTree(t, target, n.want)
	text := readText(t, script)
	checkScriptHeader(t, text, "nodetool import (Cassandra 4.0+, the backup's node ran 4.1.7)", "tokens differ from the backup's",
		"Import.java", "nodetool cleanup", "--loader sstableloader")
	if !strings.Contains(text, `"${nodetool[@]}" import --no-tokens "$ks" "$table" "$dir"`) {
		t.Fatalf("no --no-tokens:\n%s", text)
	}
	runScript(t, script, t.TempDir())
	tables := cassandra.Tables(backupFilesOf(n.want))
	var want []string
	for _, tb := range tables {
		want = append(want, "import --no-tokens "+tb.Keyspace+" "+tb.Table+" "+filepath.Join(target, tb.Dir()))
	}
	if got := readText(t, filepath.Join(filepath.Dir(other), "calls")); got != "info -T\n"+strings.Join(want, "\n")+"\n" {
		t.Fatalf("nodetool calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	target, script = filepath.Join(t.TempDir(), "r"), filepath.Join(t.TempDir(), "load.sh")
	mustRunWithin(t, append(base, "--target", target, "--load-script", script, "--nodetool", loadNodetool(t, "4.1"))...)
	text = readText(t, script)
	if strings.Contains(text, "import --no-tokens") || !strings.Contains(text, "This host has the backup's 16 tokens") {
		t.Fatalf("same tokens:\n%s", text)
	}
	wantExit(t, s3bakWithin(t, append(base, "--target", target, "--force", "--load-script", script)...), exitUsage, "exists")

	// --cassandra-version 3 overrides the recorded 4.1: refresh, which
	// needs the live table directories.
	script3 := filepath.Join(t.TempDir(), "load3.sh")
	restore3 := append(base, "--target", filepath.Join(t.TempDir(), "r3"), "--load-script", script3, "--cassandra-version", "3.11")
	wantExit(t, s3bakWithin(t, restore3...), exitUsage, "Cassandra 3.x", "--data-dir")
	wantExit(t, s3bakWithin(t, append(restore3, "--data-dir", t.TempDir())...), exitFailed, "has no directory", "schema.cql")
	if _, err := os.Stat(script3); !os.IsNotExist(err) {
		t.Fatalf("a refused load script was written: %v", err)
	}
}

// TestLoadScriptCassandra3NeverOverwritesLiveSSTables: a 3.11 node's
// backup (its recorded version) gets a script that copies each restored
// sstable into the live table directory under a generation above the live
// ones and runs nodetool refresh. The live directory holds sstables of
// generations 1 (the restored one's) and 3: after the script they are
// untouched, the restored sstable is there as generation 1004 byte for
// byte, all its components alike, and neither manifest.json nor
// schema.cql nor a temporary file is.
func TestLoadScriptCassandra3NeverOverwritesLiveSSTables(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	backupNight(t, n, bucket, "n1", n.tag, "3.11")
	td, _ := testfixture.Testdata()
	mc, _ := testfixture.LegacyTables(td, "mc")
	table := mc[0]
	liveRoot := filepath.Join(t.TempDir(), "data 'live'")
	liveDir := filepath.Join(liveRoot, table.Keyspace, table.Dir())
	liveFiles := map[string][]byte{"mc-1-big-Data.db": []byte("live generation 1"), "mc-1-big-Index.db": []byte("live index 1"),
		"mc-3-big-Data.db": []byte("live generation 3")}
	for name, b := range liveFiles {
		writeFile(t, filepath.Join(liveDir, name), b)
	}
	target, script := filepath.Join(t.TempDir(), "r"), filepath.Join(t.TempDir(), "load.sh")
	nodetool := loadNodetool(t, "3.11")
	mustRunWithin(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "n1", "--table", table.Keyspace+"."+table.Name,
		"--target", target, "--load-script", script, "--nodetool", nodetool, "--data-dir", liveRoot)
	restored, err := testfixture.TreeFiles(target)
	if err != nil {
		t.Fatal(err)
	}
	text := readText(t, script)
	checkScriptHeader(t, text, "nodetool refresh (Cassandra 3.x, the backup's node ran 3.11.17)", "ln refuses a name that exists")
	runScript(t, script, t.TempDir())
	if got := readText(t, filepath.Join(filepath.Dir(nodetool), "calls")); got != "info -T\nrefresh "+table.Keyspace+" "+table.Name+"\n" {
		t.Fatalf("nodetool calls: %q", got)
	}
	after, err := testfixture.TreeFiles(liveDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for name, b := range liveFiles {
		want[name] = b
	}
	gen := regexp.MustCompile(`^mc-1-big-`)
	for p, b := range restored {
		name := filepath.Base(p)
		if gen.MatchString(name) {
			want[gen.ReplaceAllString(name, "mc-1004-big-")] = b
		}
	}
	if len(want) <= len(liveFiles)+1 {
		t.Fatalf("the restored table has no sstable of generation 1: %v", restored)
	}
	compareMaps(t, after, want)
}

// TestLoadScriptAllNodesSSTableLoader: restore --all-nodes of a night
// writes one sstableloader script for every node's tables (a whole
// cluster into one of another size); run against the stand-in, it streams
// each node's every table from that node's tree. --all-nodes with the
// nodetool loader is a usage error.
func TestLoadScriptAllNodesSSTableLoader(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	for _, node := range []string{"n1", "n2"} {
		backupNight(t, n, bucket, node, n.tag, "4.1")
	}
	target, script := filepath.Join(t.TempDir(), "night"), filepath.Join(t.TempDir(), "load-all.sh")
	base := []string{"restore", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--tag", n.tag, "--target", target, "--load-script", script}
	wantExit(t, s3bakWithin(t, base...), exitUsage, "--loader sstableloader")
	r := mustRunWithin(t, append(base, "--loader", "sstableloader", "--loader-hosts", "10.1.0.1")...)
	if !strings.Contains(r.stdout, "bash "+cassandra.Quote(script)) {
		t.Fatalf("restore does not say how to run the script:\n%s", r.stdout)
	}
	for _, node := range []string{"n1", "n2"} {
		compareTree(t, filepath.Join(target, node), n.want)
	}
	checkScriptHeader(t, readText(t, script), "the backups of tag "+n.tag+" of 2 nodes of cluster prod", "once per\n# replica restored", "# node n2\n")
	bin := t.TempDir()
	writeScript(t, filepath.Join(bin, "sstableloader"), standInSSTableLoader)
	runScript(t, script, bin, "WANT_HOSTS=10.1.0.1")
	var want []string
	for _, node := range []string{"n1", "n2"} {
		for _, tb := range cassandra.Tables(backupFilesOf(n.want)) {
			want = append(want, "-d 10.1.0.1 "+filepath.Join(target, node, ".sstableloader", tb.Keyspace, tb.Table))
		}
	}
	if got := readText(t, filepath.Join(bin, "calls")); got != strings.Join(want, "\n")+"\n" {
		t.Fatalf("sstableloader calls:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
