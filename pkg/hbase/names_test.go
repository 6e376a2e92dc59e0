package hbase

import (
	"context"
	"strings"
	"testing"
)

func TestParseLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		want hfileLink
	}{
		{"t=0a1b-ff00", true, hfileLink{tableName{"default", "t"}, "0a1b", "ff00"}},
		{"ns=my.t-1=0a1b-ff00_SeqId_42_", true, hfileLink{tableName{"ns", "my.t-1"}, "0a1b", "ff00_SeqId_42_"}},
		{"t=0a1b-ff00_del", true, hfileLink{tableName{"default", "t"}, "0a1b", "ff00_del"}},
		{"ff00", false, hfileLink{}},
		{"t=0A1B-ff00", false, hfileLink{}}, // region names are lowercase hex
		{"t=0a1b-ff00.0a1b", false, hfileLink{}},
		{"a=b=c=0a-ff", false, hfileLink{}},
		{".t=0a-ff", false, hfileLink{}},
		{"../t=0a-ff", false, hfileLink{}},
	} {
		got, ok := parseLink(tc.name)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseLink(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		name, file, parent string
		ok                 bool
	}{
		{"ff00.0a1b", "ff00", "0a1b", true},
		{"ff00_SeqId_7_.0a1b", "ff00_SeqId_7_", "0a1b", true},
		{"t=0a1b-ff00.cc", "t=0a1b-ff00", "cc", true},
		{"ns=t=0a1b-ff00.cc", "ns=t=0a1b-ff00", "cc", true},
		{"ff00", "", "", false},
		{"t=0a1b-ff00", "", "", false},    // a link
		{"ab.t=0a1b-ff00", "", "", false}, // a link to table "ab.t", as StoreFileInfo decides
		{"xyz.0a1b", "", "", false},
	} {
		file, parent, ok := parseReference(tc.name)
		if ok != tc.ok || file != tc.file || parent != tc.parent {
			t.Errorf("parseReference(%q) = %q, %q, %v", tc.name, file, parent, ok)
		}
	}
}

func TestEncodedRegionName(t *testing.T) {
	// Values computed with md5sum over "<table>,<startKey>,<id>[_<replica>]".
	for _, tc := range []struct {
		ri   regionInfo
		want string
	}{
		{regionInfo{regionID: 1652120363846, table: tableName{"default", "test-table"}, startKey: []byte("50")},
			"90bb1f99aa849c964a755edd0330c24a"}, // a region directory of the zip
		{regionInfo{regionID: 1, table: tableName{"ns", "t"}}, md5hex("ns:t,,1")},
		{regionInfo{regionID: 1, table: tableName{"ns", "t"}, replicaID: 10}, md5hex("ns:t,,1_000A")},
		{regionInfo{regionID: 1 << 63, table: tableName{"default", "t"}}, md5hex("t,,-9223372036854775808")},
	} {
		if got := encodedRegionName(tc.ri); got != tc.want {
			t.Errorf("encodedRegionName(%+v) = %s, want %s", tc.ri, got, tc.want)
		}
	}
}

func TestSnapshotsFromMetaAndRestoreSteps(t *testing.T) {
	root := unzipRoot(t)
	set, err := Discover(context.Background(), Options{Root: root, Snapshots: []string{All}})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := SnapshotsFromMeta(set.Meta)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{snapSnappy, snapPlain} {
		want, err := ReadSnapshotInfo(root, name)
		if err != nil {
			t.Fatal(err)
		}
		if snaps[i] != want {
			t.Errorf("from meta %+v, on disk %+v", snaps[i], want)
		}
	}
	snaps[1].TTL = 3600
	steps := RestoreSteps(snaps, "/restore/x")
	for _, want := range []string{
		"-snapshot test-snapshot -copy-from file:///restore/x -copy-to $HBASE_ROOTDIR",
		"clone_snapshot 'test-snappy-snapshot', 'test-snappy-table_restored'",
		"restore_snapshot 'test-snapshot'",
		"disable 'test-table'",
		"-reset-ttl",
	} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps lack %q:\n%s", want, steps)
		}
	}
	// The snapshot directory goes in before the HFiles.
	if i, j := strings.Index(steps, "/.hbase-snapshot/test-snapshot"), strings.Index(steps, "rsync"); i < 0 || j < i {
		t.Errorf("snapshot directory not copied before archive/:\n%s", steps)
	}
	if _, err := SnapshotsFromMeta(map[string]string{"snapshots": "a,../b"}); err == nil {
		t.Error("SnapshotsFromMeta accepted ../b")
	}
}
