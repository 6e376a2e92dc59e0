package restore

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/eintr"
)

// stageMin is the fewest files at or under a new directory for it to be
// written whole under a temporary name (see staging). Below it, each file's own
// temporary name and rename cost little, and a killed restore leaves
// single files, not a directory, behind.
var stageMin = 100 // a variable so that tests stage small directories

// staging is how a restore writes the new directories of many files: each
// is created under a temporary name next to its final place
// (tempName(dir, nonce)), its files are written into it under their final
// names, and it is renamed into place whole once every file is verified
// and flushed. A directory of 10,000 sstable components then costs one
// rename instead of 10,000 (renameat was a fifth of a small-file
// restore's system time, and every temporary name an entry more to insert
// into and remove from the directory), and the commit needs no pass over
// the manifest. As with temporary file names, nothing is ever at a final
// path before it is whole: a killed restore leaves a directory named like
// a temporary file, which the next restore removes (removeStaleTemps).
// Directories that exist already (a restore with --force, or into a live
// node's tables) get temporary names per file.
type staging struct {
	// phys is where the files of a directory are written while the
	// restore runs, for the directories at or under a staged one.
	phys map[string]string
	tops []string // the staged directories, renamed at commit, sorted
	top  map[string]bool
	// perFile: some files are written under temporary names of their
	// own, in directories not staged; without them, undoing a restore
	// needs no pass over the manifest.
	perFile bool
}

// physDir is where the files of dir are written.
func (s *staging) physDir(dir string) (string, bool) {
	p, ok := s.phys[dir]
	if !ok {
		return dir, false
	}
	return p, true
}

// parents are the directories the staged ones are renamed in.
func (s *staging) parents() []string {
	var out []string
	for _, d := range s.tops {
		out = append(out, filepath.Dir(d))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// planStaging picks the directories to stage: the topmost that do not
// exist and hold at least stageMin files, directly or in directories under
// them (a new keyspace of many tables of few files each is one rename, not
// one per file); the directories under a staged one are written inside it.
func (t *targetDir) planStaging(p survey, nonce uint64) (staging, error) {
	s := staging{phys: map[string]string{}, top: map[string]bool{}}
	tree := map[string]int{} // files at or under each directory but "."
	for _, d := range p.dirs {
		for a := d; a != "." && a != string(filepath.Separator); a = filepath.Dir(a) {
			tree[a] += p.dirFiles[d]
		}
	}
	s.perFile = p.dirFiles["."] > 0
	for _, d := range slices.Sorted(maps.Keys(tree)) { // a directory before those under it
		if top := s.stagedAbove(d); top != "" {
			rest, _ := filepath.Rel(top, d)
			s.phys[d] = filepath.Join(s.phys[top], rest)
			continue
		}
		stage := tree[d] >= stageMin
		if stage {
			_, err := t.statDir(d)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return s, err
			}
			stage = err != nil
		}
		if !stage {
			s.perFile = s.perFile || p.dirFiles[d] > 0
			continue
		}
		s.phys[d] = filepath.Join(filepath.Dir(d), tempName(filepath.Base(d), nonce))
		s.tops = append(s.tops, d)
		s.top[d] = true
	}
	return s, nil
}

// stagedAbove is the staged directory d is under, or "".
func (s *staging) stagedAbove(d string) string {
	for p := filepath.Dir(d); ; p = filepath.Dir(p) {
		if s.top[p] {
			return p
		}
		if p == "." || p == string(filepath.Separator) {
			return ""
		}
	}
}

// renameDir moves the directory from to to, both in one directory, and
// never over something there (renameat2 RENAME_NOREPLACE; on a file system
// without it, a plain rename, which replaces only an empty directory).
func (t *targetDir) renameDir(from, to string) error {
	dir, name := split(from)
	err := t.inDir(dir, func(h *dirHandle) error {
		return eintr.Retry(func() error {
			err := unix.Renameat2(h.fd, name, h.fd, filepath.Base(to), unix.RENAME_NOREPLACE)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
				err = unix.Renameat(h.fd, name, h.fd, filepath.Base(to))
			}
			return err
		})
	})
	return t.pathError("rename", from, err)
}

// removeTree removes rel and everything under it.
func (t *targetDir) removeTree(rel string) error {
	if t.root != nil {
		return t.root.RemoveAll(rel)
	}
	return os.RemoveAll(t.path(rel))
}
