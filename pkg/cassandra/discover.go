// Package cassandra finds the files of a `nodetool snapshot` on a node and
// describes them as a source.Set laid out as <keyspace>/<table>-<id>/…, the
// layout a restore recreates and `nodetool import` reads.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// Logger gets the warnings about directories reached twice through
	// symlinks (nil: discarded).
	Logger *slog.Logger
	// keep is how much of the first listing is kept (0: source.KeepListed,
	// below 0: none), for tests of a set listed a table at a time.
	keep int64
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
	return fmt.Sprintf("snapshot tag %q not found in %s (%s); take one with `nodetool snapshot -t %s`, or let s3bak take it: backup --snapshot",
		e.Tag, strings.Join(e.DataDirs, ", "), have, e.Tag)
}

// Discover walks every data directory for the tag and lists every file
// of the snapshot at once (a grouped set made whole, see DiscoverGroups).
func Discover(ctx context.Context, o Options) (*source.Set, error) {
	set, err := DiscoverGroups(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := set.Whole(ctx); err != nil {
		return nil, err
	}
	return set, nil
}

// DiscoverGroups walks every data directory for the tag and returns the
// snapshot as a grouped set, a table at a time: each table's files (from
// every data directory it has) are listed when the backup reaches the
// table, so memory holds one table's list, not a node's million files. A
// first pass lists every table once, for the totals and to refuse a file
// that cannot be backed up before anything is read; it keeps the lists
// that fit in source.KeepListed for the backup (Set.AddGroup), and drops
// the rest.
func DiscoverGroups(ctx context.Context, o Options) (*source.Set, error) {
	if len(o.DataDirs) == 0 {
		return nil, errors.New("no Cassandra data directory: set --data-dir (repeat it for every data_file_directories entry)")
	}
	if o.Tag == "" {
		return nil, errors.New("no snapshot tag: set --tag")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
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
	tables := tableGroups(once(found, log))
	quiet := slog.New(slog.DiscardHandler) // the first listing logs
	lists, stop := listAhead(ctx, tables, log)
	defer stop()
	for i, g := range tables {
		files, err := lists(i)
		if err != nil {
			return nil, err
		}
		g.files = len(files) // the next listing's size, without counting again
		list := func(ctx context.Context) ([]source.File, error) { return g.list(ctx, quiet) }
		set.AddGroup(source.Group{Key: g.key, List: list}, files, source.FilesMemory(files), o.keep)
	}
	return set, nil
}

// listAhead lists the tables' files in order, the next table while the
// one before is counted: lists(i) waits for table i's list, and takes it
// that table i-1's is counted. At most listsAhead lists are held at once
// (a set's Memory allows two); stop ends the listings not yet handed over.
func listAhead(ctx context.Context, tables []*tableGroup, log *slog.Logger) (lists func(i int) ([]source.File, error), stop func()) {
	type listed struct {
		files []source.File
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make([]chan listed, len(tables))
	for i := range out {
		out[i] = make(chan listed, 1)
	}
	held := make(chan struct{}, listsAhead)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, g := range tables {
			select {
			case held <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				files, err := g.list(ctx, log)
				out[i] <- listed{files, err}
			})
		}
	})
	lists = func(i int) ([]source.File, error) {
		if i > 0 {
			<-held // table i-1's list, counted by now
		}
		r := <-out[i]
		return r.files, r.err
	}
	return lists, func() { cancel(); wg.Wait() }
}

// listsAhead is how many tables are listed at once: a table's thousands
// of fstatat calls are a CPU's work.
const listsAhead = 2

// tableGroup is one restored table directory's snapshot directories (one
// per data directory that has the table).
type tableGroup struct {
	key  string
	dirs []snapDir
	all  []snapDir // every snapshot directory: a symlink to one is not followed
	// files is how many the first listing found (0 before it): the next
	// listing's slice is made that size instead of counting them again.
	files int
}

func (g *tableGroup) list(ctx context.Context, log *slog.Logger) ([]source.File, error) {
	files, err := collect(ctx, g.dirs, g.all, g.files, log)
	if err != nil {
		return nil, err
	}
	return files, source.CheckFiles(files)
}

// tableGroups groups the snapshot directories by restored table
// directory, in path order.
func tableGroups(dirs []snapDir) []*tableGroup {
	byKey := map[string]*tableGroup{}
	var keys []string
	for _, d := range dirs {
		key := d.keyspace + "/" + d.tableDir
		if byKey[key] == nil {
			byKey[key] = &tableGroup{key: key, all: dirs}
			keys = append(keys, key)
		}
		byKey[key].dirs = append(byKey[key].dirs, d)
	}
	slices.SortFunc(keys, source.ComparePaths)
	out := make([]*tableGroup, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

// snapDir is one <ks>/<table>-<id>/snapshots/<tag>/ directory.
type snapDir struct {
	dataDir  int
	keyspace string
	tableDir string // "<table>-<id>" (or "<table>" for pre-2.1 tables)
	abs      string
	viaLink  bool  // reached through a symlink (keyspace, table, snapshots or tag)
	id       dirID // the directory itself, wherever it was reached from
}

// dirID identifies a directory by device and inode, so that one reached
// through several paths (symlinks) is read once, and a symlink loop ends.
type dirID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) dirID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return dirID{uint64(st.Dev), st.Ino}
	}
	return dirID{}
}

// subdir is a directory found in another, possibly through a symlink.
type subdir struct {
	name, path string
	link       bool
	id         dirID
}

// subdirs lists the directories in dir, in name order, with the symlinks
// to directories among them: operators move a keyspace or a table to
// another disk and leave a symlink behind, and its files must not be
// missed. want filters by name before a symlink is followed. A symlink that
// cannot be followed is an error, for the same reason; one to a file is
// not a directory, as before.
func subdirs(dir string, want func(string) bool) ([]subdir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []subdir
	for _, e := range entries {
		if !want(e.Name()) || !(e.IsDir() || e.Type()&fs.ModeSymlink != 0) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			if e.IsDir() {
				return nil, err
			}
			target, _ := os.Readlink(p)
			return nil, fmt.Errorf("%s is a symlink to %s, which cannot be followed (%w): mount or fix it, or remove the link", p, target, err)
		}
		if fi.IsDir() {
			out = append(out, subdir{name: e.Name(), path: p, link: !e.IsDir(), id: idOf(fi)})
		}
	}
	return out, nil
}

func all(string) bool { return true }

// snapshotDirs finds the tag's directories under one data directory and
// records every tag seen, for the error message when the tag is missing.
// Keyspace, table, snapshots and tag directories may be symlinks.
func snapshotDirs(ctx context.Context, dataDir string, o Options, tags map[string]bool) ([]snapDir, error) {
	keyspaces, err := subdirs(dataDir, func(ks string) bool { return wantKeyspace(ks, o) })
	if err != nil {
		return nil, fmt.Errorf("read Cassandra data directory: %w", err)
	}
	var out []snapDir
	for _, ks := range keyspaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tables, err := subdirs(ks.path, func(t string) bool { return wantTable(ks.name, TableName(t), o) })
		if err != nil {
			return nil, fmt.Errorf("read keyspace directory: %w", err)
		}
		for _, t := range tables {
			snaps := filepath.Join(t.path, "snapshots")
			entries, err := subdirs(snaps, all)
			if errors.Is(err, fs.ErrNotExist) {
				if _, lerr := os.Lstat(snaps); lerr != nil {
					continue // no snapshots at all
				}
				target, _ := os.Readlink(snaps)
				err = fmt.Errorf("%s is a symlink to %s, which cannot be followed (%w): mount or fix it, or remove the link", snaps, target, err)
			}
			if err != nil {
				return nil, fmt.Errorf("read snapshots directory: %w", err)
			}
			linked := ks.link || t.link
			if fi, err := os.Lstat(snaps); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				linked = true
			}
			for _, e := range entries {
				tags[e.name] = true
				if e.name == o.Tag {
					out = append(out, snapDir{keyspace: ks.name, tableDir: t.name, abs: e.path, viaLink: linked || e.link, id: e.id})
				}
			}
		}
	}
	return out, nil
}

// once keeps one snapDir per directory: the same snapshot reached through
// a symlink too (a keyspace linked under a second name, a data directory
// given twice) is backed up once, under the path that has no symlink when
// there is one, else the first. The others are logged.
func once(found []snapDir, log *slog.Logger) []snapDir {
	chosen := map[dirID]int{}
	for _, direct := range []bool{true, false} {
		for i, d := range found {
			if _, ok := chosen[d.id]; !ok && d.viaLink != direct {
				chosen[d.id] = i
			}
		}
	}
	var out []snapDir
	for i, d := range found {
		if c := chosen[d.id]; c != i && d.id != (dirID{}) {
			log.Warn("snapshot directory reached twice (through a symlink): backed up once", "skipped", d.abs,
				"backed_up_as", found[c].keyspace+"/"+found[c].tableDir, "from", found[c].abs)
			continue
		}
		out = append(out, d)
	}
	return out
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
