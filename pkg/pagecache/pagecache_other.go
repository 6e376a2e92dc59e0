//go:build !linux

package pagecache

import "os"

// Before knows nothing of the page cache here.
func Before(f *os.File, size int64) *Resident { return &Resident{} }

// Drop does nothing here.
func (r *Resident) Drop(f *os.File, size int64) {}

// ReadSmall reads len(p) bytes from the start of the file open as fd.
func ReadSmall(fd int, p []byte) error { return readAt(fd, p) }
