package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// TestSmallFilesAreGrouped: small files are stored in groups of at most
// groupSize raw bytes, each file its bytes from its own Skip; a file whose
// content another file of the group has shares its place; a file larger
// than groupFile, or hard-linked, is stored alone; the manifest says
// SchemaGroups. Every file restores byte for byte, the whole backup and
// one grouped file alone.
func TestSmallFilesAreGrouped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	set := writeSet(t, 0, 0, 0)
	raws := map[string][]byte{}
	add := func(name string, b []byte) {
		addFile(t, set, dir, name, b)
		raws["ks/t-1/"+name] = b
	}
	text := []byte("partition key, clustering key, a row of text that repeats across the files. ")
	for i := range 120 {
		b := append(fmt.Appendf(nil, "file %d: ", i), bytes.Repeat(text, 20+i%30)...)
		if i%3 == 0 {
			b = testfixture.RandomBytes(2000+i*11, uint64(i))
		}
		add(fmt.Sprintf("nb-%03d-big-Statistics.db", i), b)
	}
	add("nb-200-big-TOC.txt", []byte("Data.db\nTOC.txt\n"))
	add("nb-201-big-TOC.txt", []byte("Data.db\nTOC.txt\n"))
	add("nb-300-big-Index.db", testfixture.RandomBytes(groupFile+1, 9))
	e, _, _ := engine(t, "grouped", nil, 2, 8)
	res, err := e.Run(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	m := stored(t, e, res)
	h, err := catalog.LoadHeader(ctx, client, e.opts.Node, res.Manifest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Schema != manifest.SchemaGroups {
		t.Fatalf("manifest schema %d, want %d", h.Schema, manifest.SchemaGroups)
	}
	groups := map[string][]manifest.File{}
	byPath := map[string]manifest.File{}
	for _, f := range m.Files {
		byPath[f.Path] = f
		if f.Group == 0 {
			continue
		}
		if f.Group > groupSize || f.Skip+f.Size > f.Group {
			t.Fatalf("%s: %d bytes from %d of a group of %d", f.Path, f.Size, f.Skip, f.Group)
		}
		g := fmt.Sprintf("%s@%d", f.Key, f.Offset)
		groups[g] = append(groups[g], f)
	}
	if len(groups) < 2 || len(groups) > 10 {
		t.Fatalf("%d groups for %d KiB of small files, want a few of at most %d KiB", len(groups), m.RawBytes()>>10, groupSize>>10)
	}
	if big := byPath["ks/t-1/nb-300-big-Index.db"]; big.Group != 0 {
		t.Fatalf("a file of %d bytes, larger than groupFile, was grouped", big.Size)
	}
	a, b := byPath["ks/t-1/nb-200-big-TOC.txt"], byPath["ks/t-1/nb-201-big-TOC.txt"]
	if a.Group == 0 || a.Key != b.Key || a.Offset != b.Offset || a.Skip != b.Skip || res.Duplicates != 1 {
		t.Fatalf("equal contents stored at %s@%d+%d and %s@%d+%d (%d duplicates), want one place", a.Key, a.Offset, a.Skip, b.Key, b.Offset, b.Skip, res.Duplicates)
	}

	target := t.TempDir()
	if _, err := restore.Run(ctx, client, e.opts.Node, m, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for path, want := range raws {
		if got, err := os.ReadFile(filepath.Join(target, path)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("restored %s differs (%v)", path, err)
		}
	}
	one := *m
	one.Files = []manifest.File{byPath["ks/t-1/nb-050-big-Statistics.db"]}
	if one.Files[0].Skip == 0 {
		t.Fatal("want a file from the middle of a group")
	}
	target = t.TempDir()
	if _, err := restore.Run(ctx, client, e.opts.Node, &one, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore of one grouped file: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(target, one.Files[0].Path)); err != nil || !bytes.Equal(got, raws[one.Files[0].Path]) {
		t.Fatalf("one grouped file restored alone differs (%v)", err)
	}
}

// TestGroupingCutsGroups: files join the group being gathered while they
// fit in its limit and its file count; a file over groupFile or
// hard-linked goes alone; a group whose first file waited groupFiles files
// is handed out (the manifest's window would otherwise fill behind it).
func TestGroupingCutsGroups(t *testing.T) {
	small := func(size int64) source.File { return source.File{Size: size} }
	linked := map[inode]bool{{1, 7}: true}
	g := grouping{limit: 10 << 10}
	var got [][]int
	hand := func(j *job) {
		if j != nil {
			got = append(got, j.at)
		}
	}
	n := 0
	add := func(f source.File, wantTaken bool) {
		t.Helper()
		taken, full := g.add(f, n, linked)
		if taken != wantTaken {
			t.Fatalf("file %d (%d bytes): taken %v, want %v", n, f.Size, taken, wantTaken)
		}
		hand(full)
		n++
	}
	add(small(4<<10), true)                            // 0
	add(small(4<<10), true)                            // 1
	add(small(4<<10), true)                            // 2: over 10 KiB, 0-1 handed out
	add(small(0), false)                               // 3: empty, alone
	add(small(groupFile+1), false)                     // 4: too large
	add(source.File{Size: 100, Dev: 1, Ino: 7}, false) // 5: hard-linked
	for n < 2+groupFiles {
		add(small(groupFile+1), false) // the group of file 2 waits …
	}
	if len(got) != 1 {
		t.Fatalf("groups %v after file %d, want only the first", got, n-1)
	}
	add(small(groupFile+1), false) // … groupFiles files, and is handed out
	want := [][]int{{0, 1}, {2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	if g.take() != nil {
		t.Fatal("a group left after it was handed out")
	}
	none := grouping{}
	if taken, full := none.add(small(100), 0, nil); taken || full != nil {
		t.Fatal("grouped without a limit (no packs, or no compression)")
	}
}

// TestGroupedFileChangedSinceListedFails: a small file is read into its
// group at the size it was listed with; one rewritten since (same size,
// another modification time) or grown fails the backup with ErrChanged,
// naming the file, and no manifest is written.
func TestGroupedFileChangedSinceListedFails(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(p string) error
	}{
		{"rewritten, same size", func(p string) error {
			later := time.Now().Add(time.Hour)
			return os.Chtimes(p, later, later)
		}},
		{"grown", func(p string) error {
			fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer fh.Close()
			_, err = fh.Write([]byte("a row written after the listing"))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			set := writeSet(t, 0, 0, 0)
			for i := range 8 {
				addFile(t, set, dir, fmt.Sprintf("nb-%d-big-Statistics.db", i), bytes.Repeat([]byte("stats "), 100+i))
			}
			changed := filepath.Join(dir, "nb-5-big-Statistics.db")
			if err := tc.change(changed); err != nil {
				t.Fatal(err)
			}
			e, _, _ := engine(t, "grouped-changed", nil, 2, 8)
			_, err := e.Run(ctx, set)
			if !errors.Is(err, chunk.ErrChanged) || !strings.Contains(err.Error(), changed) || !strings.Contains(err.Error(), "after the snapshot was listed") {
				t.Fatalf("a grouped file changed since it was listed: %v, want chunk.ErrChanged naming %s", err, changed)
			}
			for o, err := range client.List(ctx, e.opts.Node.Root()+"backups/") {
				if err != nil {
					t.Fatal(err)
				}
				t.Fatalf("a manifest after the failed backup: %s", o.Key)
			}
		})
	}
}
