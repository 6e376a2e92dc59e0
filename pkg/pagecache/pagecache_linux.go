//go:build linux

package pagecache

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Before notes which pages of the first size bytes of f are cached.
func Before(f *os.File, size int64) *Resident { return before(int(f.Fd()), size) }

func before(fd int, size int64) *Resident {
	// One cachestat (Linux 6.5) tells a file cached whole, or not at all,
	// as most are: no mapping, mincore and unmapping (whose TLB shootdowns
	// cost VM exits; 70 ms of a 1 GiB set's backup went to mmap alone).
	// A file partly cached, or a kernel without cachestat, is mapped.
	// (preadv2 with RWF_NOWAIT would tell too, but a read it refuses starts
	// a readahead that may cache the file again after the drop.)
	page := int64(os.Getpagesize())
	switch cached, ok := cachestat(fd, size); {
	case ok && cached == 0:
		return &Resident{ok: true}
	case ok && cached == (size+page-1)/page:
		return &Resident{ok: true, ranges: [][2]int64{{0, size}}}
	}
	return mapped(fd, size)
}

// mapped is before by mincore: which pages of the file, mapped a window at
// a time, are cached.
func mapped(fd int, size int64) *Resident {
	r := &Resident{ok: true}
	page := int64(os.Getpagesize())
	vec := make([]byte, (min(window, size)+page-1)/page)
	for off := int64(0); off < size; off += window {
		n := min(window, size-off)
		m, err := unix.Mmap(fd, off, int(n), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return &Resident{}
		}
		pages := (n + page - 1) / page
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
		unix.Munmap(m)
		if errno != 0 {
			return &Resident{}
		}
		for i := int64(0); i < pages; i++ {
			if vec[i]&1 != 0 {
				r.add(off+i*page, min(off+(i+1)*page, size))
			}
		}
	}
	return r
}

func (r *Resident) add(start, end int64) {
	if k := len(r.ranges); k > 0 && r.ranges[k-1][1] == start {
		r.ranges[k-1][1] = end
		return
	}
	r.ranges = append(r.ranges, [2]int64{start, end})
}

// Drop drops from the page cache the pages of the first size bytes of f
// that were not cached Before.
func (r *Resident) Drop(f *os.File, size int64) { r.drop(int(f.Fd()), size) }

func (r *Resident) drop(fd int, size int64) {
	if r == nil || !r.ok {
		return
	}
	at := int64(0)
	for _, rg := range r.ranges {
		if rg[0] > at {
			unix.Fadvise(fd, at, rg[0]-at, unix.FADV_DONTNEED)
		}
		at = rg[1]
	}
	if at < size {
		unix.Fadvise(fd, at, 0, unix.FADV_DONTNEED) // to the end, its last partial page too
	}
}

// ReadSmall reads len(p) bytes from the start of the file open as fd, of at most
// SmallFile bytes, and leaves the page cache as it was (Before, the read,
// Drop, without an os.File).
func ReadSmall(fd int, p []byte) error {
	r := before(fd, int64(len(p)))
	if err := readAt(fd, p); err != nil {
		return err
	}
	r.drop(fd, int64(len(p)))
	return nil
}

// cachestat returns how many pages of the first size bytes of fd are in
// the page cache; false when the kernel cannot tell (before Linux 6.5).
func cachestat(fd int, size int64) (int64, bool) {
	if size == 0 {
		return 0, true
	}
	rng := struct{ off, len uint64 }{0, uint64(size)}
	var cs struct{ cache, dirty, writeback, evicted, recentlyEvicted uint64 }
	_, _, errno := unix.Syscall6(unix.SYS_CACHESTAT, uintptr(fd), uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&cs)), 0, 0, 0)
	if errno != 0 {
		return 0, false
	}
	return int64(cs.cache), true
}
