package restore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// A restore's memory budget, not the network, decides how many bytes are
// in flight: a default one holds eight 8 MiB chunks. Fetched with a GET
// each, they are eight connections, and a connection to S3 carries some
// 80 MB/s after a first byte that takes tens of milliseconds: the restore
// of a node's large files would wait on them, with CPUs to spare. So the
// bytes of one GET are fetched as ranged GETs at once, of at least
// pieceSize each, on as many connections; the memory is the same. As many
// pieces as the node has CPUs, up to maxPieces: the connections need only
// keep up with the CPUs that decode and hash what they bring (some 0.5 GB/s
// each), and every piece is a request more for the server. Through the
// bench's network proxy (20 ms, 80 MB/s a connection) on two CPUs that
// the server shares, two pieces restored the default set in 2.66–3.14 s
// (four runs), four in 2.82–3.35 s, with MinIO at 1.1–1.4 CPU-s against
// 1.7–1.9 (bench/README.md, "Pieces of a span"). Not from a bucket near by
// (transfer.Near: a MinIO beside the node), where a connection is not the
// limit at all: in pieces, the bench's 1 GiB Data.db took MinIO 2.1 CPU-s
// to serve, in whole spans 1.1, and restored in 2.2-2.5 s, not 2.7-2.8.
var (
	pieceSize int64 = 2 << 20 // a variable so tests can use small ranges
	maxPieces       = 4
)

// pieces is how many ranged GETs a span is fetched in, at most.
func (r *restorer) pieces() int {
	if r.opts.Pieces > 0 {
		return r.opts.Pieces
	}
	return piecesFor(r.c.RoundTrip(), runtime.GOMAXPROCS(0))
}

// piecesFor is pieces for a bucket rtt away, on a node of cpus CPUs.
func piecesFor(rtt time.Duration, cpus int) int {
	if transfer.Near(rtt) {
		return 1
	}
	return min(max(cpus, 1), maxPieces)
}

// pieceAlign is where the pieces of a span are cut: object storage reads,
// and checks, whole blocks of an object (MinIO: 1 MiB), so a cut on a
// block boundary costs the server no block read twice.
const pieceAlign = 1 << 20

// cuts returns where the span [off, off+n) of an object is cut into at
// most pieces pieces: ascending ends relative to off, the last one n.
// Inner cuts sit on the nearest pieceAlign boundary of the object (half a
// piece, for small pieces).
func cuts(off, n int64, pieces int) []int64 {
	k := min(int64(pieces), (n+pieceSize-1)/pieceSize)
	if k <= 1 {
		return []int64{n}
	}
	align := max(min(pieceAlign, pieceSize/2), 1)
	ends := make([]int64, 0, k)
	prev := int64(0)
	for i := int64(1); i < k; i++ {
		at := (off+i*n/k+align/2)/align*align - off
		if at > prev && at < n {
			ends = append(ends, at)
			prev = at
		}
	}
	return append(ends, n)
}

// getSpan fills buf with the object's bytes at off, in at most pieces
// pieces fetched at once (see cuts), each with get's retries. It reports
// what one GET of the whole span would: the failure of the first piece
// that failed, and an object that ends where a piece starts (which that
// piece's GET is refused for, 416) as an object that ends there.
func getSpan(ctx context.Context, c *transfer.Client, key string, off int64, buf []byte, pieces int) error {
	ends := cuts(off, int64(len(buf)), pieces)
	if len(ends) == 1 {
		return get(ctx, c, key, off, buf, false)
	}
	errs := make([]error, len(ends))
	var wg sync.WaitGroup
	start := int64(0)
	for i, end := range ends {
		piece, at := buf[start:end], off+start
		wg.Go(func() { errs[i] = get(ctx, c, key, at, piece, false) })
		start = end
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		var resp *awshttp.ResponseError
		if i > 0 && errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
			// The pieces before it were whole: the object ends there.
			return fmt.Errorf("%w: object %s ends at %d, the manifest records bytes up to %d", ErrVerify, key, off+ends[i-1], off+int64(len(buf)))
		}
		return err
	}
	return nil
}
