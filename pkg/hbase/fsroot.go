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
	f := source.File{Path: rel, Abs: real, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}
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
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", f.Abs, f.Size, limit)
	}
	h, err := os.Open(f.Abs)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// The file may grow after stat: never read more than the limit.
	b, err := io.ReadAll(io.LimitReader(h, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: over the %d-byte limit", f.Abs, limit)
	}
	return b, err
}

// isChecksumFile reports Hadoop LocalFileSystem sidecars (.<name>.crc): a
// file:// hbase.rootdir has them, Hadoop hides them from listings, and so
// ExportSnapshot never copies them.
func isChecksumFile(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".crc")
}

// walk returns every regular file under the directory rel, in lexical order.
func (r *fsRoot) walk(rel string) ([]source.File, error) {
	var files []source.File
	err := filepath.WalkDir(r.abs(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || isChecksumFile(d.Name()) {
			return nil
		}
		sub, err := filepath.Rel(r.dir, p)
		if err != nil {
			return err
		}
		f, err := r.stat(filepath.ToSlash(sub))
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	return files, err
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
