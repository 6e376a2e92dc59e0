package restore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxDirHandles bounds the directories a restore keeps open: files come
// in path order, a directory's files together, so a few suffice.
const maxDirHandles = 64

// dirHandle is an open directory of the target. Creating, renaming and
// removing a file in it is then one system call on a name relative to its
// descriptor (openat, renameat, unlinkat), instead of a walk of its path
// from the target (an openat, fcntl and close per directory of the path)
// — a restore of a million small files spent most of its time there. A
// name is one path element and is never followed if it is a link, so
// nothing is reached outside the directory, which was itself opened
// through the target's os.Root.
type dirHandle struct {
	f    *os.File // keeps fd open
	fd   int
	refs int
	used uint64
	// exactMode: a file created here gets the mode it is created with
	// less the umask and no more (the directory has no default ACL,
	// whose mask would apply instead), so a mode the umask leaves whole
	// needs no fchmod.
	exactMode bool
}

// inDir runs fn with the directory dir (relative to the target) open, as
// the descriptor of a directory handle; fn must not keep it.
func (t *targetDir) inDir(dir string, fn func(h *dirHandle) error) error {
	h, err := t.acquireDir(dir)
	if err != nil {
		return err
	}
	defer t.releaseDir(h)
	return fn(h)
}

func (t *targetDir) acquireDir(dir string) (*dirHandle, error) {
	t.mu.Lock()
	t.tick++
	if h := t.handles[dir]; h != nil {
		h.refs++
		h.used = t.tick
		t.mu.Unlock()
		return h, nil
	}
	t.mu.Unlock()
	f, err := t.openDir(dir)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	_, aerr := unix.Fgetxattr(fd, "system.posix_acl_default", nil)
	exact := errors.Is(aerr, unix.ENODATA)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handles == nil {
		t.handles = map[string]*dirHandle{}
	}
	if h := t.handles[dir]; h != nil { // opened meanwhile by another file
		f.Close()
		h.refs++
		return h, nil
	}
	h := &dirHandle{f: f, fd: fd, refs: 1, used: t.tick, exactMode: exact}
	t.handles[dir] = h
	t.evictLocked()
	return h, nil
}

func (t *targetDir) releaseDir(h *dirHandle) {
	t.mu.Lock()
	h.refs--
	t.evictLocked()
	t.mu.Unlock()
}

// evictLocked closes the least recently used idle directories beyond
// maxDirHandles.
func (t *targetDir) evictLocked() {
	for len(t.handles) > maxDirHandles {
		var oldest string
		var found *dirHandle
		for d, h := range t.handles {
			if h.refs == 0 && (found == nil || h.used < found.used) {
				oldest, found = d, h
			}
		}
		if found == nil {
			return // all in use: closed when released
		}
		found.f.Close()
		delete(t.handles, oldest)
	}
}

// closeDirs closes every open directory.
func (t *targetDir) closeDirs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for d, h := range t.handles {
		h.f.Close()
		delete(t.handles, d)
	}
}

// split is rel's directory and name.
func split(rel string) (dir, name string) { return filepath.Dir(rel), filepath.Base(rel) }

// pathError is err of op on the file at rel, for messages.
func (t *targetDir) pathError(op, rel string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: t.path(rel), Err: err}
}
