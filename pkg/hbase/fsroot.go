package hbase

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/s3bak/s3bak/pkg/source"
)

// fsRoot reads files under hbase.rootdir.
//
// Symlink policy: HBase never creates symlinks, but operators do (a big disk
// mounted as archive/, say). A symlink is followed only while its target
// stays under the real root; anything resolving outside it is an error, so
// a backup can never pick up unrelated files. Abs is the resolved path, so
// the file read is the file checked.
type fsRoot struct {
	dir  string // as given, made absolute
	real string // dir with symlinks resolved
}

func openRoot(dir string) (*fsRoot, error) {
	if dir == "" {
		return nil, errors.New("hbase: no root directory (hbase.rootdir) given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("hbase: root %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("hbase: root: %w", err)
	}
	return &fsRoot{dir: abs, real: real}, nil
}

// abs is the on-disk path of rel, a slash-separated path under the root.
func (r *fsRoot) abs(rel string) string { return filepath.Join(r.dir, filepath.FromSlash(rel)) }

// errNotFound is returned by stat when rel does not exist (or a parent is
// not a directory), so callers can try the next location.
var errNotFound = errors.New("not found")

// stat describes the regular file at rel as a source.File with Path rel.
func (r *fsRoot) stat(rel string) (source.File, error) {
	abs := r.abs(rel)
	// Most of the places HBase searches for a store file do not have it: a
	// plain lstat tells, where resolving symlinks takes one per element.
	if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return source.File{}, errNotFound
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return source.File{}, errNotFound
	}
	if err != nil {
		return source.File{}, err
	}
	if real != r.real && !strings.HasPrefix(real, r.real+string(filepath.Separator)) {
		return source.File{}, fmt.Errorf("%s resolves to %s, outside the root %s", abs, real, r.real)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return source.File{}, err
	}
	if !fi.Mode().IsRegular() {
		return source.File{}, fmt.Errorf("%s is not a regular file (%s)", abs, fi.Mode().Type())
	}
	f := source.File{Path: rel, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}
	f.SetAbs(real)
	f.Dev, f.Ino = inode(fi)
	return f, nil
}

// read returns the content of the file at rel, refusing files over limit.
func (r *fsRoot) read(rel string, limit int64) ([]byte, error) {
	f, err := r.stat(rel)
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%s: %w", r.abs(rel), fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	if f.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", f.Abs(), f.Size, limit)
	}
	h, err := os.Open(f.Abs())
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// The file may grow after stat: never read more than the limit.
	b, err := io.ReadAll(io.LimitReader(h, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: over the %d-byte limit", f.Abs(), limit)
	}
	return b, err
}

// isChecksumFile reports Hadoop LocalFileSystem sidecars (.<name>.crc): a
// file:// hbase.rootdir has them, Hadoop hides them from listings, and so
// ExportSnapshot never copies them.
func isChecksumFile(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".crc")
}

// walk returns every regular file under the directory rel, in lexical
// order. Symlinks to directories are followed under the root's policy,
// each directory once, so a loop ends; seen holds the directories (device
// and inode) already listed, and gets those walk lists.
func (r *fsRoot) walk(rel string, seen map[[2]uint64]bool) ([]source.File, error) {
	var files []source.File
	var dir func(rel string) error
	dir = func(rel string) error {
		fi, err := os.Stat(r.abs(rel))
		if err != nil {
			return err
		}
		if dev, ino := inode(fi); ino != 0 {
			if seen[[2]uint64{dev, ino}] {
				return nil // a loop: its files are listed already
			}
			seen[[2]uint64{dev, ino}] = true
		}
		entries, err := os.ReadDir(r.abs(rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			sub := join(rel, e.Name())
			isDir, err := r.isDir(rel, e)
			if err != nil {
				return err
			}
			if isDir {
				if err := dir(sub); err != nil {
					return err
				}
				continue
			}
			if isChecksumFile(e.Name()) {
				continue
			}
			f, err := r.stat(sub)
			if err != nil {
				return err
			}
			files = append(files, f)
		}
		return nil
	}
	return files, dir(rel)
}

// isDir reports whether the entry e of the directory rel is a directory or
// a symlink to one. HBase makes no symlinks, but an operator may move a
// snapshot or region directory elsewhere under the root and link it back:
// it is read like a real one, never skipped. A symlink that leads nowhere
// or outside the root is an error, as for files (stat).
func (r *fsRoot) isDir(rel string, e fs.DirEntry) (bool, error) {
	if e.IsDir() {
		return true, nil
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false, nil
	}
	abs := r.abs(join(rel, e.Name()))
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return false, fmt.Errorf("%s is a symlink that cannot be followed: %w", abs, err)
	}
	if real != r.real && !strings.HasPrefix(real, r.real+string(filepath.Separator)) {
		return false, fmt.Errorf("%s resolves to %s, outside the root %s", abs, real, r.real)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

// readDir lists the directory rel; a missing directory is empty.
func (r *fsRoot) readDir(rel string) ([]fs.DirEntry, error) {
	es, err := os.ReadDir(r.abs(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return es, err
}

// join is path.Join for slash paths, kept for readability at call sites.
func join(elem ...string) string { return path.Join(elem...) }
