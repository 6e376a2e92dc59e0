package source

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckRefusesBeforeUpload: a set is checked at discovery, naming the
// file on disk, for what a manifest would refuse only at its end.
func TestCheckRefusesBeforeUpload(t *testing.T) {
	ok := &Set{Files: []File{{Path: "ks/t/a\xff", Dir: filepath.Dir("/d/1"), Name: filepath.Base("/d/1")}, {Path: "ks/t/a\xfe", Dir: filepath.Dir("/d/2"), Name: filepath.Base("/d/2")}, {Path: `ks/t/b\c`, Dir: filepath.Dir("/d/3"), Name: filepath.Base("/d/3")}}}
	err := ok.Check()
	if filepath.Separator == '/' && err != nil {
		t.Fatalf("exact names refused: %v", err)
	}
	for name, tc := range map[string]struct {
		files []File
		want  []string
	}{
		"twice":        {[]File{{Path: "ks/t/a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}, {Path: "ks/t/a", Dir: filepath.Dir("/d2/a"), Name: filepath.Base("/d2/a")}}, []string{"/d1/a", "/d2/a"}},
		"file and dir": {[]File{{Path: "ks/t/a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}, {Path: "ks/t/a/b", Dir: filepath.Dir("/d2/a/b"), Name: filepath.Base("/d2/a/b")}}, []string{"/d1/a", "/d2/a/b"}},
		"escapes":      {[]File{{Path: "../a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}}, []string{"/d1/a", "escapes"}},
	} {
		err := (&Set{Files: tc.files}).Check()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", name, err, w)
			}
		}
	}
}

// TestFingerprintKeepsExactNames: the index is JSON, so a name that is
// not UTF-8 goes into a fingerprint as base64, and two such names differ.
func TestFingerprintKeepsExactNames(t *testing.T) {
	a, b := File{Path: "ks/t/a\xff", Ino: 1}, File{Path: "ks/t/a\xfe", Ino: 1}
	if fa := a.Fingerprint(); fa == b.Fingerprint() || !strings.HasPrefix(fa, "b64:") {
		t.Fatalf("fingerprints %q %q", fa, b.Fingerprint())
	}
	if f := (File{Path: "ks/t/nb-1-big-Data.db", Ino: 7, Size: 3}).Fingerprint(); f != "nb-1-big-Data.db|7|3|-6795364578871345152|" {
		t.Fatalf("a UTF-8 name's fingerprint changed: %q", f)
	}
}

// TestFingerprintIsUnchanged: the catalogs of earlier backups hold
// fingerprints as fmt.Sprintf("%s|%d|%d|%d|%s") wrote them; a fingerprint
// written any other way would make every file of the next backup look new.
func TestFingerprintIsUnchanged(t *testing.T) {
	for _, f := range []File{
		{Path: "ks/t-1/snapshots/s/nb-1-big-Data.db", Ino: 1<<63 + 5, Size: 1 << 40, ModTime: time.Unix(1764547200, 123456789), Digest: "3735928559"},
		{Path: "hbase/data/default/t/r/cf/abc", Ino: 0, Size: 0, ModTime: time.Unix(-5, 0)},
		{Path: "a|b", Ino: 12, Size: 7, Digest: "x|y"},
	} {
		want := fmt.Sprintf("%s|%d|%d|%d|%s", path.Base(f.Path), f.Ino, f.Size, f.ModTime.UnixNano(), f.Digest)
		if got := f.Fingerprint(); got != want {
			t.Errorf("Fingerprint() = %q, want %q", got, want)
		}
	}
}

// TestEachRefusesGroupsOutOfOrder: the groups of a set, listed in turn,
// must give every path in ComparePaths order; a group that does not
// follow the one before is refused before its files are handed over.
func TestEachRefusesGroupsOutOfOrder(t *testing.T) {
	group := func(paths ...string) Group {
		return Group{Key: paths[0], List: func(context.Context) ([]File, error) {
			files := make([]File, len(paths))
			for i, p := range paths {
				files[i].Path = p
			}
			return files, nil
		}}
	}
	empty := Group{Key: "empty", List: func(context.Context) ([]File, error) { return nil, nil }}
	for name, tc := range map[string]struct {
		groups []Group
		ok     bool
	}{
		"in order":           {[]Group{group(".hbase-snapshot/s/.snapshotinfo", ".hbase-snapshot/s/data.manifest"), empty, group("archive/data/default/t/0a/cf/1"), group("archive/data/default/t/0b/cf/1")}, true},
		"a directory first":  {[]Group{group("ks/t/a/1"), group("ks/t/a.b")}, true},
		"out of order":       {[]Group{group("ks/t/b"), group("ks/t/a")}, false},
		"a directory after":  {[]Group{group("ks/t/a.b"), group("ks/t/a/1")}, false},
		"the same path":      {[]Group{group("ks/t/a"), group("ks/t/a")}, false},
		"a file's directory": {[]Group{group("ks/t/a"), group("ks/t/a/1")}, false},
	} {
		s := &Set{Groups: tc.groups}
		handed := 0
		err := s.Each(context.Background(), func(files []File) error {
			handed += len(files)
			return nil
		})
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", name, err)
		}
		if !tc.ok && handed != 1 {
			t.Errorf("%s: %d files handed over, want only the first group's", name, handed)
		}
	}
}

// TestAddGroupKeepsFirstListsWithinItsMemory: AddGroup counts each first
// listing into the totals, keeps the lists while they fit in keep (none
// when keep is negative) for each group's first List, and lists afresh
// after that; the memory counts the kept lists held at once.
func TestAddGroupKeepsFirstListsWithinItsMemory(t *testing.T) {
	ctx := context.Background()
	first := func(dir string, sizes ...int64) []File {
		var files []File
		for i, n := range sizes {
			files = append(files, File{Path: fmt.Sprintf("%s/f%d", dir, i), Size: n})
		}
		return files
	}
	groups := [][]File{first("a", 1, 5), first("b", 7), first("c", 2, 3, 4)}
	mem := FilesMemory(groups[0]) + FilesMemory(groups[1]) // room for the first two
	for _, tc := range []struct {
		name string
		keep int64
		kept []bool
	}{
		{"room for two", mem, []bool{true, true, false}},
		{"room for all", 0, []bool{true, true, true}},
		{"none", -1, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set
			relisted := make([]int, len(groups))
			for i, files := range groups {
				list := func(context.Context) ([]File, error) {
					relisted[i]++
					return files, nil
				}
				s.AddGroup(Group{Key: files[0].Path[:1], List: list}, files, FilesMemory(files), tc.keep)
			}
			if s.Totals.Files != 6 || s.Totals.Bytes != 22 || s.Totals.Largest != 7 {
				t.Fatalf("totals %+v, want 6 files, 22 bytes, largest 7", s.Totals)
			}
			var keptMem int64
			for i, g := range s.Groups {
				if _, err := g.List(ctx); err != nil {
					t.Fatal(err)
				}
				if kept := relisted[i] == 0; kept != tc.kept[i] {
					t.Errorf("group %s: kept %v, want %v", g.Key, kept, tc.kept[i])
				}
				if tc.kept[i] {
					keptMem += FilesMemory(groups[i])
				}
				if _, err := g.List(ctx); err != nil || relisted[i] != map[bool]int{true: 1, false: 2}[tc.kept[i]] {
					t.Errorf("group %s: listed afresh %d times after two Lists, %v", g.Key, relisted[i], err)
				}
			}
			if want := max(keptMem, FilesMemory(groups[2])); s.Totals.Memory != want {
				t.Errorf("memory %d, want %d", s.Totals.Memory, want)
			}
		})
	}
}
