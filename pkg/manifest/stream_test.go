package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// streamOf is m as a stream manifest.
func streamOf(t *testing.T, m Manifest) []byte {
	t.Helper()
	b, err := m.EncodeStored()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// linesOf is a stream manifest decompressed into its lines.
func linesOf(t *testing.T, b []byte) []string {
	t.Helper()
	d, _ := zstd.NewReader(nil)
	defer d.Close()
	raw, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	return lines[:len(lines)-1]
}

func compress(s string) []byte {
	e, _ := zstd.NewWriter(nil)
	defer e.Close()
	return e.EncodeAll([]byte(s), nil)
}

// TestStreamRoundTrip: a stream manifest reads back file by file, in path
// order, with every field (exact names, chunk lists, inode and digest).
func TestStreamRoundTrip(t *testing.T) {
	m := validManifest()
	m.Files[0].Ino, m.Files[0].Digest = 42, "1234"
	m.Files[0].ModTime = time.Unix(1700000000, 123456789).UTC()
	m.Files = append(m.Files, m.Files[0], m.Files[0])
	m.Files[2].Path, m.Files[3].Path = "ks/t-1/a\xff", "ks.x/b"
	m.Finished = time.Unix(1700000100, 0).UTC()
	x, err := NewReader(bytes.NewReader(streamOf(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	h := x.Manifest()
	if h.Schema != SchemaStream || h.ID != m.ID || h.Count() != 4 || h.RawBytes() != m.RawBytes() || !h.Finished.Equal(m.Finished) {
		t.Fatalf("header %+v", h)
	}
	got := readFiles(t, x)
	want := slices.Clone(m.Files)
	sortFiles(want)
	if len(got) != len(want) {
		t.Fatalf("%d files, want %d", len(got), len(want))
	}
	for i := range got {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("file %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if got[0].Path != "ks/t-1/a\xff" || got[3].Path != "ks.x/b" {
		t.Errorf("order %q", []string{got[0].Path, got[1].Path, got[2].Path, got[3].Path})
	}
}

// TestGroupsNeedTheirSchema: a manifest with a grouped file is written
// with SchemaGroups, which an s3bak that reads up to schema 3 refuses, and
// reads back with the group's fields; one without stays schema 3. A
// stream of a schema newer than this s3bak's is refused as such.
func TestGroupsNeedTheirSchema(t *testing.T) {
	m := validManifest()
	if h := readHeader(t, streamOf(t, m)); h.Schema != SchemaStream {
		t.Fatalf("schema %d without groups, want %d", h.Schema, SchemaStream)
	}
	m.Files = append(m.Files, groupedFile())
	m.Files[2].Path = "ks/t-2/g"
	b := streamOf(t, m)
	if !strings.HasPrefix(linesOf(t, b)[0], `{"schema":4,`) {
		t.Fatalf("header %s", linesOf(t, b)[0])
	}
	x, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var got File
	for _, f := range readFiles(t, x) {
		if f.Path == "ks/t-2/g" {
			got = f
		}
	}
	if want := groupedFile(); got.Group != want.Group || got.Skip != want.Skip || got.ChunkSize != 0 || got.Offset != want.Offset {
		t.Fatalf("grouped file read back as %+v", got)
	}
	// A group's files account for its stored bytes once between them
	// (each share rounded down).
	whole := groupedFile()
	parts := []File{whole, whole}
	parts[0].Size, parts[0].Skip = whole.Group/4, 0
	parts[1].Size, parts[1].Skip = whole.Group*3/4, whole.Group/4
	if sum := parts[0].StoredShare() + parts[1].StoredShare(); sum > whole.StoredSize || sum < whole.StoredSize-2 {
		t.Fatalf("a group of %d stored bytes: its two files account for %d", whole.StoredSize, sum)
	}
	lines := linesOf(t, b)
	future := compress(strings.Replace(lines[0], `{"schema":4,`, `{"schema":12,`, 1) + strings.Join(lines[1:], ""))
	if _, err := NewReader(bytes.NewReader(future)); err == nil || !strings.Contains(err.Error(), "upgrade s3bak") {
		t.Fatalf("a schema 12 stream: %v, want a refusal that says to upgrade", err)
	}
}

// readFiles reads x's files to the end.
func readFiles(t *testing.T, x *Reader) []File {
	t.Helper()
	var files []File
	for {
		f, err := x.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
}

func readHeader(t *testing.T, b []byte) *Manifest {
	t.Helper()
	x, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	return x.Manifest()
}

// TestComparePaths: a directory's files come before a sibling that only
// starts with its name, as a depth-first walk meets them.
func TestComparePaths(t *testing.T) {
	sorted := []string{"a", "a/b", "a/b/c", "a/c", "a.b", "a0", "b"}
	for i := range sorted {
		for j := range sorted {
			if got, want := ComparePaths(sorted[i], sorted[j]), cmpInt(i, j); got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestHostileStreamIsRefused: a stream manifest that was cut short, has
// records out of order or twice, or states totals its records do not add
// up to is refused with ErrCorrupt, naming what is wrong — never read as a
// smaller or different backup.
func TestHostileStreamIsRefused(t *testing.T) {
	m := validManifest()
	m.Files = append(m.Files, m.Files[1])
	m.Files[2].Path = "ks/t-2/x"
	good := streamOf(t, m)
	lines := linesOf(t, good)
	head, recs, tail := lines[0], lines[1:len(lines)-1], lines[len(lines)-1]
	join := func(parts ...string) []byte { return compress(strings.Join(parts, "")) }
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"truncated zstd":   {good[:len(good)-7], ""},
		"no trailer":       {join(head, recs[0], recs[1], recs[2]), "cut short"},
		"out of order":     {join(head, recs[1], recs[0], recs[2], tail), "out of order"},
		"listed twice":     {join(head, recs[0], recs[0], recs[2], tail), "listed twice"},
		"dropped a record": {join(head, recs[0], recs[2], tail), "trailer counts"},
		"extra record":     {join(strings.Replace(head, `"file_count":3`, `"file_count":2`, 1), recs[0], recs[1], recs[2], tail), "more files"},
		"sizes that lie":   {join(strings.Replace(head, `"raw_bytes":10`, `"raw_bytes":1000`, 1), recs[0], recs[1], recs[2], tail), "add up"},
		"after trailer":    {join(head, recs[0], recs[1], recs[2], tail, recs[2]), "after the trailer"},
		"file and dir":     {join(head, strings.Replace(recs[0], `"ks/t-1/empty"`, `"ks/t-1"`, 1), recs[1], recs[2], tail), "directory"},
		"escaping path":    {join(head, strings.Replace(recs[0], `"ks/t-1/empty"`, `"../etc/passwd"`, 1), recs[1], recs[2], tail), "escapes"},
		"odd chunk list":   {join(head, recs[0], strings.Replace(recs[1], `"ch":[`, `"ch":[7,`, 1), recs[2], tail), "chunk"},
		"not JSON":         {join(head, "{nope\n", recs[1], recs[2], tail), "record 1"},
		"negative totals":  {join(strings.Replace(head, `"stored_bytes":`, `"stored_bytes":-`, 1), tail), "negative"},
		// Lines in forms s3bak never writes, which the fast record decoder
		// leaves to json.Unmarshal: refused as before, or read as
		// encoding/json reads them and then refused for what they say.
		"last of two paths": {join(head, strings.Replace(recs[0], `}`, `,"p":"../x"}`, 1), recs[1], recs[2], tail), "escapes"},
		"escaped NUL":       {join(head, strings.Replace(recs[0], `"ks/t-1/empty"`, `"ks/t-1/\u0000"`, 1), recs[1], recs[2], tail), "NUL"},
		"huge size":         {join(head, strings.Replace(recs[0], `"n":0`, `"n":1e999`, 1), recs[1], recs[2], tail), "record 1"},
		"overflowing size":  {join(head, strings.Replace(recs[0], `"n":0`, `"n":9223372036854775808`, 1), recs[1], recs[2], tail), "record 1"},
		"size as a string":  {join(head, strings.Replace(recs[0], `"n":0`, `"n":"0"`, 1), recs[1], recs[2], tail), "record 1"},
		"CRC out of range":  {join(head, recs[0], strings.Replace(recs[1], `"ch":[`, `"ch":[7,-1,`, 1), recs[2], tail), "CRC32C"},
		"chunks as null":    {join(head, recs[0], strings.Replace(recs[1], `"ch":[10,0]`, `"ch":null`, 1), recs[2], tail), "chunks listed"},
		"pb not base64":     {join(head, strings.Replace(recs[0], `,"n":`, `,"pb":"%%","n":`, 1), recs[1], recs[2], tail), "base64"},
		"cut record":        {join(head, recs[0][:40]+"\n", recs[1], recs[2], tail), "record 1"},
	} {
		_, err := Decode(tc.b)
		if err == nil || !errors.Is(err, ErrCorrupt) && tc.want != "" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrCorrupt saying %q", name, err, tc.want)
		}
	}
	want, err := Decode(good)
	if err != nil {
		t.Fatalf("the good stream: %v", err)
	}
	// Records that JSON writes otherwise than s3bak read as they always
	// did: as the same files, and a byte that is not UTF-8 as U+FFFD.
	for name, rec0 := range map[string]string{
		"spaces":         strings.ReplaceAll(strings.ReplaceAll(recs[0], `,"`, `, "`), `":`, `": `),
		"escapes":        strings.Replace(recs[0], `"ks/t-1/empty"`, `"ks\/t-1\/\u0065mpty"`, 1),
		"order of keys":  `{"n":0,` + strings.Replace(recs[0], `"n":0,`, "", 1)[1:],
		"two paths":      strings.Replace(recs[0], `"p":"ks/t-1/empty"`, `"p":"x","p":"ks/t-1/empty"`, 1),
		"invalid UTF-8":  strings.Replace(recs[0], `"ks/t-1/empty"`, "\"ks/t-0/\xff\"", 1),
		"zeros written":  strings.Replace(recs[0], `}`, `,"o":0,"cs":0,"i":0,"d":""}`, 1),
		"unknown fields": strings.Replace(recs[0], `}`, `,"x":[1,{"y":null}]}`, 1),
	} {
		m, err := Decode(join(head, rec0, recs[1], recs[2], tail))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		w := slices.Clone(want.Files)
		if name == "invalid UTF-8" {
			w[0].Path = "ks/t-0/\uFFFD"
		}
		if !reflect.DeepEqual(m.Files, w) {
			t.Errorf("%s: read as\n%+v\nwant\n%+v", name, m.Files, w)
		}
	}
}

// TestLegacyManifestsStillRead: manifests of schemas 1 and 2, plain or
// compressed JSON, read through the same Reader as before.
func TestLegacyManifestsStillRead(t *testing.T) {
	m := validManifest()
	plain, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"plain": plain, "zstd": compress(string(plain))} {
		x, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := x.ReadAll()
		if err != nil || got.Schema != 1 || len(got.Files) != 2 || got.Files[0].Path != m.Files[0].Path || got.RawBytes() != 10 {
			t.Fatalf("%s: %+v %v", name, got, err)
		}
	}
}
