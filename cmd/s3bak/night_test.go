package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/runlog"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// nightKeeper wraps the stand-in nodetool (moved to nodetool.real beside
// it): before a clearsnapshot it copies the tag's snapshot directories to
// kept/TAG/<keyspace>/<table>-<id>/, so the test knows byte for byte what
// the backup saw after s3bak has cleared the snapshot.
const nightKeeper = `#!/bin/sh
here=$(dirname "$0")
tag=
cmd=
prev=
for a in "$@"; do
	[ "$prev" = "-t" ] && tag=$a
	case "$a" in snapshot|clearsnapshot) [ -z "$cmd" ] && cmd=$a ;; esac
	prev=$a
done
if [ "$cmd" = clearsnapshot ] && [ -n "$tag" ] && [ ! -f "$here/fail-clearsnapshot" ]; then
	for t in $DATA_GLOBS; do
		s="$t/snapshots/$tag"
		[ -d "$s" ] || continue
		ks=$(basename "$(dirname "$t")")
		mkdir -p "$here/kept/$tag/$ks"
		rm -rf "$here/kept/$tag/$ks/$(basename "$t")"
		cp -R "$s" "$here/kept/$tag/$ks/$(basename "$t")"
	done
fi
exec "$here/nodetool.real" "$@"
`

// nightNode is one node of the three-node night: newLiveNode's data
// directories and stand-in nodetool, the keeper in front of it, its own
// PATH and metrics file.
type nightNode struct {
	*liveNode
	name    string
	path    string // PATH for its processes: the stand-in first
	metrics string
	grow    string // the table directory that gets new sstables
	gen     int    // the generation of the newest sstable written there
}

func newNightNode(t *testing.T, name, basePath string) *nightNode {
	t.Helper()
	ln := newLiveNode(t)
	if err := os.Rename(filepath.Join(ln.bin, "nodetool"), filepath.Join(ln.bin, "nodetool.real")); err != nil {
		t.Fatal(err)
	}
	var globs []string
	for _, d := range ln.dataDirs {
		globs = append(globs, d+"/*/*")
	}
	script := strings.ReplaceAll(nightKeeper, "$DATA_GLOBS", strings.Join(globs, " "))
	if err := os.WriteFile(filepath.Join(ln.bin, "nodetool"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	grow, _ := filepath.Glob(filepath.Join(ln.dataDirs[0], "legacy_tables", "*"))
	if len(grow) == 0 {
		t.Fatal("no table directory to grow")
	}
	return &nightNode{liveNode: ln, name: name, path: ln.bin + string(os.PathListSeparator) + basePath,
		metrics: filepath.Join(t.TempDir(), "textfile", name+".prom"), grow: grow[0], gen: 100}
}

// flush writes a new sstable generation (Data.db with its Digest.crc32 and
// TOC.txt) into the growing table, as a memtable flush or a compaction
// does; with compact the previous generation it wrote is removed, as a
// compaction removes the sstables it merged.
func (n *nightNode) flush(t *testing.T, compact bool) {
	t.Helper()
	if compact {
		old, _ := filepath.Glob(filepath.Join(n.grow, fmt.Sprintf("*-%d-big-*", n.gen)))
		if len(old) != 3 {
			t.Fatalf("compaction: %d files of generation %d, want 3", len(old), n.gen)
		}
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.gen++
	data := make([]byte, 48<<10)
	rand.Read(data)
	base := filepath.Join(n.grow, fmt.Sprintf("mc-%d-big-", n.gen))
	writeFile(t, base+"Data.db", data)
	writeFile(t, base+"Digest.crc32", []byte(strconv.FormatUint(uint64(crc32.ChecksumIEEE(data)), 10)))
	writeFile(t, base+"TOC.txt", []byte("Data.db\nDigest.crc32\nTOC.txt\n"))
}

// leftSnapshots are the node's snapshot directories other than the
// fixture's "older" one (not s3bak's).
func (n *nightNode) leftSnapshots() []string {
	var left []string
	for _, d := range n.dataDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "*", "snapshots", "*"))
		for _, s := range m {
			if filepath.Base(s) != "older" {
				left = append(left, s)
			}
		}
	}
	return left
}

// kept is the snapshot of tag as the stand-in took it (the keeper's copy),
// under the paths a restore recreates; system keyspaces are not backed up.
func (n *nightNode) kept(t *testing.T, tag string) map[string][]byte {
	t.Helper()
	all, err := testfixture.TreeFiles(filepath.Join(n.bin, "kept", tag))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for p, b := range all {
		if !strings.HasPrefix(p, "system") {
			want[p] = b
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s: no kept snapshot of %s", n.name, tag)
	}
	return want
}

// backup runs the built binary as the scheduler would: its own process,
// the node's PATH (the stand-in nodetool first), its metrics file.
func (n *nightNode) backup(ctx context.Context, bucket, tag string) result {
	args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", n.name, "--snapshot", "--tag", tag,
		"--tag-period", "24h", "--skip-preflight", "--metrics-file", n.metrics, "--output", "json", "--log-format", "json"}
	for _, d := range n.dataDirs {
		args = append(args, "--data-dir", d)
	}
	cmd := exec.CommandContext(ctx, s3bakBin, args...)
	env := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "PATH=") })
	cmd.Env = append(env, "PATH="+n.path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code <= 0 {
		code = -1
		errb.WriteString("\nrun: " + err.Error())
	}
	return result{code, out.String(), errb.String()}
}

// nightMetric is a gauge of n's metrics file for command backup.
func nightMetric(t *testing.T, n *nightNode, name string) float64 {
	t.Helper()
	mf := parseMetrics(t, n.metrics)[name]
	if mf == nil {
		t.Fatalf("%s: no %s in %s", n.name, name, n.metrics)
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["command"] == "backup" && l["cluster"] == "prod" && l["node"] == n.name && len(l) == 3 {
			return m.GetGauge().GetValue()
		}
	}
	return math.NaN()
}

// TestThreeNodeNight is issue #15's night: three nodes, each with its own
// data directories, stand-in nodetool, process and metrics file, run
// `backup --snapshot` concurrently on five simulated days, with new and
// compacted sstables between the days. On day 4 n2's nodetool cannot
// connect: status --expect-nodes shows n2 failed with that error and exits
// 7, n2's last success stays day 3's; on day 5 all succeed and status is
// clean. No snapshot is left after a success, and each node's latest
// backup restores byte for byte as its day-5 snapshot.
//
// The tags: backup has no clock override (`--tag auto` names the tag from
// time.Now(), and there is no hidden flag or variable to set it), so days
// 1–4 are explicit tags day1…day4; day 5 is `--tag auto --tag-period 24h`
// itself, which must give the three nodes the same tag, today's.
func TestThreeNodeNight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	basePath := os.Getenv("PATH")
	bucket := newBucket(t)
	var nodes []*nightNode
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, newNightNode(t, name, basePath))
	}
	for _, n := range nodes {
		if err := os.MkdirAll(filepath.Dir(n.metrics), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n2 := nodes[1]
	statusArgs := []string{"status", "--bucket", bucket, "--cluster", "prod", "--expect-nodes", "n1,n2,n3", "--max-age", "26h", "--output", "json"}
	const refused = "Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'."

	var n2Day3Success float64
	lastTag := map[string]string{}
	lastSuccess := map[string]float64{}
	for day := 1; day <= 5; day++ {
		tag := fmt.Sprintf("day%d", day)
		if day == 5 {
			tag = "auto"
		}
		if day > 1 {
			for _, n := range nodes {
				n.flush(t, day > 2)
			}
		}
		if day == 4 {
			n2.marker(t, "fail-snapshot", refused)
		}
		if day == 5 {
			os.Remove(filepath.Join(n2.bin, "fail-snapshot"))
		}

		// The night: the three nodes at once.
		dayCtx, dayCancel := context.WithTimeout(ctx, 30*time.Second)
		results := make([]result, len(nodes))
		starts := make([]float64, len(nodes))
		ends := make([]float64, len(nodes))
		before := time.Now()
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				starts[i] = float64(time.Now().UnixMilli()) / 1000
				results[i] = n.backup(dayCtx, bucket, tag)
				ends[i] = float64(time.Now().UnixMilli()) / 1000
			})
		}
		wg.Wait()
		dayCancel()
		t.Logf("day %d: the three backups took %s", day, time.Since(before).Round(time.Millisecond))
		wantTag := tag
		if day == 5 {
			t1, _ := cassandra.AutoTag(before, 24*time.Hour)
			t2, _ := cassandra.AutoTag(time.Now(), 24*time.Hour)
			wantTag = t1
			var out backupOutput
			if json.Unmarshal([]byte(results[0].stdout), &out) == nil && out.Tag == t2 {
				wantTag = t2 // midnight UTC passed during the night
			}
		}

		for i, n := range nodes {
			r := results[i]
			calls := n.calls(t)
			if day == 4 && n == n2 {
				// The failure: exit 1 with nodetool's error, as one JSON
				// record; the run record and metrics keep it.
				wantExit(t, r, 1, "nodetool snapshot -t day4", refused)
				var rec map[string]any
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil || rec["level"] != "ERROR" ||
					rec["exit_code"] != float64(1) || rec["node"] != "n2" || rec["class"] == nil {
					t.Fatalf("n2's fatal error is not one JSON record: %v\n%s", err, r.stderr)
				}
				for _, l := range lines {
					if !json.Valid([]byte(l)) {
						t.Fatalf("n2's stderr has a line that is not JSON: %q", l)
					}
				}
				if !slices.Equal(calls, []string{"snapshot -t day4"}) {
					t.Fatalf("n2's nodetool calls on day 4: %q", calls)
				}
				if left := n.leftSnapshots(); len(left) > 0 {
					t.Fatalf("n2: a snapshot after the failed snapshot call: %s", left)
				}
				if v := nightMetric(t, n, metricLastSuccess); v != n2Day3Success {
					t.Fatalf("n2's last success after day 4's failure: %v, want day 3's %v", v, n2Day3Success)
				}
				if v := nightMetric(t, n, metricLastExitCode); v != 1 {
					t.Fatalf("n2's last exit code after day 4: %v", v)
				}
				recs := runRecords(t, bucket, "n2")
				if last := recs[len(recs)-1]; last.Outcome != runlog.Failed || last.ExitCode != 1 || last.Tag != "day4" ||
					!strings.Contains(last.Error, "Connection refused") {
					t.Fatalf("n2's run record of day 4: %+v", last)
				}
				continue
			}
			if r.code != 0 {
				t.Fatalf("day %d %s: exit %d\nstdout: %s\nstderr: %s", day, n.name, r.code, r.stdout, r.stderr)
			}
			var out backupOutput
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&out); err != nil {
				t.Fatalf("day %d %s: backup --output json: %v\n%s", day, n.name, err, r.stdout)
			}
			if out.Tag != wantTag || out.Node != n.name || out.Cluster != "prod" || out.AlreadyBackedUp || out.BackupID == "" {
				t.Fatalf("day %d %s: tag %q (want %q): %+v", day, n.name, out.Tag, wantTag, out)
			}
			if want := n.kept(t, out.Tag); out.Files != len(want) {
				t.Fatalf("day %d %s: %d files backed up, the snapshot has %d", day, n.name, out.Files, len(want))
			}
			// Differential: what the snapshot hard-linked unchanged is not
			// read again, the new sstable is.
			if day > 1 && (out.Unread == 0 || out.UploadedBytes == 0 || out.ReadBytes >= out.RawBytes) {
				t.Fatalf("day %d %s: not differential: %+v", day, n.name, out)
			}
			if !slices.Equal(calls, []string{"snapshot -t " + out.Tag, "clearsnapshot -t " + out.Tag}) {
				t.Fatalf("day %d %s: nodetool calls %q", day, n.name, calls)
			}
			if left := n.leftSnapshots(); len(left) > 0 {
				t.Fatalf("day %d %s: snapshot left after the backup: %s", day, n.name, left)
			}
			success := nightMetric(t, n, metricLastSuccess)
			if success < starts[i] || success > ends[i] || success <= lastSuccess[n.name] {
				t.Fatalf("day %d %s: last success %.3f, want in [%.3f, %.3f] and after %.3f", day, n.name, success, starts[i], ends[i], lastSuccess[n.name])
			}
			if v := nightMetric(t, n, metricLastExitCode); v != 0 {
				t.Fatalf("day %d %s: last exit code %v", day, n.name, v)
			}
			if v := nightMetric(t, n, metricFiles); v != float64(out.Files) {
				t.Fatalf("day %d %s: files metric %v, want %d", day, n.name, v, out.Files)
			}
			lastSuccess[n.name] = success
			lastTag[n.name] = out.Tag
			if day == 3 && n == n2 {
				n2Day3Success = success
			}
			if day == 5 && n == n2 && success <= n2Day3Success {
				t.Fatalf("n2's last success did not move on day 5: %v", success)
			}
		}

		// The morning: status.
		r := s3bak(t, statusArgs...)
		rep := statusJSON(t, r)
		if day == 4 {
			wantExit(t, r, exitStatus)
			if rep.OK || !slices.Equal(rep.Attention, []string{"n2"}) {
				t.Fatalf("status on day 4: %+v", rep)
			}
			s := nodeByName(t, rep, "n2")
			if s.State != stateFailed || s.LastRun == nil || s.LastRun.ExitCode != 1 || s.LastRun.Outcome != runlog.Failed ||
				!strings.Contains(s.LastRun.Error, "Connection refused") || s.LastBackup == nil || s.LastBackup.Tag != "day3" ||
				len(s.Problems) == 0 || !strings.Contains(strings.Join(s.Problems, "\n"), "Connection refused") {
				t.Fatalf("n2 on day 4: %+v (last run %+v)", s, s.LastRun)
			}
			// The table names the failure too.
			tr := s3bak(t, slices.Clone(statusArgs[:len(statusArgs)-2])...)
			wantExit(t, tr, exitStatus)
			for _, want := range []string{"n2: last run failed", "Connection refused"} {
				if !strings.Contains(tr.stdout, want) {
					t.Fatalf("status table on day 4 does not say %q:\n%s", want, tr.stdout)
				}
			}
		} else if r.code != 0 || !rep.OK || len(rep.Attention) != 0 {
			t.Fatalf("status on day %d: exit %d: %+v\n%s", day, r.code, rep, r.stderr)
		}
		for _, n := range nodes {
			s := nodeByName(t, rep, n.name)
			if day == 4 && n == n2 {
				continue
			}
			if s.State != stateOK || s.LastBackup == nil || s.LastBackup.Tag != lastTag[n.name] || s.LastRun == nil ||
				s.LastRun.Outcome != runlog.Success || s.AgeSeconds <= 0 || s.AgeSeconds > 600 {
				t.Fatalf("status of %s on day %d: %+v", n.name, day, s)
			}
			if day > 1 && (s.AddedBytes == nil || *s.AddedBytes == 0) {
				t.Fatalf("status of %s on day %d: nothing added: %+v", n.name, day, s)
			}
		}
	}

	// Every node's latest backup restores as its day-5 snapshot.
	for _, n := range nodes {
		target := t.TempDir()
		r := mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", n.name, "--target", target, "--output", "json")
		var out restoreOutput
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("%s: restore --output json: %v\n%s", n.name, err, r.stdout)
		}
		want := n.kept(t, lastTag[n.name])
		if out.Tag != lastTag[n.name] || out.Files != len(want) {
			t.Fatalf("%s: restored tag %q with %d files, want %q with %d", n.name, out.Tag, out.Files, lastTag[n.name], len(want))
		}
		compareTree(t, target, want)
	}
}
