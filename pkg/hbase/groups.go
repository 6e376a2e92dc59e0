package hbase

import (
	"context"
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/s3bak/s3bak/pkg/source"
)

// A set's groups, in the order of their paths (source.ComparePaths):
//
//	.hbase-snapshot/<name>/…   a snapshot directory: a group per
//	                           subdirectory (a v1 snapshot's region), one
//	                           per run of files between them
//	archive/data/<ns>/<table>/<region>/
//	                           a region: the files every selected snapshot
//	                           needs from it, through links and references too
//
// A region is the group because its files are what a region manifest
// lists: a table of a hundred thousand HFiles is held a region's few at a
// time. The files of a region can come from several region manifests (of
// each snapshot of the table, of a clone's links, of split daughters'
// references), so discovery keeps, per region, where those manifests are
// (regionSrc) and reads them again to list it: memory holds that index,
// some 200 bytes a region, and one region's files. (A table can have
// tens of thousands of regions; a group per table would hold all of its
// files at once.)

// discovery is what a grouped set's groups read from.
type discovery struct {
	r     *fsRoot
	snaps []*snapshot
}

// regionGroup is the files under one archive/data/<ns>/<table>/<region>.
type regionGroup struct {
	key  string
	srcs []regionSrc // the region manifests that need files of it, each once
	// files is how many the first listing found (0 before it): later
	// listings make their slice that size.
	files int
}

// dirGroup is a part of a snapshot directory: a subdirectory's tree
// (sub), or the files of the directory itself named first to last.
type dirGroup struct {
	snap        int
	sub         string
	first, last string
	files       int
}

// regionGroups reads every region manifest once, as a stream, for the
// regions they need files of, checking the names; the regions come sorted.
func (d *discovery) regionGroups(ctx context.Context) ([]*regionGroup, error) {
	byKey := map[string]*regionGroup{}
	for i, s := range d.snaps {
		err := s.eachRegion(ctx, d.r, func(src regionSrc, rm regionManifest) error {
			src.snap = i
			return s.eachNeed(rm, func(_, _, _ string, n need) error {
				key := n.t.regionDir()
				g := byKey[key]
				if g == nil {
					g = &regionGroup{key: key}
					byKey[key] = g
				}
				if len(g.srcs) == 0 || g.srcs[len(g.srcs)-1] != src {
					g.srcs = append(g.srcs, src)
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
	}
	groups := make([]*regionGroup, 0, len(byKey))
	for _, g := range byKey {
		g.srcs = slices.Clip(g.srcs)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *regionGroup) int { return source.ComparePaths(a.key, b.key) })
	return groups, nil
}

// listRegion reads again the region manifests that need files of the
// region and finds those files. A file several of them need is listed
// once (and checked against each one's size).
func (d *discovery) listRegion(ctx context.Context, g *regionGroup) ([]source.File, error) {
	files := make([]source.File, 0, g.files)
	at := map[string]int{}      // Path → index in files
	dirs := map[string]string{} // the files of a directory share its string
	for _, src := range g.srcs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := d.snaps[src.snap]
		rm, err := s.region(d.r, src)
		if err != nil {
			return nil, err
		}
		err = s.eachNeed(rm, func(region, family, storeFile string, n need) error {
			if n.t.regionDir() != g.key {
				return nil
			}
			if i, ok := at[n.t.archivePath()]; ok {
				if err := n.check(files[i]); err != nil {
					return annotate(err, s.info.Name, region, family, storeFile)
				}
				return nil
			}
			f, err := d.r.resolve(n)
			if err != nil {
				return annotate(err, s.info.Name, region, family, storeFile)
			}
			if dir, ok := dirs[f.Dir]; ok {
				f.Dir = dir
			} else {
				dirs[f.Dir] = f.Dir
			}
			at[f.Path] = len(files)
			files = append(files, f)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, source.CheckFiles(files)
}

// dirGroups splits each snapshot directory at its subdirectories, in path
// order: a v1 snapshot has a directory per region, with an empty file per
// store file in it.
func (d *discovery) dirGroups() ([]*dirGroup, error) {
	order := make([]int, len(d.snaps))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return source.ComparePaths(d.snaps[a].dir, d.snaps[b].dir) })
	var groups []*dirGroup
	for _, i := range order {
		entries, err := os.ReadDir(d.r.abs(d.snaps[i].dir))
		if err != nil {
			return nil, err
		}
		var run *dirGroup
		for _, e := range entries {
			isDir, err := d.r.isDir(d.snaps[i].dir, e)
			if err != nil {
				return nil, err
			}
			switch {
			case isDir:
				run = nil
				groups = append(groups, &dirGroup{snap: i, sub: e.Name()})
			case run == nil:
				run = &dirGroup{snap: i, first: e.Name(), last: e.Name()}
				groups = append(groups, run)
			default:
				run.last = e.Name()
			}
		}
	}
	return groups, nil
}

// key names the group: the subdirectory, or the run's first file.
func (d *discovery) dirKey(g *dirGroup) string {
	if g.sub != "" {
		return join(d.snaps[g.snap].dir, g.sub)
	}
	return join(d.snaps[g.snap].dir, g.first)
}

// listDir lists a part of a snapshot directory. ExportSnapshot copies the
// directory whole, whatever its format, Hadoop's checksum files aside.
func (d *discovery) listDir(ctx context.Context, g *dirGroup) ([]source.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files, err := d.readDirGroup(g)
	if err != nil {
		return nil, fmt.Errorf("hbase: snapshot %q: %w", d.snaps[g.snap].info.Name, err)
	}
	return files, source.CheckFiles(files)
}

func (d *discovery) readDirGroup(g *dirGroup) ([]source.File, error) {
	dir := d.snaps[g.snap].dir
	var files []source.File
	if g.sub != "" {
		// The snapshot directory counts as listed: a link back to it is
		// a loop.
		fi, err := os.Stat(d.r.abs(dir))
		if err != nil {
			return nil, err
		}
		seen := map[[2]uint64]bool{}
		if dev, ino := inode(fi); ino != 0 {
			seen[[2]uint64{dev, ino}] = true
		}
		if files, err = d.r.walk(join(dir, g.sub), seen); err != nil {
			return nil, err
		}
	} else {
		entries, err := os.ReadDir(d.r.abs(dir))
		if err != nil {
			return nil, err
		}
		files = make([]source.File, 0, g.files)
		for _, e := range entries {
			name := e.Name()
			if name < g.first || name > g.last || isChecksumFile(name) {
				continue
			}
			if isDir, err := d.r.isDir(dir, e); err != nil || isDir {
				if err != nil {
					return nil, err
				}
				continue
			}
			f, err := d.r.stat(join(dir, name))
			if err != nil {
				return nil, err
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// listMemory is about what listing files holds at most: the files, and a
// map entry for each while a region is listed.
func listMemory(files []source.File) int64 {
	return source.FilesMemory(files) + int64(len(files))*64
}

// indexMemory is about what the groups hold for the whole backup.
func indexMemory(regions []*regionGroup, dirs []*dirGroup) int64 {
	n := int64(len(regions)+len(dirs)) * int64(unsafe.Sizeof(source.Group{})+64) // and a closure
	n += int64(len(dirs)) * int64(unsafe.Sizeof(dirGroup{}))
	for _, g := range regions {
		n += int64(unsafe.Sizeof(*g)) + int64(len(g.key)) + int64(cap(g.srcs))*int64(unsafe.Sizeof(regionSrc{}))
		for _, s := range g.srcs {
			n += int64(len(s.name))
		}
	}
	return n
}
