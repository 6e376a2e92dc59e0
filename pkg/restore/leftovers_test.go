package restore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

func TestTempNames(t *testing.T) {
	for range 100 {
		if n := tempName("nb-1-big-Data.db", newNonce()); !isTempName(n) || !strings.HasPrefix(n, ".nb-1-big-Data.db.") {
			t.Fatalf("tempName made %q, which isTempName does not recognise", n)
		}
	}
	// Names near NAME_MAX: shortened to fit, found again, kept apart.
	nonce := newNonce()
	a, b := strings.Repeat("a", 250)+"-Data.db", strings.Repeat("a", 250)+"-Index.db"
	for _, long := range []string{a[:255], b[:255], a, b} {
		n := tempName(long, nonce)
		if len(n) > maxName || !isTempName(n) || n != tempName(long, nonce) || !strings.HasPrefix(n, "."+long[:200]) {
			t.Fatalf("tempName of a name of %d bytes made %q (%d bytes)", len(long), n, len(n))
		}
	}
	if tempName(a, nonce) == tempName(b, nonce) {
		t.Fatal("two long names share a temporary name")
	}
	for name, want := range map[string]bool{
		".nb-1-big-Data.db.123.s3bak-tmp":  true,
		".a.0.s3bak-tmp":                   true,
		"nb-1-big-Data.db.123.s3bak-tmp":   false, // no leading dot
		".nb-1-big-Data.db.12x.s3bak-tmp":  false,
		".nb-1-big-Data.db..s3bak-tmp":     false,
		"..123.s3bak-tmp":                  false,
		".nb-1-big-Data.db.123.s3bak-tmp2": false,
		".hbase-snapshot":                  false,
		"nb-1-big-Data.db":                 false,
	} {
		if isTempName(name) != want {
			t.Errorf("isTempName(%q) = %v", name, !want)
		}
	}
}

// listTree lists every entry under dir (directories with a trailing /).
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestRestoreRemovesADeadRestoresTemporaryFiles: the temporary files a
// killed restore left in the directories a new restore writes are removed
// (and logged) before it starts; other files, and temporary-looking files
// elsewhere, stay.
func TestRestoreRemovesADeadRestoresTemporaryFiles(t *testing.T) {
	node := testNode(t)
	raw := mixedData(20000, 51)
	f, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", raw, chunk.Auto, 64<<10)
	target := t.TempDir()
	stale := []string{"ks/t-1/.nb-1-big-Data.db.4242.s3bak-tmp", "ks/t-1/.nb-1-big-Index.db.17.s3bak-tmp"}
	kept := []string{"ks/t-1/.hidden", "ks/t-1/notes.s3bak-tmp", "other/.x.1.s3bak-tmp", "ks/.y.2.s3bak-tmp"}
	for _, p := range append(slices.Clone(stale), kept...) {
		if err := os.MkdirAll(filepath.Join(target, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(target, p), []byte("left"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	o := Options{Target: target, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	if _, err := Run(context.Background(), client, node, backupOf(node, f), o); err != nil {
		t.Fatal(err)
	}
	want := []string{"ks/", "ks/.y.2.s3bak-tmp", "ks/t-1/", "ks/t-1/.hidden", "ks/t-1/nb-1-big-Data.db", "ks/t-1/notes.s3bak-tmp", "other/", "other/.x.1.s3bak-tmp"}
	if got := listTree(t, target); !slices.Equal(got, want) {
		t.Fatalf("target holds %v, want %v", got, want)
	}
	for _, p := range stale {
		if !strings.Contains(log.String(), filepath.Join(target, p)) {
			t.Errorf("the log does not name the removed %s:\n%s", p, log.String())
		}
	}
	if !strings.Contains(log.String(), "files=2") {
		t.Errorf("the log does not count the removed files:\n%s", log.String())
	}
}

// TestRestoreLeavesALiveRestoresTemporaryFiles: while another restore into
// the target runs (it holds the target's lock), its temporary files are
// not a dead restore's: they stay.
func TestRestoreLeavesALiveRestoresTemporaryFiles(t *testing.T) {
	node := testNode(t)
	f, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", mixedData(20000, 52), chunk.Auto, 64<<10)
	target := t.TempDir()
	live := filepath.Join(target, "ks", "t-1", ".nb-1-big-Index.db.99.s3bak-tmp")
	if err := os.MkdirAll(filepath.Dir(live), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(live, []byte("being written"), 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("a running restore's temporary file was removed: %v", err)
	}
}

// TestFailedRestoreRemovesTheDirectoriesItMade: a restore that fails
// removes the directories it created, the target's own included, and none
// that were there before.
func TestFailedRestoreRemovesTheDirectoriesItMade(t *testing.T) {
	node := testNode(t)
	good, _ := store(t, node, "ks/t-1/nb-1-big-Index.db", mixedData(20000, 53), chunk.Auto, 64<<10)
	other, _ := store(t, node, "ks2/t-2/deep/nb-1-big-Index.db", mixedData(20000, 54), chunk.Auto, 64<<10)
	gone := good
	gone.Path = "ks/t-1/new/nb-2-big-Index.db"
	gone.Key = manifest.ObjectKey(strings.Repeat("0", 64), true, 64<<10)

	parent := t.TempDir()
	target := filepath.Join(parent, "a", "b")
	if err := os.MkdirAll(filepath.Join(parent, "a", "b", "ks", "t-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), client, node, backupOf(node, good, other, gone), Options{Target: target, Concurrency: 1})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("restore with a missing object: %v, want ErrVerify", err)
	}
	if got, want := listTree(t, parent), []string{"a/", "a/b/", "a/b/ks/", "a/b/ks/t-1/"}; !slices.Equal(got, want) {
		t.Fatalf("after the failed restore: %v, want %v (only what was there before)", got, want)
	}

	// A target the restore made goes too.
	target = filepath.Join(parent, "new", "target")
	if _, err := Run(context.Background(), client, node, backupOf(node, good, other, gone), Options{Target: target}); !errors.Is(err, ErrVerify) {
		t.Fatalf("restore with a missing object: %v, want ErrVerify", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed restore left the target it created: %v", err)
	}
	if got, want := listTree(t, parent), []string{"a/", "a/b/", "a/b/ks/", "a/b/ks/t-1/"}; !slices.Equal(got, want) {
		t.Fatalf("after the failed restore: %v, want %v", got, want)
	}
}

// TestEmptyBackupRestoresNothing: a backup of no files restores as zero
// files, not as an error.
func TestEmptyBackupRestoresNothing(t *testing.T) {
	node := testNode(t)
	target := filepath.Join(t.TempDir(), "r")
	res, err := Run(context.Background(), client, node, backupOf(node), Options{Target: target})
	if err != nil || res.Files != 0 || res.Bytes != 0 {
		t.Fatalf("restore of an empty backup: %+v, %v", res, err)
	}
	if got := listTree(t, target); len(got) != 0 {
		t.Fatalf("target holds %v", got)
	}
	// A filter that keeps nothing of a backup that has files still says so.
	f, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", []byte("x"), chunk.Auto, 64<<10)
	keep := func(string) bool { return false }
	if _, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target, Filter: keep}); err == nil || !strings.Contains(err.Error(), "no file that matches") {
		t.Fatalf("restore with a filter that keeps nothing: %v", err)
	}
}

// TestMissingObjectIsAVerificationFailure: an object the bucket does not
// have fails the restore with ErrVerify, whether it is fetched whole (one
// GET), in ranges (after a HEAD) or from a pack.
func TestMissingObjectIsAVerificationFailure(t *testing.T) {
	node := testNode(t)
	small, _ := store(t, node, "ks/t-1/nb-1-big-Index.db", mixedData(5000, 55), chunk.Auto, 64<<10)
	big, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", mixedData(3<<20, 56), chunk.Auto, 64<<10)
	packed, _ := packFiles(t, node, map[string][]byte{"ks/t-1/nb-1-big-TOC.txt": []byte("TOC")})
	for name, f := range map[string]manifest.File{"whole": small, "ranged": big, "packed": packed[0]} {
		if err := client.Delete(context.Background(), node.Root()+f.Key); err != nil {
			t.Fatal(err)
		}
		target := t.TempDir()
		_, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target})
		if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s: restore of a missing object: %v, want ErrVerify", name, err)
		}
		if got := listTree(t, target); len(got) != 0 {
			t.Errorf("%s: the failed restore left %v", name, got)
		}
	}
}

// TestSymlinkInTheTarget: a directory under the target that is a link
// (target/ks -> elsewhere) is refused before anything is written, unless
// FollowSymlinks, which restores through it.
func TestSymlinkInTheTarget(t *testing.T) {
	node := testNode(t)
	raw := mixedData(2<<20, 57) // O_DIRECT too
	f, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", raw, chunk.Auto, 64<<10)
	g, _ := store(t, node, "ks/t-2/nb-1-big-Index.db", []byte("index"), chunk.Auto, 64<<10)
	m := backupOf(node, f, g)
	for _, tc := range []struct {
		name string
		link func(target, elsewhere string) error
	}{
		{"keyspace", func(target, elsewhere string) error { return os.Symlink(elsewhere, filepath.Join(target, "ks")) }},
		{"table", func(target, elsewhere string) error {
			if err := os.Mkdir(filepath.Join(target, "ks"), 0o755); err != nil {
				return err
			}
			return os.Symlink(elsewhere, filepath.Join(target, "ks", "t-1"))
		}},
		{"inside the target", func(target, _ string) error {
			if err := os.Mkdir(filepath.Join(target, "real"), 0o755); err != nil {
				return err
			}
			return os.Symlink("real", filepath.Join(target, "ks"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, elsewhere := t.TempDir(), t.TempDir()
			if err := tc.link(target, elsewhere); err != nil {
				t.Fatal(err)
			}
			before := listTree(t, target)
			_, err := Run(context.Background(), client, node, m, Options{Target: target})
			if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), "--follow-symlinks") {
				t.Fatalf("restore through a link: %v, want ErrSymlink", err)
			}
			if got := listTree(t, elsewhere); len(got) != 0 {
				t.Fatalf("written outside the target: %v", got)
			}
			if got := listTree(t, target); !slices.Equal(got, before) {
				t.Fatalf("the refused restore changed the target: %v, was %v", got, before)
			}

			if _, err := Run(context.Background(), client, node, m, Options{Target: target, FollowSymlinks: true}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(f.Path)))
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("restored through the link: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestRootKeepsWritesInside: even a link that appears after the check
// cannot lead a write outside the target (the os.Root refuses it).
func TestRootKeepsWritesInside(t *testing.T) {
	target, elsewhere := t.TempDir(), t.TempDir()
	td, err := openTarget(target, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer td.close()
	if err := os.Symlink(elsewhere, filepath.Join(target, "ks")); err != nil {
		t.Fatal(err)
	}
	if err := td.mkdirAll(filepath.Join("ks", "t-1")); err == nil {
		t.Fatal("mkdir through a link accepted")
	}
	if fd, _, err := td.create("ks", tempName("x", 1), 0o600); err == nil {
		unix.Close(fd)
		t.Fatal("a file created through a link that leads outside")
	}
	if got := listTree(t, elsewhere); len(got) != 0 {
		t.Fatalf("written outside the target: %v", got)
	}
}
