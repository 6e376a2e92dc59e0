package hbase

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/s3bak/s3bak/pkg/source"
)

// discoverErr runs Discover expecting an error that mentions every want.
func discoverErr(t *testing.T, root string, snaps []string, want ...string) error {
	t.Helper()
	set, err := Discover(context.Background(), Options{Root: root, Snapshots: snaps})
	if err == nil {
		t.Fatalf("Discover(%v) succeeded with %d files, want an error", snaps, len(set.Files))
	}
	if set != nil {
		t.Errorf("Discover returned a Set with its error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return err
}

func TestMissingHFile(t *testing.T) {
	root := unzipRoot(t)
	region, sf := hfileOf(loadManifest(t, root, snapPlain), 4)
	rel := "data/default/test-table/" + region + "/cf/" + sf.name
	if err := os.Remove(at(root, "archive/"+rel)); err != nil {
		t.Fatal(err)
	}
	err := discoverErr(t, root, []string{snapPlain}, snapPlain, region, "cf", sf.name,
		at(root, rel), at(root, ".tmp/"+rel), at(root, "mobdir/"+rel), at(root, "archive/"+rel))
	var me *MissingFileError
	if !errors.As(err, &me) || me.Snapshot != snapPlain || me.Region != region || me.Family != "cf" ||
		me.StoreFile != sf.name || me.File != rel || len(me.Searched) != 4 {
		t.Errorf("error %#v", err)
	}
	// The other snapshot is unaffected.
	discover(t, root, snapSnappy)
}

func TestMissingReferenceParent(t *testing.T) {
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	refName := parentHFile + "." + parentRegion
	m.regions[1].families[0].files[0] = storeFile{name: refName, ref: &reference{splitKey: []byte("1")}}
	writeManifest(t, root, snapPlain, m)
	discoverErr(t, root, []string{snapPlain}, refName, parentRegion+"/cf/"+parentHFile)
}

func TestCorruptSnapshotInfo(t *testing.T) {
	root := unzipRoot(t)
	p := at(root, ".hbase-snapshot/"+snapPlain+"/.snapshotinfo")
	orig := readFile(t, p)
	// Every truncation fails: a cut inside a field is malformed, a cut on a
	// field boundary loses the table or the version (then a v1 snapshot
	// without its table descriptor).
	for n := range len(orig) {
		writeFile(t, p, orig[:n])
		discoverErr(t, root, []string{snapPlain}, snapPlain)
	}
	for name, b := range map[string][]byte{
		"garbage":        []byte{0xff, 0xff, 0xff, 0xff},
		"wrong type":     appendVarint(nil, 1, 7),
		"bad length":     appendVarint([]byte{0x0a, 0x7f}, 2, 1),
		"other name":     encSnapshotInfo(SnapshotInfo{Name: "x", Table: "test-table", Version: 2}),
		"bad table":      encSnapshotInfo(SnapshotInfo{Name: snapPlain, Table: "../x", Version: 2}),
		"version 3":      encSnapshotInfo(SnapshotInfo{Name: snapPlain, Table: "test-table", Version: 3}),
		"end group":      protowire.AppendTag(nil, 9, protowire.EndGroupType),
		"field number 0": {0x02, 0x00},
	} {
		writeFile(t, p, b)
		if _, err := ReadSnapshotInfo(root, snapPlain); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s", name, err, p)
		}
	}
}

func TestCorruptDataManifest(t *testing.T) {
	root := unzipRoot(t)
	p := at(root, ".hbase-snapshot/"+snapPlain+"/data.manifest")
	orig := readFile(t, p)
	boundaries := map[int]bool{0: true}
	for b, off := orig, 0; len(b) > 0; {
		_, _, n := protowire.ConsumeField(b)
		b, off = b[n:], off+n
		boundaries[off] = true
	}
	// A cut between top-level fields is a valid, shorter manifest (protobuf
	// has no framing); any other cut must be reported, never panic.
	for n := range len(orig) {
		writeFile(t, p, orig[:n])
		_, err := Discover(context.Background(), Options{Root: root, Snapshots: []string{snapPlain}})
		if err == nil && !boundaries[n] {
			t.Errorf("cut at %d of %d: no error", n, len(orig))
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("cut at %d: error %q does not name %s", n, err, p)
		}
	}
	for i := range orig {
		b := append([]byte(nil), orig...)
		b[i] ^= 0xff
		writeFile(t, p, b)
		_, _ = Discover(context.Background(), Options{Root: root, Snapshots: []string{snapPlain}})
	}
	// Over HBase's 64 MiB limit: refused before reading (sparse file).
	if err := os.Truncate(p, maxManifestSize+1); err != nil {
		t.Fatal(err)
	}
	discoverErr(t, root, []string{snapPlain}, p, "limit")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	discoverErr(t, root, []string{snapPlain}, "no data.manifest")
}

func TestCorruptV1Files(t *testing.T) {
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	dir := writeV1(t, root, "v1-snap", m)
	r0, _ := hfileOf(m, 0)
	ri := at(root, dir+r0+"/.regioninfo")
	good := readFile(t, ri)
	for _, b := range [][]byte{good[:3], good[4:], good[:len(good)-1], []byte("PBUF\xff")} {
		writeFile(t, ri, b)
		discoverErr(t, root, []string{"v1-snap"}, ri)
	}
	// A .regioninfo of another region.
	writeFile(t, ri, encRegionInfoFile(m.regions[1].info))
	discoverErr(t, root, []string{"v1-snap"}, "region info is for region")
	writeFile(t, ri, good)
	ref := at(root, dir+r0+"/cf/"+parentHFile+"."+parentRegion)
	writeFile(t, ref, []byte("PBUF\x0a\x05ab"))
	discoverErr(t, root, []string{"v1-snap"}, ref, "split reference")
	if err := os.Remove(ref); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(at(root, dir+".tabledesc")); err != nil {
		t.Fatal(err)
	}
	discoverErr(t, root, []string{"v1-snap"}, "table descriptor")
}

func TestUnsafeNamesInManifest(t *testing.T) {
	for _, sf := range []storeFile{{name: "../../../etc/passwd"}, {name: ".."}, {name: "a/b"}} {
		root := unzipRoot(t)
		m := loadManifest(t, root, snapPlain)
		m.regions[0].families[0].files[0] = sf
		writeManifest(t, root, snapPlain, m)
		discoverErr(t, root, []string{snapPlain}, "invalid store file name")
	}
	root := unzipRoot(t)
	m := loadManifest(t, root, snapPlain)
	m.regions[0].families[0].name = "../cf"
	writeManifest(t, root, snapPlain, m)
	discoverErr(t, root, []string{snapPlain}, "invalid column family name")
}

func TestSnapshotSelection(t *testing.T) {
	root := unzipRoot(t)
	mkdir(t, at(root, ".hbase-snapshot/.tmp/in-progress"))
	mkdir(t, at(root, ".hbase-snapshot/no-info"))
	writeFile(t, at(root, ".hbase-snapshot/bad_CORRUPTED/.snapshotinfo"), nil)
	names, err := ListSnapshots(root)
	if err != nil || strings.Join(names, ",") != snapSnappy+","+snapPlain {
		t.Fatalf("ListSnapshots = %v, %v", names, err)
	}
	discoverErr(t, root, []string{"nope"}, `"nope"`, snapPlain, snapSnappy)
	discoverErr(t, root, []string{"../data"}, "existing snapshots")
	discoverErr(t, root, []string{All, snapPlain}, "all")
	discoverErr(t, root, nil, snapPlain)
	discoverErr(t, filepath.Dir(root), []string{All}, ".hbase-snapshot")
	if _, err := ReadSnapshotInfo(root, "../x"); err == nil {
		t.Error("ReadSnapshotInfo accepted ../x")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, Options{Root: root, Snapshots: []string{All}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Discover: %v", err)
	}
}

func TestSymlinks(t *testing.T) {
	root := unzipRoot(t)
	region, sf := hfileOf(loadManifest(t, root, snapPlain), 0)
	rel := "archive/data/default/test-table/" + region + "/cf/" + sf.name
	// Inside the root: followed, and Abs is the real file.
	moved := at(root, "elsewhere/"+sf.name)
	rename(t, at(root, rel), moved)
	if err := os.Symlink(moved, at(root, rel)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, paths(discover(t, root, snapPlain)), rel, moved)
	// Outside the root: refused.
	outside := filepath.Join(t.TempDir(), sf.name)
	rename(t, moved, outside)
	if err := os.Symlink(outside, moved+".tmp"); err != nil {
		t.Fatal(err)
	}
	rename(t, moved+".tmp", moved)
	discoverErr(t, root, []string{snapPlain}, "outside the root")
}

// TestSymlinkedSnapshotDirectory: a snapshot directory moved elsewhere
// under the root and linked back is found by "all" and read whole, under
// its own path, instead of being skipped; a loop inside it ends; a link
// that leads nowhere is an error, not a snapshot less.
func TestSymlinkedSnapshotDirectory(t *testing.T) {
	root := unzipRoot(t)
	want := discover(t, root, All)
	snap := at(root, ".hbase-snapshot/"+snapPlain)
	moved := at(root, "moved/"+snapPlain)
	rename(t, snap, moved)
	if err := os.Symlink(moved, snap); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(moved, "loop")); err != nil {
		t.Fatal(err)
	}
	done := make(chan *source.Set)
	go func() { done <- discover(t, root, All) }()
	select {
	case got := <-done:
		samePaths(t, want, got)
	case <-time.After(30 * time.Second):
		t.Fatal("a symlink loop in a snapshot hangs discovery")
	}
	if err := os.Symlink(at(root, "nowhere"), at(root, ".hbase-snapshot/gone")); err != nil {
		t.Fatal(err)
	}
	discoverErr(t, root, []string{All}, ".hbase-snapshot/gone", "cannot be followed")
}
