package hbase

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

const (
	snapPlain  = "test-snapshot"
	snapSnappy = "test-snappy-snapshot"
)

// unzipRoot extracts the ExportSnapshot zip into a temp dir and returns the
// hbase.rootdir inside it (the zip's data/).
func unzipRoot(t testing.TB) string {
	t.Helper()
	zip, err := testfixture.HBaseZip()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testfixture.Unzip(zip, dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "data")
}

// zipFile returns one file of the zip, for fuzz seeds.
func zipFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(unzipRoot(t), filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rename(t testing.TB, from, to string) {
	t.Helper()
	mkdir(t, filepath.Dir(to))
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// at joins slash-separated rel under root.
func at(root, rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

// loadManifest decodes a snapshot's data.manifest with the code under test.
func loadManifest(t testing.TB, root, snap string) *dataManifest {
	t.Helper()
	m, err := decodeDataManifest(readFile(t, at(root, ".hbase-snapshot/"+snap+"/data.manifest")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeManifest(t testing.TB, root, snap string, m *dataManifest) {
	t.Helper()
	writeFile(t, at(root, ".hbase-snapshot/"+snap+"/data.manifest"), encDataManifest(m))
}

func discover(t testing.TB, root string, snaps ...string) *source.Set {
	t.Helper()
	set, err := Discover(context.Background(), Options{Root: root, Snapshots: snaps})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// paths maps each File's Path to the File.
func paths(set *source.Set) map[string]source.File {
	m := map[string]source.File{}
	for _, f := range set.Files {
		m[f.Path] = f
	}
	return m
}

// restoreSet does what the generic engine's restore does: write each File
// at target/Path. It returns target.
func restoreSet(t testing.TB, set *source.Set) string {
	t.Helper()
	target := t.TempDir()
	for _, f := range set.Files {
		if err := source.CheckPath(f.Path); err != nil {
			t.Fatal(err)
		}
		writeFile(t, at(target, f.Path), readFile(t, f.Abs()))
	}
	return target
}

// Protobuf encoders for generated variants, written independently of the
// decoder with protowire.Append*.

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func encSnapshotInfo(s SnapshotInfo) []byte {
	b := appendBytes(nil, 1, []byte(s.Name))
	b = appendBytes(b, 2, []byte(s.Table))
	b = appendVarint(b, 3, uint64(s.CreationTime))
	b = appendVarint(b, 4, uint64(s.Type))
	if s.Version != 0 {
		b = appendVarint(b, 5, uint64(s.Version))
	}
	if s.Owner != "" {
		b = appendBytes(b, 6, []byte(s.Owner))
	}
	if s.TTL != 0 {
		b = appendVarint(b, 8, uint64(s.TTL))
	}
	return b
}

func encTableName(t tableName) []byte {
	return appendBytes(appendBytes(nil, 1, []byte(t.ns)), 2, []byte(t.qual))
}

func encRegionInfo(ri regionInfo) []byte {
	b := appendVarint(nil, 1, ri.regionID)
	b = appendBytes(b, 2, encTableName(ri.table))
	b = appendBytes(b, 3, ri.startKey)
	b = appendBytes(b, 4, ri.endKey)
	b = appendVarint(b, 5, 0)
	b = appendVarint(b, 6, 0)
	return appendVarint(b, 7, uint64(ri.replicaID))
}

func encReference(r reference) []byte {
	rng := uint64(1)
	if r.top {
		rng = 0
	}
	return appendVarint(appendBytes(nil, 1, r.splitKey), 2, rng)
}

func encRegion(rm regionManifest) []byte {
	b := appendBytes(nil, 2, encRegionInfo(rm.info))
	for _, ff := range rm.families {
		fb := appendBytes(nil, 1, []byte(ff.name))
		for _, sf := range ff.files {
			sb := appendBytes(nil, 1, []byte(sf.name))
			if sf.ref != nil {
				sb = appendBytes(sb, 2, encReference(*sf.ref))
			}
			if sf.hasSize {
				sb = appendVarint(sb, 3, uint64(sf.size))
			}
			fb = appendBytes(fb, 2, sb)
		}
		b = appendBytes(b, 3, fb)
	}
	return b
}

func encDataManifest(m *dataManifest) []byte {
	cf := appendBytes(nil, 1, []byte("cf"))
	schema := appendBytes(appendBytes(nil, 1, encTableName(m.table)), 3, cf)
	b := appendBytes(nil, 1, schema)
	for _, rm := range m.regions {
		b = appendBytes(b, 2, encRegion(rm))
	}
	return b
}

func encRegionInfoFile(ri regionInfo) []byte {
	return protowire.AppendBytes([]byte("PBUF"), encRegionInfo(ri))
}

func encReferenceFile(r reference) []byte { return append([]byte("PBUF"), encReference(r)...) }

// samePaths checks that two Sets hold the same Paths with the same sizes.
func samePaths(t testing.TB, a, b *source.Set) {
	t.Helper()
	pa, pb := paths(a), paths(b)
	for p, f := range pa {
		if g, ok := pb[p]; !ok || g.Size != f.Size {
			t.Errorf("%s: size %d, other set has %+v", p, f.Size, g)
		}
	}
	for p := range pb {
		if _, ok := pa[p]; !ok {
			t.Errorf("%s: only in the second set", p)
		}
	}
}

// ListSnapshots (for the tests) returns the names of the completed snapshots under root,
// sorted. In-progress (.tmp) and *_CORRUPTED directories are skipped.
func ListSnapshots(root string) ([]string, error) {
	r, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	if err := checkSnapshotDir(r); err != nil {
		return nil, err
	}
	names, err := listSnapshots(r)
	if err != nil {
		return nil, fmt.Errorf("hbase: listing snapshots: %w", err)
	}
	return names, nil
}

// ReadSnapshotInfo (for the tests) decodes .hbase-snapshot/<name>/.snapshotinfo under root.
func ReadSnapshotInfo(root, name string) (SnapshotInfo, error) {
	if err := validSnapshotName(name); err != nil {
		return SnapshotInfo{}, fmt.Errorf("hbase: %w", err)
	}
	r, err := openRoot(root)
	if err != nil {
		return SnapshotInfo{}, err
	}
	info, _, err := readInfo(r, name)
	if err != nil {
		return info, fmt.Errorf("hbase: snapshot %q: %w", name, err)
	}
	return info, nil
}
