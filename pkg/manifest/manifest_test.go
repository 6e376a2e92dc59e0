package manifest

import (
	"encoding/json"
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

func TestValidateRejectsHostileManifests(t *testing.T) {
	for name, mutate := range map[string]func(*Manifest){
		"parent path":     func(m *Manifest) { m.Files[0].Path = "../etc/passwd" },
		"inner parent":    func(m *Manifest) { m.Files[0].Path = "ks/../../x" },
		"absolute path":   func(m *Manifest) { m.Files[0].Path = "/etc/passwd" },
		"unclean path":    func(m *Manifest) { m.Files[0].Path = "ks//x" },
		"backslash":       func(m *Manifest) { m.Files[0].Path = `ks\..\x` },
		"empty path":      func(m *Manifest) { m.Files[0].Path = "" },
		"duplicate":       func(m *Manifest) { m.Files[1].Path = m.Files[0].Path },
		"file is dir":     func(m *Manifest) { m.Files[1].Path = "ks/t-1/nb-1-big-Data.db/x" },
		"key outside":     func(m *Manifest) { m.Files[0].Key = "../other-node/data/x" },
		"key not data":    func(m *Manifest) { m.Files[0].Key = "backups/x.json" },
		"bad sha":         func(m *Manifest) { m.Files[0].SHA256 = "abc" },
		"mode bits":       func(m *Manifest) { m.Files[0].Mode = 0o4755 | 1<<31 },
		"negative size":   func(m *Manifest) { m.Files[0].Size = -1 },
		"chunk count":     func(m *Manifest) { m.Files[0].Chunks = nil },
		"stored mismatch": func(m *Manifest) { m.Files[0].StoredSize++ },
		"raw stored":      func(m *Manifest) { m.Files[1].StoredSize = 5 },
		"compression":     func(m *Manifest) { m.Files[0].Compression = "lz4" },
		"future schema":   func(m *Manifest) { m.Schema = 99 },
		"node name":       func(m *Manifest) { m.Node = "../x" },
		"negative offset": func(m *Manifest) { m.Files[0].Key = PackKey("p1"); m.Files[0].Offset = -1 },
		"offset not pack": func(m *Manifest) { m.Files[0].Offset = 10 },
		"pack in subdir":  func(m *Manifest) { m.Files[0].Key = PacksDir + "/x/p1.pack"; m.Files[0].Offset = 10 },
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
	if _, err := Decode([]byte("{not json")); err == nil {
		t.Fatal("garbage accepted")
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
