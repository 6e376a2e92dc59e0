// Package source describes the files of a database snapshot in a form that
// does not depend on the database: a backup engine consumes a Set and never
// needs to know whether it came from Cassandra or HBase.
package source

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// File is one regular file of a snapshot.
type File struct {
	// Path is where the file goes on restore: slash-separated, relative to the
	// restore target, never absolute and never containing "..".
	Path string
	// Dir is the directory the file is read from on this node, and Name
	// its name there (see Abs). Name is "" when it is Path's last element,
	// as it is for all but renamed files: a node's million files then
	// share their directories' strings instead of holding a path each.
	Dir, Name string
	Size      int64
	Mode      fs.FileMode
	ModTime   time.Time
	// Dev and Ino identify the inode, so hard links (Cassandra snapshots are
	// hard links of live sstables) are read once. Zero when unknown.
	Dev, Ino uint64
	// Digest is a content checksum the database recorded itself, when it has
	// one (Cassandra's Digest.crc32 of a Data.db): a cheap extra check that a
	// file the catalog knows is still the same content.
	Digest string
}

// Abs is where the file is read on this node.
func (f *File) Abs() string {
	name := f.Name
	if name == "" {
		name = path.Base(f.Path)
	}
	return filepath.Join(f.Dir, name)
}

// SetAbs makes abs where the file is read (after Path is set).
func (f *File) SetAbs(abs string) {
	f.Dir, f.Name = filepath.Dir(abs), filepath.Base(abs)
	if f.Name == path.Base(f.Path) {
		f.Name = ""
	}
}

// Rename restores the file as p, still reading it where it is.
func (f *File) Rename(p string) {
	if f.Name == "" {
		f.Name = path.Base(f.Path)
	}
	f.Path = p
}

// Fingerprint identifies a file's content without reading it: its name,
// inode, size and modification time, and the database's own digest when
// there is one. SSTables and HFiles are immutable and snapshots hard-link
// them, so tomorrow's snapshot of an unchanged file has the same
// fingerprint; the name alone is never enough. The inode change time is
// left out on purpose: every snapshot's hard link changes it.
func (f File) Fingerprint() string {
	name := path.Base(f.Path)
	if !utf8.ValidString(name) {
		// The index is JSON, which would turn the invalid bytes into
		// U+FFFD: names that differ only there would share a fingerprint.
		name = "b64:" + base64.StdEncoding.EncodeToString([]byte(name))
	}
	// As fmt.Sprintf("%s|%d|%d|%d|%s") writes it, at a tenth of the cost:
	// every file of every backup has one (4% of a small-files backup's CPU).
	b := make([]byte, 0, len(name)+len(f.Digest)+64)
	b = append(b, name...)
	b = strconv.AppendUint(append(b, '|'), f.Ino, 10)
	b = strconv.AppendInt(append(b, '|'), f.Size, 10)
	b = strconv.AppendInt(append(b, '|'), f.ModTime.UnixNano(), 10)
	b = append(append(b, '|'), f.Digest...)
	return string(b)
}

// Set is everything one backup run stores for one node.
type Set struct {
	// Kind names the database: "cassandra" or "hbase".
	Kind string
	// Tag is the snapshot's name (Cassandra tag, HBase snapshot names joined).
	Tag   string
	Files []File
	// Groups, when set instead of Files, lists the files a part at a time
	// (a Cassandra table, an HBase region), so that a node of a million
	// files never holds them all; Totals describes them all.
	Groups []Group
	Totals Totals
	// Meta is recorded in the backup manifest as is (data dirs, HBase
	// snapshot names and tables, …): small strings for people and restore.
	Meta map[string]string

	kept int64 // the memory of the first listings AddGroup keeps
}

// KeepListed is how much of a grouped set's first listing AddGroup keeps
// for the backup, a group at a time in path order, instead of it being
// listed again: a node of tens of thousands of files is listed once (a
// second listing was a tenth of the CPU of a backup of 10,000 small
// files), one of a million still holds a group at a time.
const KeepListed = 8 << 20

// AddGroup adds g to a grouped set from its first listing, made to count
// the totals and to refuse what cannot be backed up before anything is
// read: first counts into Totals, its memory (FilesMemory at least, more
// for what listing the group takes) into Totals.Memory, and the list is
// kept for g's first List while the lists kept stay within keep bytes
// (KeepListed when 0, none when negative). g.List lists afresh after
// that. A set is listed by one caller at a time.
func (s *Set) AddGroup(g Group, first []File, memory, keep int64) {
	t := &s.Totals
	t.Files += len(first)
	for _, f := range first {
		t.Bytes += f.Size
		t.Largest = max(t.Largest, f.Size)
	}
	t.Memory = max(t.Memory, memory)
	if len(first) > 0 && s.kept+memory <= cmp.Or(keep, KeepListed) {
		s.kept += memory
		t.Memory = max(t.Memory, s.kept)
		list := g.List
		g.List = func(ctx context.Context) ([]File, error) {
			if files := first; files != nil {
				first = nil
				return files, nil
			}
			return list(ctx)
		}
	}
	s.Groups = append(s.Groups, g)
}

// Group is a part of a grouped set: the files under one directory (Key,
// relative), or a run of the files of one directory (Key: the first),
// listed afresh by each call of List, checked and sorted by path. Groups
// come in the order of their paths (ComparePaths): every path of a group
// comes before every path of the next, so that the files of all groups in
// turn are sorted, and no path of one is a path, or the directory of a
// path, of another.
type Group struct {
	Key  string
	List func(ctx context.Context) ([]File, error)
}

// Totals describes a grouped set's files, from a first pass.
type Totals struct {
	Files   int
	Bytes   int64
	Largest int64 // the largest file's size
	// Memory is about what the set holds in memory at most: the largest
	// group's list, and what the groups keep to list their files (an
	// HBase set's index of regions).
	Memory int64
}

// Each hands fn the set's files: all of them, or one group at a time. A
// group that does not follow the one before in path order is refused
// before fn sees it: a manifest lists every file in that order, and would
// refuse it only once the group's files are uploaded.
func (s *Set) Each(ctx context.Context, fn func([]File) error) error {
	if s.Groups == nil {
		return fn(s.Files)
	}
	last := "" // the previous group's last path
	for _, g := range s.Groups {
		files, err := g.List(ctx)
		if err != nil {
			return err
		}
		if len(files) > 0 {
			first := files[0].Path
			if last != "" && (ComparePaths(last, first) >= 0 || strings.HasPrefix(first, last+"/")) {
				return fmt.Errorf("the files of %s (%s) do not all come after those before (%s): a grouped set out of order", g.Key, first, last)
			}
			last = files[len(files)-1].Path
		}
		if err := fn(files); err != nil {
			return err
		}
	}
	return nil
}

// Whole lists a grouped set's groups into Files, for callers that want
// every file at once (tests, small sets), and checks the whole.
func (s *Set) Whole(ctx context.Context) error {
	if s.Groups == nil {
		return s.Check()
	}
	files := make([]File, 0, s.Totals.Files)
	err := s.Each(ctx, func(g []File) error {
		files = append(files, g...)
		return nil
	})
	if err != nil {
		return err
	}
	s.Files, s.Groups = files, nil
	return s.Check()
}

// Count is the number of files.
func (s *Set) Count() int {
	if s.Groups != nil {
		return s.Totals.Files
	}
	return len(s.Files)
}

// Memory is about what the set holds in memory at most: its files and
// their names (the directories' strings are shared), or twice its largest
// group.
func (s *Set) Memory() int64 {
	if s.Groups != nil {
		// A group is listed while the last files of the one before are
		// still being stored: two lists are held at once.
		return 2 * s.Totals.Memory
	}
	return FilesMemory(s.Files)
}

// FilesMemory is about what files hold in memory.
func FilesMemory(files []File) int64 {
	n := int64(cap(files)) * int64(unsafe.Sizeof(File{}))
	for _, f := range files {
		n += int64(len(f.Path) + len(f.Name) + len(f.Digest))
	}
	return n
}

// TotalSize is the sum of the sizes of all files.
func (s *Set) TotalSize() int64 {
	if s.Groups != nil {
		return s.Totals.Bytes
	}
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// LargestFile is the size of the largest file.
func (s *Set) LargestFile() int64 {
	if s.Groups != nil {
		return s.Totals.Largest
	}
	var n int64
	for _, f := range s.Files {
		n = max(n, f.Size)
	}
	return n
}

// Check refuses, before anything is read or uploaded, a set whose paths a
// manifest could not hold or a restore could not recreate, naming the file.
// Names are kept as their exact bytes (not UTF-8, a backslash: all fine on
// Linux), so this refuses only what cannot be a relative path under a
// restore target, and two files of the same path. It sorts the files (Sort):
// then a path listed twice, or a file that is also another's directory,
// is next to the other, and no map of every path is needed.
func (s *Set) Check() error { return CheckFiles(s.Files) }

// CheckFiles is Set.Check of files (which it sorts).
func CheckFiles(files []File) error {
	for _, f := range files {
		if err := CheckPath(f.Path); err != nil {
			return fmt.Errorf("cannot back up %s: its name cannot be restored as it is: %w", f.Abs(), err)
		}
	}
	Sort(files)
	for i := 1; i < len(files); i++ {
		prev, f := &files[i-1], &files[i]
		switch {
		case prev.Path == f.Path:
			return fmt.Errorf("cannot back up both %s and %s: both would be restored as %q", prev.Abs(), f.Abs(), f.Path)
		case strings.HasPrefix(f.Path, prev.Path+"/"):
			return fmt.Errorf("cannot back up both %s and %s: %q would have to be both a file and the directory of %q", prev.Abs(), f.Abs(), prev.Path, f.Path)
		}
	}
	return nil
}

// Sort orders the files by path as manifests list them (ComparePaths),
// keeping the order of files of the same path.
func (s *Set) Sort() { Sort(s.Files) }

// Sort orders files by path (ComparePaths), stably. A listing is mostly in
// that order already, which one pass tells: a stable sort of 10,000 sorted
// files still costs their n·log n comparisons, 5 ms ahead of every backup.
func Sort(files []File) {
	byPath := func(a, b File) int { return ComparePaths(a.Path, b.Path) }
	if !slices.IsSortedFunc(files, byPath) {
		slices.SortStableFunc(files, byPath)
	}
}

// ComparePaths orders paths as a depth-first walk of sorted directories
// meets them: component by component, a directory's files before a
// sibling whose name merely starts with the directory's ("a/b" before
// "a.b"). That is byte order with '/' below every other byte. A file is
// then directly followed by the paths under it, if any.
func ComparePaths(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// CheckPath reports whether p is safe to join under a restore target: a
// relative, clean, slash-separated path that cannot escape it. Manifests are
// input from a bucket that others may write, so every path is checked. A
// path is a file name's exact bytes: it need not be UTF-8, and a backslash
// is an ordinary byte of a name where '/' is the only separator (Linux);
// only where a backslash separates paths (Windows) is it refused, so that a
// hostile manifest cannot smuggle a separator in.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case filepath.Separator != '/' && strings.Contains(p, `\`):
		return fmt.Errorf("path %q contains a backslash, a path separator on this system", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean", p)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q escapes the target directory", p)
	}
	return nil
}
