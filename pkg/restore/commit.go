package restore

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// tempOf is the relative temporary name of the file at final.
func (r *restorer) tempOf(final string) string {
	return filepath.Join(filepath.Dir(final), tempName(filepath.Base(final), r.nonce))
}

// commit makes every verified file durable, moves them into place and
// makes the renames durable: the files under temporary names one by one,
// then the staged directories whole. Without --force nothing was there
// before, so a rename that fails takes back the ones before it: all files
// or none.
func (r *restorer) commit(files Source, p survey) (*Result, error) {
	dirs := map[string]bool{}   // written into, where they are now
	synced := map[string]bool{} // renamed in
	for _, d := range p.dirs {
		pd, staged := r.staged.physDir(d)
		dirs[pd] = true
		if !staged {
			synced[d] = true
		}
	}
	for _, d := range r.staged.parents() {
		synced[d] = true
	}
	if err := r.syncFilesystems(dirs); err != nil {
		r.removeTemps(files, -1)
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	var renamed int // files moved into place one by one
	if r.staged.perFile {
		i := 0
		for f, err := range files.Files() {
			final := filepath.FromSlash(f.Path)
			if err == nil {
				if _, staged := r.staged.physDir(filepath.Dir(final)); staged {
					i++
					continue
				}
				err = r.t.rename(r.tempOf(final), final)
			}
			if err != nil {
				return nil, r.undo(files, i, -1, fmt.Errorf("move %s into place: %w", r.t.path(final), err))
			}
			i++
		}
		renamed = i
	}
	for i, d := range r.staged.tops {
		from, _ := r.staged.physDir(d)
		if err := r.t.renameDir(from, d); err != nil {
			return nil, r.undo(files, renamed, i, fmt.Errorf("move directory %s into place: %w", r.t.path(d), err))
		}
	}
	for d := range synced {
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

// undo takes back a commit that failed with err: the files from the
// n-th on are not in place, nor the staged directories from the tops-th
// on (none when tops < 0). The temporary files and staged directories not
// in place are removed; without --force, so are the files and directories
// moved into place before, so that nothing is left in place.
func (r *restorer) undo(files Source, n, tops int, err error) error {
	r.removeTemps(files, n)
	what := "the files before it are in place"
	if !r.opts.Force {
		r.removeFinals(files, n)
		what = "nothing was left in place"
	}
	for i, d := range r.staged.tops {
		switch {
		case tops >= 0 && i < tops && !r.opts.Force:
			r.t.removeTree(d)
		case tops < 0 || i >= tops:
			pd, _ := r.staged.physDir(d)
			r.t.removeTree(pd)
		}
	}
	return fmt.Errorf("%w (%s)", err, what)
}

// removeTemps removes the temporary files of the files from the from-th
// on (all of them when from < 0): those not moved into place; from < 0
// removes the staged directories too.
func (r *restorer) removeTemps(files Source, from int) {
	if from < 0 {
		for _, d := range r.staged.tops {
			pd, _ := r.staged.physDir(d)
			r.t.removeTree(pd)
		}
	}
	if !r.staged.perFile {
		return
	}
	i := 0
	for f, err := range files.Files() {
		if err != nil {
			return
		}
		final := filepath.FromSlash(f.Path)
		if _, staged := r.staged.physDir(filepath.Dir(final)); i >= max(from, 0) && !staged {
			r.t.remove(r.tempOf(final))
		}
		i++
	}
}

// removeFinals removes the first n files moved into place one by one.
func (r *restorer) removeFinals(files Source, n int) {
	if !r.staged.perFile {
		return
	}
	i := 0
	for f, err := range files.Files() {
		if err != nil || i >= n {
			return
		}
		final := filepath.FromSlash(f.Path)
		if _, staged := r.staged.physDir(filepath.Dir(final)); !staged {
			r.t.remove(final)
		}
		i++
	}
}

// syncFilesystems flushes the written files with one syncfs per file
// system instead of one fsync per file: thousands of small sstable
// components would otherwise wait for the disk one by one.
func (r *restorer) syncFilesystems(dirs map[string]bool) error {
	done := map[uint64]bool{}
	for d := range dirs {
		f, err := r.t.openDir(d)
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

// syncTarget syncs the target's file system, for the flusher; a failure
// is the commit's syncfs to report.
func (r *restorer) syncTarget() {
	d, err := r.t.openDir(".")
	if err != nil {
		return
	}
	defer d.Close()
	_ = unix.Syncfs(int(d.Fd()))
}

func (r *restorer) syncDir(dir string) error {
	d, err := r.t.openDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", r.t.path(dir), err)
	}
	return nil
}
