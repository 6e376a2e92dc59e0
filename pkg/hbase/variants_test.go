package hbase

import (
	"strconv"
	"testing"

	"github.com/s3bak/s3bak/pkg/source"
)

// Variants of the zip for layouts it lacks. Each ends with a round trip:
// restoring the Set gives a root on which Discover succeeds again with the
// same Paths, i.e. the restored tree satisfies HBase's resolution rules.

const (
	parentRegion = "0123456789abcdef0123456789abcdef"
	parentHFile  = "feedfacefeedfacefeedfacefeedface"
	table        = "archive/data/default/test-table/"
)

// hfileOf returns region i's encoded name and only store file.
func hfileOf(m *dataManifest, i int) (string, storeFile) {
	return encodedRegionName(m.regions[i].info), m.regions[i].families[0].files[0]
}

func wantFile(t *testing.T, set map[string]source.File, p, abs string) {
	t.Helper()
	f, ok := set[p]
	if !ok {
		t.Errorf("missing %s", p)
	} else if f.Abs() != abs {
		t.Errorf("%s read from %s, want %s", p, f.Abs(), abs)
	}
}

func wantNoFile(t *testing.T, set map[string]source.File, p string) {
	t.Helper()
	if _, ok := set[p]; ok {
		t.Errorf("unexpected %s", p)
	}
}

func TestOtherLocations(t *testing.T) {
	// HFileLink's order: data/, .tmp/, mobdir/, archive/; the restore Path
	// is always archive/… as in ExportSnapshot's output.
	for _, prefix := range []string{"", ".tmp/", "mobdir/"} {
		root := unzipRoot(t)
		region, sf := hfileOf(loadManifest(t, root, snapPlain), 0)
		rel := "data/default/test-table/" + region + "/cf/" + sf.name
		rename(t, at(root, "archive/"+rel), at(root, prefix+rel))
		set := discover(t, root, snapPlain)
		wantFile(t, paths(set), "archive/"+rel, at(root, prefix+rel))
		if len(set.Files) != 12 {
			t.Errorf("%q: %d files", prefix, len(set.Files))
		}
		samePaths(t, set, discover(t, restoreSet(t, set), snapPlain))
	}
}

func TestLiveFileWinsOverArchive(t *testing.T) {
	root := unzipRoot(t)
	region, sf := hfileOf(loadManifest(t, root, snapPlain), 0)
	rel := "data/default/test-table/" + region + "/cf/" + sf.name
	writeFile(t, at(root, rel), readFile(t, at(root, "archive/"+rel)))
	wantFile(t, paths(discover(t, root, snapPlain)), "archive/"+rel, at(root, rel))
}

func TestHFileLink(t *testing.T) {
	root := unzipRoot(t)
	plain, snappy := loadManifest(t, root, snapPlain), loadManifest(t, root, snapSnappy)
	oldRegion, old := hfileOf(plain, 0)
	srcRegion, src := hfileOf(snappy, 0)
	// A table cloned from test-snappy-table lists link names in its snapshots.
	plain.regions[0].families[0].files[0] = storeFile{
		name: "test-snappy-table=" + srcRegion + "-" + src.name, size: src.size, hasSize: true}
	// A namespaced link whose target is live in data/.
	content := readFile(t, at(root, "archive/data/default/test-snappy-table/"+srcRegion+"/cf/"+src.name))
	live := "data/ns1/linked.t/" + parentRegion + "/cf/" + parentHFile
	writeFile(t, at(root, live), content)
	fam := &plain.regions[1].families[0]
	fam.files = append(fam.files, storeFile{
		name: "ns1=linked.t=" + parentRegion + "-" + parentHFile, size: int64(len(content)), hasSize: true})
	writeManifest(t, root, snapPlain, plain)

	set := discover(t, root, snapPlain)
	got := paths(set)
	linked := "archive/data/default/test-snappy-table/" + srcRegion + "/cf/" + src.name
	wantFile(t, got, linked, at(root, linked))
	wantFile(t, got, "archive/"+live, at(root, live))
	wantNoFile(t, got, table+oldRegion+"/cf/"+old.name)
	if len(set.Files) != 13 {
		t.Errorf("%d files, want 13", len(set.Files))
	}
	samePaths(t, set, discover(t, restoreSet(t, set), snapPlain))
}

func TestSplitReferenceV2(t *testing.T) {
	root := unzipRoot(t)
	plain, snappy := loadManifest(t, root, snapPlain), loadManifest(t, root, snapSnappy)
	content := readFile(t, at(root, ".hbase-snapshot/"+snapPlain+"/data.manifest"))
	parent := table + parentRegion + "/cf/" + parentHFile
	writeFile(t, at(root, parent), content)
	r1, old1 := hfileOf(plain, 1)
	ref := &reference{splitKey: []byte("15"), top: true}
	plain.regions[1].families[0].files[0] = storeFile{name: parentHFile + "." + parentRegion, ref: ref}
	// A daughter of a cloned table: a reference to a link.
	r2, old2 := hfileOf(plain, 2)
	srcRegion, src := hfileOf(snappy, 3)
	plain.regions[2].families[0].files[0] = storeFile{
		name: "test-snappy-table=" + srcRegion + "-" + src.name + "." + parentRegion, ref: ref}
	writeManifest(t, root, snapPlain, plain)

	set := discover(t, root, snapPlain)
	got := paths(set)
	wantFile(t, got, parent, at(root, parent))
	linked := "archive/data/default/test-snappy-table/" + srcRegion + "/cf/" + src.name
	wantFile(t, got, linked, at(root, linked))
	// The Reference is embedded in data.manifest: no reference file needed.
	wantNoFile(t, got, table+r1+"/cf/"+parentHFile+"."+parentRegion)
	wantNoFile(t, got, table+r1+"/cf/"+old1.name)
	wantNoFile(t, got, table+r2+"/cf/"+old2.name)
	if len(set.Files) != 12 {
		t.Errorf("%d files, want 12", len(set.Files))
	}
	samePaths(t, set, discover(t, restoreSet(t, set), snapPlain))
}

// writeV1 lays test-table's regions out as a v1 snapshot named snap.
func writeV1(t *testing.T, root, snap string, m *dataManifest) string {
	dir := ".hbase-snapshot/" + snap + "/"
	writeFile(t, at(root, dir+".snapshotinfo"), encSnapshotInfo(SnapshotInfo{
		Name: snap, Table: "test-table", CreationTime: 1, Type: TypeFlush}))
	writeFile(t, at(root, dir+".tabledesc/.tableinfo.0000000001"), []byte("table descriptor"))
	writeFile(t, at(root, dir+"..snapshotinfo.crc"), []byte("hadoop checksum sidecar"))
	for _, rm := range m.regions {
		region := encodedRegionName(rm.info)
		writeFile(t, at(root, dir+region+"/.regioninfo"), encRegionInfoFile(rm.info))
		for _, sf := range rm.families[0].files {
			writeFile(t, at(root, dir+region+"/cf/"+sf.name), nil)
		}
	}
	return dir
}

func TestV1LayoutWithReference(t *testing.T) {
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	dir := writeV1(t, root, "v1-snap", m)
	// Region 3 is a split daughter: the v1 snapshot keeps the reference's
	// content, and HBase also wants the live reference and its parent.
	r3, _ := hfileOf(m, 3)
	refName := parentHFile + "." + parentRegion
	refContent := encReferenceFile(reference{splitKey: []byte("35")})
	writeFile(t, at(root, dir+r3+"/cf/"+refName), refContent)
	liveRef := "data/default/test-table/" + r3 + "/cf/" + refName
	writeFile(t, at(root, liveRef), refContent)
	parent := table + parentRegion + "/cf/" + parentHFile
	writeFile(t, at(root, parent), []byte("parent hfile"))

	set := discover(t, root, "v1-snap")
	got := paths(set)
	wantFile(t, got, parent, at(root, parent))
	wantFile(t, got, "archive/"+liveRef, at(root, liveRef))
	wantFile(t, got, dir+r3+"/cf/"+refName, at(root, dir+r3+"/cf/"+refName))
	wantFile(t, got, dir+".tabledesc/.tableinfo.0000000001", at(root, dir+".tabledesc/.tableinfo.0000000001"))
	wantNoFile(t, got, dir+"..snapshotinfo.crc")
	// .snapshotinfo + .tableinfo + 10×(.regioninfo + marker) + reference
	// copy; 10 HFiles + parent + live reference.
	if len(set.Files) != 23+12 {
		t.Errorf("%d files, want 35", len(set.Files))
	}
	samePaths(t, set, discover(t, restoreSet(t, set), "v1-snap"))
}

func TestRegionManifestsWithoutDataManifest(t *testing.T) {
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	dir := ".hbase-snapshot/rm-snap/"
	writeFile(t, at(root, dir+".snapshotinfo"), encSnapshotInfo(SnapshotInfo{
		Name: "rm-snap", Table: "test-table", Type: TypeFlush, Version: 2}))
	// Region 0 in the v1 form, the others as region-manifest.* files:
	// HBase reads both when data.manifest is absent.
	r0 := encodedRegionName(m.regions[0].info)
	writeFile(t, at(root, dir+r0+"/.regioninfo"), encRegionInfoFile(m.regions[0].info))
	writeFile(t, at(root, dir+r0+"/cf/"+m.regions[0].families[0].files[0].name), nil)
	for _, rm := range m.regions[1:] {
		writeFile(t, at(root, dir+"region-manifest."+encodedRegionName(rm.info)), encRegion(rm))
	}
	set := discover(t, root, "rm-snap")
	if len(set.Files) != 1+2+9+10 {
		t.Errorf("%d files, want 22", len(set.Files))
	}
	got := paths(set)
	for i := range m.regions {
		region, sf := hfileOf(m, i)
		p := table + region + "/cf/" + sf.name
		wantFile(t, got, p, at(root, p))
	}
	samePaths(t, set, discover(t, restoreSet(t, set), "rm-snap"))
}

func TestSharedHFilesOnce(t *testing.T) {
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	writeV1(t, root, "v1-snap", m) // same HFiles as test-snapshot
	set := discover(t, root, snapPlain, "v1-snap", snapPlain)
	if set.Tag != snapPlain+",v1-snap" {
		t.Errorf("tag %q", set.Tag)
	}
	if n := len(set.Files); n != 12+22 {
		t.Errorf("%d files, want %d", n, 12+22)
	}
	if set.Meta["snapshot.v1-snap.version"] != "0" || set.Meta["snapshot.v1-snap.created"] != strconv.Itoa(1) {
		t.Errorf("meta %v", set.Meta)
	}
}
