package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// tempOf is the relative temporary name of the file at final.
func (r *restorer) tempOf(final string) string {
	return filepath.Join(filepath.Dir(final), tempName(filepath.Base(final), r.nonce))
}

// commit makes every verified file durable, moves them into place and
// makes the renames durable. Without --force nothing was there before, so a
// rename that fails takes back the ones before it: all files or none.
func (r *restorer) commit(files Source, p survey) (*Result, error) {
	dirs := map[string]bool{}
	for _, d := range p.dirs {
		dirs[d] = true
	}
	if err := r.syncFilesystems(dirs); err != nil {
		r.removeTemps(files, -1)
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	i := 0
	for f, err := range files.Files() {
		final := filepath.FromSlash(f.Path)
		if err == nil {
			err = r.t.rename(r.tempOf(final), final)
		}
		if err != nil {
			r.removeTemps(files, i)
			what := "the files before it are in place"
			if !r.opts.Force {
				r.removeFinals(files, i)
				what = "nothing was left in place"
			}
			return nil, fmt.Errorf("move %s into place: %w (%s)", r.t.path(final), err, what)
		}
		i++
	}
	for d := range dirs {
		if err := r.syncDir(d); err != nil {
			return nil, err
		}
	}
	res := &Result{Files: p.files, Bytes: p.bytes}
	for _, d := range p.dirs {
		res.Dirs = append(res.Dirs, filepath.ToSlash(d))
	}
	return res, nil
}

// removeTemps removes the temporary files of the files from the from-th
// on (all of them when from < 0): those not moved into place.
func (r *restorer) removeTemps(files Source, from int) {
	i := 0
	for f, err := range files.Files() {
		if err != nil {
			return
		}
		if i >= from {
			r.t.remove(r.tempOf(filepath.FromSlash(f.Path)))
		}
		i++
	}
}

// removeFinals removes the first n files moved into place.
func (r *restorer) removeFinals(files Source, n int) {
	i := 0
	for f, err := range files.Files() {
		if err != nil || i >= n {
			return
		}
		r.t.remove(filepath.FromSlash(f.Path))
		i++
	}
}

// syncFilesystems flushes the written files with one syncfs per file
// system instead of one fsync per file: thousands of small sstable
// components would otherwise wait for the disk one by one.
func (r *restorer) syncFilesystems(dirs map[string]bool) error {
	done := map[uint64]bool{}
	for d := range dirs {
		f, err := r.t.openFile(d, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || done[st.Dev] {
			f.Close()
			if err != nil {
				return fmt.Errorf("stat %s: %w", r.t.path(d), err)
			}
			continue
		}
		done[st.Dev] = true
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("sync the file system of %s: %w", r.t.path(d), err)
		}
	}
	return nil
}

func (r *restorer) syncDir(dir string) error {
	d, err := r.t.openFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", r.t.path(dir), err)
	}
	return nil
}
