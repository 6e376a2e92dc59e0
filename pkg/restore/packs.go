package restore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// maxPackSpan bounds the bytes of a pack fetched with one GET.
const maxPackSpan = 16 << 20

// packRun is packed files fetched together: one GET of the pack's bytes
// [start, end) serves all of them.
type packRun struct {
	key        string
	start, end int64
	files      []manifest.File
}

// splitPacked takes the packed files out of files and groups them into
// runs, one GET each: a ranged GET per small file would cost a request,
// and the server would read and check a whole erasure block, for a few
// kilobytes.
func splitPacked(files []manifest.File) (runs []packRun, rest []manifest.File) {
	byPack := map[string][]manifest.File{}
	for _, f := range files {
		if manifest.IsPackKey(f.Key) && f.StoredSize > 0 && f.StoredSize <= maxPackSpan {
			byPack[f.Key] = append(byPack[f.Key], f)
			continue
		}
		rest = append(rest, f)
	}
	for key, fs := range byPack {
		slices.SortFunc(fs, func(a, b manifest.File) int { return cmp.Compare(a.Offset, b.Offset) })
		var cur *packRun
		for _, f := range fs {
			end := f.Offset + f.StoredSize
			if cur == nil || max(cur.end, end)-cur.start > maxPackSpan {
				runs = append(runs, packRun{key: key, start: f.Offset, end: end})
				cur = &runs[len(runs)-1]
			}
			cur.end = max(cur.end, end)
			cur.files = append(cur.files, f)
		}
	}
	return runs, rest
}

// fetchRun gets a run's bytes with one GET and stages each of its files,
// decoded and checked (CRC32C per chunk, size and SHA-256) like any other.
func (r *restorer) fetchRun(ctx context.Context, run packRun) error {
	return r.fetchPacked(ctx, run, func(f manifest.File, raw []byte, err error) error {
		if err == nil {
			err = r.stage(f, func(w io.WriterAt) error {
				if _, err := w.WriteAt(raw, 0); err != nil {
					return fmt.Errorf("write %d bytes: %w", len(raw), err)
				}
				r.opts.Progress.Add(int64(len(raw)))
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", f.Path, err)
		}
		return nil
	})
}

// fetchPacked gets a run's bytes with one GET and hands each of its files'
// decoded and checked bytes, or why they failed their check, to each: a
// file that fails is read once more first, its bytes may have been
// damaged on the way. An error of each, or a run that cannot be read,
// ends it.
func (r *restorer) fetchPacked(ctx context.Context, run packRun, each func(f manifest.File, raw []byte, err error) error) error {
	n := run.end - run.start
	release, err := r.budget.Acquire(ctx, 2*n)
	if err != nil {
		return err
	}
	defer release()
	buf := r.bufs.get(n)
	defer r.bufs.put(buf)
	key := r.root + run.key
	load := func() error { return get(ctx, r.c, key, run.start, *buf, false) }
	if err := readChecked(ctx, load); err != nil {
		return err
	}
	for _, f := range run.files {
		stored := (*buf)[f.Offset-run.start : f.Offset-run.start+f.StoredSize]
		raw, err := r.decodePacked(f, key, stored)
		if errors.Is(err, ErrVerify) && ctx.Err() == nil {
			if err := load(); err != nil {
				return err
			}
			raw, err = r.decodePacked(f, key, stored)
			err = again(err)
		}
		if err := each(f, raw, err); err != nil {
			return err
		}
	}
	return nil
}

// decodePacked decodes a packed file's stored bytes and checks them.
func (r *restorer) decodePacked(f manifest.File, key string, stored []byte) ([]byte, error) {
	raw := stored
	if f.Compression == chunk.Zstd {
		// All of the file's chunks as one group that starts where the file
		// does in the pack.
		chunks := layout(f)
		all := group{first: 0, end: len(chunks), storedOff: f.Offset}
		var err error
		if raw, err = decodeGroup(r.dec, key, chunks, all, stored, make([]byte, 0, f.Size)); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	h.Write(raw)
	return raw, r.verify(f, h, int64(len(raw)), key)
}
