package hbase

import (
	"bytes"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/source"
)

// Fuzz targets beside fuzz_test.go's: the region-manifest.* files of a v2
// snapshot whose data.manifest is not written yet, and the names that
// become paths. The committed corpus (testdata/fuzz/<target>/) holds real
// region manifests (the SnapshotRegionManifest messages of the zip's two
// data.manifest files) and real names; FuzzDecodeManifest and
// FuzzDecodeSnapshotInfo get the zip's data.manifest and .snapshotinfo
// files committed too.

// regionDiff compares two decoded region manifests, a nil and an empty key
// alike (protobuf does not tell them apart).
func regionDiff(a, b regionManifest) string {
	ai, bi := a.info, b.info
	if ai.regionID != bi.regionID || ai.table != bi.table || ai.replicaID != bi.replicaID ||
		!bytes.Equal(ai.startKey, bi.startKey) || !bytes.Equal(ai.endKey, bi.endKey) {
		return fmt.Sprintf("region info %+v, then %+v", ai, bi)
	}
	if len(a.families) != len(b.families) {
		return fmt.Sprintf("%d families, then %d", len(a.families), len(b.families))
	}
	for i, fa := range a.families {
		fb := b.families[i]
		if fa.name != fb.name || len(fa.files) != len(fb.files) {
			return fmt.Sprintf("family %d: %q with %d files, then %q with %d", i, fa.name, len(fa.files), fb.name, len(fb.files))
		}
		for j, sa := range fa.files {
			sb := fb.files[j]
			if sa.name != sb.name || sa.size != sb.size || sa.hasSize != sb.hasSize || (sa.ref == nil) != (sb.ref == nil) ||
				sa.ref != nil && (sa.ref.top != sb.ref.top || !bytes.Equal(sa.ref.splitKey, sb.ref.splitKey)) {
				return fmt.Sprintf("family %d file %d: %+v, then %+v", i, j, sa, sb)
			}
		}
	}
	return ""
}

// FuzzDecodeRegionManifest: decodeRegionManifest never panics and explains
// every refusal; what it accepts has a region name HBase would compute,
// sizes that are not negative, and bounded counts; it encodes and decodes
// to the same region; and the same bytes inside a data.manifest decode to
// the same region, so a snapshot reads alike before and after HBase
// consolidates its region manifests.
func FuzzDecodeRegionManifest(f *testing.F) {
	table := tableName{"default", "test-table"}
	f.Add(encRegion(regionManifest{info: regionInfo{regionID: 1652120363846, table: table, startKey: []byte("50"), endKey: []byte("60")},
		families: []familyFiles{{name: "cf", files: []storeFile{
			{name: "be9f474ce8a84243948eb13b0eaaa333", size: 5168, hasSize: true},
			{name: "ff00.0a", ref: &reference{splitKey: []byte("55"), top: true}},
			{name: "ns=t=0a-ff00"},
		}}}}))
	f.Add(encRegion(regionManifest{info: regionInfo{regionID: 7, table: tableName{"ns", "t"}, replicaID: 1}}))
	schema := appendBytes(nil, 1, appendBytes(appendBytes(nil, 1, []byte("default")), 2, []byte("test-table")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rm, err := decodeRegionManifest(b)
		inData, derr := decodeDataManifest(appendBytes(appendBytes(nil, 1, schema), 2, b))
		if (err == nil) != (derr == nil) {
			t.Fatalf("alone: %v; in a data.manifest: %v", err, derr)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(inData.regions) != 1 {
			t.Fatalf("%d regions in a data.manifest of one", len(inData.regions))
		}
		if d := regionDiff(rm, inData.regions[0]); d != "" {
			t.Fatalf("alone and in a data.manifest: %s", d)
		}
		if name := encodedRegionName(rm.info); len(name) != 32 || !regionPattern().MatchString(name) {
			t.Fatalf("encoded region name %q", name)
		}
		if len(rm.families) > maxFamilies {
			t.Fatalf("%d families", len(rm.families))
		}
		for _, ff := range rm.families {
			for _, sf := range ff.files {
				if sf.size < 0 || !sf.hasSize && sf.size != 0 {
					t.Fatalf("store file %q: size %d (has size %v)", sf.name, sf.size, sf.hasSize)
				}
				if sf.ref != nil && sf.ref.splitKey == nil {
					t.Fatalf("store file %q: a reference without its split key", sf.name)
				}
			}
		}
		again, err := decodeRegionManifest(encRegion(rm))
		if err != nil {
			t.Fatalf("an accepted region, encoded, is refused: %v", err)
		}
		if d := regionDiff(rm, again); d != "" {
			t.Fatalf("encode and decode changed the region: %s", d)
		}
	})
}

// FuzzSnapshotNames: the names a snapshot's files and manifests give, which
// become restore paths. Whatever is accepted is safe as a path and, where
// there is a way back, reads back the same:
//   - a table name (.snapshotinfo, backup metadata) prints as a name that
//     parses to the same table (an empty namespace is the default one), and
//     its directory is <namespace>/<table>;
//   - a snapshot name is one element under .hbase-snapshot/;
//   - a family or plain store file name is one path element;
//   - a split reference name is <file>.<parent region> and never a link.
func FuzzSnapshotNames(f *testing.F) {
	for _, s := range []string{"test-table", "default:test-table", "ns:t", ":t", "ns:", "a:b:c", "test-snapshot", "cf",
		"recovered.edits", ".cf", "bd9016f5bb3b4dc79332da26c68ea808", "ff00.0a", "ns=t=0a-ff00.0b", "t=0a-ff00", "ff00_SeqId_12_.0a",
		"x.", "..", "\u00e9t\u00e9", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if tn, err := parseTableName(s); err == nil {
			checkTable(t, s, tn)
		}
		if err := validSnapshotName(s); err == nil {
			p := snapshotRel(s)
			if source.CheckPath(p) != nil || path.Base(p) != s || path.Dir(p) != snapshotDir {
				t.Fatalf("snapshot %q has directory %q", s, p)
			}
		}
		if err := validFamily(s); err == nil {
			oneElement(t, "family", s)
		}
		if err := validFileName(s); err == nil {
			oneElement(t, "store file", s)
		}
		if file, parent, ok := parseReference(s); ok {
			if file+"."+parent != s || file == "" || parent == "" {
				t.Fatalf("reference %q parsed as %q . %q", s, file, parent)
			}
			if _, isLink := parseLink(s); isLink {
				t.Fatalf("%q is both a link and a reference", s)
			}
		}
		if l, ok := parseLink(s); ok {
			if !regionPattern().MatchString(l.region) || l.hfile == "" || l.table.valid() != nil {
				t.Fatalf("link %q parsed as %+v", s, l)
			}
		}
	})
}

func checkTable(t *testing.T, s string, tn tableName) {
	t.Helper()
	if tn.valid() != nil {
		t.Fatalf("parseTableName(%q) = %+v, which is not valid", s, tn)
	}
	dir := tn.dir()
	ns, qual, ok := strings.Cut(dir, "/")
	if source.CheckPath(dir) != nil || !ok || strings.Contains(qual, "/") || ns == "" || qual != tn.qual {
		t.Fatalf("table %q has directory %q", s, dir)
	}
	// An empty namespace is the default one, as in TableName.valueOf(byte[],
	// byte[]); the text ":t" that gives it here is one HBase would refuse.
	again, err := parseTableName(tn.String())
	if err != nil || again.dir() != dir || again.String() != tn.String() {
		t.Fatalf("table %q prints as %q, which parses to %+v (%v)", s, tn.String(), again, err)
	}
}

func oneElement(t *testing.T, what, s string) {
	t.Helper()
	if source.CheckPath(s) != nil || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
		t.Fatalf("%s name %q is not one path element", what, s)
	}
}
