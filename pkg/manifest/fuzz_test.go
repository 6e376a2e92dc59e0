package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// FuzzManifestRoundTrip feeds Decode what a bucket could hold instead of a
// manifest. The committed corpus (testdata/fuzz/FuzzManifestRoundTrip) holds
// manifests written by s3bak itself: a Cassandra backup of two data
// directories (packs, a renamed generation), one with 16 KiB chunks and an
// object per file, one uncompressed, and an HBase backup; the seeds added
// here cover names that are not UTF-8. Whatever Decode accepts:
//   - passes Validate;
//   - names files that stay inside the restore target: relative, clean, no
//     "..", no NUL, and a backslash is a byte of a name, never a separator;
//   - names objects under data/;
//   - encodes, and decodes back to the same manifest, whose encoding is
//     the same bytes (a fixpoint); only the schema may rise to the one its
//     names need.
func FuzzManifestRoundTrip(f *testing.F) {
	m := validManifest()
	b, _ := m.Encode()
	f.Add(b)
	m.Files[1].Path = "ks/t-1/a\xff"
	m.Files = append(m.Files, m.Files[1])
	m.Files[2].Path = `ks/t-1/back\slash`
	if b, err := m.Encode(); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"schema":1,"id":"x","cluster":"c","node":"n","files":[{"path":"a","path_b64":"Li4vZXRj"}]}`))
	f.Add([]byte(`{"schema":2,"id":"x","cluster":"c","node":"n","files":[{"path":"\\..\\x","sha256":"` +
		strings.Repeat("ab", 32) + `","key":"data/ab/x.raw","compression":"none"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatalf("Decode returned a manifest with error %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Decode accepted a manifest Validate refuses: %v", err)
		}
		for _, f := range m.Files {
			checkRestorePath(t, f.Path)
			if !strings.HasPrefix(f.Key, DataDir+"/") || strings.Contains(f.Key, `\`) ||
				path.Clean(f.Key) != f.Key || strings.Contains("/"+f.Key+"/", "/../") {
				t.Fatalf("accepted object key %q", f.Key)
			}
			if f.Offset > 0 && !IsPackKey(f.Key) {
				t.Fatalf("accepted offset %d into %q", f.Offset, f.Key)
			}
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("an accepted manifest does not encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("an accepted manifest, encoded, is refused: %v\n%s", err, enc)
		}
		want := *m
		if m.exactNames() {
			want.Schema = max(m.Schema, SchemaExactNames)
		}
		if d := manifestDiff(&want, again); d != "" {
			t.Fatalf("encode and decode changed the manifest: %s\n%s", d, enc)
		}
		enc2, err := again.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("the encoding is not a fixpoint (%v):\n%s\n---\n%s", err, enc, enc2)
		}
	})
}

// checkRestorePath checks, independently of source.CheckPath, that p
// restored under a target is a file inside it, as many directories deep as
// p has slashes.
func checkRestorePath(t *testing.T, p string) {
	t.Helper()
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		t.Fatalf("accepted path %q", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == "" || e == "." || e == ".." {
			t.Fatalf("accepted path %q: element %q", p, e)
		}
	}
	if filepath.Separator != '/' && strings.ContainsRune(p, filepath.Separator) {
		t.Fatalf("accepted path %q with this system's separator", p)
	}
	const target = "/restore/target"
	abs := filepath.Join(target, filepath.FromSlash(p))
	rel, err := filepath.Rel(target, abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) ||
		!strings.HasPrefix(abs, target+string(filepath.Separator)) {
		t.Fatalf("path %q is restored as %s, outside %s", p, abs, target)
	}
	if n := strings.Count(rel, string(filepath.Separator)); n != strings.Count(p, "/") {
		t.Fatalf("path %q is restored %d directories deep, as %s", p, n, abs)
	}
}

// manifestDiff compares two manifests: times by instant and offset (a zone
// name is not encoded), empty and nil maps and slices alike (omitempty).
func manifestDiff(a, b *Manifest) string {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	if !sameTime(a.Started, b.Started) || !sameTime(a.Finished, b.Finished) {
		return fmt.Sprintf("times %v %v, then %v %v", a.Started, a.Finished, b.Started, b.Finished)
	}
	if len(a.Files) != len(b.Files) {
		return fmt.Sprintf("%d files, then %d", len(a.Files), len(b.Files))
	}
	for i := range a.Files {
		fa, fb := a.Files[i], b.Files[i]
		if !sameTime(fa.ModTime, fb.ModTime) {
			return fmt.Sprintf("file %d: mtime %v, then %v", i, fa.ModTime, fb.ModTime)
		}
		fa.ModTime, fb.ModTime = time.Time{}, time.Time{}
		if len(fa.Chunks) == 0 && len(fb.Chunks) == 0 {
			fa.Chunks, fb.Chunks = nil, nil
		}
		if !reflect.DeepEqual(fa, fb) {
			return fmt.Sprintf("file %d: %+v, then %+v", i, fa, fb)
		}
		if !utf8.ValidString(fa.Path) && DisplayPath(fa.Path) == fa.Path {
			return fmt.Sprintf("file %d: display path of %q is itself", i, fa.Path)
		}
	}
	ca, cb := *a, *b
	ca.Started, ca.Finished, cb.Started, cb.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	ca.Files, cb.Files = nil, nil
	if len(ca.Meta) == 0 && len(cb.Meta) == 0 {
		ca.Meta, cb.Meta = nil, nil
	}
	if !reflect.DeepEqual(ca, cb) {
		return fmt.Sprintf("%+v, then %+v", ca, cb)
	}
	return ""
}

// FuzzRecordDecode is the fast record decoder against json.Unmarshal: for
// any line, it declines or yields exactly the record json.Unmarshal does,
// and decode (with its fallback) yields json.Unmarshal's record or error.
// The seeds are lines AppendRecord writes; the fuzzer's changes to them
// are mostly lines s3bak never writes, which must all be declined or
// mean what encoding/json says they mean.
func FuzzRecordDecode(f *testing.F) {
	for _, line := range recordLines(f) {
		f.Add(line)
	}
	f.Add([]byte(`{"end":3}`))
	f.Add([]byte(`{"p":"a","n":1,"t":0,"m":0,"h":"","k":"","z":9,"c":"zstd","ch":[1,2],"g":5,"sk":3}`))
	f.Add([]byte(`{"p":"a","p":"b","n":-0,"ch":[],"m":4294967296}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		checkRecordDecode(t, line)
	})
}

// FuzzRecordDecodeValues writes records of any field values as
// AppendRecord does (json.Marshal) and checks them as FuzzRecordDecode
// does: mutating a line mostly makes one the fast path declines, this
// makes lines it takes. A line without an escape must take the fast path,
// unless it has a number of 20 digits (an inode over 10^19, which no file
// system gives), left to json.Unmarshal.
func FuzzRecordDecodeValues(f *testing.F) {
	f.Add("ks/t-1/nb-1-big-Data.db", "", int64(10), int64(1700000000123456789), uint32(0o644), strings.Repeat("0f", 32),
		"data/packs/x.pack", int64(5), int64(35), "zstd", int64(8<<20), int64(10), int64(4294967295), uint64(7), "123", 2)
	f.Add("ks/é\x00\xff\"\\<", "a3M=", int64(-1), int64(math.MinInt64), uint32(math.MaxUint32), "", "", int64(math.MaxInt64),
		int64(0), "none", int64(-5), int64(-1), int64(0), uint64(math.MaxUint64), "\u2028", 0)
	f.Fuzz(func(t *testing.T, p, pb string, n, mtime int64, mode uint32, h, k string, o, z int64, c string, cs, s, crc int64,
		ino uint64, d string, chunks int) {
		r := record{Path: p, PathB64: pb, Size: n, ModTime: mtime, Mode: mode, SHA256: h, Key: k, Offset: o, StoredSize: z,
			Compression: chunk.Mode(c), ChunkSize: cs, Ino: ino, Digest: d}
		for range chunks % 8 {
			r.Chunks = append(r.Chunks, s, crc)
		}
		line, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if fast := checkRecordDecode(t, line); !fast && !bytes.Contains(line, []byte(`\`)) && ino < 1e19 {
			t.Fatalf("%s: not the fast path", line)
		}
	})
}
