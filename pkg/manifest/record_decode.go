package manifest

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// A restore passes over a million records several times, and verify, purge
// and the differential backup read every one: json.Unmarshal into a record
// (reflection, a scan of the line before the decode, a string per field)
// was most of their CPU after the file system's. recordDecoder reads the
// one form AppendRecord writes — json.Marshal of a record: its keys in the
// order of its fields, each once, no spaces, strings without escapes,
// integers as plain digits — by hand, and gives every other line to
// json.Unmarshal. It decodes only lines on which json.Unmarshal would
// yield the same record without an error (FuzzRecordDecode checks that),
// so what a manifest means, and every error for one that is not s3bak's,
// is still encoding/json's.

// The fields of record in their order, which is the order of their keys
// in a line AppendRecord writes (TestRecordKeys checks them against the
// struct's tags). The trailer's "end" is not here: a line with it goes to
// json.Unmarshal.
const (
	fieldPath = iota
	fieldPathB64
	fieldSize
	fieldModTime
	fieldMode
	fieldSHA256
	fieldKey
	fieldOffset
	fieldStoredSize
	fieldCompression
	fieldChunkSize
	fieldChunks
	fieldGroup
	fieldSkip
	fieldIno
	fieldDigest
	numFields
)

var recordKeys = [numFields]string{"p", "pb", "n", "t", "m", "h", "k", "o", "z", "c", "cs", "ch", "g", "sk", "i", "d"}

// maxKeptChunks bounds the chunk list a recordDecoder keeps for the next
// record: one 300 GB file's list need not stay for the small files after it.
const maxKeptChunks = 1 << 16

// recordDecoder decodes record lines; its zero value is ready. It is not
// safe for concurrent use.
type recordDecoder struct {
	// chunks backs the records' chunk lists: a record lives only until
	// file() copies its list into the File.
	chunks []int64
	// key is the last record's object key: the files of a pack are next
	// to each other in path order, and share its key's string.
	key string
}

// decode decodes line into r as json.Unmarshal would, into a zero record.
// r.Chunks may be the decoder's own memory, until the next decode.
func (d *recordDecoder) decode(line []byte, r *record) error {
	if d.fast(line, r) {
		return nil
	}
	// Into a record of its own: r passed to json.Unmarshal would be moved
	// to the heap for every record, the fast path's too.
	var slow record
	err := json.Unmarshal(line, &slow)
	*r = slow
	return err
}

// span is where a string field's bytes are in the line.
type span struct{ from, to int }

// fast decodes line into r if it is in the canonical form, and reports
// whether it was. It declines (false, r undefined) on anything else: a
// key it does not know, out of order or twice (encoding/json takes the
// last of a duplicate key, and matches keys case-insensitively), a space,
// an escape or a control character or invalid UTF-8 in a string (which
// json.Unmarshal would change), null, a number that is not a plain
// integer or does not fit its field, an empty chunk list, or anything
// after the closing brace.
func (d *recordDecoder) fast(line []byte, r *record) bool {
	*r = record{}
	n := len(line)
	if n < 2 || line[0] != '{' || line[n-1] != '}' {
		return false
	}
	var str [numFields]span
	next := 0 // the first field that may come next
	i := 1
	for {
		// "key": every key of a record is one or two bytes.
		if line[i] != '"' {
			return false
		}
		var key uint32
		switch {
		case i+3 < n && line[i+2] == '"':
			key, i = keyCode(line[i+1:i+2]), i+3
		case i+4 < n && line[i+3] == '"':
			key, i = keyCode(line[i+1:i+3]), i+4
		default:
			return false
		}
		if line[i] != ':' {
			return false
		}
		i++
		f := fieldOf(key, next)
		if f < 0 {
			return false
		}
		next = f + 1
		var ok bool
		switch f {
		case fieldPath, fieldPathB64, fieldSHA256, fieldKey, fieldCompression, fieldDigest:
			str[f].from, str[f].to, i, ok = scanString(line, i)
		case fieldSize:
			r.Size, i, ok = scanInt64(line, i)
		case fieldModTime:
			r.ModTime, i, ok = scanInt64(line, i)
		case fieldOffset:
			r.Offset, i, ok = scanInt64(line, i)
		case fieldStoredSize:
			r.StoredSize, i, ok = scanInt64(line, i)
		case fieldChunkSize:
			r.ChunkSize, i, ok = scanInt64(line, i)
		case fieldGroup:
			r.Group, i, ok = scanInt64(line, i)
		case fieldSkip:
			r.Skip, i, ok = scanInt64(line, i)
		case fieldMode:
			var v uint64
			v, i, ok = scanUint(line, i)
			ok = ok && v <= math.MaxUint32
			r.Mode = uint32(v)
		case fieldIno:
			r.Ino, i, ok = scanUint(line, i)
		case fieldChunks:
			r.Chunks, i, ok = d.scanChunks(line, i)
		}
		// i is now at the byte after the value: the line's last byte at
		// most, which is '}'.
		if !ok {
			return false
		}
		switch line[i] {
		case ',':
			i++
			continue
		case '}':
			if i != n-1 {
				return false
			}
			d.setStrings(line, &str, r)
			return true
		}
		return false
	}
}

// keyCode is a key of one or two bytes as a number, for fieldOf.
func keyCode(key []byte) uint32 {
	c := uint32(len(key))<<16 | uint32(key[0])
	if len(key) > 1 {
		c |= uint32(key[1]) << 8
	}
	return c
}

// recordKeyCodes are the keyCodes of recordKeys.
var recordKeyCodes = func() (c [numFields]uint32) {
	for f, k := range recordKeys {
		c[f] = keyCode([]byte(k))
	}
	return c
}()

// fieldOf is the field of the key whose keyCode is key, if it is one of
// those from first on.
func fieldOf(key uint32, first int) int {
	for f := first; f < numFields; f++ {
		if recordKeyCodes[f] == key {
			return f
		}
	}
	return -1
}

// stringFields are record's string fields, in their order.
var stringFields = [...]int{fieldPath, fieldPathB64, fieldSHA256, fieldKey, fieldCompression, fieldDigest}

// setStrings sets r's string fields from their spans in line, with one
// allocation for all of them: the object key of the record before and the
// compression modes s3bak writes are taken as they are, the rest copied
// once into one string and sliced from it.
func (d *recordDecoder) setStrings(line []byte, str *[numFields]span, r *record) {
	k := str[fieldKey]
	if string(line[k.from:k.to]) == d.key {
		r.Key = d.key
		str[fieldKey] = span{}
	}
	switch c := str[fieldCompression]; string(line[c.from:c.to]) {
	case string(chunk.Zstd):
		r.Compression = chunk.Zstd
		str[fieldCompression] = span{}
	case string(chunk.None):
		r.Compression = chunk.None
		str[fieldCompression] = span{}
	}
	total := 0
	for _, f := range stringFields {
		total += str[f].to - str[f].from
	}
	if total == 0 {
		return
	}
	var b strings.Builder
	b.Grow(total)
	for _, f := range stringFields {
		b.Write(line[str[f].from:str[f].to])
	}
	all := b.String()
	for _, f := range stringFields {
		s := all[:str[f].to-str[f].from]
		all = all[len(s):]
		switch {
		case s == "":
		case f == fieldPath:
			r.Path = s
		case f == fieldPathB64:
			r.PathB64 = s
		case f == fieldSHA256:
			r.SHA256 = s
		case f == fieldKey:
			r.Key, d.key = s, s
		case f == fieldCompression:
			r.Compression = chunk.Mode(s)
		case f == fieldDigest:
			r.Digest = s
		}
	}
}

// scanString scans the JSON string that starts at line[i], and returns
// where its bytes are and the index after it. It declines a string that
// json.Unmarshal would not take byte for byte: one with an escape, a
// control character (invalid JSON) or invalid UTF-8 (which becomes
// U+FFFD).
func scanString(line []byte, i int) (from, to, next int, ok bool) {
	if line[i] != '"' {
		return 0, 0, 0, false
	}
	j := i + 1
	for j+8 <= len(line) && !special(binary.LittleEndian.Uint64(line[j:])) {
		j += 8
	}
	ascii := true
	for ; j < len(line); j++ {
		switch c := line[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(line[i+1:j]) {
				return 0, 0, 0, false
			}
			return i + 1, j, j + 1, true
		case c == '\\' || c < 0x20:
			return 0, 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, 0, false
}

// special reports whether any of the eight bytes in v is a quote, a
// backslash, a control character or not ASCII: the bytes scanString has
// to look at one by one. It may say so of a word with none (a borrow
// from a byte that is one), never the other way round.
func special(v uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := v ^ '"'*ones  // a zero byte where v has a quote
	b := v ^ '\\'*ones // a zero byte where v has a backslash
	return ((q-ones)&^q|(b-ones)&^b|(v-0x20*ones)&^v|v)&highs != 0
}

// maxDigits is the most digits scanDigits takes: 19 digits never overflow
// a uint64. Longer numbers (none fits an int64) go to json.Unmarshal.
const maxDigits = 19

// scanDigits scans the digits of a JSON integer without sign that starts
// at line[i]: "0", or a digit 1-9 and more digits. A fraction or an
// exponent after them is not a ',', '}' or ']', so the caller declines it.
func scanDigits(line []byte, i int) (v uint64, next int, ok bool) {
	j := i
	for j < len(line) && '0' <= line[j] && line[j] <= '9' {
		v = 10*v + uint64(line[j]-'0')
		j++
		if j-i > maxDigits {
			return 0, 0, false
		}
	}
	switch {
	case j == i:
		return 0, 0, false
	case line[i] == '0' && j > i+1:
		return 0, 0, false // a leading zero is not JSON
	}
	return v, j, true
}

// scanUint scans an unsigned integer at line[i]; a minus sign, even in
// "-0", is for json.Unmarshal to refuse.
func scanUint(line []byte, i int) (uint64, int, bool) {
	return scanDigits(line, i)
}

// scanInt64 scans an int64 at line[i]. It declines "-0" (which
// json.Unmarshal reads as 0, but s3bak never writes) and values out of
// range (json.Unmarshal's error).
func scanInt64(line []byte, i int) (int64, int, bool) {
	neg := line[i] == '-'
	if neg {
		i++
	}
	v, next, ok := scanDigits(line, i)
	switch {
	case !ok:
		return 0, 0, false
	case neg && (v == 0 || v > 1<<63):
		return 0, 0, false
	case neg:
		return int64(-v), next, true // -(1<<63) wraps to itself, math.MinInt64
	case v > math.MaxInt64:
		return 0, 0, false
	}
	return int64(v), next, true
}

// scanChunks scans a non-empty JSON array of int64 at line[i] into the
// decoder's chunk list. An empty one is declined: json.Unmarshal makes it
// an empty slice, not a nil one.
func (d *recordDecoder) scanChunks(line []byte, i int) ([]int64, int, bool) {
	if line[i] != '[' {
		return nil, 0, false
	}
	if cap(d.chunks) > maxKeptChunks {
		d.chunks = nil
	}
	list := d.chunks[:0]
	i++
	for {
		v, next, ok := scanInt64(line, i)
		if !ok {
			return nil, 0, false
		}
		list = append(list, v)
		// next is the line's last byte at most: '}'.
		switch line[next] {
		case ',':
			i = next + 1
			continue
		case ']':
			d.chunks = list
			return list, next + 1, true
		}
		return nil, 0, false
	}
}
