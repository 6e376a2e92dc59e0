package catalog

import (
	"fmt"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Partial is a large file's multipart upload that a run started and did
// not finish: its upload id, the parts stored, and the chunks those parts
// hold. It is saved with the run's checkpoints, so that the run after a
// crash continues the file where its parts end instead of starting over —
// a 300 GB file killed at 95% sends 5% again, not all of it.
type Partial struct {
	Key string `json:"key"` // the object's key, relative to the node's root
	// Fingerprint is the file's (source.File.Fingerprint) when Key is not
	// named by the content (a large file stored in one pass, under
	// manifest.UniqueObjectKey): the next run finds the upload by it.
	Fingerprint string           `json:"fingerprint,omitempty"`
	UploadID    string           `json:"upload_id"`
	Size        int64            `json:"size"` // of the file
	ChunkSize   int64            `json:"chunk_size"`
	Chunks      []manifest.Chunk `json:"chunks"` // the chunks the parts hold, in order
	Parts       []transfer.Part  `json:"parts"`
	Started     time.Time        `json:"started"`
}

// Stored is the bytes of the object the parts hold.
func (p *Partial) Stored() int64 {
	var n int64
	for _, c := range p.Chunks {
		n += c.Stored
	}
	return n
}

// check refuses a partial that does not hang together: it came from the
// bucket, and its chunks become part of a manifest.
func (p *Partial) check() error {
	if err := manifest.CheckKey(p.Key); err != nil {
		return fmt.Errorf("partial upload: %w", err)
	}
	var parts int64
	for i, pt := range p.Parts {
		if pt.Number != int32(i+1) || pt.Size <= 0 || pt.ETag == "" {
			return fmt.Errorf("partial upload of %s: part %d is not part %d of a contiguous run", p.Key, pt.Number, i+1)
		}
		parts += pt.Size
	}
	if p.ChunkSize <= 0 || p.Size < 0 || int64(len(p.Chunks)) > (p.Size+p.ChunkSize-1)/p.ChunkSize || parts != p.Stored() {
		return fmt.Errorf("partial upload of %s: its %d chunks (%d bytes) do not match its parts (%d bytes) or its file (%d bytes)",
			p.Key, len(p.Chunks), p.Stored(), parts, p.Size)
	}
	return nil
}

// Fits tells why p cannot be continued for a file of size bytes cut into
// chunks of chunkSize whose CRC32Cs are crcs, or "" when it can. Without
// crcs (a file read once) the caller checks the CRCs of p.Chunks as it
// reads them.
func (p *Partial) Fits(size, chunkSize int64, crcs []uint32) string {
	switch {
	case p.Size != size:
		return fmt.Sprintf("the file has %d bytes, the upload was of %d", size, p.Size)
	case p.ChunkSize != chunkSize:
		return fmt.Sprintf("the chunk size is %d, the upload's was %d", chunkSize, p.ChunkSize)
	case crcs == nil:
		return ""
	case len(p.Chunks) > len(crcs):
		return "the upload has more chunks than the file"
	}
	for i, c := range p.Chunks {
		if c.CRC32C != crcs[i] {
			return fmt.Sprintf("chunk %d of the file changed since", i)
		}
	}
	return ""
}
