package hbase

import (
	"errors"
	"fmt"
	"strings"

	"github.com/s3bak/s3bak/pkg/source"
)

// target names a store file the way HBase resolves it: the file's own
// table, region and family, wherever it currently lives.
type target struct {
	table  tableName
	region string
	family string
	file   string
}

func (t target) rel() string { return join("data", t.table.dir(), t.region, t.family, t.file) }

// regionDir is the directory of the region under archive/ (archivePath's):
// a group of the set.
func (t target) regionDir() string { return join("archive/data", t.table.dir(), t.region) }

// archivePath is where ExportSnapshot writes the file
// (ExportMapper.getOutputPath: archive/ + the link target's table path),
// and so where s3bak restores it.
func (t target) archivePath() string { return join("archive", t.rel()) }

// locations is HFileLink's search order: the live table, .tmp, the MOB
// root, then the archive.
func (t target) locations() []string {
	rel := t.rel()
	return []string{rel, join(".tmp", rel), join("mobdir", rel), join("archive", rel)}
}

// need is one file a manifest entry requires.
type need struct {
	t         target
	size      int64
	checkSize bool
}

// needs returns the files that SnapshotReferenceUtil.verifyStoreFile
// resolves for one manifest entry, i.e. what HBase requires before it
// clones or restores the snapshot:
//   - a plain HFile: itself;
//   - an HFileLink (empty file named [ns=]table=region-hfile): the file it
//     names, which lives in the linked table and region;
//   - a split reference (<file>.<parentRegion>): the parent file (itself
//     possibly a link); and when the manifest does not embed the Reference
//     (v1 snapshots), the reference file itself, which HBase then looks up
//     in data/ or archive/ like an HFile.
//
// Like StoreFileInfo, a valid link name is never taken for a reference.
func needs(table tableName, region, family string, sf storeFile) ([]need, error) {
	viaLink := func(t target) target {
		if l, ok := parseLink(t.file); ok {
			return target{table: l.table, region: l.region, family: family, file: l.hfile}
		}
		return t
	}
	file, parent, isRef := parseReference(sf.name)
	if sf.ref != nil && !isRef {
		return nil, fmt.Errorf("store file %q has a Reference but is not named like one", sf.name)
	}
	if !isRef {
		if err := validFileName(sf.name); err != nil {
			return nil, err
		}
		t := viaLink(target{table: table, region: region, family: family, file: sf.name})
		return []need{{t: t, size: sf.size, checkSize: sf.hasSize}}, nil
	}
	if !regionPattern().MatchString(parent) {
		return nil, fmt.Errorf("split reference %q: invalid parent region %q", sf.name, parent)
	}
	out := []need{{t: viaLink(target{table: table, region: parent, family: family, file: file})}}
	if _, parentIsLink := parseLink(file); sf.ref == nil && !parentIsLink {
		out = append(out, need{t: target{table: table, region: region, family: family, file: sf.name}})
	}
	return out, nil
}

// MissingFileError reports a store file that a snapshot needs but that is
// in none of the places HBase looks.
type MissingFileError struct {
	Snapshot, Region, Family string
	StoreFile                string   // the name in the snapshot manifest
	File                     string   // the file needed, data/<ns>/<table>/<region>/<family>/<name>
	Searched                 []string // absolute paths tried, in HBase's order
}

func (e *MissingFileError) Error() string {
	return fmt.Sprintf("hbase: snapshot %q, region %s, family %s: store file %s: %s is missing; searched %s",
		e.Snapshot, e.Region, e.Family, e.StoreFile, e.File, strings.Join(e.Searched, ", "))
}

// resolve finds n on disk and returns it with its restore Path.
func (r *fsRoot) resolve(n need) (source.File, error) {
	locs := n.t.locations()
	for _, rel := range locs {
		f, err := r.stat(rel)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return source.File{}, err
		}
		if err := n.check(f); err != nil {
			return source.File{}, err
		}
		f.Path = n.t.archivePath()
		return f, nil
	}
	e := &MissingFileError{File: n.t.rel()}
	for _, rel := range locs {
		e.Searched = append(e.Searched, r.abs(rel))
	}
	return source.File{}, e
}

// check compares f, found for n, with the size the manifest gives.
func (n need) check(f source.File) error {
	if n.checkSize && f.Size != n.size {
		return fmt.Errorf("%s: %d bytes, the snapshot manifest says %d", f.Abs(), f.Size, n.size)
	}
	return nil
}

// eachNeed calls fn with every file a region manifest's store files need,
// checking the names on the way.
func (s *snapshot) eachNeed(rm regionManifest, fn func(region, family, storeFile string, n need) error) error {
	region := encodedRegionName(rm.info)
	for _, ff := range rm.families {
		if err := validFamily(ff.name); err != nil {
			return fmt.Errorf("hbase: snapshot %q, region %s: %w", s.info.Name, region, err)
		}
		for _, sf := range ff.files {
			ns, err := needs(s.table, region, ff.name, sf)
			if err != nil {
				return annotate(err, s.info.Name, region, ff.name, sf.name)
			}
			for _, n := range ns {
				if err := fn(region, ff.name, sf.name, n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// annotate names the snapshot, region, family and store file in err.
func annotate(err error, snap, region, family, file string) error {
	var me *MissingFileError
	if errors.As(err, &me) {
		me.Snapshot, me.Region, me.Family, me.StoreFile = snap, region, family, file
		return me
	}
	return fmt.Errorf("hbase: snapshot %q, region %s, family %s, store file %q: %w", snap, region, family, file, err)
}
