package hbase

// This file is the only protobuf decoder of the package. HBase writes its
// snapshot files as proto2 messages (package hbase.pb, Snapshot.proto,
// HBase.proto, FS.proto); only the fields s3bak needs are decoded, everything
// else is skipped with protowire.ConsumeFieldValue as protobuf-java would.
// Input comes from disk and may be truncated or corrupt: every path returns
// an error naming the field, never panics, and counts are bounded.

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits. maxManifestSize is HBase's default snapshot.manifest.size.limit;
// the counts are far above real tables but keep a hostile 64 MiB manifest
// from expanding into gigabytes of structs.
const (
	maxManifestSize  = 64 << 20
	maxInfoSize      = 4 << 20 // .snapshotinfo (ACLs can make it grow)
	maxSmallFileSize = 1 << 20 // .regioninfo and reference files
	maxRegions       = 1 << 20 // per snapshot
	maxFamilies      = 1 << 12 // per region
	maxStoreFiles    = 1 << 22 // per manifest file
)

// pbMagic prefixes .regioninfo and reference files (ProtobufUtil.PB_MAGIC).
var pbMagic = []byte("PBUF")

// field is one field of a message as read off the wire.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // VarintType
	b   []byte // BytesType
}

// eachField calls fn for every field of the message b, in wire order.
func eachField(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks the wire type of a known field: a mismatch means corruption.
func (f field) want(name string, t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("%s (field %d): wire type %d, want %d", name, f.num, f.typ, t)
	}
	return nil
}

func (f field) bytes(name string) ([]byte, error)  { return f.b, f.want(name, protowire.BytesType) }
func (f field) varint(name string) (uint64, error) { return f.u, f.want(name, protowire.VarintType) }

func (f field) str(name string) (string, error) {
	b, err := f.bytes(name)
	return string(b), err
}

func missing(name string) error { return fmt.Errorf("missing required field %s", name) }

// decodeSnapshotInfo decodes a .snapshotinfo file (SnapshotDescription).
func decodeSnapshotInfo(b []byte) (SnapshotInfo, error) {
	s := SnapshotInfo{Type: TypeFlush}
	var hasName bool
	err := eachField(b, func(f field) error {
		var err error
		var u uint64
		switch f.num {
		case 1:
			s.Name, err = f.str("name")
			hasName = true
		case 2:
			s.Table, err = f.str("table")
		case 3:
			u, err = f.varint("creation_time")
			s.CreationTime = int64(u)
		case 4:
			u, err = f.varint("type")
			if u <= uint64(TypeSkipFlush) { // unknown enum values are ignored, as in proto2
				s.Type = int32(u)
			}
		case 5:
			u, err = f.varint("version")
			s.Version = int32(u)
		case 6:
			s.Owner, err = f.str("owner")
		case 8:
			u, err = f.varint("ttl")
			s.TTL = int64(u)
		}
		return err
	})
	if err == nil && !hasName {
		err = missing("name")
	}
	return s, err
}

// decodeRegionManifest decodes one region-manifest.<region> file.
func decodeRegionManifest(b []byte) (regionManifest, error) {
	if len(b) > maxManifestSize {
		return regionManifest{}, fmt.Errorf("%d bytes, over the %d-byte limit", len(b), maxManifestSize)
	}
	files := 0
	return decodeRegion(b, &files)
}

// decodeTableSchema keeps only the table name: s3bak copies data.manifest
// as is and needs nothing else from the schema.
func decodeTableSchema(b []byte, m *dataManifest) error {
	return eachField(b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		v, err := f.bytes("table_name")
		if err == nil {
			m.table, err = decodeTableName(v)
		}
		if err != nil {
			return fmt.Errorf("table_name: %w", err)
		}
		return nil
	})
}

func decodeTableName(b []byte) (tableName, error) {
	var t tableName
	var hasNS, hasQual bool
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.ns, err = f.str("namespace")
			hasNS = true
		case 2:
			t.qual, err = f.str("qualifier")
			hasQual = true
		}
		return err
	})
	switch {
	case err != nil:
	case !hasNS:
		err = missing("namespace")
	case !hasQual:
		err = missing("qualifier")
	}
	return t, err
}

// decodeRegion decodes a SnapshotRegionManifest; files counts store files
// across the whole manifest file against maxStoreFiles.
func decodeRegion(b []byte, files *int) (regionManifest, error) {
	var r regionManifest
	var hasInfo bool
	err := eachField(b, func(f field) error {
		switch f.num {
		case 2:
			hasInfo = true
			v, err := f.bytes("region_info")
			if err == nil {
				r.info, err = decodeRegionInfo(v)
			}
			if err != nil {
				return fmt.Errorf("region_info: %w", err)
			}
		case 3:
			if len(r.families) >= maxFamilies {
				return fmt.Errorf("more than %d family_files", maxFamilies)
			}
			v, err := f.bytes("family_files")
			if err != nil {
				return err
			}
			ff, err := decodeFamilyFiles(v, files)
			if err != nil {
				return fmt.Errorf("family_files[%d]: %w", len(r.families), err)
			}
			r.families = append(r.families, ff)
		}
		return nil
	})
	if err == nil && !hasInfo {
		err = missing("region_info")
	}
	return r, err
}

func decodeFamilyFiles(b []byte, files *int) (familyFiles, error) {
	var ff familyFiles
	var hasName bool
	err := eachField(b, func(f field) error {
		switch f.num {
		case 1:
			hasName = true
			v, err := f.bytes("family_name")
			ff.name = string(v)
			return err
		case 2:
			if *files >= maxStoreFiles {
				return fmt.Errorf("more than %d store files", maxStoreFiles)
			}
			*files++
			v, err := f.bytes("store_files")
			if err != nil {
				return err
			}
			sf, err := decodeStoreFile(v)
			if err != nil {
				return fmt.Errorf("store_files[%d]: %w", len(ff.files), err)
			}
			ff.files = append(ff.files, sf)
		}
		return nil
	})
	if err == nil && !hasName {
		err = missing("family_name")
	}
	return ff, err
}

func decodeStoreFile(b []byte) (storeFile, error) {
	var sf storeFile
	var hasName bool
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			sf.name, err = f.str("name")
			hasName = true
		case 2:
			var v []byte
			if v, err = f.bytes("reference"); err != nil {
				return err
			}
			r, err := decodeReference(v)
			if err != nil {
				return fmt.Errorf("reference: %w", err)
			}
			sf.ref = &r
		case 3:
			var u uint64
			u, err = f.varint("file_size")
			if err == nil && u > math.MaxInt64 {
				err = fmt.Errorf("file_size %d out of range", u)
			}
			sf.size, sf.hasSize = int64(u), true
		}
		return err
	})
	if err == nil && !hasName {
		err = missing("name")
	}
	return sf, err
}

// decodeReference decodes an FS.proto Reference message.
func decodeReference(b []byte) (reference, error) {
	var r reference
	var hasKey, hasRange bool
	err := eachField(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			r.splitKey, err = f.bytes("splitkey")
			hasKey = true
		case 2:
			var u uint64
			if u, err = f.varint("range"); err == nil && u <= 1 {
				r.top, hasRange = u == 0, true
			}
		}
		return err
	})
	switch {
	case err != nil:
	case !hasKey:
		err = missing("splitkey")
	case !hasRange:
		err = missing("range")
	}
	return r, err
}

func decodeRegionInfo(b []byte) (regionInfo, error) {
	var ri regionInfo
	var hasID, hasTable bool
	err := eachField(b, func(f field) error {
		var err error
		var u uint64
		switch f.num {
		case 1:
			ri.regionID, err = f.varint("region_id")
			hasID = true
		case 2:
			var v []byte
			if v, err = f.bytes("table_name"); err == nil {
				ri.table, err = decodeTableName(v)
			}
			if err != nil {
				return fmt.Errorf("table_name: %w", err)
			}
			hasTable = true
		case 3:
			ri.startKey, err = f.bytes("start_key")
		case 4:
			ri.endKey, err = f.bytes("end_key")
		case 7:
			u, err = f.varint("replica_id")
			ri.replicaID = int32(u)
		}
		return err
	})
	switch {
	case err != nil:
	case !hasID:
		err = missing("region_id")
	case !hasTable:
		err = missing("table_name")
	}
	return ri, err
}

// decodeRegionInfoFile decodes a v1 .regioninfo file: PBUF, then a
// length-delimited RegionInfo; HBase ignores whatever follows.
func decodeRegionInfoFile(b []byte) (regionInfo, error) {
	if !bytes.HasPrefix(b, pbMagic) {
		return regionInfo{}, errors.New("no PBUF prefix")
	}
	msg, n := protowire.ConsumeBytes(b[len(pbMagic):])
	if n < 0 {
		return regionInfo{}, fmt.Errorf("length-delimited RegionInfo: %w", protowire.ParseError(n))
	}
	return decodeRegionInfo(msg)
}

// decodeReferenceFile decodes a split reference file: PBUF followed by a
// Reference message. ok is false for the pre-0.96 Writable form, which is
// kept as is without decoding.
func decodeReferenceFile(b []byte) (r reference, ok bool, err error) {
	if len(b) < len(pbMagic) {
		return reference{}, false, fmt.Errorf("%d bytes, too short for a reference", len(b))
	}
	if !bytes.HasPrefix(b, pbMagic) {
		return reference{}, false, nil
	}
	r, err = decodeReference(b[len(pbMagic):])
	return r, err == nil, err
}
