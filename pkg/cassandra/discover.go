// Package cassandra finds the files of a `nodetool snapshot` on a node and
// describes them as a source.Set laid out as <keyspace>/<table>-<id>/…, the
// layout a restore recreates and `nodetool import` reads.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/s3bak/s3bak/pkg/source"
)

// Options select what to back up.
type Options struct {
	DataDirs      []string // every data_file_directories entry
	Tag           string
	Keyspaces     []string // empty: all
	Tables        []string // "table" or "keyspace.table"; empty: all
	IncludeSystem bool
}

// systemKeyspaces are node-local (restoring them breaks the node's identity
// and tokens) or virtual; system_auth, system_distributed and system_traces
// are replicated and may be backed up with IncludeSystem.
var systemKeyspaces = map[string]bool{
	"system": true, "system_schema": true, "system_cluster_metadata": true, "system_accord": true,
	"system_views": true, "system_virtual_schema": true,
	"system_auth": true, "system_distributed": true, "system_traces": true,
}

// TagNotFoundError lists the snapshot tags that do exist.
type TagNotFoundError struct {
	Tag      string
	DataDirs []string
	Existing []string
}

func (e *TagNotFoundError) Error() string {
	have := "no snapshots at all"
	if len(e.Existing) > 0 {
		have = "existing tags: " + strings.Join(e.Existing, ", ")
	}
	return fmt.Sprintf("snapshot tag %q not found in %s (%s); take one with `nodetool snapshot -t %s`",
		e.Tag, strings.Join(e.DataDirs, ", "), have, e.Tag)
}

// Discover walks every data directory for the tag.
func Discover(ctx context.Context, o Options) (*source.Set, error) {
	if len(o.DataDirs) == 0 {
		return nil, errors.New("no Cassandra data directory: set --data-dir (repeat it for every data_file_directories entry)")
	}
	if o.Tag == "" {
		return nil, errors.New("no snapshot tag: set --tag")
	}
	set := &source.Set{Kind: "cassandra", Tag: o.Tag, Meta: map[string]string{"data_dirs": strings.Join(o.DataDirs, ",")}}
	tags := map[string]bool{}
	var found []snapDir
	for i, d := range o.DataDirs {
		dirs, err := snapshotDirs(ctx, d, o, tags)
		if err != nil {
			return nil, err
		}
		for _, s := range dirs {
			s.dataDir = i
			found = append(found, s)
		}
	}
	if len(found) == 0 {
		existing := make([]string, 0, len(tags))
		for t := range tags {
			existing = append(existing, t)
		}
		sort.Strings(existing)
		return nil, &TagNotFoundError{Tag: o.Tag, DataDirs: o.DataDirs, Existing: existing}
	}
	files, err := collect(ctx, found)
	if err != nil {
		return nil, err
	}
	set.Files = files
	return set, nil
}

// snapDir is one <ks>/<table>-<id>/snapshots/<tag>/ directory.
type snapDir struct {
	dataDir  int
	keyspace string
	tableDir string // "<table>-<id>" (or "<table>" for pre-2.1 tables)
	abs      string
}

// snapshotDirs finds the tag's directories under one data directory and
// records every tag seen, for the error message when the tag is missing.
func snapshotDirs(ctx context.Context, dataDir string, o Options, tags map[string]bool) ([]snapDir, error) {
	keyspaces, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("read Cassandra data directory: %w", err)
	}
	var out []snapDir
	for _, ks := range keyspaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !ks.IsDir() || !wantKeyspace(ks.Name(), o) {
			continue
		}
		tables, err := os.ReadDir(filepath.Join(dataDir, ks.Name()))
		if err != nil {
			return nil, fmt.Errorf("read keyspace directory: %w", err)
		}
		for _, t := range tables {
			if !t.IsDir() || !wantTable(ks.Name(), TableName(t.Name()), o) {
				continue
			}
			snaps := filepath.Join(dataDir, ks.Name(), t.Name(), "snapshots")
			entries, err := os.ReadDir(snaps)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("read snapshots directory: %w", err)
			}
			for _, e := range entries {
				if e.IsDir() {
					tags[e.Name()] = true
				}
				if e.IsDir() && e.Name() == o.Tag {
					out = append(out, snapDir{keyspace: ks.Name(), tableDir: t.Name(), abs: filepath.Join(snaps, e.Name())})
				}
			}
		}
	}
	return out, nil
}

// TableName strips the "-<id>" suffix of a table directory. Names are \w+,
// so the last '-' separates the id.
func TableName(dir string) string {
	if i := strings.LastIndexByte(dir, '-'); i > 0 {
		return dir[:i]
	}
	return dir
}

func wantKeyspace(ks string, o Options) bool {
	if systemKeyspaces[ks] && !o.IncludeSystem {
		return false
	}
	if ks == "system_views" || ks == "system_virtual_schema" {
		return false
	}
	return len(o.Keyspaces) == 0 || slices.Contains(o.Keyspaces, ks)
}

func wantTable(ks, table string, o Options) bool {
	if len(o.Tables) == 0 {
		return true
	}
	return slices.Contains(o.Tables, table) || slices.Contains(o.Tables, ks+"."+table)
}

// collect lists the files of every snapshot directory. Index sstables live
// in ".<index>/" subdirectories. Ephemeral (repair) snapshots are skipped.
func collect(ctx context.Context, dirs []snapDir) ([]source.File, error) {
	var files []source.File
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d.abs, "ephemeral.snapshot")); err == nil {
			continue
		}
		err := filepath.WalkDir(d.abs, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("read snapshot: %w", err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(d.abs, p)
			f, err := statFile(p)
			if err != nil {
				return err
			}
			f.Path = d.keyspace + "/" + d.tableDir + "/" + filepath.ToSlash(rel)
			f.Digest = dataDigest(p)
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return renameCollisions(files)
}

func statFile(p string) (source.File, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return source.File{}, fmt.Errorf("stat snapshot file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return source.File{}, fmt.Errorf("snapshot file %s is not a regular file (%v): snapshots hold hard links, not symlinks", p, fi.Mode().Type())
	}
	f := source.File{Abs: p, Size: fi.Size(), Mode: fi.Mode().Perm(), ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.Dev, f.Ino = uint64(st.Dev), st.Ino
	}
	return f, nil
}

// dataDigest returns the checksum Cassandra wrote for a Data.db in its
// Digest component (crc32 since 2.1; sha1 and adler32 before), or "" for
// other components and when there is none. It only sharpens the index's
// fingerprint, so a missing or odd digest is not an error.
func dataDigest(dataPath string) string {
	base, ok := strings.CutSuffix(dataPath, "Data.db")
	if !ok {
		return ""
	}
	for _, ext := range []string{"Digest.crc32", "Digest.sha1", "Digest.adler32"} {
		b, err := os.ReadFile(base + ext)
		if err == nil && len(b) <= 128 {
			return ext[len("Digest."):] + ":" + strings.TrimSpace(string(b))
		}
	}
	return ""
}
