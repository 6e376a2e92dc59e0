// Package hbase turns HBase snapshots on a local (or mounted) hbase.rootdir
// into a source.Set whose Paths form exactly the tree HBase's ExportSnapshot
// writes to its destination:
//
//	.hbase-snapshot/<name>/…                          the snapshot directory, copied whole
//	archive/data/<ns>/<table>/<region>/<cf>/<hfile>   every store file it needs
//
// Restoring the Set to a directory therefore yields a "mini rootdir" that
// HBase accepts once it is moved into hbase.rootdir (see RestoreSteps).
package hbase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/s3bak/s3bak/pkg/source"
)

// All selects every completed snapshot in Options.Snapshots.
const All = "all"

// Options selects what Discover backs up.
type Options struct {
	// Root is hbase.rootdir as a local path (file://, NFS, FUSE-mounted HDFS).
	Root string
	// Snapshots are snapshot names, or just All.
	Snapshots []string
	// keep is how much of the first listing is kept (0:
	// source.KeepListed, below 0: none), for tests of a set listed a
	// region at a time.
	keep int64
}

// Snapshot types (SnapshotDescription.Type).
const (
	TypeDisabled  int32 = 0
	TypeFlush     int32 = 1
	TypeSkipFlush int32 = 2
)

// SnapshotInfo is a decoded .snapshotinfo (SnapshotDescription).
type SnapshotInfo struct {
	Name         string
	Table        string // "ns:table", or "table" in the default namespace
	CreationTime int64  // epoch milliseconds
	Type         int32  // TypeDisabled, TypeFlush or TypeSkipFlush
	Version      int32  // 2 for current snapshots, 0 for the old v1 layout
	Owner        string
	TTL          int64 // seconds after CreationTime; 0 or less: no expiry of its own
}

// TypeName is the snapshot type as HBase prints it.
func (s SnapshotInfo) TypeName() string {
	switch s.Type {
	case TypeDisabled:
		return "DISABLED"
	case TypeSkipFlush:
		return "SKIPFLUSH"
	}
	return "FLUSH"
}

// Discover reads the selected snapshots and resolves every file they need,
// listing them all at once (a grouped set made whole, see DiscoverGroups).
// It fails, with no Set, if any needed file is missing or any snapshot file
// is corrupt: a partial HBase backup cannot be restored.
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

// DiscoverGroups reads the selected snapshots and returns them as a grouped
// set, a region at a time (groups.go): a region's files are listed when
// the backup reaches it, so memory holds one region's list and an index of
// the regions, not a table's hundred thousand HFiles. The manifests are
// read as streams, a region manifest at a time. A first pass lists every
// group once, for the totals and to refuse a missing or corrupt file
// before anything is read (a partial HBase backup cannot be restored); it
// keeps the lists that fit in source.KeepListed for the backup
// (Set.AddGroup), and drops the rest.
func DiscoverGroups(ctx context.Context, o Options) (*source.Set, error) {
	r, err := openRoot(o.Root)
	if err != nil {
		return nil, err
	}
	if err := checkSnapshotDir(r); err != nil {
		return nil, err
	}
	names, err := selectSnapshots(r, o.Snapshots)
	if err != nil {
		return nil, err
	}
	set := &source.Set{Kind: "hbase", Tag: strings.Join(names, ","), Meta: map[string]string{
		"rootdir": r.dir, "snapshots": strings.Join(names, ","),
	}}
	d := &discovery{r: r}
	var tables []string
	for _, name := range names {
		s, err := openSnapshot(r, name)
		if err != nil {
			return nil, fmt.Errorf("hbase: snapshot %q: %w", name, err)
		}
		d.snaps = append(d.snaps, s)
		addMeta(set.Meta, s.info)
		tables = append(tables, s.info.Table)
	}
	slices.Sort(tables)
	set.Meta["tables"] = strings.Join(slices.Compact(tables), ",")
	regions, err := d.regionGroups(ctx)
	if err != nil {
		return nil, err
	}
	dirs, err := d.dirGroups()
	if err != nil {
		return nil, fmt.Errorf("hbase: read snapshot directory: %w", err)
	}
	// Sorted, the snapshot directories (".hbase-snapshot/…") come before
	// "archive/…": the order HBase wants them in place.
	for _, g := range dirs {
		err := addGroup(ctx, set, d.dirKey(g), &g.files, o.keep, func(ctx context.Context) ([]source.File, error) { return d.listDir(ctx, g) })
		if err != nil {
			return nil, err
		}
	}
	for _, g := range regions {
		err := addGroup(ctx, set, g.key, &g.files, o.keep, func(ctx context.Context) ([]source.File, error) { return d.listRegion(ctx, g) })
		if err != nil {
			return nil, err
		}
	}
	set.Totals.Memory += indexMemory(regions, dirs)
	return set, nil
}

// addGroup adds a group to set after listing it once (Set.AddGroup keeps
// that listing for the backup while it fits), and keeps in n how many
// files it has, so that later listings need not grow their slice.
func addGroup(ctx context.Context, set *source.Set, key string, n *int, keep int64, list func(context.Context) ([]source.File, error)) error {
	files, err := list(ctx)
	if err != nil {
		return err
	}
	*n = len(files)
	set.AddGroup(source.Group{Key: key, List: list}, files, listMemory(files), keep)
	return nil
}

func checkSnapshotDir(r *fsRoot) error {
	fi, err := os.Stat(r.abs(snapshotDir))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("hbase: %s has no %s directory: is it hbase.rootdir?", r.dir, snapshotDir)
	}
	return nil
}

// selectSnapshots validates the requested names against the completed
// snapshots, dropping duplicates.
func selectSnapshots(r *fsRoot, want []string) ([]string, error) {
	have, err := listSnapshots(r)
	if err != nil {
		return nil, fmt.Errorf("hbase: listing snapshots: %w", err)
	}
	existing := "none"
	if len(have) > 0 {
		existing = strings.Join(have, ", ")
	}
	if len(want) == 1 && want[0] == All {
		if len(have) == 0 {
			return nil, fmt.Errorf("hbase: no completed snapshots under %s", r.abs(snapshotDir))
		}
		return have, nil
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("hbase: no snapshot selected; existing snapshots: %s", existing)
	}
	var names []string
	for _, n := range want {
		if n == All {
			return nil, errors.New(`hbase: "all" cannot be combined with snapshot names`)
		}
		if !slices.Contains(have, n) {
			return nil, fmt.Errorf("hbase: no completed snapshot %q under %s; existing snapshots: %s",
				n, r.abs(snapshotDir), existing)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// addMeta records what restore needs to know without the files:
// snapshot.<name>.{table,created,version,ttl}.
func addMeta(m map[string]string, s SnapshotInfo) {
	p := "snapshot." + s.Name + "."
	m[p+"table"] = s.Table
	m[p+"created"] = strconv.FormatInt(s.CreationTime, 10)
	m[p+"version"] = strconv.Itoa(int(s.Version))
	m[p+"type"] = s.TypeName()
	if s.TTL != 0 {
		m[p+"ttl"] = strconv.FormatInt(s.TTL, 10)
	}
}
