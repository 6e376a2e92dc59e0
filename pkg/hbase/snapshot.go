package hbase

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
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

// snapshot is one completed snapshot: its description, and where its
// region manifests are. They are read again, never kept, each time the
// files of a region are listed.
type snapshot struct {
	info  SnapshotInfo
	table tableName
	dir   string // .hbase-snapshot/<name>, which ExportSnapshot copies whole
	// manifest is the size of data.manifest when the regions are read
	// from it, -1 when they are in region-manifest.* files and v1 region
	// directories: a manifest that changes between its readings is then
	// refused, not misread.
	manifest int64
}

// regionSrc is where one region manifest of a snapshot is: a
// region_manifests field of data.manifest (name ""), a region-manifest.*
// file, or a v1 region directory (name, in the snapshot directory).
type regionSrc struct {
	snap   int // in discovery.snaps
	off, n int64
	name   string
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

// openSnapshot finds where a snapshot's region manifests are, the way
// SnapshotManifest.load does: v2 in data.manifest or, when that is absent
// (v1, or v2 consolidated late), in v1 region directories plus
// region-manifest.* files.
func openSnapshot(r *fsRoot, name string) (*snapshot, error) {
	info, table, err := readInfo(r, name)
	if err != nil {
		return nil, err
	}
	s := &snapshot{info: info, table: table, dir: snapshotRel(name), manifest: -1}
	if info.Version == 2 {
		f, err := r.stat(join(s.dir, dataManifestFile))
		if err == nil {
			s.manifest = f.Size
		} else if !errors.Is(err, errNotFound) {
			return nil, err
		}
	}
	if info.Version == 0 {
		// SnapshotManifest.load reads the v1 table descriptor first.
		ok, err := hasTableInfo(r, s.dir)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("v1 snapshot without a table descriptor (.tabledesc/.tableinfo.*) in %s", r.abs(s.dir))
		}
	}
	return s, nil
}

// hasTableInfo reports a .tableinfo.* file in dir/.tabledesc/ or, for
// older layouts, in dir itself.
func hasTableInfo(r *fsRoot, dir string) (bool, error) {
	for _, d := range []string{join(dir, ".tabledesc"), dir} {
		entries, err := r.readDir(d)
		if errors.Is(err, syscall.ENOTDIR) {
			continue // a file named .tabledesc
		}
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".tableinfo.") {
				continue
			}
			if isDir, err := r.isDir(d, e); err != nil || !isDir {
				return err == nil, err
			}
		}
	}
	return false, nil
}

// eachRegion hands fn every region manifest of the snapshot with where it
// is, one at a time: a data.manifest is read as a stream, a region
// manifest at a time. Errors of fn are returned as they are.
func (s *snapshot) eachRegion(ctx context.Context, r *fsRoot, fn func(regionSrc, regionManifest) error) error {
	var fnErr error
	call := func(src regionSrc, rm regionManifest) error {
		if err := ctx.Err(); err != nil {
			fnErr = err
			return err
		}
		if err := s.checkRegion(rm); err != nil {
			return err
		}
		fnErr = fn(src, rm)
		return fnErr
	}
	var err error
	if s.manifest >= 0 {
		err = s.streamManifest(r, call)
	} else {
		err = s.regionFiles(ctx, r, call)
	}
	if err != nil && fnErr == nil {
		return fmt.Errorf("hbase: snapshot %q: %w", s.info.Name, err)
	}
	return err
}

// checkRegion refuses a region of another table than the snapshot's.
func (s *snapshot) checkRegion(rm regionManifest) error {
	if t := rm.info.table; t != s.table {
		return fmt.Errorf("region %s belongs to table %s, not %s", encodedRegionName(rm.info), t, s.table)
	}
	return nil
}

// streamManifest reads data.manifest a region manifest at a time.
func (s *snapshot) streamManifest(r *fsRoot, fn func(regionSrc, regionManifest) error) error {
	h, rel, err := s.openManifest(r)
	if err != nil {
		return err
	}
	defer h.Close()
	var fnErr error
	table, err := eachRegionManifest(h, s.manifest, func(f regionField, rm regionManifest) error {
		fnErr = fn(regionSrc{off: f.off, n: f.n}, rm)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return fmt.Errorf("%s: %w", r.abs(rel), err)
	case table != (tableName{}) && table != s.table:
		return fmt.Errorf("%s: table schema is for %s, the snapshot for %s", r.abs(rel), table, s.table)
	}
	return nil
}

// openManifest opens data.manifest, checking that it is the size it was
// when the snapshot was opened and within HBase's limit.
func (s *snapshot) openManifest(r *fsRoot) (*os.File, string, error) {
	rel := join(s.dir, dataManifestFile)
	f, err := r.stat(rel)
	if errors.Is(err, errNotFound) {
		err = fmt.Errorf("%s: %w", r.abs(rel), fs.ErrNotExist)
	}
	if err != nil {
		return nil, rel, err
	}
	if f.Size > maxManifestSize {
		return nil, rel, fmt.Errorf("%s: %d bytes, over the %d-byte limit", f.Abs(), f.Size, maxManifestSize)
	}
	if f.Size != s.manifest {
		return nil, rel, fmt.Errorf("%s: %d bytes, %d when the backup began: a completed snapshot never changes; was it deleted and taken again?", f.Abs(), f.Size, s.manifest)
	}
	h, err := os.Open(f.Abs())
	return h, rel, err
}

// region reads the region manifest at src again.
func (s *snapshot) region(r *fsRoot, src regionSrc) (regionManifest, error) {
	rm, err := s.readRegion(r, src)
	if err == nil {
		err = s.checkRegion(rm)
	}
	if err != nil {
		return rm, fmt.Errorf("hbase: snapshot %q: %w", s.info.Name, err)
	}
	return rm, nil
}

func (s *snapshot) readRegion(r *fsRoot, src regionSrc) (regionManifest, error) {
	switch {
	case src.name == "":
		h, rel, err := s.openManifest(r)
		if err != nil {
			return regionManifest{}, err
		}
		defer h.Close()
		b := make([]byte, src.n)
		if _, err := h.ReadAt(b, src.off); err != nil {
			return regionManifest{}, fmt.Errorf("%s: %w", r.abs(rel), err)
		}
		files := 0
		rm, err := decodeRegion(b, &files)
		if err != nil {
			err = fmt.Errorf("%s: region manifest at byte %d: %w", r.abs(rel), src.off, err)
		}
		return rm, err
	case strings.HasPrefix(src.name, regionManifestPf):
		return readRegionManifest(r, join(s.dir, src.name))
	}
	return loadV1Region(r, join(s.dir, src.name))
}

func readRegionManifest(r *fsRoot, rel string) (regionManifest, error) {
	b, err := r.read(rel, maxManifestSize)
	if err != nil {
		return regionManifest{}, err
	}
	rm, err := decodeRegionManifest(b)
	if err != nil {
		err = fmt.Errorf("%s: %w", r.abs(rel), err)
	}
	return rm, err
}

// regionFiles reads v1 region directories and, for v2, the
// region-manifest.* files, as HBase does for snapshots without data.manifest.
func (s *snapshot) regionFiles(ctx context.Context, r *fsRoot, fn func(regionSrc, regionManifest) error) error {
	entries, err := r.readDir(s.dir)
	if err != nil {
		return err
	}
	regions := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if regions >= maxRegions {
			return fmt.Errorf("snapshot %q: more than %d regions", s.info.Name, maxRegions)
		}
		isDir, err := r.isDir(s.dir, e)
		if err != nil {
			return err
		}
		var rm regionManifest
		switch {
		case isDir && regionPattern().MatchString(e.Name()): // FSUtils.RegionDirFilter
			rm, err = loadV1Region(r, join(s.dir, e.Name()))
		case s.info.Version == 2 && strings.HasPrefix(e.Name(), regionManifestPf) && !isDir:
			rm, err = readRegionManifest(r, join(s.dir, e.Name()))
		default:
			continue
		}
		if err != nil {
			return err
		}
		regions++
		if err := fn(regionSrc{name: e.Name()}, rm); err != nil {
			return err
		}
	}
	if s.info.Version == 2 && regions == 0 {
		// Even an empty table's snapshot has a data.manifest.
		return fmt.Errorf("no %s and no region manifests in %s", dataManifestFile, r.abs(s.dir))
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
