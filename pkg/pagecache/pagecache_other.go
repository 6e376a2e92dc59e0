//go:build !linux

package pagecache

import "os"

// Before knows nothing of the page cache here.
func Before(f *os.File, size int64) *Resident { return &Resident{} }

// Drop does nothing here.
func (r *Resident) Drop(f *os.File, size int64) {}
