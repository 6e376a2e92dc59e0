package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

func TestParseSSTableName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		pfx  string
	}{
		{"nb-1-big-Data.db", true, "nb-1-big-"},
		{"na-1-bti-Partitions.db", true, "na-1-bti-"},
		{"nc-3g3i_16y0_12d692jq1r2uw372nw-big-Data.db", true, "nc-3g3i_16y0_12d692jq1r2uw372nw-big-"},
		{"nb-1-big-SAI+aa+idx+Meta.db", true, "nb-1-big-"},
		{"manifest.json", false, ""},
		{"schema.cql", false, ""},
		{"ks-tbl-ka-1-Data.db", false, ""},
	} {
		n, ok := ParseSSTableName(tc.name)
		if ok != tc.ok || (ok && n.Prefix() != tc.pfx) {
			t.Errorf("%s: ok=%v prefix=%q, want %v %q", tc.name, ok, n.Prefix(), tc.ok, tc.pfx)
		}
	}
}

func TestTableName(t *testing.T) {
	for dir, want := range map[string]string{
		"users-0123456789abcdef0123456789abcdef":    "users",
		"my_table-0123456789abcdef0123456789abcdef": "my_table",
		"old_table": "old_table",
	} {
		if got := TableName(dir); got != want {
			t.Errorf("TableName(%q) = %q, want %q", dir, got, want)
		}
	}
}

func fixtureTables(t *testing.T, version string) []testfixture.Table {
	t.Helper()
	td, err := testfixture.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := testfixture.LegacyTables(td, version)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// TestDiscoverRenamesGenerationsThatClash: the same table in two data
// directories with generation 1 in each must come out as two sstables.
func TestDiscoverRenamesGenerationsThatClash(t *testing.T) {
	tables := fixtureTables(t, "nb")
	d1, d2 := t.TempDir(), t.TempDir()
	simple := tables[len(tables)-1]
	other := simple
	other.Source = tables[0].Source // different content, same names and table
	if _, err := testfixture.WriteSnapshot(d1, "t", simple, true); err != nil {
		t.Fatal(err)
	}
	if _, err := testfixture.WriteSnapshot(d2, "t", other, false); err != nil {
		t.Fatal(err)
	}
	set, err := Discover(context.Background(), Options{DataDirs: []string{d1, d2}, Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	gens := map[string]int{}
	seen := map[string]bool{}
	for _, f := range set.Files {
		if seen[f.Path] {
			t.Fatalf("path %s listed twice", f.Path)
		}
		seen[f.Path] = true
		n, ok := ParseSSTableName(filepath.Base(f.Path))
		if !ok {
			continue
		}
		gens[n.ID]++
		// Every component of the renamed sstable comes from d2.
		if n.ID == "2" && !strings.HasPrefix(f.Abs(), d2) {
			t.Fatalf("%s renamed but read from %s", f.Path, f.Abs())
		}
	}
	if gens["1"] != 8 || gens["2"] != 8 {
		t.Fatalf("want 8 components of generation 1 and 8 of generation 2, got %v", gens)
	}
}

func TestDiscoverSkipsSystemAndFilters(t *testing.T) {
	tables := fixtureTables(t, "mc")
	d := t.TempDir()
	for _, tb := range tables[:2] {
		if _, err := testfixture.WriteSnapshot(d, "t", tb, true); err != nil {
			t.Fatal(err)
		}
	}
	sys := tables[2]
	sys.Keyspace = "system_schema"
	if _, err := testfixture.WriteSnapshot(d, "t", sys, false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keyspaces := func(o Options) []string {
		set, err := Discover(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, f := range set.Files {
			m[strings.SplitN(f.Path, "/", 3)[0]+"/"+TableName(strings.SplitN(f.Path, "/", 3)[1])] = true
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	got := keyspaces(Options{DataDirs: []string{d}, Tag: "t"})
	if len(got) != 2 || strings.HasPrefix(got[0], "system") {
		t.Fatalf("default: %v", got)
	}
	if got := keyspaces(Options{DataDirs: []string{d}, Tag: "t", IncludeSystem: true}); len(got) != 3 {
		t.Fatalf("--include-system: %v", got)
	}
	if got := keyspaces(Options{DataDirs: []string{d}, Tag: "t", Tables: []string{"legacy_tables." + tables[1].Name}}); len(got) != 1 {
		t.Fatalf("--table: %v", got)
	}
	if _, err := Discover(ctx, Options{DataDirs: []string{d}, Tag: "t", Keyspaces: []string{"nope"}}); err == nil {
		t.Fatal("a filter that matches nothing must fail like a missing tag")
	}
}

func TestDiscoverErrors(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	if _, err := Discover(ctx, Options{DataDirs: []string{filepath.Join(d, "missing")}, Tag: "t"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing data dir: %v", err)
	}
	tables := fixtureTables(t, "mc")
	snap, err := testfixture.WriteSnapshot(d, "other", tables[0], true)
	if err != nil {
		t.Fatal(err)
	}
	var tnf *TagNotFoundError
	if _, err := Discover(ctx, Options{DataDirs: []string{d}, Tag: "t"}); !errors.As(err, &tnf) || tnf.Existing[0] != "other" {
		t.Fatalf("missing tag: %v", err)
	}
	// A symlink in a snapshot is not what nodetool makes: refuse it.
	if err := os.Symlink("/etc/passwd", filepath.Join(snap, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(ctx, Options{DataDirs: []string{d}, Tag: "other"}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlink: %v", err)
	}
}

// TestDiscoverFollowsSymlinkedDirectories: a keyspace moved to another disk
// and symlinked back, a symlinked table directory, and symlinked snapshots
// and tag directories are backed up under their logical paths; a directory
// reached twice (a keyspace linked under a second name, a loop inside the
// snapshot) is read once, and a loop does not hang. A dangling link to a
// keyspace fails discovery instead of losing the keyspace.
func TestDiscoverFollowsSymlinkedDirectories(t *testing.T) {
	tables := fixtureTables(t, "mc")
	root := t.TempDir()
	data, disk2 := filepath.Join(root, "data"), filepath.Join(root, "disk2")
	// ks1 lives on disk2 and is linked as data/ks1; in ks2, one table is
	// linked from disk2, the other is a real directory whose snapshots
	// directory is a link.
	ks1 := tables[0]
	ks1.Keyspace = "ks1"
	moved, linkedTable, linkedSnaps := ks1, tables[1], tables[2]
	linkedTable.Keyspace, linkedSnaps.Keyspace = "ks2", "ks2"
	want := map[string]string{} // logical path → file on disk
	add := func(snap, logical string) {
		files, err := testfixture.TreeFiles(snap)
		if err != nil {
			t.Fatal(err)
		}
		for p := range files {
			want[logical+"/"+p] = filepath.Join(snap, filepath.FromSlash(p))
		}
	}
	snap, err := testfixture.WriteSnapshot(disk2, "t", moved, true)
	if err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Join(disk2, "ks1"), filepath.Join(data, "ks1"))
	add(snap, "ks1/"+moved.Dir())
	if snap, err = testfixture.WriteSnapshot(filepath.Join(disk2, "tables"), "t", linkedTable, true); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Join(disk2, "tables", "ks2", linkedTable.Dir()), filepath.Join(data, "ks2", linkedTable.Dir()))
	add(snap, "ks2/"+linkedTable.Dir())
	if snap, err = testfixture.WriteSnapshot(filepath.Join(disk2, "snaps"), "t", linkedSnaps, true); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Dir(snap), filepath.Join(data, "ks2", linkedSnaps.Dir(), "snapshots"))
	add(snap, "ks2/"+linkedSnaps.Dir())
	// Loops: a keyspace linking to the data directory, and a directory in
	// a snapshot linking back to the snapshot.
	mustSymlink(t, data, filepath.Join(data, "loop"))
	loopDir := filepath.Join(disk2, "ks1", moved.Dir(), "snapshots", "t", ".idx")
	if err := os.MkdirAll(loopDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(loopDir, "mc-1-big-Data.db"), []byte("index"), 0o644); err != nil {
		t.Fatal(err)
	}
	want["ks1/"+moved.Dir()+"/.idx/mc-1-big-Data.db"] = filepath.Join(loopDir, "mc-1-big-Data.db")
	mustSymlink(t, "..", filepath.Join(loopDir, "up"))
	// The same keyspace under a second name: read once, as ks1.
	mustSymlink(t, filepath.Join(disk2, "ks1"), filepath.Join(data, "ks1_alias"))

	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan struct{})
	var set *source.Set
	go func() {
		defer close(done)
		set, err = Discover(context.Background(), Options{DataDirs: []string{data}, Tag: "t", Logger: log})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("discovery hangs on a symlink loop")
	}
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range set.Files {
		got[f.Path] = f.Abs()
	}
	for p, abs := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing: %s", p)
			continue
		}
		a, _ := os.Stat(g)
		b, _ := os.Stat(abs)
		if !os.SameFile(a, b) {
			t.Errorf("%s is read from %s, want %s", p, g, abs)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected: %s (%s)", p, got[p])
		}
	}
	if !strings.Contains(logs.String(), "ks1_alias") || !strings.Contains(logs.String(), "up") {
		t.Errorf("the directories read once are not logged:\n%s", logs.String())
	}

	// A link that leads nowhere would lose a keyspace: it is an error.
	mustSymlink(t, filepath.Join(root, "unmounted", "ks3"), filepath.Join(data, "ks3"))
	_, err = Discover(context.Background(), Options{DataDirs: []string{data}, Tag: "t"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(data, "ks3")) || !strings.Contains(err.Error(), "cannot be followed") {
		t.Fatalf("dangling keyspace link: %v", err)
	}
	// Unless that keyspace is not wanted.
	if _, err := Discover(context.Background(), Options{DataDirs: []string{data}, Tag: "t", Keyspaces: []string{"ks1"}}); err != nil {
		t.Fatalf("a dangling link of a keyspace not backed up: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestDiscoverGroupsListsATableAtATime: a grouped set lists each restored
// table directory's files (from every data directory that has the table)
// on its own, in path order, and adds up to the whole set: the same files,
// in the same order, with the totals of a first pass.
func TestDiscoverGroupsListsATableAtATime(t *testing.T) {
	ctx := context.Background()
	tables := fixtureTables(t, "nb")
	d1, d2 := t.TempDir(), t.TempDir()
	for i, tb := range tables {
		if _, err := testfixture.WriteSnapshot(d1, "t", tb, true); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half the tables in the second data directory too
			other := tb
			other.Source = tables[(i+1)%len(tables)].Source
			if _, err := testfixture.WriteSnapshot(d2, "t", other, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	o := Options{DataDirs: []string{d1, d2}, Tag: "t", keep: -1}
	grouped, err := DiscoverGroups(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Discover(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if grouped.Files != nil || len(grouped.Groups) < 2 {
		t.Fatalf("grouped set: %d files, %d groups", len(grouped.Files), len(grouped.Groups))
	}
	if err := testfixture.SameAsWhole(ctx, grouped, whole, nil); err != nil {
		t.Fatal(err)
	}
	if grouped.Memory() <= 0 || grouped.Memory() >= source.FilesMemory(whole.Files) {
		t.Fatalf("a group's memory %d, the whole set's %d", grouped.Memory(), source.FilesMemory(whole.Files))
	}
}

// TestDiscoverGroupsKeepsTheFirstListing: the tables whose lists fit in
// keepListed are listed once, their first listing handed to the backup
// (a file removed since is still in it, and fails there when opened);
// the others are listed again when the backup reaches them.
func TestDiscoverGroupsKeepsTheFirstListing(t *testing.T) {
	ctx := context.Background()
	tables := fixtureTables(t, "nb")
	for _, keep := range []int64{0, -1} {
		dir := t.TempDir()
		var removed string
		for _, tb := range tables {
			snap, err := testfixture.WriteSnapshot(dir, "t", tb, true)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(snap)
			if err != nil {
				t.Fatal(err)
			}
			removed = filepath.Join(snap, entries[0].Name())
		}
		set, err := DiscoverGroups(ctx, Options{DataDirs: []string{dir}, Tag: "t", keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(removed); err != nil {
			t.Fatal(err)
		}
		listed := 0
		if err := set.Each(ctx, func(files []source.File) error { listed += len(files); return nil }); err != nil {
			t.Fatal(err)
		}
		want := set.Totals.Files
		if keep < 0 {
			want-- // listed again, without it
		}
		if listed != want {
			t.Errorf("keep %d: the backup got %d files, want %d (of %d listed first)", keep, listed, want, set.Totals.Files)
		}
	}
}

// TestDataDigest: a Data.db's fingerprint carries the checksum in its
// Digest component, read by the directory's descriptor; an oversized or
// missing one is no digest, and other components have none.
func TestDataDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nb-1-big-Data.db", "rows")
	write("nb-1-big-Digest.crc32", "2203944950\n")
	write("nb-2-big-Data.db", "rows")
	write("nb-2-big-Digest.crc32", strings.Repeat("9", 129))
	write("nb-3-big-Data.db", "rows")
	write("nb-4-big-Data.db", "rows")
	write("nb-4-big-Digest.sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for name, want := range map[string]string{
		"nb-1-big-Data.db":  "crc32:2203944950",
		"nb-2-big-Data.db":  "",
		"nb-3-big-Data.db":  "",
		"nb-4-big-Data.db":  "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"nb-1-big-Index.db": "",
	} {
		listed := func(n string) bool { _, err := os.Lstat(filepath.Join(dir, n)); return err == nil }
		if got := dataDigest(int(d.Fd()), name, listed); got != want {
			t.Errorf("dataDigest(%s) = %q, want %q", name, got, want)
		}
	}
	// A digest the directory's listing lacks is not looked for.
	if got := dataDigest(int(d.Fd()), "nb-1-big-Data.db", func(string) bool { return false }); got != "" {
		t.Errorf("dataDigest of a Data.db whose digest is not listed = %q, want none", got)
	}
}

// TestDiscoverGroupsFailsOnAnyTable: tables are listed two at a time, and
// a table that cannot be listed fails the discovery with its own error,
// wherever it comes, before or after the tables listed beside it.
func TestDiscoverGroupsFailsOnAnyTable(t *testing.T) {
	ctx := context.Background()
	tables := fixtureTables(t, "nb")
	for _, bad := range []int{0, len(tables) / 2, len(tables) - 1} {
		d := t.TempDir()
		var evil string
		for i, tb := range tables {
			snap, err := testfixture.WriteSnapshot(d, "t", tb, true)
			if err != nil {
				t.Fatal(err)
			}
			if i == bad {
				evil = filepath.Join(snap, "evil")
				if err := os.Symlink("/etc/passwd", evil); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := DiscoverGroups(ctx, Options{DataDirs: []string{d}, Tag: "t"})
		if err == nil || !strings.Contains(err.Error(), evil) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("table %d of %d has a symlink: %v, want the error naming %s", bad, len(tables), err, evil)
		}
	}
}

// TestDiscoverListsALargeTableInOrder: a table of more files than one
// goroutine stats alone is listed whole and in name order, with each
// file's size; a file that cannot be backed up fails the listing naming
// the first such file in name order, whichever goroutine met it.
func TestDiscoverListsALargeTableInOrder(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	snap := filepath.Join(d, "ks", "big-0123456789abcdef0123456789abcdef", "snapshots", "t")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	n := 3*statSplit + 7
	for i := range n {
		name := fmt.Sprintf("nb-%d-big-Data.db", i+1)
		if err := os.WriteFile(filepath.Join(snap, name), make([]byte, i%97), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Discover(ctx, Options{DataDirs: []string{d}, Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Whole(ctx); err != nil {
		t.Fatal(err)
	}
	if len(set.Files) != n {
		t.Fatalf("%d files listed, want %d", len(set.Files), n)
	}
	for i, f := range set.Files {
		if i > 0 && source.ComparePaths(set.Files[i-1].Path, f.Path) >= 0 {
			t.Fatalf("file %d (%s) listed after %s", i, f.Path, set.Files[i-1].Path)
		}
		var gen int
		if _, err := fmt.Sscanf(filepath.Base(f.Path), "nb-%d-big-Data.db", &gen); err != nil || f.Size != int64((gen-1)%97) {
			t.Fatalf("%s: size %d, generation %d (%v)", f.Path, f.Size, gen, err)
		}
	}
	// Two files that cannot be backed up (FIFOs), a tenth and nine tenths
	// into the listing, so in different goroutines' shares: the first in
	// name order is the one named.
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("nb-%d-big-Data.db", i+1)
	}
	sort.Strings(names)
	for _, name := range []string{names[9*n/10], names[n/10]} {
		p := filepath.Join(snap, name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Discover(ctx, Options{DataDirs: []string{d}, Tag: "t"}); err == nil || !strings.Contains(err.Error(), names[n/10]+" is not a regular file") {
		t.Fatalf("err %v, want it to name %s", err, names[n/10])
	}
}
