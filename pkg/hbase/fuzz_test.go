package hbase

import (
	"crypto/md5"
	"encoding/hex"
	"path"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/source"
)

// Fuzz targets for the decoder. Seeds are the real files of the zip plus
// generated encodings, so plain `go test` runs them all.

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func FuzzDecodeManifest(f *testing.F) {
	for _, s := range []string{snapPlain, snapSnappy} {
		f.Add(zipFile(f, ".hbase-snapshot/"+s+"/data.manifest"))
	}
	f.Add(encDataManifest(&dataManifest{table: tableName{"ns", "t"}, regions: []regionManifest{{
		info: regionInfo{regionID: 1, table: tableName{"ns", "t"}},
		families: []familyFiles{{name: "cf", files: []storeFile{
			{name: "ff.0a", ref: &reference{splitKey: []byte("k"), top: true}, size: 3, hasSize: true},
		}}},
	}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeDataManifest(b)
		whole, werr := decodeWholeManifest(b)
		if (err == nil) != (werr == nil) || err == nil && (len(m.regions) != len(whole.regions) || m.table != whole.table) {
			t.Fatalf("read as a stream: %v; whole: %v", err, werr)
		}
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error message")
			}
			return
		}
		for _, rm := range m.regions {
			if len(encodedRegionName(rm.info)) != 32 {
				t.Error("bad encoded region name")
			}
			for _, ff := range rm.families {
				for _, sf := range ff.files {
					if sf.size < 0 {
						t.Errorf("negative size %d", sf.size)
					}
				}
			}
		}
		// Whatever the decoder accepts as a region also decodes alone.
		for _, rm := range m.regions {
			if _, err := decodeRegionManifest(encRegion(rm)); err != nil {
				t.Errorf("re-encoded region: %v", err)
			}
		}
	})
}

func FuzzDecodeSnapshotInfo(f *testing.F) {
	for _, s := range []string{snapPlain, snapSnappy} {
		f.Add(zipFile(f, ".hbase-snapshot/"+s+"/.snapshotinfo"))
	}
	f.Add(encSnapshotInfo(SnapshotInfo{Name: "n", Table: "ns:t", Type: TypeSkipFlush, Version: 2, TTL: 60}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshotInfo(b)
		if err != nil {
			return
		}
		if s.Type < TypeDisabled || s.Type > TypeSkipFlush {
			t.Errorf("type %d", s.Type)
		}
		again, err := decodeSnapshotInfo(encSnapshotInfo(s))
		if err != nil || again != s {
			t.Errorf("re-encoded %+v: %+v, %v", s, again, err)
		}
	})
}

func FuzzDecodeRegionInfoFile(f *testing.F) {
	f.Add(encRegionInfoFile(regionInfo{regionID: 1652120363846, table: tableName{"default", "t"}, startKey: []byte("50")}))
	f.Add([]byte("PBUF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ri, err := decodeRegionInfoFile(b)
		if err == nil && len(encodedRegionName(ri)) != 32 {
			t.Error("bad encoded region name")
		}
	})
}

func FuzzDecodeReferenceFile(f *testing.F) {
	f.Add(encReferenceFile(reference{splitKey: []byte("row-35"), top: true}))
	f.Add([]byte{0, 0, 0, 2, 'k', 'k', 1}) // pre-0.96 Writable form
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok, err := decodeReferenceFile(b)
		if err != nil && ok {
			t.Error("ok with an error")
		}
		if ok {
			again, ok2, err := decodeReferenceFile(encReferenceFile(r))
			if !ok2 || err != nil || string(again.splitKey) != string(r.splitKey) || again.top != r.top {
				t.Errorf("re-encoded %+v: %+v", r, again)
			}
		}
	})
}

func FuzzStoreFileNames(f *testing.F) {
	for _, s := range []string{"ff00", "t=0a-ff00", "ns=t=0a-ff00.0b", "ff00.0a", "..", "a/b", "x.y=0a-ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if l, ok := parseLink(name); ok {
			rebuilt := l.table.qual + "=" + l.region + "-" + l.hfile
			if strings.Count(name, "=") == 2 {
				rebuilt = l.table.ns + "=" + rebuilt
			}
			if rebuilt != name {
				t.Errorf("parseLink(%q) = %+v", name, l)
			}
		}
		ns, err := needs(tableName{"default", "t"}, "0a", "cf", storeFile{name: name})
		if err != nil {
			return
		}
		for _, n := range ns {
			for _, p := range append(n.t.locations(), n.t.archivePath()) {
				if source.CheckPath(p) != nil || path.Base(p) != n.t.file || path.Base(path.Dir(p)) != "cf" {
					t.Errorf("store file %q gives unsafe path %q", name, p)
				}
			}
		}
	})
}

// decodeWholeManifest decodes a data.manifest held whole, field by field
// with eachField as every other message is: what the stream reading
// (eachRegionManifest) must agree with.
func decodeWholeManifest(b []byte) (*dataManifest, error) {
	m := &dataManifest{}
	var hasSchema bool
	files := 0
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			hasSchema = true
			v, err := f.bytes("table_schema")
			if err == nil {
				err = decodeTableSchema(v, m)
			}
			return err
		case 2:
			v, err := f.bytes("region_manifests")
			if err != nil {
				return err
			}
			r, err := decodeRegion(v, &files)
			m.regions = append(m.regions, r)
			return err
		}
		return nil
	})
	if err == nil && !hasSchema {
		err = missing("table_schema")
	}
	return m, err
}
