package hbase

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// A data.manifest lists every store file of a table: a table of a hundred
// thousand HFiles makes one of some 10 MiB, and decoded whole, several
// times that. It is read here a region manifest at a time instead: each is
// decoded, handed over with its place in the file (so that it can be read
// again alone, with ReadAt) and dropped.

// regionField is one region_manifests field of a data.manifest: its value
// starts at off and is n bytes long.
type regionField struct {
	off, n int64
}

// manifestStream reads a SnapshotDataManifest's top-level fields from a
// reader, never holding more than one field's value.
type manifestStream struct {
	br   *bufio.Reader
	off  int64 // bytes consumed
	size int64 // bytes in all
}

// eachRegionManifest decodes the data.manifest of size bytes in r a region
// manifest at a time, calling fn with each in file order, and returns the
// table of its schema (empty when unset). Errors are decodeDataManifest's.
func eachRegionManifest(r io.Reader, size int64, fn func(regionField, regionManifest) error) (tableName, error) {
	if size > maxManifestSize {
		return tableName{}, fmt.Errorf("%d bytes, over the %d-byte limit", size, maxManifestSize)
	}
	s := &manifestStream{br: bufio.NewReaderSize(io.LimitReader(r, size), 64<<10), size: size}
	var table tableName
	var hasSchema bool
	regions, files := 0, 0
	for {
		num, typ, err := s.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return table, err
		}
		switch num {
		case 1:
			hasSchema = true
			v, err := s.value(num, "table_schema", typ)
			if err == nil {
				var m dataManifest
				err = decodeTableSchema(v, &m)
				table = m.table
			}
			if err != nil {
				return table, fmt.Errorf("table_schema: %w", err)
			}
		case 2:
			if regions >= maxRegions {
				return table, fmt.Errorf("more than %d region manifests", maxRegions)
			}
			off := s.off
			v, err := s.value(num, "region_manifests", typ)
			if err != nil {
				return table, err
			}
			rf := regionField{off: off + int64(protowire.SizeVarint(uint64(len(v)))), n: int64(len(v))}
			rm, err := decodeRegion(v, &files)
			if err != nil {
				return table, fmt.Errorf("region_manifests[%d]: %w", regions, err)
			}
			regions++
			if err := fn(rf, rm); err != nil {
				return table, err
			}
		default:
			if err := s.skip(num, typ, protowire.DefaultRecursionLimit); err != nil {
				return table, fmt.Errorf("field %d: %w", num, err)
			}
		}
	}
	if !hasSchema {
		return table, missing("table_schema")
	}
	return table, nil
}

// peek returns the next bytes, up to the ten a varint can take: fewer at
// the end, with an error only when reading failed.
func (s *manifestStream) peek() ([]byte, error) {
	p, err := s.br.Peek(binary.MaxVarintLen64)
	if err == io.EOF {
		err = nil
	}
	return p, err
}

// tag reads a field's tag; io.EOF at the end of the message.
func (s *manifestStream) tag() (protowire.Number, protowire.Type, error) {
	p, err := s.peek()
	if err != nil {
		return 0, 0, err
	}
	if len(p) == 0 {
		return 0, 0, io.EOF
	}
	num, typ, n := protowire.ConsumeTag(p)
	if n < 0 {
		return 0, 0, fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
	}
	return num, typ, s.discard(int64(n))
}

// value reads the value of the bytes field num, checking its wire type as
// field.want does.
func (s *manifestStream) value(num protowire.Number, name string, typ protowire.Type) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, field{num: num, typ: typ}.want(name, protowire.BytesType)
	}
	n, err := s.length()
	if err != nil {
		return nil, fmt.Errorf("field %d: %w", num, err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.br, b); err != nil {
		return nil, fmt.Errorf("field %d: %w", num, unexpected(err))
	}
	s.off += n
	return b, nil
}

// length reads a bytes field's length, refusing one past the end before
// anything of that size is made.
func (s *manifestStream) length() (int64, error) {
	p, err := s.peek()
	if err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeVarint(p)
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	if err := s.discard(int64(n)); err != nil {
		return 0, err
	}
	if v > uint64(s.size-s.off) {
		return 0, io.ErrUnexpectedEOF
	}
	return int64(v), nil
}

// skip passes over the value of a field s3bak does not read, as
// protowire.ConsumeFieldValue would, a group included.
func (s *manifestStream) skip(num protowire.Number, typ protowire.Type, depth int) error {
	switch typ {
	case protowire.BytesType:
		n, err := s.length()
		if err == nil {
			err = s.discard(n)
		}
		return err
	case protowire.StartGroupType:
		if depth < 0 {
			return errors.New("groups nested too deep")
		}
		for {
			num2, typ2, err := s.tag()
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			if err != nil {
				return err
			}
			if typ2 == protowire.EndGroupType {
				if num2 != num {
					return fmt.Errorf("group %d ends as group %d", num, num2)
				}
				return nil
			}
			if err := s.skip(num2, typ2, depth-1); err != nil {
				return err
			}
		}
	}
	// A varint, a fixed32 or fixed64, or no valid type: ten bytes at most
	// decide.
	p, err := s.peek()
	if err != nil {
		return err
	}
	n := protowire.ConsumeFieldValue(num, typ, p)
	if n < 0 {
		return protowire.ParseError(n)
	}
	return s.discard(int64(n))
}

func (s *manifestStream) discard(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := s.br.Discard(k)
		s.off += int64(d)
		n -= int64(d)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

// unexpected is io.ErrUnexpectedEOF for a message cut short, as protowire
// reports it.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeDataManifest decodes a whole data.manifest held in memory (the
// tests' and fuzzers' form of eachRegionManifest).
func decodeDataManifest(b []byte) (*dataManifest, error) {
	m := &dataManifest{}
	var err error
	m.table, err = eachRegionManifest(bytes.NewReader(b), int64(len(b)), func(_ regionField, rm regionManifest) error {
		m.regions = append(m.regions, rm)
		return nil
	})
	return m, err
}
