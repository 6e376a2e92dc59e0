package cassandra

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

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
		if n.ID == "2" && !strings.HasPrefix(f.Abs, d2) {
			t.Fatalf("%s renamed but read from %s", f.Path, f.Abs)
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
