package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/eintr"
)

// ErrSymlink means a directory the restore would write through is a
// symbolic link, and links are not followed (--follow-symlinks).
var ErrSymlink = errors.New("symbolic link in the target")

// tempSuffix ends the name of every temporary file of a restore: a file is
// written as ".<name>.<random digits>.s3bak-tmp" next to its final place,
// so nothing mistakes it for the real file and a later restore into the
// same target recognises what a killed one left (isTempName).
const tempSuffix = ".s3bak-tmp"

// tempName is the temporary name of a file called base in the restore
// whose random number is nonce: one number a restore, so that a pass over
// the manifest finds each file's temporary name again instead of holding
// a million of them.
//
// A name too long for that (most file systems take 255 bytes) keeps as
// much of its start as fits and a hash of the whole, so that a file whose
// name is near the limit is still restored.
func tempName(base string, nonce uint64) string {
	tail := "." + strconv.FormatUint(nonce, 10) + tempSuffix
	if 1+len(base)+len(tail) > maxName {
		sum := sha256.Sum256([]byte(base))
		hash := "~" + hex.EncodeToString(sum[:8])
		base = base[:maxName-1-len(hash)-len(tail)] + hash
	}
	return "." + base + tail
}

// maxName is the longest file name, in bytes, of Linux's file systems
// (NAME_MAX).
const maxName = 255

// newNonce is a restore's random number for its temporary names.
func newNonce() uint64 { return rand.Uint64() }

// isTempName tells whether name is one tempName makes (in this version or
// an earlier one, whose os.CreateTemp pattern was the same).
func isTempName(name string) bool {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, tempSuffix) {
		return false
	}
	mid := strings.TrimSuffix(name[1:], tempSuffix)
	i := strings.LastIndexByte(mid, '.')
	if i <= 0 || i == len(mid)-1 {
		return false
	}
	for _, c := range mid[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// targetDir is the directory a restore writes into. Every path given to
// its methods is relative to it. Unless links are followed, every access
// goes through an os.Root: nothing is read or written outside the target,
// whatever links appear under it while the restore runs (those already
// there are refused before it starts, see checkLinks). With follow, linked
// directories are followed wherever they lead (data directories spread
// over disks).
type targetDir struct {
	abs    string
	root   *os.Root // nil when following links
	follow bool
	log    *slog.Logger
	// lock is an open descriptor of the target, flock'ed: shared while
	// the restore runs, exclusive while it removes a dead restore's
	// temporary files, so that it never removes those of a live one.
	lock int
	// exclusive: no other restore into this target was running when
	// this one started.
	exclusive bool

	mu      sync.Mutex
	handles map[string]*dirHandle // open directories (see inDir)
	tick    uint64
	known   map[string]bool // directories known to exist
	created []string        // directories this restore created, relative
	outer   []string        // directories created to make the target, absolute, in order
}

// openTarget creates the target directory (recording what it created)
// and opens it.
func openTarget(abs string, follow bool, log *slog.Logger) (t *targetDir, err error) {
	t = &targetDir{abs: abs, follow: follow, log: log, lock: -1, known: map[string]bool{".": true}}
	defer func() {
		if err != nil {
			t.removeCreated()
			t.close()
		}
	}()
	if err := t.makeTarget(); err != nil {
		return nil, fmt.Errorf("create target directory: %w", err)
	}
	if !follow {
		if t.root, err = os.OpenRoot(abs); err != nil {
			return nil, err
		}
	}
	t.lock, err = unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	switch err := unix.Flock(t.lock, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		t.exclusive = true
	case errors.Is(err, unix.EWOULDBLOCK):
		log.Info("another restore is writing into the target: its temporary files are left alone", "target", abs)
		// Shared, so that no later restore takes this one's temporary
		// files for a dead one's. Blocking: another restore holds the
		// lock exclusively only while it removes a dead one's files.
		if err := unix.Flock(t.lock, unix.LOCK_SH); err != nil {
			log.Debug("cannot lock the target directory", "target", abs, "err", err)
		}
	default:
		// A file system without locks: there is no telling, and a
		// second restore into one target at the same time is rare.
		log.Debug("cannot lock the target directory", "target", abs, "err", err)
		t.exclusive = true
	}
	return t, nil
}

// makeTarget is os.MkdirAll of the target that records the directories it
// creates.
func (t *targetDir) makeTarget() error {
	var missing []string
	for p := t.abs; ; {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	for _, p := range slices.Backward(missing) {
		err := os.Mkdir(p, 0o755)
		if err == nil {
			t.outer = append(t.outer, p)
			continue
		}
		if fi, serr := os.Stat(p); !errors.Is(err, fs.ErrExist) || serr != nil || !fi.IsDir() {
			return err
		}
	}
	return nil
}

// shared lets other restores into the target start once this one has
// removed what dead ones left.
func (t *targetDir) shared() {
	if t.exclusive && t.lock >= 0 {
		_ = unix.Flock(t.lock, unix.LOCK_SH)
	}
}

func (t *targetDir) close() {
	t.closeDirs()
	if t.root != nil {
		t.root.Close()
	}
	if t.lock >= 0 {
		unix.Close(t.lock)
		t.lock = -1
	}
}

// path is rel's absolute path, for messages.
func (t *targetDir) path(rel string) string { return filepath.Join(t.abs, rel) }

// exists tells whether rel is there, whatever it is (a link is not
// followed); an error telling is taken for no.
func (t *targetDir) exists(rel string) bool {
	dir, name := split(rel)
	err := t.inDir(dir, func(h *dirHandle) error {
		var st unix.Stat_t
		return eintr.Retry(func() error { return unix.Fstatat(h.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	})
	return err == nil
}

// statDir is what rel is as a directory: with follow, a link to one is one.
func (t *targetDir) statDir(rel string) (fs.FileInfo, error) {
	if t.root != nil {
		return t.root.Lstat(rel)
	}
	return os.Stat(t.path(rel))
}

func (t *targetDir) openFile(rel string, flag int, perm fs.FileMode) (*os.File, error) {
	if t.root != nil {
		return t.root.OpenFile(rel, flag, perm)
	}
	return os.OpenFile(t.path(rel), flag, perm)
}

// openDir opens the directory rel to read, sync or syncfs it.
func (t *targetDir) openDir(rel string) (*os.File, error) {
	return t.openFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

// rename moves from to to, both in one directory (a temporary file to
// its final name).
func (t *targetDir) rename(from, to string) error {
	dir, name := split(from)
	if filepath.Dir(to) != dir {
		if t.root != nil {
			return t.root.Rename(from, to)
		}
		return os.Rename(t.path(from), t.path(to))
	}
	err := t.inDir(dir, func(h *dirHandle) error {
		return eintr.Retry(func() error { return unix.Renameat(h.fd, name, h.fd, filepath.Base(to)) })
	})
	return t.pathError("rename", from, err)
}

// remove removes the file or empty directory rel.
func (t *targetDir) remove(rel string) error {
	dir, name := split(rel)
	err := t.inDir(dir, func(h *dirHandle) error {
		err := eintr.Retry(func() error { return unix.Unlinkat(h.fd, name, 0) })
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			// A directory (Linux says EISDIR, POSIX allows EPERM).
			if derr := eintr.Retry(func() error { return unix.Unlinkat(h.fd, name, unix.AT_REMOVEDIR) }); !errors.Is(derr, unix.ENOTDIR) {
				err = derr
			}
		}
		return err
	})
	return t.pathError("remove", rel, err)
}

// create creates, for writing, the file name (a temporary file, or a
// file in a staged directory) in the directory dir with the permissions
// perm (less the umask), and returns its descriptor; exact says that it
// has perm exactly, no fchmod needed. One that exists is another
// restore's (a 64-bit number alike): an error, never shared. A link of
// that name is not followed.
func (t *targetDir) create(dir, name string, perm uint32) (fd int, exact bool, err error) {
	err = t.inDir(dir, func(h *dirHandle) error {
		exact = h.exactMode && perm&umask() == 0
		return eintr.Retry(func() (err error) {
			fd, err = unix.Openat(h.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
			return err
		})
	})
	return fd, exact, t.pathError("open", filepath.Join(dir, name), err)
}

// umask is the process's umask, read once; all bits set when it cannot be
// read (so every created file gets its mode set explicitly).
var umask = sync.OnceValue(func() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
})

// mkdirAll creates dir and its missing parents under the target,
// recording each one it creates. Without follow, a link among them is
// refused (checkLinks found those there at the start; the os.Root refuses
// any that leads outside).
func (t *targetDir) mkdirAll(dir string) error {
	t.mu.Lock()
	done := t.known[dir]
	t.mu.Unlock()
	if done {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := t.mkdirAll(parent); err != nil {
			return err
		}
	}
	fi, err := t.statDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if t.root != nil {
			err = t.root.Mkdir(dir, 0o755)
		} else {
			err = os.Mkdir(t.path(dir), 0o755)
		}
		if err == nil {
			t.mu.Lock()
			t.created = append(t.created, dir)
			t.known[dir] = true
			t.mu.Unlock()
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err = t.statDir(dir); err != nil { // made meanwhile by another file's worker?
			return fmt.Errorf("%s exists and is not a usable directory (a link that leads nowhere?): %w", t.path(dir), err)
		}
	}
	if err != nil {
		return err
	}
	if err := t.isDir(dir, fi); err != nil {
		return err
	}
	t.mu.Lock()
	t.known[dir] = true
	t.mu.Unlock()
	return nil
}

// isDir refuses what is not a directory the restore may write into.
func (t *targetDir) isDir(rel string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		dest, _ := os.Readlink(t.path(rel))
		return fmt.Errorf("%s is a symbolic link (to %s): %w; restore writes nothing through a link unless --follow-symlinks (for data directories spread over disks)",
			t.path(rel), dest, ErrSymlink)
	case !fi.IsDir():
		return fmt.Errorf("%s is in the way: it is not a directory, and the backup has files under it", t.path(rel))
	}
	return nil
}

// checkLinks refuses, before anything is written, a link among the
// existing directories of dirs (relative directories the restore writes
// into) or their parents under the target. With follow, links are
// followed and only dangling ones or non-directories are refused.
func (t *targetDir) checkLinks(dirs []string) error {
	seen := map[string]bool{".": true}
	for _, d := range dirs {
		var chain []string
		for p := d; !seen[p]; p = filepath.Dir(p) {
			chain = append(chain, p)
		}
		for _, p := range slices.Backward(chain) {
			seen[p] = true
			fi, err := t.statDir(p)
			if errors.Is(err, fs.ErrNotExist) {
				break // the rest will be made
			}
			if err != nil {
				return err
			}
			if err := t.isDir(p, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeStaleTemps removes, from the directories in (those the restore
// writes into), the temporary files and staged directories a killed
// restore left there, and from every directory above them the staged
// directories (a killed restore's is next to the topmost new directory it
// staged, wherever that was) — by name, see isTempName; regular files and
// directories only — unless another restore into the target is running.
// It logs what it removed.
func (t *targetDir) removeStaleTemps(in []string) {
	if !t.exclusive {
		return
	}
	writes := map[string]bool{}
	for _, d := range in {
		writes[d] = true
	}
	const named = 50 // files logged one by one; the rest are counted
	var n, dirs int
	var bytes int64
	for _, d := range withAncestors(in) {
		f, err := t.openDir(d)
		if err != nil {
			continue // not there yet: nothing to remove
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			t.log.Warn("cannot read a directory to remove an interrupted restore's temporary files", "dir", t.path(d), "err", err)
			continue
		}
		for _, e := range entries {
			if !isTempName(e.Name()) {
				continue
			}
			rel := filepath.Join(d, e.Name())
			if e.IsDir() { // a staged directory (see staging)
				if err := t.removeTree(rel); err != nil {
					t.log.Warn("cannot remove a temporary directory of an interrupted restore", "path", t.path(rel), "err", err)
					continue
				}
				t.log.Info("removed a temporary directory of an interrupted restore", "path", t.path(rel))
				dirs++
				continue
			}
			if !e.Type().IsRegular() || !writes[d] {
				continue
			}
			var size int64
			if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			if err := t.remove(rel); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.log.Warn("cannot remove a temporary file of an interrupted restore", "path", t.path(rel), "err", err)
				}
				continue
			}
			if n < named {
				t.log.Info("removed a temporary file of an interrupted restore", "path", t.path(rel), "bytes", size)
			}
			n++
			bytes += size
		}
	}
	if n > 0 || dirs > 0 {
		t.log.Info("removed the temporary files of an interrupted restore", "files", n, "bytes", bytes, "directories", dirs, "target", t.abs)
	}
}

// removeCreated removes the directories the restore created, deepest
// first, those that are empty only: a failed restore leaves the target as
// it found it. A directory that was there before is never removed.
func (t *targetDir) removeCreated() {
	t.mu.Lock()
	created := slices.Clone(t.created)
	t.created = nil
	t.mu.Unlock()
	depth := func(p string) int { return strings.Count(p, string(filepath.Separator)) }
	slices.SortFunc(created, func(a, b string) int { return depth(b) - depth(a) })
	for _, d := range created {
		if err := t.remove(d); err == nil {
			t.mu.Lock()
			delete(t.known, d)
			t.mu.Unlock()
		}
	}
	for _, d := range slices.Backward(t.outer) {
		if os.Remove(d) != nil {
			break
		}
	}
	t.outer = nil
}
