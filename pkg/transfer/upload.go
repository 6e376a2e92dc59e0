package transfer

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MinPartSize and MaxParts are S3's multipart limits.
const (
	MinPartSize = 5 << 20
	MaxParts    = 10_000
)

// PartSizeFor returns the part size for objects made from files of up to
// largest raw bytes: at least min, and large enough that the largest fits
// in MaxParts. A compressed stream's length is unknown while it is
// uploaded, and the SDK does not grow parts by itself for such streams, so
// the size comes from the raw size plus 1% for frame headers.
func PartSizeFor(largest, min int64) int64 {
	need := (largest + largest/100 + MaxParts - 1) / MaxParts
	const mib = 1 << 20
	need = (need + mib - 1) / mib * mib
	return max(min, need, MinPartSize)
}

// uploader is the one seam between s3bak and the SDK's upload helper:
// feature/s3/manager is deprecated upstream in favour of
// feature/s3/transfermanager, and switching should touch only this file —
// the only one that knows manager (large files' multipart uploads, which
// s3bak drives itself so they can be resumed, are in multipart.go).
type uploader interface {
	upload(ctx context.Context, in *s3.PutObjectInput) error
}

//lint:file-ignore SA1019 feature/s3/manager is used on purpose until transfermanager is adopted; this file is the only place that knows it.

type managerUploader struct{ u *manager.Uploader }

func (m managerUploader) upload(ctx context.Context, in *s3.PutObjectInput) error {
	_, err := m.u.Upload(ctx, in)
	return err
}

// Uploader streams objects to the bucket, as one PUT when they fit in a
// part and as a multipart upload otherwise; a failed multipart upload is
// aborted, so no parts are left behind to be billed.
type Uploader struct {
	c           *Client
	up          uploader
	partSize    int64
	concurrency int
}

// UploaderOptions size the multipart upload.
type UploaderOptions struct {
	PartSize    int64 // bytes per part, at least MinPartSize
	Concurrency int   // parts in flight per object
}

// NewUploader returns an Uploader. Memory is about (Concurrency+1) ×
// PartSize per object being uploaded from a stream.
func (c *Client) NewUploader(o UploaderOptions) *Uploader {
	ps := max(o.PartSize, MinPartSize)
	mu := manager.NewUploader(c.s3, func(u *manager.Uploader) {
		u.PartSize = ps
		u.Concurrency = max(o.Concurrency, 1)
		u.MaxUploadParts = MaxParts
		if !c.wireChecksum {
			u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
	})
	return &Uploader{c: c, up: managerUploader{mu}, partSize: ps, concurrency: max(o.Concurrency, 1)}
}

// PartSize returns the part size in use.
func (u *Uploader) PartSize() int64 { return u.partSize }

// Concurrency is the parts in flight per object.
func (u *Uploader) Concurrency() int { return u.concurrency }

// StreamMemory is what one upload from a stream holds in part buffers.
func (u *Uploader) StreamMemory() int64 { return int64(u.concurrency+1) * u.partSize }

// Upload stores everything r yields at key. size, when known (≥ 0), is
// sent as the content length of a single PUT.
func (u *Uploader) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	in := &s3.PutObjectInput{Bucket: &u.c.Bucket, Key: &key, Body: r}
	if size >= 0 && size < u.partSize {
		in.ContentLength = aws.Int64(size)
	}
	if u.c.wireChecksum {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	// The manager copies these to CreateMultipartUpload, and SSE-C's key
	// to every part and to CompleteMultipartUpload.
	u.c.enc.put(in)
	in.StorageClass = u.c.storageClass // the Uploader stores data and packs only
	return u.c.classify("upload", key, u.up.upload(ctx, in))
}

// managerBucketRegion asks S3 where bucket lives (a HEAD whose answer names
// the region even when it is a redirect or a refusal).
func managerBucketRegion(ctx context.Context, cli *s3.Client, bucket string) (string, error) {
	return manager.GetBucketRegion(ctx, cli, bucket)
}
