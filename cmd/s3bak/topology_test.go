package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// standInTopologyNodetool prints what Cassandra's nodetool prints for the
// calls backup --topology makes — info -T, status, describecluster,
// version — from the output samples of one Cassandra version in
// pkg/cassandra/testdata/nodetool/ (their sources: the README there).
// Connection options are skipped; every call is appended to calls.
const standInTopologyNodetool = `#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
while [ $# -gt 0 ]; do
	case "$1" in
	-h|-p|-u|-pw|-pwf|--host|--port|--username|--password|--password-file) shift 2 ;;
	-*) shift ;;
	*) break ;;
	esac
done
case "$1 $2" in
"info -T") cat "$SAMPLES/info-T.txt" ;;
"status ") cat "$SAMPLES/status.txt" ;;
"describecluster ") cat "$SAMPLES/describecluster.txt" ;;
"version ") cat "$SAMPLES/version.txt" ;;
*) echo "error: unexpected call: $*" >&2; echo "-- StackTrace --" >&2; exit 2 ;;
esac
`

// standInCqlsh prints a schema for -e 'DESCRIBE SCHEMA' after its host.
const standInCqlsh = `#!/bin/sh
[ "$1" = 10.0.2.12 ] && [ "$2" = -e ] && [ "$3" = "DESCRIBE SCHEMA" ] || { echo "cqlsh: bad arguments: $*" >&2; exit 2; }
cat <<'CQL'
CREATE KEYSPACE legacy_tables WITH replication = {'class': 'NetworkTopologyStrategy', 'eu-west': '3'}  AND durable_writes = true;

CREATE TABLE legacy_tables.legacy_mc_simple (
    pk text PRIMARY KEY,
    val text
);
CQL
`

func writeScript(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRecordsTopology: a Cassandra backup records the node's tokens,
// host ID, DC, rack, cluster name, address and Cassandra version from a
// stand-in nodetool first in PATH that prints Cassandra 3.11's, 4.1's or
// 5.0's output, and the schema from a stand-in cqlsh; list shows them and
// restore prints them with the initial_token line of every token.
func TestBackupRecordsTopology(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    catalog.Topology
	}{
		{"3.11", catalog.Topology{ClusterName: "Prod Cluster", DC: "dc1", Rack: "rack1",
			HostID: "4d6c8a2e-5f1b-4c1e-9a9e-2b7f0c3d8e11", ListenAddress: "10.0.1.11", Version: "3.11.17", Tokens: 8}},
		{"4.1", catalog.Topology{ClusterName: "prod", DC: "eu-west", Rack: "eu-west-1a",
			HostID: "b1e2c3d4-0a1b-4c2d-8e3f-405162738495", ListenAddress: "10.0.2.12", Version: "4.1.7", Tokens: 16}},
		{"5.0", catalog.Topology{ClusterName: "prod-5", DC: "us-east", Rack: "us-east-1c",
			HostID: "0f9e8d7c-6b5a-4948-b7a6-9584736251a0", ListenAddress: "10.0.3.13", Version: "5.0.2", Tokens: 16}},
	} {
		t.Run(tc.version, func(t *testing.T) { testBackupRecordsTopology(t, tc.version, tc.want) })
	}
}

func testBackupRecordsTopology(t *testing.T, version string, topo catalog.Topology) {
	samples, err := filepath.Abs(filepath.Join("..", "..", "pkg", "cassandra", "testdata", "nodetool", version))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	writeScript(t, filepath.Join(bin, "nodetool"), strings.Replace(standInTopologyNodetool, "$SAMPLES", samples, -1))
	writeScript(t, filepath.Join(bin, "cqlsh"), standInCqlsh)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	n := buildNode(t)
	bucket := newBucket(t)
	n.extra = []string{"--nodetool", "nodetool -h 127.0.0.1 -u cassandra", "--cqlsh", "cqlsh 10.0.2.12"}
	r := mustRun(t, n.backupArgs(bucket)...)
	if strings.Contains(r.stderr, `"WARN"`) {
		t.Fatalf("warnings: %s", r.stderr)
	}
	calls, _ := os.ReadFile(filepath.Join(bin, "calls"))
	if want := "-h 127.0.0.1 -u cassandra info -T\n-h 127.0.0.1 -u cassandra status\n-h 127.0.0.1 -u cassandra describecluster\n-h 127.0.0.1 -u cassandra version\n"; string(calls) != want {
		t.Fatalf("nodetool calls:\n%s\nwant:\n%s", calls, want)
	}
	info, _ := os.ReadFile(filepath.Join(samples, "info-T.txt"))
	want := cassandra.ParseInfo(string(info)).Tokens
	if len(want) != topo.Tokens {
		t.Fatalf("the sample has %d tokens", len(want))
	}

	m, err := catalog.Load(context.Background(), testClient(t, bucket), manifest.Node{Cluster: "prod", Name: "cass-1"}, "latest")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		cassandra.MetaTokens: strings.Join(want, ","), cassandra.MetaHostID: topo.HostID,
		cassandra.MetaDC: topo.DC, cassandra.MetaRack: topo.Rack, cassandra.MetaClusterName: topo.ClusterName,
		cassandra.MetaListenAddress: topo.ListenAddress, cassandra.MetaVersion: topo.Version,
	} {
		if m.Meta[k] != v {
			t.Errorf("manifest meta %s = %q, want %q", k, m.Meta[k], v)
		}
	}
	if !strings.Contains(m.Meta[cassandra.MetaSchema], "CREATE TABLE legacy_tables.legacy_mc_simple") {
		t.Errorf("schema not recorded: %q", m.Meta[cassandra.MetaSchema])
	}

	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	list := mustRun(t, append([]string{"list", "--output", "json"}, node...)...)
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(list.stdout), &sums); err != nil || len(sums) != 1 || sums[0].Topology == nil {
		t.Fatalf("list: %v %s", err, list.stdout)
	}
	if got := *sums[0].Topology; got != topo {
		t.Fatalf("list topology: %+v, want %+v", got, topo)
	}
	short := fmt.Sprintf("%s/%s %d tokens %s", topo.DC, topo.Rack, topo.Tokens, topo.Version)
	if l := mustRun(t, append([]string{"list"}, node...)...); !strings.Contains(l.stdout, "TOPOLOGY") || !strings.Contains(l.stdout, short) {
		t.Fatalf("list table: %s", l.stdout)
	}
	if st := mustRun(t, append([]string{"status"}, node...)...); !strings.Contains(st.stdout, "TOPOLOGY") || !strings.Contains(st.stdout, short) {
		t.Fatalf("status table: %s", st.stdout)
	}

	target := filepath.Join(t.TempDir(), "restore")
	r = mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
	for _, s := range []string{"DC " + topo.DC + ", rack " + topo.Rack, "host ID " + topo.HostID, "Cassandra " + topo.Version,
		"cluster " + topo.ClusterName, "address " + topo.ListenAddress,
		fmt.Sprintf("%d tokens (%s, %s, %s, …)", topo.Tokens, want[0], want[1], want[2]), "\n  initial_token: " + strings.Join(want, ",") + "\n"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("restore does not print %q:\n%s", s, r.stdout)
		}
	}
	r = mustRun(t, append([]string{"restore", "--force", "--target", target, "--output", "json"}, node...)...)
	var out restoreOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Topology == nil || strings.Join(out.Topology.Tokens, ",") != strings.Join(want, ",") {
		t.Fatalf("restore --output json: %v %s", err, r.stdout)
	}
}

// TestBackupReadsTopologyBeside: the topology and the schema are read
// while the backup stores its files, not before: a live node's nodetool
// starts a JVM for each of its four calls. The stand-in nodetool and cqlsh
// answer only once the bucket holds some of the node's data, which the test
// watches for; a backup that waited for them before storing anything would
// see both give up (after a minute, a bound against a hang) and warn.
func TestBackupReadsTopologyBeside(t *testing.T) {
	t.Parallel()
	samples, err := filepath.Abs(filepath.Join("..", "..", "pkg", "cassandra", "testdata", "nodetool", "4.1"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	stored := filepath.Join(bin, "stored")
	wait := fmt.Sprintf(`i=0
while [ ! -e %q ]; do
	i=$((i+1)); [ $i -gt 1200 ] && { echo "error: the backup stored nothing while this ran" >&2; exit 2; }
	sleep 0.05
done
`, stored)
	nodetool := strings.Replace(standInTopologyNodetool, "$SAMPLES", samples, -1)
	nodetool = strings.Replace(nodetool, "while [ $# -gt 0 ]", wait+"while [ $# -gt 0 ]", 1)
	writeScript(t, filepath.Join(bin, "nodetool"), nodetool)
	writeScript(t, filepath.Join(bin, "cqlsh"), strings.Replace(standInCqlsh, "cat <<'CQL'", wait+"cat <<'CQL'", 1))

	n := buildNode(t)
	bucket := newBucket(t)
	n.extra = []string{"--nodetool", filepath.Join(bin, "nodetool") + " -h 127.0.0.1", "--cqlsh", filepath.Join(bin, "cqlsh") + " 10.0.2.12"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	c := testClient(t, bucket)
	go func() {
		for ctx.Err() == nil {
			for _, err := range c.List(ctx, "prod/cass-1/data/") {
				if err == nil {
					err = os.WriteFile(stored, nil, 0o644)
				}
				watched <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		watched <- ctx.Err()
	}()
	r := mustRun(t, n.backupArgs(bucket)...)
	cancel()
	if err := <-watched; err != nil && err != context.Canceled {
		t.Fatal(err)
	}
	if strings.Contains(r.stderr, `"WARN"`) {
		t.Fatalf("warnings: %s", r.stderr)
	}
	m, err := catalog.Load(context.Background(), testClient(t, bucket), manifest.Node{Cluster: "prod", Name: "cass-1"}, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := cassandra.TopologyFromMeta(m.Meta); !ok || got.HostID != "b1e2c3d4-0a1b-4c2d-8e3f-405162738495" || got.Version != "4.1.7" {
		t.Fatalf("topology: %+v %v", got, ok)
	}
	if !strings.Contains(m.Meta[cassandra.MetaSchema], "CREATE TABLE legacy_tables.legacy_mc_simple") {
		t.Fatalf("schema not recorded: %q", m.Meta[cassandra.MetaSchema])
	}
}

// TestBackupTopologyUnknown: a nodetool that fails, or is missing, and a
// cqlsh that is missing do not stop the backup: the topology is recorded
// as unknown, the schema is left out, and each says so in a warning.
func TestBackupTopologyUnknown(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	failing := filepath.Join(bin, "nodetool")
	writeScript(t, failing, "#!/bin/sh\necho \"error: Failed to connect to '127.0.0.1:7199' - ConnectException: 'Connection refused'.\" >&2\necho '-- StackTrace --' >&2\nexit 2\n")
	for i, nodetool := range []string{failing, filepath.Join(bin, "missing-nodetool")} {
		n := buildNode(t)
		bucket := newBucket(t)
		n.extra = []string{"--nodetool", nodetool, "--cqlsh", filepath.Join(bin, "missing-cqlsh")}
		r := mustRun(t, n.backupArgs(bucket)...)
		warned := loggedText(r.stderr)
		for _, s := range []string{"recorded as unknown", "the full CQL schema is not recorded"} {
			if !strings.Contains(warned, s) {
				t.Fatalf("%s: no warning %q:\n%s", nodetool, s, r.stderr)
			}
		}
		if i == 0 && !strings.Contains(warned, "Connection refused") {
			t.Fatalf("the warning does not say why: %s", r.stderr)
		}
		m, err := catalog.Load(context.Background(), testClient(t, bucket), manifest.Node{Cluster: "prod", Name: "cass-1"}, "latest")
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Files) != len(n.want) {
			t.Fatalf("backed up %d files, want %d", len(m.Files), len(n.want))
		}
		for _, k := range []string{cassandra.MetaTokens, cassandra.MetaHostID, cassandra.MetaDC, cassandra.MetaRack,
			cassandra.MetaClusterName, cassandra.MetaListenAddress, cassandra.MetaVersion} {
			if m.Meta[k] != cassandra.Unknown {
				t.Errorf("%s: meta %s = %q, want unknown", nodetool, k, m.Meta[k])
			}
		}
		if _, ok := m.Meta[cassandra.MetaSchema]; ok {
			t.Errorf("a schema recorded without cqlsh")
		}
		node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
		target := filepath.Join(t.TempDir(), "restore")
		r = mustRun(t, append([]string{"restore", "--target", target}, node...)...)
		compareTree(t, target, n.want)
		if !strings.Contains(r.stdout, "tokens unknown") || strings.Contains(r.stdout, "initial_token") {
			t.Fatalf("restore: %s", r.stdout)
		}
	}
	// --topology=false: no nodetool, no cqlsh, nothing recorded, no warning.
	n := buildNode(t)
	bucket := newBucket(t)
	n.extra = []string{"--topology=false", "--nodetool", failing, "--cqlsh", filepath.Join(bin, "missing-cqlsh")}
	r := mustRun(t, n.backupArgs(bucket)...)
	if strings.Contains(r.stderr, `"WARN"`) {
		t.Fatalf("warnings: %s", r.stderr)
	}
	m, err := catalog.Load(context.Background(), testClient(t, bucket), manifest.Node{Cluster: "prod", Name: "cass-1"}, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cassandra.TopologyFromMeta(m.Meta); ok {
		t.Fatalf("--topology=false recorded a topology: %v", m.Meta)
	}
}

func TestTopologyCall(t *testing.T) {
	for line, want := range map[string]bool{
		"-h 127.0.0.1 -u cassandra --password-file /etc/cassandra/jmx remote.password info -T\n":       true,
		"-h 127.0.0.1 -u cassandra --password-file /etc/cassandra/jmx remote.password snapshot -t x\n": false,
		"describecluster": true, "status": true, "version": true, "clearsnapshot -t version": false,
	} {
		if got := topologyCall(line); got != want {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
}

// topologyCall reports whether a stand-in nodetool's call (its arguments
// on a line) is one of those a backup makes to read the topology: its first
// nodetool command word (the connection options before it are skipped).
func topologyCall(line string) bool {
	for _, w := range strings.Fields(line) {
		switch w {
		case "info", "status", "describecluster", "version":
			return true
		case "snapshot", "clearsnapshot":
			return false
		}
	}
	return false
}

// TestRestoreAllNodesTopology: three nodes back up the same night, each
// with a stand-in nodetool of another Cassandra version; restore
// --all-nodes prints each node's recorded place and gives every token in
// --output json.
func TestRestoreAllNodesTopology(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	bin := t.TempDir()
	versions := map[string]string{"n1": "3.11", "n2": "4.1", "n3": "5.0"}
	for node, version := range versions {
		samples, err := filepath.Abs(filepath.Join("..", "..", "pkg", "cassandra", "testdata", "nodetool", version))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(bin, node)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeScript(t, filepath.Join(dir, "nodetool"), strings.Replace(standInTopologyNodetool, "$SAMPLES", samples, -1))
		args := n.backupArgs(bucket)
		for i, a := range args {
			if a == "--node" {
				args[i+1] = node
			}
		}
		mustRun(t, append(args, "--nodetool", filepath.Join(dir, "nodetool"), "--cqlsh", filepath.Join(bin, "missing-cqlsh"))...)
	}
	target := t.TempDir()
	base := []string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "n1", "--all-nodes", "--tag", n.tag}
	r := mustRun(t, append(base, "--target", filepath.Join(target, "text"))...)
	for _, s := range []string{"DC dc1, rack rack1", "DC eu-west, rack eu-west-1a", "DC us-east, rack us-east-1c", "Cassandra 3.11.17", "Cassandra 5.0.2"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("restore --all-nodes does not print %q:\n%s", s, r.stdout)
		}
	}
	r = mustRun(t, append(base, "--target", filepath.Join(target, "json"), "--output", "json")...)
	var outs []restoreOutput
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 3 {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	for _, out := range outs {
		info, _ := os.ReadFile(filepath.Join("..", "..", "pkg", "cassandra", "testdata", "nodetool", versions[out.Node], "info-T.txt"))
		want := cassandra.ParseInfo(string(info)).Tokens
		if out.Topology == nil || len(want) == 0 || strings.Join(out.Topology.Tokens, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: topology %+v, want tokens %q", out.Node, out.Topology, want)
		}
		compareTree(t, filepath.Join(target, "json", out.Node), n.want)
	}
}
