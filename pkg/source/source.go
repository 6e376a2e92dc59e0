// Package source describes the files of a database snapshot in a form that
// does not depend on the database: a backup engine consumes a Set and never
// needs to know whether it came from Cassandra or HBase.
package source

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// File is one regular file of a snapshot.
type File struct {
	// Path is where the file goes on restore: slash-separated, relative to the
	// restore target, never absolute and never containing "..".
	Path string
	// Abs is where the file is read on this node.
	Abs     string
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
	// Dev and Ino identify the inode, so hard links (Cassandra snapshots are
	// hard links of live sstables) are read once. Zero when unknown.
	Dev, Ino uint64
	// Digest is a content checksum the database recorded itself, when it has
	// one (Cassandra's Digest.crc32 of a Data.db): a cheap extra check that a
	// file the index knows is still the same content.
	Digest string
}

// Fingerprint identifies a file's content without reading it: its name,
// inode, size and modification time, and the database's own digest when
// there is one. SSTables and HFiles are immutable and snapshots hard-link
// them, so tomorrow's snapshot of an unchanged file has the same
// fingerprint; the name alone is never enough. The inode change time is
// left out on purpose: every snapshot's hard link changes it.
func (f File) Fingerprint() string {
	return fmt.Sprintf("%s|%d|%d|%d|%s", path.Base(f.Path), f.Ino, f.Size, f.ModTime.UnixNano(), f.Digest)
}

// Set is everything one backup run stores for one node.
type Set struct {
	// Kind names the database: "cassandra" or "hbase".
	Kind string
	// Tag is the snapshot's name (Cassandra tag, HBase snapshot names joined).
	Tag   string
	Files []File
	// Meta is recorded in the backup manifest as is (data dirs, HBase
	// snapshot names and tables, …): small strings for people and restore.
	Meta map[string]string
}

// TotalSize is the sum of the sizes of all files.
func (s *Set) TotalSize() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// CheckPath reports whether p is safe to join under a restore target: a
// relative, clean, slash-separated path that cannot escape it. Manifests are
// input from a bucket that others may write, so every path is checked.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("path %q contains a backslash", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q escapes the target directory", p)
	}
	return nil
}
