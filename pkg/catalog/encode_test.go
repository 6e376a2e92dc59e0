package catalog

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// TestStreamedIndexDecodesAsMarshalled: the index written entry by entry
// into the compressor is the same document json.Marshal made, so indexes
// of either writer read alike.
func TestStreamedIndexDecodesAsMarshalled(t *testing.T) {
	x := NewIndex(manifest.Node{Cluster: "c", Name: "n"})
	x.Updated = time.Date(2026, 11, 30, 1, 2, 3, 4, time.UTC)
	x.Backups = []Summary{{ID: "20261130T010203Z"}}
	for i := range 50 {
		sha := fmt.Sprintf("%064x", i)
		x.Objects[sha] = &Object{Key: manifest.ObjectKey(sha, true, 1<<20), Size: int64(i) + 1, StoredSize: int64(i) + 3 + chunk.SeekTableSize(1),
			Compression: chunk.Zstd, ChunkSize: 1 << 20, Chunks: []manifest.Chunk{{Stored: int64(i) + 3, CRC32C: uint32(i)}}}
		x.Hints[fmt.Sprintf("fp-%d\x00\"quoted\"", i)] = sha
	}
	x.Partials = map[string]*Partial{"data/aa/x.c1024k.zst": {Key: "data/aa/x.c1024k.zst", UploadID: "u", Size: 10, ChunkSize: 1 << 20,
		Parts: []transfer.Part{{Number: 1, ETag: "e", Size: 5}}, Chunks: []manifest.Chunk{{Stored: 5, CRC32C: 9}}}}
	b, err := x.encodeLocked()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var want Index
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Objects, want.Objects) || !reflect.DeepEqual(got.Hints, want.Hints) ||
		!reflect.DeepEqual(got.Backups, want.Backups) || !reflect.DeepEqual(got.Partials, want.Partials) ||
		got.Cluster != "c" || got.Node != "n" || !got.Updated.Equal(x.Updated) || got.Schema != indexSchema {
		t.Fatal("the streamed index decodes to another index than json.Marshal's")
	}
}
