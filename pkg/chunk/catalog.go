package chunk

import (
	"io"

	"github.com/klauspost/compress/zstd"
)

// catalogWindow is the zstd window of the catalog's objects (manifests,
// checkpoints, summaries): their records repeat within a few kilobytes,
// and the default window (8 MiB, held twice over by the encoder) would
// cost more memory than a big node's whole catalog lookup tables.
const catalogWindow = 1 << 20

// NewCatalogWriter compresses a catalog object into w: one goroutine, a
// small window, the fastest level. Records are mostly hex digests, which
// no match search shrinks: on a manifest of the bench's default set the
// fastest level stored 5% less than the default one, at half the CPU (the
// default level's was 5% of a small-files backup's).
func NewCatalogWriter(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(catalogWindow))
}

// NewCatalogReader decompresses a catalog object read from r, refusing a
// frame that asks for a larger window than catalog objects of any s3bak
// use.
func NewCatalogReader(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
}
