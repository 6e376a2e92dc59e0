package manifest

import (
	"encoding/json"
	"strconv"
)

// appendRecordJSON appends r as json.Marshal writes it. A backup writes a
// record for every file of the snapshot, and json.Marshal's reflection
// was most of the manifest's CPU on an unchanged million-file node. Strings
// of printable ASCII that encoding/json would not escape (no '"', '\\',
// '<', '>', '&') are written as they are; a record with any other string
// goes to json.Marshal, so what is written stays exactly encoding/json's
// (TestAppendRecordIsJSONMarshal, FuzzAppendRecord).
func appendRecordJSON(dst []byte, r *record) ([]byte, error) {
	if r.End != nil || !plainJSON(r.Path) || !plainJSON(r.PathB64) || !plainJSON(r.SHA256) || !plainJSON(r.Key) ||
		!plainJSON(string(r.Compression)) || !plainJSON(r.Digest) {
		b, err := json.Marshal(r)
		return append(dst, b...), err
	}
	dst = append(dst, `{"p":"`...)
	dst = append(dst, r.Path...)
	dst = append(dst, '"')
	if r.PathB64 != "" {
		dst = append(dst, `,"pb":"`...)
		dst = append(dst, r.PathB64...)
		dst = append(dst, '"')
	}
	dst = strconv.AppendInt(append(dst, `,"n":`...), r.Size, 10)
	dst = strconv.AppendInt(append(dst, `,"t":`...), r.ModTime, 10)
	dst = strconv.AppendUint(append(dst, `,"m":`...), uint64(r.Mode), 10)
	dst = append(append(append(dst, `,"h":"`...), r.SHA256...), '"')
	dst = append(append(append(dst, `,"k":"`...), r.Key...), '"')
	if r.Offset != 0 {
		dst = strconv.AppendInt(append(dst, `,"o":`...), r.Offset, 10)
	}
	dst = strconv.AppendInt(append(dst, `,"z":`...), r.StoredSize, 10)
	dst = append(append(append(dst, `,"c":"`...), r.Compression...), '"')
	if r.ChunkSize != 0 {
		dst = strconv.AppendInt(append(dst, `,"cs":`...), r.ChunkSize, 10)
	}
	if len(r.Chunks) > 0 {
		dst = append(dst, `,"ch":[`...)
		for i, v := range r.Chunks {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, v, 10)
		}
		dst = append(dst, ']')
	}
	if r.Group != 0 {
		dst = strconv.AppendInt(append(dst, `,"g":`...), r.Group, 10)
	}
	if r.Skip != 0 {
		dst = strconv.AppendInt(append(dst, `,"sk":`...), r.Skip, 10)
	}
	if r.Ino != 0 {
		dst = strconv.AppendUint(append(dst, `,"i":`...), r.Ino, 10)
	}
	if r.Digest != "" {
		dst = append(append(append(dst, `,"d":"`...), r.Digest...), '"')
	}
	return append(dst, '}'), nil
}

// plainJSON tells whether json.Marshal writes s between quotes as it is:
// printable ASCII without the characters it escapes (with its HTML
// escaping on, as json.Marshal has it).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
