package cassandra

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/source"
)

// The committed corpus (testdata/fuzz/<target>/) holds real sstable names
// of testdata/cassandra (every version ma … nb, big and bti) and, for
// FuzzRenameCollisions, real table directories of two and three data
// directories whose sstables clash.

// FuzzParseSSTableName: ParseSSTableName never panics, and a name it
// parses is its prefix and component again, with a two-letter version, an
// id without '-', a known format and a component.
func FuzzParseSSTableName(f *testing.F) {
	for _, s := range []string{"nb-1-big-Data.db", "na-1-bti-Partitions.db", "nc-3g3i_16y0_12d692jq1r2uw372nw-big-Data.db",
		"nb-1-big-SAI+aa+idx+Meta.db", "manifest.json", "schema.cql", "ks-tbl-ka-1-Data.db", "nb--big-Data.db", "nb-1-big-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, ok := ParseSSTableName(name)
		if !ok {
			if n != (SSTableName{}) {
				t.Fatalf("%q: not an sstable name, but parsed as %+v", name, n)
			}
			return
		}
		if n.Prefix()+n.Component != name {
			t.Fatalf("%q parsed as %+v, which is %q", name, n, n.Prefix()+n.Component)
		}
		if len(n.Version) != 2 || n.ID == "" || strings.Contains(n.ID, "-") || strings.Contains(n.Version, "-") ||
			(n.Format != "big" && n.Format != "bti") || n.Component == "" {
			t.Fatalf("%q parsed as %+v", name, n)
		}
		if again, ok := ParseSSTableName(n.Prefix() + n.Component); !ok || again != n {
			t.Fatalf("%q parsed as %+v, then as %+v", name, n, again)
		}
	})
}

// FuzzTableName: TableName is the directory name up to its last '-'.
func FuzzTableName(f *testing.F) {
	for _, s := range []string{"users-0123456789abcdef0123456789abcdef", "old_table", "-x", "a-b-c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dir string) {
		name := TableName(dir)
		if rest, ok := strings.CutPrefix(dir, name); !ok || rest != "" && (name == "" || rest[0] != '-' || strings.Contains(rest[1:], "-")) {
			t.Fatalf("TableName(%q) = %q", dir, name)
		}
	})
}

// snapshotFiles reads one test case of FuzzRenameCollisions: a line per
// file, its first byte choosing one of three data directories, then
// "<table dir>/<file name>". Lines that no directory could hold (an empty
// or unsafe name, a name twice in one directory) are left out.
func snapshotFiles(b []byte) []source.File {
	var files []source.File
	seen := map[string]bool{}
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) < 2 {
			continue
		}
		dir := fmt.Sprintf("/data%d/ks", line[0]%3+1)
		table, name, ok := strings.Cut(string(line[1:]), "/")
		rel := "ks/" + table + "/" + name
		if !ok || table == "" || name == "" || strings.Contains(name, "/") || source.CheckPath(rel) != nil {
			continue
		}
		abs := dir + "/" + table + "/snapshots/t/" + name
		if seen[abs] {
			continue
		}
		seen[abs] = true
		files = append(files, source.File{Path: rel, Dir: filepath.Dir(abs), Name: filepath.Base(abs)})
	}
	return files
}

// FuzzRenameCollisions: sstables of several data directories merge into
// one restored table directory. renameCollisions never panics; it refuses
// only what it cannot rename (a clash of non-integer ids, no free name);
// otherwise it keeps every file, in order, in its directory, under a name
// no other file has; a renamed sstable keeps its version, format and
// component and gets a positive integer generation above every integer
// generation of its directory, the same for all components of its
// sstable; any other renamed file only gets a ".data<N>" suffix.
func FuzzRenameCollisions(f *testing.F) {
	f.Add([]byte("\x00t-1/nb-1-big-Data.db\n\x00t-1/nb-1-big-TOC.txt\n\x00t-1/manifest.json\n" +
		"\x01t-1/nb-1-big-Data.db\n\x01t-1/nb-1-big-TOC.txt\n\x01t-1/manifest.json\n\x01t-1/nb-2-big-Data.db\n"))
	f.Add([]byte("\x00t-1/nc-3g3i_16y0_12d692jq1r2uw372nw-big-Data.db\n\x01t-1/nc-3g3i_16y0_12d692jq1r2uw372nw-big-Data.db\n"))
	f.Add([]byte("\x00t-1/nb-7-big-Data.db\n\x01t-1/nb-7-big-Data.db\n\x02t-1/nb-7-big-Data.db\n\x02t-1/nb-7-big-Data.db.data2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := snapshotFiles(b)
		out, err := renameCollisions(in)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "with the same id") && !strings.Contains(msg, "cannot find a free name") {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if len(out) != len(in) {
			t.Fatalf("%d files in, %d out", len(in), len(out))
		}
		maxGen := map[string]int{} // restored directory → highest integer generation of the input
		for _, f := range in {
			if n, ok := ParseSSTableName(path.Base(f.Path)); ok {
				if g, err := strconv.Atoi(n.ID); err == nil {
					maxGen[path.Dir(f.Path)] = max(maxGen[path.Dir(f.Path)], g)
				}
			}
		}
		type group struct{ srcDir, prefix string }
		newPrefix := map[group]string{}
		taken := map[string]bool{}
		for i, o := range out {
			f := in[i]
			if o.Abs() != f.Abs() || path.Dir(o.Path) != path.Dir(f.Path) || source.CheckPath(o.Path) != nil {
				t.Fatalf("file %d: %+v came out as %+v", i, f, o)
			}
			if taken[o.Path] {
				t.Fatalf("two files restored as %s", o.Path)
			}
			taken[o.Path] = true
			base, newBase := path.Base(f.Path), path.Base(o.Path)
			n, isSSTable := ParseSSTableName(base)
			if !isSSTable {
				if newBase != base && !(strings.HasPrefix(newBase, base+".data") && isUint(strings.TrimPrefix(newBase, base+".data"))) {
					t.Fatalf("%s renamed to %s", f.Path, o.Path)
				}
				continue
			}
			g := group{filepath.Dir(f.Abs()), n.Prefix()}
			if p, ok := newPrefix[g]; ok && !strings.HasPrefix(newBase, p) {
				t.Fatalf("%s renamed to %s: other components of its sstable got %s", f.Path, o.Path, p)
			}
			if newBase == base {
				newPrefix[g] = n.Prefix()
				continue
			}
			m, ok := ParseSSTableName(newBase)
			if !ok || m.Version != n.Version || m.Format != n.Format || m.Component != n.Component {
				t.Fatalf("%s renamed to %s", f.Path, o.Path)
			}
			gen, err := strconv.Atoi(m.ID)
			if err != nil || gen <= 0 || strconv.Itoa(gen) != m.ID || gen <= maxGen[path.Dir(f.Path)] {
				t.Fatalf("%s renamed to %s: generation %q, the directory's highest was %d", f.Path, o.Path, m.ID, maxGen[path.Dir(f.Path)])
			}
			newPrefix[g] = m.Prefix()
		}
	})
}

func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil && s != "" && s[0] != '+'
}
