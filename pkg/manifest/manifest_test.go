package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func validManifest() Manifest {
	sha := strings.Repeat("0f", 32)
	return Manifest{Schema: 1, ID: "20261125T000000Z", Kind: "cassandra", Cluster: "prod", Node: "n1", Files: []File{
		{Path: "ks/t-1/nb-1-big-Data.db", Size: 10, SHA256: sha, Key: ObjectKey(sha, true, 16<<20), StoredSize: 10 + 8 + 8 + 9,
			Compression: "zstd", ChunkSize: 16 << 20, Chunks: []Chunk{{Stored: 10}}},
		{Path: "ks/t-1/empty", Size: 0, SHA256: sha, Key: ObjectKey(sha, false, 0), Compression: "none"},
	}}
}

// groupedFile is a valid file of a group: 10 bytes from 100 of 4,096.
func groupedFile() File {
	return File{Path: "ks/t-1/nb-1-big-Data.db", Size: 10, SHA256: strings.Repeat("0f", 32), Key: PackKey("p1"), Offset: 77,
		StoredSize: 900 + 8 + 8 + 9, Compression: "zstd", Chunks: []Chunk{{Stored: 900, CRC32C: 5}}, Group: 4096, Skip: 100}
}

func TestValidateRejectsHostileManifests(t *testing.T) {
	for name, mutate := range map[string]func(*Manifest){
		"parent path":      func(m *Manifest) { m.Files[0].Path = "../etc/passwd" },
		"inner parent":     func(m *Manifest) { m.Files[0].Path = "ks/../../x" },
		"absolute path":    func(m *Manifest) { m.Files[0].Path = "/etc/passwd" },
		"unclean path":     func(m *Manifest) { m.Files[0].Path = "ks//x" },
		"empty path":       func(m *Manifest) { m.Files[0].Path = "" },
		"key backslash":    func(m *Manifest) { m.Files[0].Key = DataDir + `/ab\x` },
		"duplicate":        func(m *Manifest) { m.Files[1].Path = m.Files[0].Path },
		"file is dir":      func(m *Manifest) { m.Files[1].Path = "ks/t-1/nb-1-big-Data.db/x" },
		"key outside":      func(m *Manifest) { m.Files[0].Key = "../other-node/data/x" },
		"key not data":     func(m *Manifest) { m.Files[0].Key = "backups/x.json" },
		"bad sha":          func(m *Manifest) { m.Files[0].SHA256 = "abc" },
		"mode bits":        func(m *Manifest) { m.Files[0].Mode = 0o4755 | 1<<31 },
		"negative size":    func(m *Manifest) { m.Files[0].Size = -1 },
		"chunk count":      func(m *Manifest) { m.Files[0].Chunks = nil },
		"stored mismatch":  func(m *Manifest) { m.Files[0].StoredSize++ },
		"raw stored":       func(m *Manifest) { m.Files[1].StoredSize = 5 },
		"compression":      func(m *Manifest) { m.Files[0].Compression = "lz4" },
		"future schema":    func(m *Manifest) { m.Schema = 99 },
		"node name":        func(m *Manifest) { m.Node = "../x" },
		"negative offset":  func(m *Manifest) { m.Files[0].Key = PackKey("p1"); m.Files[0].Offset = -1 },
		"offset not pack":  func(m *Manifest) { m.Files[0].Offset = 10 },
		"pack in subdir":   func(m *Manifest) { m.Files[0].Key = PacksDir + "/x/p1.pack"; m.Files[0].Offset = 10 },
		"group not pack":   func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].Key = ObjectKey(m.Files[0].SHA256, true, 0) },
		"group chunk size": func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].ChunkSize = 1 << 20 },
		"group too large":  func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].Group = MaxGroup + 1 },
		"group past end":   func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].Skip = m.Files[0].Group - 5 },
		"group skip < 0":   func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].Skip = -1 },
		"skip no group":    func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].Group = 0 },
		"group 2 chunks": func(m *Manifest) {
			m.Files[0] = groupedFile()
			m.Files[0].Chunks = append(m.Files[0].Chunks, Chunk{Stored: 1})
		},
		"group stored": func(m *Manifest) { m.Files[0] = groupedFile(); m.Files[0].StoredSize-- },
		"group raw":    func(m *Manifest) { m.Files[1].Key = PackKey("p1"); m.Files[1].Group = 10 },
	} {
		m := validManifest()
		mutate(&m)
		b, _ := json.Marshal(m)
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m := validManifest()
	b, _ := m.Encode()
	if _, err := Decode(b); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	m.Files[0] = groupedFile()
	if err := m.Validate(); err != nil {
		t.Fatalf("valid grouped file rejected: %v", err)
	}
	if _, err := Decode([]byte("{not json")); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestExactNames: names are their exact bytes. Two names that differ only
// in bytes that are not UTF-8 come back as themselves (JSON alone would
// make both "ks/t-1/a\uFFFD"), the manifest says the schema that carries
// them, and a manifest without such names is as before.
func TestExactNames(t *testing.T) {
	m := validManifest()
	plain, _ := m.Encode()
	if bytes.Contains(plain, pathB64Key) || !bytes.Contains(plain, []byte(`"schema":1,`)) {
		t.Fatalf("a manifest of UTF-8 names changed:\n%s", plain)
	}
	names := []string{"ks/t-1/a\xff", "ks/t-1/a\xfe", "ks/t-1/\xc3(latin1-\xe9)", "ks/t-1/back\\slash", "ks/t-1/\"path_b64\""}
	m.Files = append(m.Files, m.Files[1], m.Files[1], m.Files[1], m.Files[1], m.Files[1])
	for i, n := range names {
		m.Files[2+i].Path = n
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !bytes.Contains(b, []byte(`"schema":2,`)) || m.Schema != 1 {
		t.Fatalf("schema: want 2 in the JSON (and the manifest itself untouched: %d):\n%s", m.Schema, b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if got.Files[2+i].Path != n {
			t.Errorf("name %q came back as %q", n, got.Files[2+i].Path)
		}
	}
	if got.Files[0].Path != m.Files[0].Path {
		t.Errorf("a UTF-8 name changed: %q", got.Files[0].Path)
	}
	// The display form is what "path" says, for jq and people.
	var raw struct{ Files []map[string]any }
	json.Unmarshal(b, &raw)
	if p := raw.Files[2]["path"]; p != "ks/t-1/a\uFFFD" {
		t.Errorf("display path %q", p)
	}
	// An old manifest (before path_b64) still reads, its names as written.
	old := bytes.Replace(plain, []byte("ks/t-1/empty"), []byte("ks/t-1/\ufffd"), 1)
	if om, err := Decode(old); err != nil || om.Files[1].Path != "ks/t-1/\uFFFD" {
		t.Fatalf("old manifest: %v", err)
	}
	// path_b64 is checked like path: it cannot lead out of the target.
	evil := bytes.Replace(b, []byte(`"path_b64":"a3MvdC0xL2H/"`), []byte(`"path_b64":"Li4vLi4vZXRjL3Bhc3N3ZA=="`), 1)
	if bytes.Equal(evil, b) {
		t.Fatalf("no path_b64 to replace in:\n%s", b)
	}
	if _, err := Decode(evil); err == nil || !strings.Contains(err.Error(), "escapes") {
		t.Fatalf("path_b64 of ../../etc/passwd: %v", err)
	}
	if _, err := Decode(bytes.Replace(b, []byte(`"path_b64":"a3MvdC0xL2H/"`), []byte(`"path_b64":"%%"`), 1)); err == nil {
		t.Fatal("a path_b64 that is not base64 was accepted")
	}
}

// TestBackslashIsAByteOfAName: on Linux a backslash is an ordinary byte of
// a file name, not a separator: a name with one stays one file under the
// target, and an object key never has one.
func TestBackslashIsAByteOfAName(t *testing.T) {
	if filepath.Separator != '/' {
		t.Skip("a backslash separates paths here")
	}
	m := validManifest()
	m.Files[0].Path = `ks\..\..\x`
	b, _ := m.Encode()
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	target := "/restore"
	if p := filepath.Join(target, filepath.FromSlash(got.Files[0].Path)); filepath.Dir(p) != target {
		t.Fatalf("%q is restored as %s, not as one file in %s", got.Files[0].Path, p, target)
	}
}

func FuzzDecode(f *testing.F) {
	m := validManifest()
	b, _ := m.Encode()
	f.Add(b)
	f.Add([]byte(`{"schema":1,"files":[{"path":"../x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, "/") || strings.Contains("/"+f.Path+"/", "/../") {
				t.Fatalf("accepted hostile path %q", f.Path)
			}
		}
	})
}

// TestStoredManifestIsCompressedAndReadsBack: a manifest is stored as
// zstd-compressed JSON, a fraction of its JSON; Decode reads that and the
// plain JSON of manifests written before compression.
func TestStoredManifestIsCompressedAndReadsBack(t *testing.T) {
	m := validManifest()
	for range 2000 {
		m.Files = append(m.Files, m.Files[0])
		m.Files[len(m.Files)-1].Path = fmt.Sprintf("ks/t-1/nb-%d-big-Data.db", len(m.Files))
	}
	plain, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := m.EncodeStored()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored, zstdMagic) || len(stored) > len(plain)/5 {
		t.Fatalf("stored manifest: %d bytes, its JSON %d", len(stored), len(plain))
	}
	for name, b := range map[string][]byte{"stored": stored, "plain JSON": plain} {
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got.Files) != len(m.Files) || !slices.ContainsFunc(got.Files, func(f File) bool { return f.Path == m.Files[2000].Path }) {
			t.Fatalf("%s: %d files", name, len(got.Files))
		}
	}
	if _, err := Decode(append(append([]byte(nil), zstdMagic...), "garbage"...)); err == nil {
		t.Fatal("a broken zstd manifest was accepted")
	}
}
