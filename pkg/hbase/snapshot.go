package hbase

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/s3bak/s3bak/pkg/source"
)

// Layout names (HConstants, SnapshotDescriptionUtils, SnapshotManifest*).
const (
	snapshotDir      = ".hbase-snapshot"
	snapshotTmpDir   = ".tmp"
	snapshotInfoFile = ".snapshotinfo"
	dataManifestFile = "data.manifest"
	regionManifestPf = "region-manifest."
	regionInfoFile   = ".regioninfo"
)

// snapshot is one completed snapshot read from disk.
type snapshot struct {
	info    SnapshotInfo
	table   tableName
	regions []regionManifest
	// files is everything under .hbase-snapshot/<name>/: ExportSnapshot
	// copies that directory whole, whatever its format.
	files []source.File
}

func snapshotRel(name string) string { return join(snapshotDir, name) }

// readInfo reads and checks .hbase-snapshot/<name>/.snapshotinfo.
func readInfo(r *fsRoot, name string) (SnapshotInfo, tableName, error) {
	rel := join(snapshotRel(name), snapshotInfoFile)
	b, err := r.read(rel, maxInfoSize)
	if err != nil {
		return SnapshotInfo{}, tableName{}, err
	}
	info, err := decodeSnapshotInfo(b)
	if err != nil {
		return info, tableName{}, fmt.Errorf("%s: %w", r.abs(rel), err)
	}
	if info.Name != name {
		return info, tableName{}, fmt.Errorf("%s: names snapshot %q, not %q", r.abs(rel), info.Name, name)
	}
	if info.Version != 0 && info.Version != 2 {
		return info, tableName{}, fmt.Errorf("%s: unsupported snapshot format version %d", r.abs(rel), info.Version)
	}
	t, err := parseTableName(info.Table)
	if err != nil {
		return info, t, fmt.Errorf("%s: %w", r.abs(rel), err)
	}
	return info, t, nil
}

// loadSnapshot reads a snapshot the way SnapshotManifest.load does: v2 from
// data.manifest, or, when that is absent (v1, or v2 consolidated late),
// from v1 region directories plus region-manifest.* files.
func loadSnapshot(ctx context.Context, r *fsRoot, name string) (*snapshot, error) {
	info, table, err := readInfo(r, name)
	if err != nil {
		return nil, err
	}
	s := &snapshot{info: info, table: table}
	if s.files, err = r.walk(snapshotRel(name)); err != nil {
		return nil, err
	}
	has := func(base string) bool {
		for _, f := range s.files {
			if f.Path == join(snapshotRel(name), base) {
				return true
			}
		}
		return false
	}
	switch {
	case info.Version == 2 && has(dataManifestFile):
		err = s.loadDataManifest(r)
	case info.Version == 0 && !hasTableInfo(s.files, snapshotRel(name)):
		// SnapshotManifest.load reads the v1 table descriptor first.
		err = fmt.Errorf("v1 snapshot without a table descriptor (.tabledesc/.tableinfo.*) in %s", r.abs(snapshotRel(name)))
	default:
		err = s.loadRegionFiles(ctx, r)
		if err == nil && info.Version == 2 && len(s.regions) == 0 {
			// Even an empty table's snapshot has a data.manifest.
			err = fmt.Errorf("no %s and no region manifests in %s", dataManifestFile, r.abs(snapshotRel(name)))
		}
	}
	if err != nil {
		return nil, err
	}
	for i := range s.regions {
		if t := s.regions[i].info.table; t != table {
			return nil, fmt.Errorf("region %s belongs to table %s, not %s",
				encodedRegionName(s.regions[i].info), t, table)
		}
	}
	return s, nil
}

// hasTableInfo reports a .tableinfo.* file in dir/.tabledesc/ or, for
// older layouts, in dir itself.
func hasTableInfo(files []source.File, dir string) bool {
	for _, f := range files {
		parent, base := path.Split(f.Path)
		if strings.HasPrefix(base, ".tableinfo.") && (parent == dir+"/" || parent == dir+"/.tabledesc/") {
			return true
		}
	}
	return false
}

func (s *snapshot) loadDataManifest(r *fsRoot) error {
	rel := join(snapshotRel(s.info.Name), dataManifestFile)
	b, err := r.read(rel, maxManifestSize)
	if err != nil {
		return err
	}
	m, err := decodeDataManifest(b)
	if err != nil {
		return fmt.Errorf("%s: %w", r.abs(rel), err)
	}
	if m.table != (tableName{}) && m.table != s.table {
		return fmt.Errorf("%s: table schema is for %s, the snapshot for %s", r.abs(rel), m.table, s.table)
	}
	s.regions = m.regions
	return nil
}

// loadRegionFiles reads v1 region directories and, for v2, the
// region-manifest.* files, as HBase does for snapshots without data.manifest.
func (s *snapshot) loadRegionFiles(ctx context.Context, r *fsRoot) error {
	dir := snapshotRel(s.info.Name)
	entries, err := r.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(s.regions) >= maxRegions {
			return fmt.Errorf("snapshot %q: more than %d regions", s.info.Name, maxRegions)
		}
		isDir, err := r.isDir(dir, e)
		if err != nil {
			return err
		}
		var rm regionManifest
		switch {
		case isDir && regionPattern.MatchString(e.Name()): // FSUtils.RegionDirFilter
			rm, err = loadV1Region(r, join(dir, e.Name()))
		case s.info.Version == 2 && strings.HasPrefix(e.Name(), regionManifestPf) && !isDir:
			rel := join(dir, e.Name())
			var b []byte
			if b, err = r.read(rel, maxManifestSize); err == nil {
				if rm, err = decodeRegionManifest(b); err != nil {
					err = fmt.Errorf("%s: %w", r.abs(rel), err)
				}
			}
		default:
			continue
		}
		if err != nil {
			return err
		}
		s.regions = append(s.regions, rm)
	}
	return nil
}

// loadV1Region builds a region manifest from a v1 region directory:
// .regioninfo plus one entry per store file under <family>/. The entries
// are empty markers, except split references, which keep their content.
func loadV1Region(r *fsRoot, dir string) (regionManifest, error) {
	b, err := r.read(join(dir, regionInfoFile), maxSmallFileSize)
	if err != nil {
		return regionManifest{}, err
	}
	info, err := decodeRegionInfoFile(b)
	if err != nil {
		return regionManifest{}, fmt.Errorf("%s: %w", r.abs(join(dir, regionInfoFile)), err)
	}
	// HBase opens the region by its computed name; a mismatch would make it
	// read another directory, so refuse it here.
	if enc := encodedRegionName(info); enc != dir[strings.LastIndexByte(dir, '/')+1:] {
		return regionManifest{}, fmt.Errorf("%s: region info is for region %s", r.abs(dir), enc)
	}
	rm := regionManifest{info: info}
	families, err := r.readDir(dir)
	if err != nil {
		return rm, err
	}
	for _, fam := range families {
		if strings.HasPrefix(fam.Name(), ".") {
			continue
		}
		if isDir, err := r.isDir(dir, fam); err != nil || !isDir {
			if err != nil {
				return rm, err
			}
			continue
		}
		ff, err := loadV1Family(r, join(dir, fam.Name()))
		if err != nil {
			return rm, err
		}
		if len(rm.families) >= maxFamilies {
			return rm, fmt.Errorf("%s: more than %d families", r.abs(dir), maxFamilies)
		}
		rm.families = append(rm.families, ff)
	}
	return rm, nil
}

func loadV1Family(r *fsRoot, dir string) (familyFiles, error) {
	ff := familyFiles{name: dir[strings.LastIndexByte(dir, '/')+1:]}
	entries, err := r.readDir(dir)
	if err != nil {
		return ff, err
	}
	for _, e := range entries {
		if isChecksumFile(e.Name()) {
			continue
		}
		if isDir, err := r.isDir(dir, e); err != nil || isDir {
			if err != nil {
				return ff, err
			}
			continue
		}
		if len(ff.files) >= maxStoreFiles {
			return ff, fmt.Errorf("%s: more than %d store files", r.abs(dir), maxStoreFiles)
		}
		if _, _, isRef := parseReference(e.Name()); isRef {
			// RestoreSnapshotHelper reads this copy when cloning a v1
			// snapshot: it must decode.
			if err := checkReferenceFile(r, join(dir, e.Name())); err != nil {
				return ff, err
			}
		}
		ff.files = append(ff.files, storeFile{name: e.Name()})
	}
	return ff, nil
}

// checkReferenceFile decodes the split reference file at rel.
func checkReferenceFile(r *fsRoot, rel string) error {
	b, err := r.read(rel, maxSmallFileSize)
	if err == nil {
		_, _, err = decodeReferenceFile(b)
		if err != nil {
			err = fmt.Errorf("%s: split reference: %w", r.abs(rel), err)
		}
	}
	return err
}

// listSnapshots returns the completed snapshots under root: directories of
// .hbase-snapshot/ other than .tmp that hold a .snapshotinfo (HBase's
// SnapshotManager skips the others too).
func listSnapshots(r *fsRoot) ([]string, error) {
	entries, err := r.readDir(snapshotDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if n == snapshotTmpDir || validSnapshotName(n) != nil || strings.HasSuffix(n, "_CORRUPTED") {
			continue
		}
		if isDir, err := r.isDir(snapshotDir, e); err != nil || !isDir {
			if err != nil {
				return nil, err
			}
			continue
		}
		_, err := r.stat(join(snapshotDir, n, snapshotInfoFile))
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, nil
}
