package hbase

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The zip is genuine ExportSnapshot output: it is the oracle for both the
// decoder and the layout Discover must reproduce.

func TestOracleSnapshotInfo(t *testing.T) {
	root := unzipRoot(t)
	for _, tc := range []struct {
		snap, table string
		created     int64
	}{
		{snapPlain, "test-table", 1652120367044},
		{snapSnappy, "test-snappy-table", 1652120370556},
	} {
		info, err := ReadSnapshotInfo(root, tc.snap)
		if err != nil {
			t.Fatal(err)
		}
		want := SnapshotInfo{Name: tc.snap, Table: tc.table, CreationTime: tc.created, Type: TypeFlush, Version: 2}
		if info != want {
			t.Errorf("%s: got %+v, want %+v", tc.snap, info, want)
		}
		if info.TypeName() != "FLUSH" {
			t.Errorf("%s: type %s", tc.snap, info.TypeName())
		}
	}
}

func TestOracleManifest(t *testing.T) {
	root := unzipRoot(t)
	for _, tc := range []struct{ snap, table string }{{snapPlain, "test-table"}, {snapSnappy, "test-snappy-table"}} {
		m := loadManifest(t, root, tc.snap)
		if m.table != (tableName{ns: "default", qual: tc.table}) {
			t.Errorf("%s: schema table %+v", tc.snap, m.table)
		}
		if len(m.regions) != 10 {
			t.Fatalf("%s: %d regions, want 10", tc.snap, len(m.regions))
		}
		for _, rm := range m.regions {
			checkOracleRegion(t, root, tc.table, rm)
		}
	}
}

func checkOracleRegion(t *testing.T, root, table string, rm regionManifest) {
	t.Helper()
	// The region directory is the MD5 of "<table>,<startKey>,<regionId>",
	// computed here independently of encodedRegionName.
	sum := md5.Sum([]byte(table + "," + string(rm.info.startKey) + "," + strconv.FormatUint(rm.info.regionID, 10)))
	enc := hex.EncodeToString(sum[:])
	if got := encodedRegionName(rm.info); got != enc {
		t.Errorf("encoded name %s, want %s", got, enc)
	}
	if rm.info.table != (tableName{ns: "default", qual: table}) {
		t.Errorf("region table %+v", rm.info.table)
	}
	if len(rm.families) != 1 || rm.families[0].name != "cf" || len(rm.families[0].files) != 1 {
		t.Fatalf("region %s: families %+v, want one file in cf", enc, rm.families)
	}
	sf := rm.families[0].files[0]
	fi, err := os.Stat(at(root, "archive/data/default/"+table+"/"+enc+"/cf/"+sf.name))
	if err != nil {
		t.Fatal(err)
	}
	if !sf.hasSize || sf.size != fi.Size() || sf.ref != nil {
		t.Errorf("store file %+v, archived size %d", sf, fi.Size())
	}
}

func TestOracleDiscover(t *testing.T) {
	root := unzipRoot(t)
	for _, tc := range []struct{ snap, table string }{{snapPlain, "test-table"}, {snapSnappy, "test-snappy-table"}} {
		set := discover(t, root, tc.snap)
		if set.Kind != "hbase" || set.Tag != tc.snap {
			t.Errorf("kind %q tag %q", set.Kind, set.Tag)
		}
		if set.Meta["snapshots"] != tc.snap || set.Meta["tables"] != tc.table ||
			set.Meta["snapshot."+tc.snap+".table"] != tc.table {
			t.Errorf("meta %v", set.Meta)
		}
		want := exportedFiles(t, root, tc.snap, tc.table)
		got := paths(set)
		if len(got) != len(want) {
			t.Errorf("%s: %d files, want %d", tc.snap, len(got), len(want))
		}
		for p, size := range want {
			f, ok := got[p]
			if !ok {
				t.Errorf("%s: missing %s", tc.snap, p)
				continue
			}
			if f.Size != size || f.Abs() != at(root, p) || !f.Mode.IsRegular() || f.Ino == 0 || f.ModTime.IsZero() {
				t.Errorf("%s: %+v, want size %d at %s", p, f, size, at(root, p))
			}
		}
	}
}

// exportedFiles lists, from the manifest alone, the tree ExportSnapshot
// wrote for snap: the snapshot dir plus the referenced HFiles (10 of the
// 20 in archive/; the others are orphans).
func exportedFiles(t *testing.T, root, snap, table string) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	for _, base := range []string{".snapshotinfo", "data.manifest"} {
		p := ".hbase-snapshot/" + snap + "/" + base
		want[p] = int64(len(readFile(t, at(root, p))))
	}
	for _, rm := range loadManifest(t, root, snap).regions {
		sf := rm.families[0].files[0]
		want["archive/data/default/"+table+"/"+encodedRegionName(rm.info)+"/cf/"+sf.name] = sf.size
	}
	hfiles, _ := filepath.Glob(at(root, "archive/data/default/"+table+"/*/cf/*"))
	if len(want) != 12 || len(hfiles) != 20 {
		t.Fatalf("oracle: %d wanted files, %d archived HFiles", len(want), len(hfiles))
	}
	return want
}

func TestOracleRoundTrip(t *testing.T) {
	root := unzipRoot(t)
	set := discover(t, root, All)
	if set.Tag != snapSnappy+","+snapPlain || len(set.Files) != 24 {
		t.Fatalf("tag %q, %d files", set.Tag, len(set.Files))
	}
	// The Paths are exactly ExportSnapshot's tree, so the restored tree is
	// itself a valid root with the same Set.
	for _, f := range set.Files { // hashtable/ and everything else is ignored
		if !strings.HasPrefix(f.Path, ".hbase-snapshot/") && !strings.HasPrefix(f.Path, "archive/data/default/") {
			t.Errorf("unexpected %s", f.Path)
		}
	}
	again := discover(t, restoreSet(t, set), All)
	samePaths(t, set, again)
}
