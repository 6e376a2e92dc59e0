package manifest

import (
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/source"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckName accepts cluster and node names and backup ids: they become
// parts of object keys.
func CheckName(what, s string) error {
	if !nameRE.MatchString(s) || strings.Contains(s, "..") {
		return fmt.Errorf("%s %q: use letters, digits, '.', '_' and '-' (up to 128, no '..')", what, s)
	}
	return nil
}

// Validate checks everything a restore relies on.
func (m *Manifest) Validate() error {
	if err := m.validateHeader(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(m.Files))
	for i := range m.Files {
		f := &m.Files[i]
		if err := f.Validate(); err != nil {
			return fmt.Errorf("file %d (%q): %w", i, f.Path, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("file %q is listed twice", f.Path)
		}
		seen[f.Path] = true
	}
	// A path that is also the directory of another would make one of them
	// impossible to restore.
	for p := range seen {
		for dir := p; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndexByte(dir, '/')]
			if seen[dir] {
				return fmt.Errorf("file %q is also the directory of %q", dir, p)
			}
		}
	}
	return nil
}

// validateHeader checks the schema and the names that become keys.
func (m *Manifest) validateHeader() error {
	if m.Schema < 1 || m.Schema > MaxSchema {
		return fmt.Errorf("schema version %d is not supported by this s3bak (it reads up to %d): upgrade s3bak", m.Schema, MaxSchema)
	}
	for what, v := range map[string]string{"backup id": m.ID, "cluster": m.Cluster, "node": m.Node} {
		if err := CheckName(what, v); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks one file entry: path, key, sizes, checksum and chunk index.
func (f *File) Validate() error {
	if err := source.CheckPath(f.Path); err != nil {
		return err
	}
	if err := CheckKey(f.Key); err != nil {
		return err
	}
	if f.Size < 0 || f.StoredSize < 0 || f.Offset < 0 {
		return fmt.Errorf("negative size or offset")
	}
	if f.Offset > 0 && !IsPackKey(f.Key) {
		return fmt.Errorf("offset %d into object %s, which is not a pack", f.Offset, f.Key)
	}
	if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", f.SHA256)
	}
	if f.Mode&^fs.ModePerm != 0 {
		return fmt.Errorf("mode %v is not plain permission bits", f.Mode)
	}
	switch f.Compression {
	case chunk.None:
		if f.Group != 0 || f.Skip != 0 {
			return fmt.Errorf("an uncompressed object is never a group")
		}
		if f.StoredSize != f.Size {
			return fmt.Errorf("uncompressed object of %d bytes for a %d-byte file", f.StoredSize, f.Size)
		}
		return nil
	case chunk.Zstd:
		if f.Group != 0 || f.Skip != 0 {
			return f.validateGroup()
		}
		return f.validateChunks()
	}
	return fmt.Errorf("compression %q is not known", f.Compression)
}

// MaxGroup bounds a group's raw bytes, which a restore holds decoded (s3bak
// writes groups of at most 128 KiB).
const MaxGroup = 1 << 20

// validateGroup checks a grouped file: a packed group of at most MaxGroup
// raw bytes in one chunk, and the file within it. Its ChunkSize is 0, as an
// s3bak that knows no groups refuses: it would restore the whole group.
func (f *File) validateGroup() error {
	if !IsPackKey(f.Key) {
		return fmt.Errorf("a group in object %s, which is not a pack", f.Key)
	}
	if f.ChunkSize != 0 {
		return fmt.Errorf("a group has no chunk size, got %d", f.ChunkSize)
	}
	if f.Group <= 0 || f.Group > MaxGroup {
		return fmt.Errorf("group of %d raw bytes out of range (1 to %d)", f.Group, MaxGroup)
	}
	if f.Skip < 0 || f.Size > f.Group-f.Skip {
		return fmt.Errorf("%d bytes from %d do not fit in a group of %d", f.Size, f.Skip, f.Group)
	}
	if len(f.Chunks) != 1 {
		return fmt.Errorf("%d chunks listed, a group has 1", len(f.Chunks))
	}
	return f.validateStored(2 * MaxGroup)
}

func (f *File) validateChunks() error {
	if f.ChunkSize <= 0 || f.ChunkSize > chunk.MaxChunkSize {
		return fmt.Errorf("chunk size %d out of range", f.ChunkSize)
	}
	if want := chunk.NumChunks(f.Size, f.ChunkSize); len(f.Chunks) != want {
		return fmt.Errorf("%d chunks listed, a %d-byte file has %d", len(f.Chunks), f.Size, want)
	}
	return f.validateStored(2 * chunk.MaxChunkSize)
}

// validateStored checks that each chunk's stored size is in (0, most] and
// that the chunks and their seek table make the file's stored size.
func (f *File) validateStored(most int64) error {
	var stored int64
	for _, c := range f.Chunks {
		if c.Stored <= 0 || c.Stored > most {
			return fmt.Errorf("chunk stored size %d out of range", c.Stored)
		}
		stored += c.Stored
	}
	if len(f.Chunks) > 0 {
		stored += chunk.SeekTableSize(len(f.Chunks))
	}
	if stored != f.StoredSize {
		return fmt.Errorf("chunks add up to %d stored bytes, the file says %d", stored, f.StoredSize)
	}
	return nil
}

// CheckKey accepts object keys relative to a node's root: they must name
// an object under data/, so a hostile manifest cannot point a restore at
// anything else in the bucket.
func CheckKey(key string) error {
	if err := source.CheckPath(key); err != nil {
		return fmt.Errorf("object key: %w", err)
	}
	if strings.Contains(key, `\`) {
		return fmt.Errorf("object key %q contains a backslash", key)
	}
	if !strings.HasPrefix(key, DataDir+"/") {
		return fmt.Errorf("object key %q is not under %s/", key, DataDir)
	}
	return nil
}
