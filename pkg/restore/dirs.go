package restore

import (
	"os"
	"path/filepath"
)

// maxDirHandles bounds the directories a restore keeps open: files come
// in path order, a directory's files together, so a few suffice.
const maxDirHandles = 64

// dirHandle is an open directory of the target, as an os.Root of its own:
// creating, timing, renaming and removing a file in it is then one system
// call on a name, instead of a walk of its path from the target (an
// openat, fcntl and close per directory of the path) — a restore of a
// million small files spent most of its time there.
type dirHandle struct {
	root *os.Root
	refs int
	used uint64
}

// inDir runs fn with the directory dir (relative to the target) open.
func (t *targetDir) inDir(dir string, fn func(*os.Root) error) error {
	h, err := t.acquireDir(dir)
	if err != nil {
		return err
	}
	defer t.releaseDir(h)
	return fn(h.root)
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
	var r *os.Root
	var err error
	if t.root != nil {
		r, err = t.root.OpenRoot(dir)
	} else {
		r, err = os.OpenRoot(t.path(dir))
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handles == nil {
		t.handles = map[string]*dirHandle{}
	}
	if h := t.handles[dir]; h != nil { // opened meanwhile by another file
		r.Close()
		h.refs++
		return h, nil
	}
	h := &dirHandle{root: r, refs: 1, used: t.tick}
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
		found.root.Close()
		delete(t.handles, oldest)
	}
}

// closeDirs closes every open directory.
func (t *targetDir) closeDirs() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for d, h := range t.handles {
		h.root.Close()
		delete(t.handles, d)
	}
}

// split is rel's directory and name.
func split(rel string) (dir, name string) { return filepath.Dir(rel), filepath.Base(rel) }
