package hbase

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// bigTable is the manifest of a snapshot snap of table big (default
// namespace): regions regions of perRegion HFiles each in family cf.
func bigTable(snap string, regions, perRegion int) *dataManifest {
	tn := tableName{ns: defaultNS, qual: "big"}
	m := &dataManifest{table: tn}
	for i := range regions {
		rm := regionManifest{info: regionInfo{regionID: 1652120363846, table: tn, startKey: fmt.Appendf(nil, "%06d", i)}}
		ff := familyFiles{name: "cf"}
		for j := range perRegion {
			ff.files = append(ff.files, storeFile{name: md5hex(fmt.Sprint(snap, i, j)), size: int64(len(hfileContent(i, j))), hasSize: true})
		}
		rm.families = []familyFiles{ff}
		m.regions = append(m.regions, rm)
	}
	return m
}

func hfileContent(region, file int) []byte {
	return fmt.Appendf(nil, "hfile %d of region %d", file, region)
}

// writeBigTable writes bigTable's snapshot under root, its HFiles in
// archive/.
func writeBigTable(t testing.TB, root, snap string, regions, perRegion int) {
	t.Helper()
	m := bigTable(snap, regions, perRegion)
	for i, rm := range m.regions {
		for j, sf := range rm.families[0].files {
			writeFile(t, at(root, "archive/data/default/big/"+encodedRegionName(rm.info)+"/cf/"+sf.name), hfileContent(i, j))
		}
	}
	writeFile(t, at(root, ".hbase-snapshot/"+snap+"/.snapshotinfo"), encSnapshotInfo(SnapshotInfo{
		Name: snap, Table: "big", CreationTime: 1, Type: TypeFlush, Version: 2}))
	writeManifest(t, root, snap, m)
}

// TestDiscoverGroupsListsARegionAtATime: a grouped set lists each region's
// files (those every selected snapshot needs, links, references and v1
// snapshots included) and each part of a snapshot directory on its own, in
// path order, and adds up to the whole set: the same files, in the same
// order, with the totals of a first pass, while holding no more than the
// largest group and an index of the regions.
func TestDiscoverGroupsListsARegionAtATime(t *testing.T) {
	ctx := context.Background()
	root := unzipRoot(t)
	writeV1(t, root, "v1-snap", loadManifest(t, root, snapPlain)) // the same HFiles as test-snapshot
	plain, snappy := loadManifest(t, root, snapPlain), loadManifest(t, root, snapSnappy)
	// A link into test-snappy-table and a split reference to a parent
	// region: files of regions other than the manifest's own.
	srcRegion, src := hfileOf(snappy, 0)
	fam := &plain.regions[1].families[0]
	fam.files = append(fam.files, storeFile{name: "test-snappy-table=" + srcRegion + "-" + src.name, size: src.size, hasSize: true})
	writeFile(t, at(root, table+parentRegion+"/cf/"+parentHFile), []byte("parent hfile"))
	fam = &plain.regions[2].families[0]
	fam.files = append(fam.files, storeFile{name: parentHFile + "." + parentRegion, ref: &reference{splitKey: []byte("25")}})
	writeManifest(t, root, snapPlain, plain)
	writeBigTable(t, root, "big-snap", 40, 25)

	o := Options{Root: root, Snapshots: []string{All}, keep: -1} // no first listing kept
	grouped, err := DiscoverGroups(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Discover(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if grouped.Files != nil || len(grouped.Groups) < 40+20 {
		t.Fatalf("grouped set: %d files, %d groups", len(grouped.Files), len(grouped.Groups))
	}
	regions := 0
	err = testfixture.SameAsWhole(ctx, grouped, whole, func(g source.Group, files []source.File) {
		if strings.HasPrefix(g.Key, "archive/") {
			regions++
		}
		for _, f := range files {
			if dir := path.Dir(g.Key); !strings.HasPrefix(f.Path, g.Key+"/") && !(path.Dir(f.Path) == dir && f.Path >= g.Key) {
				t.Errorf("group %s lists %s", g.Key, f.Path)
			}
		}
		if strings.HasPrefix(g.Key, "archive/data/default/big/") && len(files) != 25 {
			t.Errorf("region %s: %d files, want its 25", g.Key, len(files))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// 40 regions of big, 10 of test-snappy-table, 10 of test-table and
	// the parent region.
	if regions != 61 {
		t.Errorf("%d region groups, want 61", regions)
	}
	got := paths(whole)
	linked := "archive/data/default/test-snappy-table/" + srcRegion + "/cf/" + src.name
	wantFile(t, got, linked, at(root, linked))
	wantFile(t, got, table+parentRegion+"/cf/"+parentHFile, at(root, table+parentRegion+"/cf/"+parentHFile))
	if grouped.Memory() <= 0 || grouped.Memory() >= source.FilesMemory(whole.Files)/2 {
		t.Fatalf("the grouped set holds %d bytes, the whole set %d", grouped.Memory(), source.FilesMemory(whole.Files))
	}
	samePaths(t, whole, discover(t, restoreSet(t, whole), All))
}

// TestV1SnapshotDirectoryInGroups: a v1 snapshot directory, an empty file
// per store file, is listed a region directory at a time, with runs of the
// files between them.
func TestV1SnapshotDirectoryInGroups(t *testing.T) {
	ctx := context.Background()
	root := unzipRoot(t)
	dir := writeV1(t, root, "v1-snap", loadManifest(t, root, snapPlain))
	writeFile(t, at(root, dir+"zz-after-the-regions"), []byte("x"))
	set, err := DiscoverGroups(ctx, Options{Root: root, Snapshots: []string{"v1-snap"}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, g := range set.Groups {
		if strings.HasPrefix(g.Key, dir) {
			keys = append(keys, strings.TrimPrefix(g.Key, dir))
		}
	}
	// .snapshotinfo (its checksum file, listed nowhere, starts the run),
	// .tabledesc/, 10 regions, then the last file.
	if len(keys) != 13 || keys[0] != "..snapshotinfo.crc" || keys[1] != ".tabledesc" || keys[12] != "zz-after-the-regions" {
		t.Fatalf("snapshot directory groups %q", keys)
	}
	if n := set.Count(); n != 23+10 {
		t.Errorf("%d files, want 33", n)
	}
}

// TestManifestIsReadAsAStream: a data.manifest's regions are handed over
// as they are read, never more than a buffer ahead, however big the file.
func TestManifestIsReadAsAStream(t *testing.T) {
	b := encDataManifest(bigTable("big-snap", 1000, 40))
	if len(b) < 1<<20 {
		t.Fatalf("a manifest of %d bytes is too small to tell", len(b))
	}
	r := &countingReader{r: bytes.NewReader(b)}
	var got []regionManifest
	_, err := eachRegionManifest(r, int64(len(b)), func(f regionField, rm regionManifest) error {
		if ahead := r.n - (f.off + f.n); ahead > 64<<10 {
			t.Fatalf("region %d handed over %d bytes after its end", len(got), ahead)
		}
		if again, err := decodeRegionManifest(b[f.off : f.off+f.n]); err != nil || regionDiff(rm, again) != "" {
			t.Fatalf("region %d at %d: not where it was read (%v)", len(got), f.off, err)
		}
		got = append(got, rm)
		return nil
	})
	if err != nil || len(got) != 1000 {
		t.Fatalf("%d regions, %v", len(got), err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestChangedManifestIsRefused: a data.manifest that is not what it was
// when the backup began is refused when a region is listed again, not
// misread at its old offsets.
func TestChangedManifestIsRefused(t *testing.T) {
	ctx := context.Background()
	root := unzipRoot(t)
	set, err := DiscoverGroups(ctx, Options{Root: root, Snapshots: []string{snapPlain}, keep: -1})
	if err != nil {
		t.Fatal(err)
	}
	m := loadManifest(t, root, snapPlain)
	m.regions = m.regions[1:]
	writeManifest(t, root, snapPlain, m)
	err = set.Each(ctx, func([]source.File) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "when the backup began") || !strings.Contains(err.Error(), at(root, ".hbase-snapshot/"+snapPlain+"/data.manifest")) {
		t.Fatalf("a changed manifest: %v", err)
	}
}

// TestDiscoverGroupsKeepsTheFirstListing: the lists of the first pass are
// handed to the backup instead of the regions being listed again (their
// manifests read a third time), as far as source.KeepListed goes: an
// HFile removed after discovery is still in a kept list, and a region
// listed again refuses the snapshot that needs it.
func TestDiscoverGroupsKeepsTheFirstListing(t *testing.T) {
	ctx := context.Background()
	for _, keep := range []int64{0, -1} {
		root := unzipRoot(t)
		set, err := DiscoverGroups(ctx, Options{Root: root, Snapshots: []string{snapPlain}, keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		region, hf := hfileOf(loadManifest(t, root, snapPlain), 0)
		removed := table + region + "/cf/" + hf.name
		if err := os.Remove(at(root, removed)); err != nil {
			t.Fatal(err)
		}
		listed := 0
		err = set.Each(ctx, func(files []source.File) error { listed += len(files); return nil })
		switch {
		case keep == 0 && (err != nil || listed != set.Totals.Files):
			t.Errorf("kept lists: %d of the %d files listed first, %v", listed, set.Totals.Files, err)
		case keep < 0 && (err == nil || !strings.Contains(err.Error(), hf.name)):
			t.Errorf("listed again without %s: %v, want an error naming it", removed, err)
		}
	}
}
