package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// fileSum is what a restored file is checked against.
type fileSum struct {
	size int64
	sha  [32]byte
}

// tree is a generated snapshot under dataDir.
type tree struct {
	dataDir string
	tag     string
	files   map[string]fileSum // by slash path under dataDir
	bytes   int64
}

// writeTree generates the plan's files under dataDir. Every file's bytes
// depend only on the seed and its path, so a tree is the same on every run.
func writeTree(dataDir string, p *plan, seed uint64) (*tree, error) {
	t := &tree{dataDir: dataDir, tag: p.tag, files: map[string]fileSum{}}
	return t, t.add(p, seed)
}

// writeTreeParallel is writeTree on every CPU, for trees of a million
// files: the plan's specs are cut at sstable boundaries (its Digest.crc32
// needs its Data.db's CRC32, written before it by the same worker). The
// tree is the same as writeTree's.
func writeTreeParallel(dataDir string, p *plan, seed uint64) (*tree, error) {
	t := &tree{dataDir: dataDir, tag: p.tag, files: make(map[string]fileSum, len(p.specs))}
	for _, tb := range p.tables {
		if err := os.MkdirAll(filepath.Join(dataDir, filepath.FromSlash(tb.snapDir(p.tag))), 0o755); err != nil {
			return nil, err
		}
	}
	const batch = 64 * 8 // whole sstables of 8 components
	work := make(chan []fileSpec)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range runtime.NumCPU() {
		wg.Go(func() {
			buf := make([]byte, 0, 1<<20+64<<10)
			sums := make([]fileSum, 0, batch)
			for specs := range work {
				crcs := map[string]uint32{}
				sums = sums[:0]
				var err error
				for _, s := range specs {
					if !strings.Contains(s.rel, "/snapshots/") || s.kind == kMeta {
						err = fmt.Errorf("generate %s: not an sstable component of a snapshot", s.rel)
						break
					}
					path := filepath.Join(dataDir, filepath.FromSlash(s.rel))
					var sum fileSum
					var crc uint32
					if sum, crc, err = writeFile(path, s, seed, crcs, buf); err != nil {
						err = fmt.Errorf("generate %s: %w", s.rel, err)
						break
					}
					if s.kind == kData {
						crcs[strings.TrimSuffix(s.rel, "Data.db")] = crc
					}
					sums = append(sums, sum)
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for i, sum := range sums {
					t.files[specs[i].rel] = sum
					t.bytes += sum.size
				}
				mu.Unlock()
			}
		})
	}
	for i := 0; i < len(p.specs); i += batch {
		work <- p.specs[i:min(i+batch, len(p.specs))]
	}
	close(work)
	wg.Wait()
	return t, errors.Join(errs...)
}

// add writes the plan's files into the tree.
func (t *tree) add(p *plan, seed uint64) error {
	buf := make([]byte, 0, 1<<20+64<<10)
	crcs := map[string]uint32{} // Data.db CRC32 by sstable prefix
	for _, s := range p.specs {
		path := filepath.Join(t.dataDir, filepath.FromSlash(s.rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		sum, crc, err := writeFile(path, s, seed, crcs, buf)
		if err != nil {
			return fmt.Errorf("generate %s: %w", s.rel, err)
		}
		if s.kind == kData {
			crcs[strings.TrimSuffix(s.rel, "Data.db")] = crc
		}
		t.files[s.rel] = sum
		t.bytes += sum.size
	}
	return nil
}

func writeFile(path string, s fileSpec, seed uint64, crcs map[string]uint32, buf []byte) (fileSum, uint32, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fileSum{}, 0, err
	}
	h, c := sha256.New(), crc32.NewIEEE()
	cw := &countWriter{w: io.MultiWriter(f, h, c)}
	switch s.kind {
	case kDigest:
		_, err = fmt.Fprintf(cw, "%d", crcs[strings.TrimSuffix(s.rel, "Digest.crc32")])
	case kTOC:
		_, err = io.WriteString(cw, strings.Join(components, "\n")+"\n")
	case kMeta:
		_, err = io.WriteString(cw, s.text)
	default:
		hf := fnv.New64a()
		hf.Write([]byte(s.rel))
		err = fill(cw, newFiller(s.kind, rand.New(rand.NewPCG(seed, hf.Sum64()))), s.size, buf)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var sum fileSum
	sum.size = cw.n
	copy(sum.sha[:], h.Sum(nil))
	return sum, c.Sum32(), err
}

// fill writes size bytes of the filler's units in 1 MiB writes.
func fill(w io.Writer, f filler, size int64, buf []byte) error {
	for size > 0 {
		buf = buf[:0]
		for len(buf) < 1<<20 && int64(len(buf)) < size {
			buf = f.unit(buf)
		}
		n := min(int64(len(buf)), size)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// linkSnapshot hard-links every file of the tree's snapshot into a new tag
// of the same tables, as `nodetool snapshot` does for sstables that did not
// change, and returns the new snapshot's tree (the links only).
func (t *tree) linkSnapshot(tag string) (*tree, error) {
	out := &tree{dataDir: t.dataDir, tag: tag, files: map[string]fileSum{}}
	from := "/snapshots/" + t.tag + "/"
	for rel, sum := range t.files {
		i := strings.Index(rel, from)
		if i < 0 {
			continue
		}
		nrel := rel[:i] + "/snapshots/" + tag + "/" + rel[i+len(from):]
		dst := filepath.Join(t.dataDir, filepath.FromSlash(nrel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Link(filepath.Join(t.dataDir, filepath.FromSlash(rel)), dst); err != nil {
			return nil, err
		}
		out.files[nrel] = sum
		out.bytes += sum.size
	}
	return out, nil
}

// restoredAs maps the tree's paths to where s3bak restore puts them:
// <keyspace>/<table>-<id>/<file>, without snapshots/<tag>/.
func (t *tree) restoredAs() map[string]fileSum {
	out := make(map[string]fileSum, len(t.files))
	cut := "/snapshots/" + t.tag + "/"
	for rel, sum := range t.files {
		out[strings.Replace(rel, cut, "/", 1)] = sum
	}
	return out
}
