//go:build unix

package hbase

import (
	"io/fs"
	"syscall"
)

// inode returns the device and inode numbers of fi, so the engine can read
// hard-linked files once.
func inode(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) // field types differ per OS
	}
	return 0, 0
}
