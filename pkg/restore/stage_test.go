package restore

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// stageSmall makes every new directory of two files or more staged for
// the test.
func stageSmall(t *testing.T) {
	old := stageMin
	stageMin = 2
	t.Cleanup(func() { stageMin = old })
}

// stagedBackup is a backup of a staged directory ks/t-1 (packed files,
// one of mode 0666, which the umask would change, a file fetched alone,
// one large enough for O_DIRECT) with a directory under it, and a second
// one ks/t-2, with the bytes each file must have.
func stagedBackup(t *testing.T, node manifest.Node) (*manifest.Manifest, map[string][]byte) {
	t.Helper()
	want := map[string][]byte{
		"ks/t-1/nb-1-big-TOC.txt":        []byte("TOC"),
		"ks/t-1/nb-1-big-Filter.db":      mixedData(3000, 70),
		"ks/t-1/sub/nb-1-big-Summary.db": mixedData(2000, 71),
		"ks/t-1/sub/nb-2-big-Summary.db": mixedData(1000, 72),
		"ks/t-2/nb-1-big-Index.db":       mixedData(4000, 73),
		"ks/t-2/nb-2-big-Index.db":       mixedData(5000, 74),
	}
	files, _ := packFiles(t, node, want)
	for i := range files {
		if strings.HasSuffix(files[i].Path, "Filter.db") {
			files[i].Mode = 0o666
		}
	}
	big := mixedData(2<<20, 75)
	whole, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", big, chunk.Auto, 64<<10)
	want[whole.Path] = big
	small, _ := store(t, node, "ks/t-1/nb-1-big-Index.db", []byte("index"), chunk.Auto, 64<<10)
	want[small.Path] = []byte("index")
	files = append(files, whole, small)
	slices.SortFunc(files, func(a, b manifest.File) int { return strings.Compare(a.Path, b.Path) })
	return backupOf(node, files...), want
}

// TestStagedDirectoriesRestore: new directories of many files are
// written under temporary names and moved into place whole; every file
// has its bytes, mode and time, and no temporary name is left. A
// directory that was there already gets its files one by one beside.
func TestStagedDirectoriesRestore(t *testing.T) {
	stageSmall(t)
	node := testNode(t)
	m, want := stagedBackup(t, node)
	target := t.TempDir()
	// ks/t-2 is there already: its files are restored one by one.
	if err := os.MkdirAll(filepath.Join(target, "ks", "t-2"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), client, node, m, Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != len(want) || !slices.Equal(res.Dirs, []string{"ks/t-1", "ks/t-1/sub", "ks/t-2"}) {
		t.Fatalf("result %+v", res)
	}
	wantTree := []string{"ks/", "ks/t-1/", "ks/t-1/nb-1-big-Data.db", "ks/t-1/nb-1-big-Filter.db", "ks/t-1/nb-1-big-Index.db",
		"ks/t-1/nb-1-big-TOC.txt", "ks/t-1/sub/", "ks/t-1/sub/nb-1-big-Summary.db", "ks/t-1/sub/nb-2-big-Summary.db",
		"ks/t-2/", "ks/t-2/nb-1-big-Index.db", "ks/t-2/nb-2-big-Index.db"}
	if got := listTree(t, target); !slices.Equal(got, wantTree) {
		t.Fatalf("target holds %v, want %v", got, wantTree)
	}
	for _, f := range m.Files {
		p := filepath.Join(target, filepath.FromSlash(f.Path))
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want[f.Path]) {
			t.Fatalf("%s: restored %d bytes, %v; want the %d backed up", f.Path, len(got), err, len(want[f.Path]))
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode.Perm() || !st.ModTime().Equal(f.ModTime) {
			t.Errorf("%s: mode %v, time %v; want %v, %v", f.Path, st.Mode().Perm(), st.ModTime(), f.Mode.Perm(), f.ModTime)
		}
	}
}

// TestFailedStagedRestoreLeavesNothing: a file that fails its check
// leaves neither its staged directory nor any file of it, nor the
// directories made for them.
func TestFailedStagedRestoreLeavesNothing(t *testing.T) {
	stageSmall(t)
	node := testNode(t)
	m, _ := stagedBackup(t, node)
	i := slices.IndexFunc(m.Files, func(f manifest.File) bool { return f.Path == "ks/t-1/nb-1-big-Index.db" })
	gone := m.Files[i] // an object of its own
	gone.Path = "ks/t-3/nb-9-big-Index.db"
	gone.Key = manifest.ObjectKey(strings.Repeat("0", 64), true, 64<<10)
	twin := gone
	twin.Path = "ks/t-3/nb-9-big-TOC.txt"
	m.Files = append(m.Files, gone, twin)
	target := t.TempDir()
	_, err := Run(context.Background(), client, node, m, Options{Target: target, Concurrency: 1})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("restore with a missing object: %v, want ErrVerify", err)
	}
	if got := listTree(t, target); len(got) != 0 {
		t.Fatalf("the failed restore left %v", got)
	}
}

// intruding is a Source that, the second time it is read (the fetch, once
// the directories to stage were chosen), puts a file where the staged
// directory dir is to be moved.
type intruding struct {
	files       Files
	target, dir string
	reads       int
}

func (s *intruding) Files() iter.Seq2[manifest.File, error] {
	if s.reads++; s.reads == 2 {
		if err := os.MkdirAll(filepath.Join(s.target, s.dir), 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(s.target, s.dir, "theirs"), []byte("x"), 0o644)
		}
	}
	return s.files.Files()
}

// TestStagedDirectoryThatCannotMoveTakesAllBack: when a staged directory
// cannot be moved into place (a directory appeared there meanwhile), the
// staged directories moved before it are taken back and the others
// removed: nothing of the restore is left, and what appeared stays.
func TestStagedDirectoryThatCannotMoveTakesAllBack(t *testing.T) {
	stageSmall(t)
	node := testNode(t)
	m, _ := stagedBackup(t, node)
	target := t.TempDir()
	src := &intruding{files: m.Files, target: target, dir: filepath.Join("ks", "t-2")}
	_, err := RunSource(context.Background(), client, node, src, Options{Target: target})
	if err == nil || !strings.Contains(err.Error(), "nothing was left in place") {
		t.Fatalf("restore onto a directory that appeared: %v", err)
	}
	if got, want := listTree(t, target), []string{"ks/", "ks/t-2/", "ks/t-2/theirs"}; !slices.Equal(got, want) {
		t.Fatalf("after the failed commit the target holds %v, want %v", got, want)
	}
}

// TestRestoreRemovesADeadRestoresStagedDirectory: a staged directory a
// killed restore left (files under their final names inside a directory
// named like a temporary file) is removed, and logged, by the next
// restore before it starts; the directory is then restored whole.
func TestRestoreRemovesADeadRestoresStagedDirectory(t *testing.T) {
	stageSmall(t)
	node := testNode(t)
	m, want := stagedBackup(t, node)
	target := t.TempDir()
	stale := filepath.Join(target, "ks", tempName("t-1", 4242))
	if err := os.MkdirAll(filepath.Join(stale, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "sub", "nb-1-big-Summary.db"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := Options{Target: target, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	if _, err := Run(context.Background(), client, node, m, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead restore's staged directory is still there: %v", err)
	}
	if !strings.Contains(log.String(), stale) || !strings.Contains(log.String(), "directories=1") {
		t.Errorf("the log does not name the removed directory:\n%s", log.String())
	}
	for p, b := range want {
		if got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(p))); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// TestRestoreRemovesAStagedDirectoryWhereItStagesNothing: a dead
// restore's staged directory is removed by the next restore even when that
// one stages nothing (too few files, or another level): every directory
// above the files is looked in.
func TestRestoreRemovesAStagedDirectoryWhereItStagesNothing(t *testing.T) {
	node := testNode(t)
	m, want := stagedBackup(t, node) // a handful of files: below stageMin
	target := t.TempDir()
	stale := filepath.Join(target, tempName("ks", 4243))
	if err := os.MkdirAll(filepath.Join(stale, "t-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), client, node, m, Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead restore's staged directory is still there: %v", err)
	}
	for p, b := range want {
		if got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(p))); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// TestStagingTakesTheTopmostNewDirectory: the directory staged is the
// topmost new one with enough files under it, however they spread over
// the directories below; where one exists, the new ones under it are
// considered, and files in directories of too few are written one by one.
func TestStagingTakesTheTopmostNewDirectory(t *testing.T) {
	stageSmall(t)
	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, "old", "t-9"), 0o755); err != nil {
		t.Fatal(err)
	}
	td, err := openTarget(target, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer td.close()
	var files []manifest.File
	for _, p := range []string{"new/t-1/a", "new/t-2/b", "new/t-2/sub/c", "old/t-9/d", "old/t-9/e", "old/t-8/f", "old/t-8/g", "lone/t-3/h"} {
		files = append(files, manifest.File{Path: p})
	}
	p, err := planOf(Files(files), nil)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = 7
	s, err := td.planStaging(p, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"new", filepath.Join("old", "t-8")}; !slices.Equal(s.tops, want) {
		t.Fatalf("staged %v, want %v", s.tops, want)
	}
	if !s.perFile {
		t.Error("files of old/t-9 (there already) and lone/t-3 (one file) not written under names of their own")
	}
	for dir, want := range map[string]string{
		"new/t-2/sub": filepath.Join(tempName("new", nonce), "t-2", "sub"),
		"old/t-8":     filepath.Join("old", tempName("t-8", nonce)),
		"old/t-9":     "",
		"lone/t-3":    "",
	} {
		got, staged := s.physDir(filepath.FromSlash(dir))
		if staged != (want != "") || staged && got != want {
			t.Errorf("%s is written in %q (staged %v), want %q", dir, got, staged, want)
		}
	}
}
