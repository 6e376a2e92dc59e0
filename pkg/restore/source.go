package restore

import (
	"context"
	"iter"

	"github.com/s3bak/s3bak/pkg/manifest"
)

// Source is a backup's files in path order. Files reads them afresh each
// time it is called: a restore passes over them four times (plan, check,
// fetch, commit) rather than holding a million of them in memory.
type Source interface {
	Files() iter.Seq2[manifest.File, error]
}

// Files is a Source of files in memory.
type Files []manifest.File

// Files yields the files.
func (fs Files) Files() iter.Seq2[manifest.File, error] {
	return func(yield func(manifest.File, error) bool) {
		for _, f := range fs {
			if !yield(f, nil) {
				return
			}
		}
	}
}

// filtered is the files of a source a filter keeps.
type filtered struct {
	src  Source
	keep func(string) bool
}

func (s filtered) Files() iter.Seq2[manifest.File, error] {
	return func(yield func(manifest.File, error) bool) {
		for f, err := range s.src.Files() {
			if err == nil && s.keep != nil && !s.keep(f.Path) {
				continue
			}
			if !yield(f, err) || err != nil {
				return
			}
		}
	}
}

// inBatches hands dispatch the files of src batchFiles at a time, until
// they end or ctx is done; it returns the error reading them, if any.
func inBatches(ctx context.Context, src Source, dispatch func([]manifest.File)) error {
	var batch []manifest.File
	for f, err := range src.Files() {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if batch = append(batch, f); len(batch) == batchFiles {
			dispatch(batch)
			batch = nil
		}
	}
	dispatch(batch)
	return nil
}
