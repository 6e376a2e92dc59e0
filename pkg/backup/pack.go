package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// DefaultPackSize is the size a pack is uploaded at. Small files (a node
// has thousands: TOC, Statistics, Digest, Summary, Filter…) cost a request,
// an object and the server's per-object work each; packed, a few thousand
// of them are a handful of PUTs.
const DefaultPackSize = 8 << 20

// packsInMemory bounds the packs held at once: one filling, the others
// uploading.
const packsInMemory = 3

// packFiles also ends a pack: the catalog records of a pack's files wait for
// its upload, and tiny files (a few dozen stored bytes each) would fill an
// 8 MiB pack with a hundred thousand of them — all held in memory, and all
// read again after a crash.
const packFiles = 4096

// packer gathers the stored forms of small files into packs, one after the
// other, and uploads each pack once it is full (and the last one when the
// run ends). A packed content is not recorded for checkpoints until its
// pack is stored, so that a checkpoint never offers a content that
// a crash could still lose.
type packer struct {
	ctx   context.Context // the run's: uploads outlive the file workers
	e     *Engine
	size  int64
	slots chan struct{} // a pack's memory, from its start to its upload
	wg    sync.WaitGroup

	mu      sync.Mutex
	cur     *pack
	pending map[string]*pack // by key, until stored
	packs   int
	err     error // the first failed upload: the backup fails
}

type pack struct {
	key   string
	buf   []byte
	crc   uint32 // buf's CRC32C, combined from its objects'
	raw   int64  // the raw bytes of the files in it
	files int
	later []deferredRecord
}

type deferredRecord struct {
	fingerprint string
	f           manifest.File
}

func newPacker(ctx context.Context, e *Engine, size int64) *packer {
	return &packer{ctx: ctx, e: e, size: size, slots: make(chan struct{}, packsInMemory), pending: map[string]*pack{}}
}

// fits reports whether a stored form of n bytes is small enough to pack.
func (p *packer) fits(n int) bool { return p != nil && int64(n) <= p.most() }

// most is the largest stored form packed: a sixteenth of a pack.
func (p *packer) most() int64 { return p.size / 16 }

// add appends obj, the stored form of raw bytes of files (one, or a
// group), whose CRC32C is crc, to the pack being filled and returns the
// pack's key and obj's offset in it. The raw bytes count as done
// (progress) once the pack is stored.
func (p *packer) add(ctx context.Context, obj []byte, crc uint32, raw int64, files int) (key string, off int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return "", 0, p.err
	}
	if p.cur == nil {
		// Waits, lock held, for an upload to give its memory back; uploads
		// do that before they take the lock.
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
		id := make([]byte, 16)
		rand.Read(id)
		p.cur = &pack{key: manifest.PackKey(hex.EncodeToString(id)), buf: make([]byte, 0, p.size+p.size/16)}
		p.pending[p.cur.key] = p.cur
	}
	cur := p.cur
	off = int64(len(cur.buf))
	cur.buf = append(cur.buf, obj...)
	cur.crc = chunk.CombineCRC32C(cur.crc, crc, int64(len(obj)))
	cur.raw += raw
	cur.files += files
	if int64(len(cur.buf)) >= p.size || cur.files >= packFiles {
		p.flushLocked()
	}
	return cur.key, off, nil
}

// deferRecord holds back the catalog record of a content that sits in a pack
// not stored yet, and reports whether it did.
func (p *packer) deferRecord(fingerprint string, f *manifest.File) bool {
	if p == nil || !manifest.IsPackKey(f.Key) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pk, ok := p.pending[f.Key]
	if ok {
		pk.later = append(pk.later, deferredRecord{fingerprint, *f})
	}
	return ok
}

func (p *packer) flushLocked() {
	pk := p.cur
	p.cur = nil
	p.wg.Go(func() { p.upload(pk) })
}

func (p *packer) upload(pk *pack) {
	err := p.e.up.Upload(p.ctx, p.e.opts.Node.Root()+pk.key, transfer.Body{Pieces: [][]byte{pk.buf}, CRC32C: pk.crc, Summed: true})
	n := len(pk.buf)
	pk.buf = nil
	<-p.slots
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = fmt.Errorf("upload pack %s (%d bytes): %w", pk.key, n, err)
		}
		return
	}
	delete(p.pending, pk.key)
	p.packs++
	p.e.opts.Progress.Add(pk.raw)
	if k := p.e.opts.Known; k != nil {
		for _, r := range pk.later {
			k.Record(r.fingerprint, &r.f)
		}
	}
}

// flush uploads the pack being filled, full or not.
func (p *packer) flush() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && len(p.cur.buf) > 0 && p.err == nil {
		p.flushLocked()
	}
}

// close uploads the last pack and waits for every upload; it returns the
// first failure and the number of packs stored.
func (p *packer) close() (int, error) {
	if p == nil {
		return 0, nil
	}
	p.flush()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.packs, p.err
}

// lastPack sends the last pack on its way as soon as no small file is left
// to add to it: once the snapshot is listed and the jobs that may pack
// (groups, and files of at most a chunk) are done, rather than when the
// run's last job is. A node's largest file (the last table's Data.db) is
// often still uploading then, and the pack's round trip and the server's
// work on it go beside that instead of after it. A small file that still
// came after would start a pack of its own: a pack more, nothing lost.
type lastPack struct {
	packs    *packer
	inFlight atomic.Int64 // jobs sent that may pack, not done
	all      atomic.Bool  // every job is sent
}

func (st *state) lastPack() *lastPack { return &lastPack{packs: st.packs} }

func (l *lastPack) mayPack(j *job) bool {
	return l.packs != nil && (j.group != nil || l.packs.e.storedWhole(j.f.Size))
}

func (l *lastPack) sent(j *job) {
	if l.mayPack(j) {
		l.inFlight.Add(1)
	}
}

func (l *lastPack) done(j *job) {
	if l.mayPack(j) && l.inFlight.Add(-1) == 0 && l.all.Load() {
		l.packs.flush()
	}
}

func (l *lastPack) listed() {
	l.all.Store(true)
	if l.inFlight.Load() == 0 {
		l.packs.flush()
	}
}
