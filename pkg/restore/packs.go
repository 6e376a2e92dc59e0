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

// maxPackSpan bounds the bytes of a pack fetched at once (one span).
const maxPackSpan = 16 << 20

// packRun is packed files fetched together: one span of the pack's bytes
// [start, end) serves all of them.
type packRun struct {
	key        string
	start, end int64
	files      []manifest.File
}

// decoded is the most memory the run's files take decoded beside the run's
// bytes: they are decoded and written one at a time, beside the last group
// decoded (whose files are slices of it), and a file stored uncompressed
// is its stored bytes.
func (run packRun) decoded() int64 {
	var file, grp int64
	for _, f := range run.files {
		switch {
		case f.Group != 0:
			grp = max(grp, f.Group)
		case f.Compression == chunk.Zstd:
			file = max(file, f.Size)
		}
	}
	return file + grp
}

// splitPacked takes the packed files out of files and groups them into
// runs, one span each (see getSpan): a ranged GET per small file would
// cost a request, and the server would read and check a whole erasure
// block, for a few kilobytes.
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
	// The largest first: their transfers are the longest, and a restore
	// ends with its last file.
	slices.SortStableFunc(rest, func(a, b manifest.File) int { return cmp.Compare(b.StoredSize, a.StoredSize) })
	return runs, rest
}

// fetchRun gets a run's bytes (getSpan) and stages each of its files,
// decoded and checked (CRC32C per chunk, size and SHA-256) like any other.
// The files are created while the run's GET is under way: creating a file
// is most of what a small file costs, and a GET a round trip (20 ms and
// more from S3) that the creating then hides. The run's memory (a 16 MiB
// span at most) is held for the creating too; created first and fetched
// after, the first run began a round trip later and the restore of 10,000
// small files through the bench's network proxy took 0.46–0.50 s, not
// 0.41–0.45 s. Files are closed once created and opened again to be
// written, so a run holds no descriptors meanwhile.
func (r *restorer) fetchRun(ctx context.Context, run packRun) error {
	made := make([]*tempFile, 0, len(run.files))
	create := func() error {
		for _, f := range run.files {
			if err := ctx.Err(); err != nil {
				return err // another file failed: what is made is removed
			}
			tmp, err := r.create(f)
			if err == nil {
				err = tmp.close()
			}
			if err != nil {
				return fmt.Errorf("restore %s: %w", f.Path, err)
			}
			made = append(made, tmp)
		}
		return nil
	}
	i := 0
	return r.fetchPacked(ctx, run, create, func(f manifest.File, raw []byte, err error) error {
		tmp := made[i]
		i++
		if err == nil {
			err = r.reopen(tmp)
		}
		if err == nil {
			err = r.finish(tmp, f, func(w io.WriterAt) error {
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

// fetchPacked gets a run's bytes (getSpan), running meanwhile (if not
// nil) beside the GET, and hands each of its files' decoded and checked
// bytes, or why they failed their check, to each: a file that fails is
// read once more first, its bytes may have been damaged on the way. An
// error of meanwhile or of each, or a run that cannot be read, ends it.
func (r *restorer) fetchPacked(ctx context.Context, run packRun, meanwhile func() error, each func(f manifest.File, raw []byte, err error) error) error {
	n := run.end - run.start
	release, err := r.budget.Acquire(ctx, n+run.decoded())
	if err != nil {
		return err
	}
	defer release()
	buf := r.bufs.get(n)
	defer r.bufs.put(buf)
	key := r.root + run.key
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	load := func() error { return getSpan(gctx, r.c, key, run.start, *buf, r.pieces()) }
	loaded := make(chan error, 1)
	go func() { loaded <- readChecked(gctx, load) }()
	if meanwhile != nil {
		if err := meanwhile(); err != nil {
			cancel()
			<-loaded
			return err
		}
	}
	if err := <-loaded; err != nil {
		return err
	}
	var grp decodedGroup // a group's files are next to each other: decoded once
	defer grp.release(r.bufs)
	for _, f := range run.files {
		stored := (*buf)[f.Offset-run.start : f.Offset-run.start+f.StoredSize]
		var dst *[]byte // the decoded bytes' buffer, for the next file
		if f.Compression == chunk.Zstd && f.Group == 0 {
			dst = r.bufs.get(f.Size)
		}
		raw, err := r.decodePacked(f, key, stored, dst, &grp)
		if errors.Is(err, ErrVerify) && ctx.Err() == nil {
			if err := load(); err != nil {
				return err
			}
			grp.forget()
			raw, err = r.decodePacked(f, key, stored, dst, &grp)
			err = again(err)
		}
		err = each(f, raw, err)
		if dst != nil {
			r.bufs.put(dst)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodedGroup is the raw bytes of the group last decoded, and which group.
type decodedGroup struct {
	buf  *[]byte
	of   manifest.File // its stored object: Offset, StoredSize, Group, Chunks
	have bool
}

func (g *decodedGroup) holds(f manifest.File) bool {
	return g.have && g.of.Offset == f.Offset && g.of.StoredSize == f.StoredSize && g.of.Group == f.Group &&
		g.of.Chunks[0] == f.Chunks[0]
}

func (g *decodedGroup) forget() { g.have = false }

func (g *decodedGroup) release(bufs *buffers) {
	if g.buf != nil {
		bufs.put(g.buf)
	}
}

// bytes returns a grouped file's bytes in its group, decoding the group
// from stored unless it is the one decoded last.
func (g *decodedGroup) bytes(r *restorer, f manifest.File, key string, stored []byte) ([]byte, error) {
	if !g.holds(f) {
		g.have = false
		if g.buf == nil || int64(cap(*g.buf)) < f.Group {
			g.release(r.bufs)
			g.buf = r.bufs.get(f.Group)
		}
		raw, err := r.decodeStored(f, key, stored, (*g.buf)[:0])
		if err != nil {
			return nil, err
		}
		*g.buf, g.of, g.have = raw, f, true
	}
	return (*g.buf)[f.Skip : f.Skip+f.Size], nil
}

// decodePacked decodes a packed file's stored bytes, into dst when it is
// compressed (into grp's buffer when it is grouped), and checks them.
func (r *restorer) decodePacked(f manifest.File, key string, stored []byte, dst *[]byte, grp *decodedGroup) ([]byte, error) {
	raw := stored
	var err error
	switch {
	case f.Group != 0:
		raw, err = grp.bytes(r, f, key, stored)
	case f.Compression == chunk.Zstd:
		raw, err = r.decodeStored(f, key, stored, (*dst)[:0])
	}
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(raw)
	return raw, r.verify(f, h, int64(len(raw)), key)
}

// decodeStored decodes all of a packed file's chunks (its group's, when
// grouped) from stored, its bytes in the pack, as one group of chunks that
// starts where the file does.
func (r *restorer) decodeStored(f manifest.File, key string, stored, dst []byte) ([]byte, error) {
	chunks := layout(f)
	return decodeGroup(r.dec, key, chunks, group{end: len(chunks), storedOff: f.Offset, crc: true}, stored, dst)
}
