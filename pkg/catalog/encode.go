package catalog

import (
	"bufio"
	"bytes"
	"encoding/json"

	"github.com/klauspost/compress/zstd"
)

// encodeLocked is the index as zstd-compressed JSON, encoded entry by
// entry straight into the compressor: only the compressed form is ever
// whole in memory. json.Marshal of the whole index held its JSON (hundreds
// of bytes a file) and its growing copies at every checkpoint.
func (x *Index) encodeLocked() ([]byte, error) {
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(zw, 64<<10)
	j := jsonWriter{w: w}
	w.WriteByte('{')
	j.field("schema", x.Schema, true)
	j.field("cluster", x.Cluster, false)
	j.field("node", x.Node, false)
	j.field("updated", x.Updated, false)
	j.field("backups", x.Backups, false)
	writeMap(&j, "objects", x.Objects)
	writeMap(&j, "hints", x.Hints)
	if len(x.Partials) > 0 {
		writeMap(&j, "partials", x.Partials)
	}
	w.WriteByte('}')
	if j.err == nil {
		j.err = w.Flush()
	}
	if err := zw.Close(); j.err == nil {
		j.err = err
	}
	return out.Bytes(), j.err
}

// jsonWriter writes a JSON object's fields one value at a time, keeping
// the first error.
type jsonWriter struct {
	w   *bufio.Writer
	err error
}

func (j *jsonWriter) value(v any) {
	if j.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		j.err = err
		return
	}
	_, j.err = j.w.Write(b)
}

func (j *jsonWriter) field(name string, v any, first bool) {
	if !first {
		j.w.WriteByte(',')
	}
	j.value(name)
	j.w.WriteByte(':')
	j.value(v)
}

// writeMap writes a field whose value is m, one entry at a time.
func writeMap[V any](j *jsonWriter, name string, m map[string]V) {
	j.w.WriteByte(',')
	j.value(name)
	j.w.WriteString(":{")
	first := true
	for k, v := range m {
		if !first {
			j.w.WriteByte(',')
		}
		first = false
		j.value(k)
		j.w.WriteByte(':')
		j.value(v)
	}
	j.w.WriteByte('}')
}
