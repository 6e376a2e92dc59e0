package manifest

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// sameAsMarshal fails t unless appendRecordJSON writes r as json.Marshal
// does, after what dst held.
func sameAsMarshal(t *testing.T, r record) {
	t.Helper()
	want, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := appendRecordJSON([]byte("prefix"), &r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "prefix"+string(want) {
		t.Errorf("appendRecordJSON(%+v)\n got %s\nwant prefix%s", r, got, want)
	}
}

// TestAppendRecordIsJSONMarshal: the records a manifest holds are written
// byte for byte as json.Marshal wrote them, whatever their fields hold:
// names that need escaping, zero and extreme numbers, empty and long chunk
// lists, the trailer.
func TestAppendRecordIsJSONMarshal(t *testing.T) {
	end := int64(3)
	base := record{Path: "ks/t-1/snapshots/x/nb-1-big-Data.db", Size: 1 << 30, ModTime: 1732900000123456789, Mode: 0o644,
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Key: "data/9f/9f86d0.c8192k.zst",
		StoredSize: 900 << 20, Compression: chunk.Zstd, ChunkSize: 8 << 20, Chunks: []int64{7340032, 123456789, -1, 0},
		Ino: 1234567, Digest: "crc32:2203944950"}
	for name, edit := range map[string]func(r *record){
		"as written": func(*record) {},
		"packed":     func(r *record) { r.Offset, r.ChunkSize, r.Chunks = 81920, 0, nil },
		"grouped": func(r *record) {
			r.Offset, r.ChunkSize, r.Chunks, r.Group, r.Skip = 81920, 0, []int64{900, 5}, 131072, 4096
		},
		"group first":  func(r *record) { r.ChunkSize, r.Group, r.Skip = 0, 131072, 0 },
		"zeros":        func(r *record) { *r = record{} },
		"empty chunks": func(r *record) { r.Chunks = []int64{} },
		"extremes": func(r *record) {
			r.Size, r.ModTime, r.Offset, r.Mode, r.Ino = math.MaxInt64, math.MinInt64, -1, math.MaxUint32, math.MaxUint64
			r.Group, r.Skip = math.MaxInt64, math.MinInt64
		},
		"not utf-8":       func(r *record) { r.Path, r.PathB64 = DisplayPath("ks/a\xff"), "a3MvYf8=" },
		"html":            func(r *record) { r.Path = "ks/<a>&b" },
		"quote":           func(r *record) { r.Path = `ks/a"b\c` },
		"control":         func(r *record) { r.Path = "ks/a\x00\n\t\x7f" },
		"unicode":         func(r *record) { r.Path = "ks/été/\u2028" },
		"bad utf-8 field": func(r *record) { r.Digest = "crc32:\xff" },
		"mode":            func(r *record) { r.Compression = chunk.None },
		"trailer":         func(r *record) { *r = record{End: &end} },
	} {
		t.Run(name, func(t *testing.T) {
			r := base
			r.Chunks = append([]int64(nil), base.Chunks...)
			edit(&r)
			sameAsMarshal(t, r)
		})
	}
}

// FuzzAppendRecord: for any field values, appendRecordJSON writes what
// json.Marshal writes.
func FuzzAppendRecord(f *testing.F) {
	f.Add("ks/t/a", "", int64(1), int64(2), uint32(0o644), "h", "data/k", int64(0), int64(3), "zstd", int64(0), int64(5), uint64(7), "crc32:1")
	f.Add("ks/<&>\"\\\x00é", "pb", int64(-1), int64(-2), uint32(1), "", "", int64(-3), int64(-4), "", int64(-5), int64(0), uint64(0), "\xff")
	f.Fuzz(func(t *testing.T, p, pb string, n, tm int64, m uint32, h, k string, o, z int64, c string, cs, ch int64, i uint64, d string) {
		r := record{Path: p, PathB64: pb, Size: n, ModTime: tm, Mode: m, SHA256: h, Key: k, Offset: o, StoredSize: z,
			Compression: chunk.Mode(c), ChunkSize: cs, Ino: i, Digest: d}
		if ch != 0 {
			r.Chunks = []int64{ch, -ch, 0}
		}
		sameAsMarshal(t, r)
	})
}
