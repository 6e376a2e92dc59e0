package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/s3bak/s3bak/pkg/manifest"
)

// window is how many files may be dispatched beyond the first one not yet
// written to the manifest: a large file holds back the records of the
// small files after it only this far (some 300 bytes each in memory).
const window = 16384

// ordered writes the manifest's records in the set's order while files
// finish in any order: a file's record waits, in memory, only for those
// before it, and no more than window files are in flight or waiting. The
// records go compressed into a temporary file, not into memory.
type ordered struct {
	f     *os.File
	w     *manifest.Writer
	slots chan struct{}

	mu   sync.Mutex
	next int
	held map[int]manifest.File
	keys map[string]bool // the objects the records reference: packs hold thousands of files
	err  error
}

func newOrdered(dir string) (*ordered, error) {
	f, err := os.CreateTemp(dir, "s3bak-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the manifest (set TMPDIR to a writable directory): %w", err)
	}
	os.Remove(f.Name()) // nothing left behind, whatever ends the run
	w, err := manifest.NewWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &ordered{f: f, w: w, slots: make(chan struct{}, window), held: map[int]manifest.File{}, keys: map[string]bool{}}, nil
}

// reserve waits for room in the window for one more file.
func (o *ordered) reserve(ctx context.Context) error {
	select {
	case o.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// put takes file i's record and writes every record that is now next.
func (o *ordered) put(i int, f manifest.File) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	o.held[i] = f
	for {
		f, ok := o.held[o.next]
		if !ok {
			return nil
		}
		delete(o.held, o.next)
		o.next++
		<-o.slots
		if err := o.w.Add(&f); err != nil {
			o.err = fmt.Errorf("manifest: %w", err)
			return o.err
		}
		if f.Key != "" {
			o.keys[f.Key] = true
		}
	}
}

// end checks that all n records were written and closes the records'
// stream.
func (o *ordered) end(n int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if o.next != n {
		return fmt.Errorf("manifest: %d of %d files written", o.next, n)
	}
	return o.w.Close()
}

// referenced is the distinct objects the records reference, sorted.
func (o *ordered) referenced() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.keys))
}

// size is the compressed records' size.
func (o *ordered) size() int64 {
	fi, err := o.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// object is the stored manifest — head, the records, tail — read from
// the temporary file as it is sent (and again for a retry), never whole in
// memory; and its size.
func (o *ordered) object(head, tail []byte) (*io.SectionReader, int64) {
	parts := concat{
		{bytes.NewReader(head), int64(len(head))},
		{o.f, o.size()},
		{bytes.NewReader(tail), int64(len(tail))},
	}
	n := parts.size()
	return io.NewSectionReader(parts, 0, n), n
}

// concat reads its parts one after the other.
type concat []struct {
	r io.ReaderAt
	n int64
}

func (c concat) size() (n int64) {
	for _, p := range c {
		n += p.n
	}
	return n
}

func (c concat) ReadAt(b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	done := 0
	for _, p := range c {
		if off >= p.n {
			off -= p.n
			continue
		}
		want := min(int64(len(b)-done), p.n-off)
		n, err := p.r.ReadAt(b[done:done+int(want)], off)
		done += n
		if err != nil && !(err == io.EOF && int64(n) == want) {
			return done, err
		}
		off = 0
		if done == len(b) {
			return done, nil
		}
	}
	return done, io.EOF
}

func (o *ordered) close() { o.f.Close() }
