//go:build !linux

package pagecache

import (
	"fmt"
	"io"
	"os"
)

// Before knows nothing of the page cache here.
func Before(f *os.File, size int64) *Resident { return &Resident{} }

// Drop does nothing here.
func (r *Resident) Drop(f *os.File, size int64) {}

// ReadSmall reads len(p) bytes from the start of f.
func ReadSmall(f *os.File, p []byte) error {
	if _, err := f.ReadAt(p, 0); err != nil {
		if err == io.EOF {
			return fmt.Errorf("read: the file is shorter than %d bytes: %w", len(p), io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}
