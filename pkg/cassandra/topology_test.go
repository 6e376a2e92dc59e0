package cassandra

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The samples in testdata/nodetool/<version>/ are Cassandra 3.11, 4.1 and
// 5.0's output formats (their sources: testdata/nodetool/README.md).
func readSample(t *testing.T, version, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "nodetool", version, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseTopology(t *testing.T) {
	for _, tc := range []struct {
		version                                    string
		hostID, dc, rack, cluster, address, relver string
		tokens                                     int
		firstToken                                 string
	}{
		{"3.11", "4d6c8a2e-5f1b-4c1e-9a9e-2b7f0c3d8e11", "dc1", "rack1", "Prod Cluster", "10.0.1.11", "3.11.17", 8, ""},
		{"4.1", "b1e2c3d4-0a1b-4c2d-8e3f-405162738495", "eu-west", "eu-west-1a", "prod", "10.0.2.12", "4.1.7", 16, "7259544643672944372"},
		{"5.0", "0f9e8d7c-6b5a-4948-b7a6-9584736251a0", "us-east", "us-east-1c", "prod-5", "10.0.3.13", "5.0.2", 16, ""},
	} {
		t.Run(tc.version, func(t *testing.T) {
			info := ParseInfo(readSample(t, tc.version, "info-T.txt"))
			if info.HostID != tc.hostID || info.DC != tc.dc || info.Rack != tc.rack {
				t.Errorf("info: host %q dc %q rack %q", info.HostID, info.DC, info.Rack)
			}
			if len(info.Tokens) != tc.tokens {
				t.Errorf("info -T: %d tokens, want %d: %q", len(info.Tokens), tc.tokens, info.Tokens)
			}
			if tc.firstToken != "" && info.Tokens[0] != tc.firstToken {
				t.Errorf("first token %q, want %q", info.Tokens[0], tc.firstToken)
			}
			for _, tok := range info.Tokens {
				if strings.ContainsAny(tok, " :(") {
					t.Errorf("token %q", tok)
				}
			}
			// Without -T: no tokens, the rest the same.
			short := ParseInfo(readSample(t, tc.version, "info.txt"))
			if short.Tokens != nil || short.HostID != tc.hostID || short.DC != tc.dc {
				t.Errorf("info without -T: %+v", short)
			}
			if got := ParseDescribeCluster(readSample(t, tc.version, "describecluster.txt")); got != tc.cluster {
				t.Errorf("cluster name %q, want %q", got, tc.cluster)
			}
			if got := ParseVersion(readSample(t, tc.version, "version.txt")); got != tc.relver {
				t.Errorf("version %q, want %q", got, tc.relver)
			}
			status := readSample(t, tc.version, "status.txt")
			if got := ParseStatus(status, tc.hostID); got != tc.address {
				t.Errorf("address %q, want %q", got, tc.address)
			}
			if got := ParseStatus(status, "00000000-0000-0000-0000-000000000000"); got != "" {
				t.Errorf("address of an unknown host %q", got)
			}
		})
	}
}

func TestParseInfoNotJoined(t *testing.T) {
	out := "ID                     : 4d6c8a2e-5f1b-4c1e-9a9e-2b7f0c3d8e11\nToken                  : (node is not joined to the cluster)\n"
	if got := ParseInfo(out); got.Tokens != nil || got.HostID == "" {
		t.Fatalf("%+v", got)
	}
}

func TestTopologyMeta(t *testing.T) {
	topo := Topology{Tokens: []string{"-3", "7", "11", "42"}, HostID: "h", DC: "dc1", Rack: "r1", ClusterName: "c", ListenAddress: "10.0.0.1", Version: "4.1.7"}
	meta := topo.Meta()
	if meta[MetaTokens] != "-3,7,11,42" {
		t.Fatalf("tokens %q", meta[MetaTokens])
	}
	back, ok := TopologyFromMeta(meta)
	if !ok || !slices.Equal(back.Tokens, topo.Tokens) || back.HostID != "h" || back.Version != "4.1.7" {
		t.Fatalf("round trip: %+v", back)
	}
	if got := topo.InitialToken(); got != "initial_token: -3,7,11,42" {
		t.Fatalf("%q", got)
	}
	if got := topo.TokenSummary(); got != "4 tokens (-3, 7, 11, …)" {
		t.Fatalf("%q", got)
	}
	if _, ok := TopologyFromMeta(map[string]string{"hbase.snapshots": "x"}); ok {
		t.Fatal("topology from a manifest without one")
	}
	unknown, _ := TopologyFromMeta(Topology{HostID: Unknown}.Meta())
	if unknown.Tokens != nil || unknown.InitialToken() != "" || unknown.TokenSummary() != "tokens unknown" {
		t.Fatalf("%+v", unknown)
	}
}

// ReadTopology against a stand-in nodetool printing the 4.1 samples, and
// against one that fails: unknown, with the errors.
func TestReadTopology(t *testing.T) {
	dir := t.TempDir()
	samples, _ := filepath.Abs(filepath.Join("testdata", "nodetool", "4.1"))
	script := "#!/bin/sh\ncase \"$1\" in\ninfo) cat " + samples + "/info-T.txt ;;\nstatus) cat " + samples + "/status.txt ;;\n" +
		"describecluster) cat " + samples + "/describecluster.txt ;;\nversion) cat " + samples + "/version.txt ;;\n*) exit 1 ;;\nesac\n"
	good := filepath.Join(dir, "nodetool")
	if err := os.WriteFile(good, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	topo, errs := Nodetool{Command: []string{good}}.ReadTopology(context.Background())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := Topology{HostID: "b1e2c3d4-0a1b-4c2d-8e3f-405162738495", DC: "eu-west", Rack: "eu-west-1a", ClusterName: "prod", ListenAddress: "10.0.2.12", Version: "4.1.7"}
	if len(topo.Tokens) != 16 {
		t.Fatalf("tokens %q", topo.Tokens)
	}
	topo.Tokens = nil
	if !reflect.DeepEqual(topo, want) {
		t.Fatalf("got %+v\nwant %+v", topo, want)
	}
	bad := filepath.Join(dir, "failing")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho \"error: Failed to connect to '127.0.0.1:7199'\" >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{bad, filepath.Join(dir, "missing")} {
		topo, errs = Nodetool{Command: []string{cmd}}.ReadTopology(context.Background())
		if len(errs) == 0 || topo.HostID != Unknown || topo.ClusterName != Unknown || topo.Version != Unknown || topo.Tokens != nil {
			t.Fatalf("%s: %+v %v", cmd, topo, errs)
		}
	}
}

func TestDescribeSchema(t *testing.T) {
	dir := t.TempDir()
	cqlsh := filepath.Join(dir, "cqlsh")
	if err := os.WriteFile(cqlsh, []byte("#!/bin/sh\n[ \"$2\" = '-e' ] && [ \"$3\" = 'DESCRIBE SCHEMA' ] || exit 3\necho \"CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'};\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := DescribeSchema(context.Background(), []string{cqlsh, "host1"}, 0)
	if err != nil || !strings.HasPrefix(got, "CREATE KEYSPACE ks") {
		t.Fatalf("%q %v", got, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte("#!/bin/sh\nhead -c 1100000 /dev/zero | tr '\\0' x\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := DescribeSchema(context.Background(), []string{big}, 0); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a schema over MaxSchema: %v", err)
	}
	if _, err := DescribeSchema(context.Background(), []string{filepath.Join(dir, "missing")}, 0); err == nil {
		t.Fatal("a missing cqlsh")
	}
}

// The status of a large cluster is longer than a nodetool call keeps by
// default (64 KiB): the node's row at its end is still found.
func TestReadTopologyLargeCluster(t *testing.T) {
	dir := t.TempDir()
	samples, _ := filepath.Abs(filepath.Join("testdata", "nodetool", "4.1"))
	var rows strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&rows, "UN  10.1.%d.%d  1.02 GiB   16           0.1%%              7c1d2e3f-4a5b-4c6d-9e7f-%012d  eu-west-1b\n", i/250, i%250, i)
	}
	writeFileT(t, filepath.Join(dir, "rows"), rows.String())
	script := "#!/bin/sh\ncase \"$1\" in\ninfo) cat " + samples + "/info-T.txt ;;\nstatus) head -5 " + samples + "/status.txt; cat " + dir + "/rows; tail -n +6 " + samples + "/status.txt ;;\n" +
		"describecluster) cat " + samples + "/describecluster.txt ;;\nversion) cat " + samples + "/version.txt ;;\nesac\n"
	writeFileT(t, filepath.Join(dir, "nodetool"), script)
	if err := os.Chmod(filepath.Join(dir, "nodetool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if rows.Len() < 2*maxNodetoolOutput {
		t.Fatalf("only %d bytes of rows", rows.Len())
	}
	topo, errs := Nodetool{Command: []string{filepath.Join(dir, "nodetool")}}.ReadTopology(context.Background())
	if len(errs) > 0 || topo.ListenAddress != "10.0.2.12" {
		t.Fatalf("%+v %v", topo, errs)
	}
}

func writeFileT(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A call keeps at most MaxOutput bytes of what nodetool prints (64 KiB by
// default), however the output is copied.
func TestNodetoolOutputCapped(t *testing.T) {
	dir := t.TempDir()
	writeFileT(t, filepath.Join(dir, "nodetool"), "#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' x\n")
	if err := os.Chmod(filepath.Join(dir, "nodetool"), 0o755); err != nil {
		t.Fatal(err)
	}
	for limit, want := range map[int]int{0: maxNodetoolOutput, 1000: 1000, 1 << 20: 200000} {
		out, err := Nodetool{Command: []string{filepath.Join(dir, "nodetool")}, MaxOutput: limit}.Run(context.Background(), "status")
		if err != nil || len(out) != want {
			t.Errorf("MaxOutput %d: %d bytes (%v), want %d", limit, len(out), err, want)
		}
	}
}
